"""The final system: the mixture prior against torch.distributions, its learning, LAFITE noise, the refiner,
prompts and their checks, the pipeline saved and loaded (its CLIP in plain open_clip), and jobs/pipeline.py
end to end on Ray (stages, assembly, evaluation, resume)."""

import dataclasses
import json
import math
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import distributions as D

from genlab.core.rundir import read_metrics, read_timeline
from genlab.pipeline import MixturePrior, PriorConfig, PromptError, RefinerUNet, TextToImagePipeline
from genlab.pipeline.pipeline import MAX_IMAGES, MAX_PROMPT_CHARS, check_prompts
from genlab.pipeline.prior import noised_image_embedding
from genlab.pipeline.prompts import balanced_prompts, digit_prompts
from genlab.data.captions import DIGITS, SYNONYMS
from tests.pipeline_helpers import CLIP, random_clip_weights, tiny_pipeline, tiny_vae_checkpoint

ROOT = Path(__file__).resolve().parents[1]


def test_mixture_log_prob_matches_torch_distributions():
    torch.manual_seed(0)
    prior = MixturePrior(PriorConfig(embed_dim=8, latent_dim=3, components=4, hidden=16))
    e, z = F.normalize(torch.randn(5, 8), dim=1), torch.randn(5, 3) * 2
    log_w, mu, log_sigma = prior(e)
    ref = D.MixtureSameFamily(D.Categorical(logits=log_w), D.Independent(D.Normal(mu, log_sigma.exp()), 1))
    torch.testing.assert_close(prior.log_prob(e, z), ref.log_prob(z), rtol=1e-5, atol=1e-5)


def test_prior_learns_a_mixture_per_condition_and_samples_reproducibly():
    """Two conditions, each with two modes: the prior must put its samples on the right condition's modes."""
    torch.manual_seed(0)
    prior = MixturePrior(PriorConfig(embed_dim=4, latent_dim=2, components=4, hidden=32))
    conds = torch.eye(4)[:2]
    modes = torch.tensor([[[4.0, 0.0], [-4.0, 0.0]], [[0.0, 4.0], [0.0, -4.0]]])
    opt = torch.optim.Adam(prior.parameters(), lr=3e-3)
    for _ in range(1000):  # measured: a plateau until ~500 steps, then the modes split
        c = torch.randint(0, 2, (256,))
        z = modes[c, torch.randint(0, 2, (256,))] + 0.3 * torch.randn(256, 2)
        loss = -prior.log_prob(conds[c], z).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    for c in range(2):
        s = prior.sample(conds[c].repeat(400, 1), generator=torch.Generator().manual_seed(1))
        dist = torch.cdist(s, modes[c]).min(1).values
        assert (dist < 1.0).float().mean() > 0.95, c  # on this condition's modes
        nearest = torch.cdist(s, modes[c]).argmin(1).float().mean()
        assert 0.3 < nearest < 0.7  # both modes, not one (a regressor would give their mean)
    a = prior.sample(conds[:1].repeat(8, 1), generator=torch.Generator().manual_seed(5))
    b = prior.sample(conds[:1].repeat(8, 1), generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    cold = prior.sample(conds[:1].repeat(400, 1), generator=torch.Generator().manual_seed(1), temperature=0.0)
    assert (torch.cdist(cold, modes[0]).min(1).values < 0.5).float().mean() > 0.95  # temperature 0: the means


def test_lafite_noise_sets_the_cosine_to_the_clean_embedding():
    e = F.normalize(torch.randn(2000, 64), dim=1)
    for noise in (0.0, 0.5, 1.0, 2.0):
        n = noised_image_embedding(e, noise, torch.Generator().manual_seed(0))
        torch.testing.assert_close(n.norm(dim=1), torch.ones(2000))
        cos = (n * e).sum(1).mean()
        assert abs(cos - 1 / math.sqrt(1 + noise**2)) < 0.02, noise


def test_refiner_keeps_shape_and_range():
    x = torch.rand(3, 1, 28, 28) * 2 - 1
    out = RefinerUNet(8)(x)
    assert out.shape == x.shape and out.abs().max() < 1


def test_text_conditioned_refiner_starts_as_the_plain_one_and_reads_the_prompt_once_trained():
    torch.manual_seed(0)
    plain, conditioned = RefinerUNet(8), RefinerUNet(8, embed_dim=16)
    conditioned.load_state_dict(plain.state_dict(), strict=False)  # all but the FiLM layer
    x, e = torch.rand(4, 1, 28, 28) * 2 - 1, F.normalize(torch.randn(4, 16), dim=1)
    torch.testing.assert_close(conditioned(x, e), plain(x))  # FiLM starts at scale 1, shift 0
    torch.nn.init.normal_(conditioned.film.weight)
    assert not torch.allclose(conditioned(x, e), conditioned(x, e.roll(1, 0)))  # other prompts, other images
    with pytest.raises(ValueError, match="text-conditioned"):
        conditioned(x)


def test_prompts_name_their_digit_and_held_out_templates_are_new():
    train, held = digit_prompts("train"), digit_prompts("heldout")
    for d in range(10):
        assert not set(train[d]) & set(held[d])
        for p in train[d] + held[d]:
            assert any(name in p for name in SYNONYMS[DIGITS[d]]), p
    prompts, digits = balanced_prompts(3, "heldout", seed=0)
    assert len(prompts) == 30 and digits == [d for d in range(10) for _ in range(3)]
    assert balanced_prompts(3, "heldout", seed=0)[0] == prompts
    with pytest.raises(ValueError, match="prompt split"):
        digit_prompts("test")


class _RealDigits:
    """A stand-in pipeline that answers each held-out prompt with a real MNIST test image of the digit it names
    (or of the next digit, `offset=1`): what the report's class agreement must read as right or wrong."""

    def __init__(self, offset: int):
        from genlab.data.mnist import load_dataset

        images, labels = load_dataset("mnist", "test")
        self.by_digit = [images[labels == d] for d in range(10)]  # uint8, as the evaluation takes them
        self.digit_of = {p: d for d, pool in enumerate(digit_prompts("heldout")) for p in pool}
        self.offset = offset

    def __call__(self, prompts, num_images=1, seed=0, temperature=None):
        prompts = [prompts] if isinstance(prompts, str) else prompts
        g = torch.Generator().manual_seed(seed)
        picks = []
        for p in prompts:
            pool = self.by_digit[(self.digit_of[p] + self.offset) % 10]
            picks.append(pool[torch.randint(len(pool), (num_images,), generator=g)])
        images = torch.cat(picks)
        return SimpleNamespace(images=images, raw=images)


@pytest.mark.parametrize("offset", [0, 1])
def test_report_class_agreement_reads_the_digit_each_prompt_asked_for(offset):
    """Real digits score near 1, the next digit for every prompt near 0 (the classifier errs on ~1% of MNIST)."""
    from genlab.pipeline.evaluate import evaluate_pipeline

    report = evaluate_pipeline(_RealDigits(offset), n_per_digit=20, quick=True)
    agreement = report["refined/class_agreement"]
    assert (agreement >= 0.9) if offset == 0 else (agreement <= 0.1), agreement


def test_bad_prompts_are_refused_with_a_reason():
    assert check_prompts("a seven", 2) == ["a seven"]
    for prompts, n, match in [("", 1, "empty"), ("   ", 1, "empty"), ([], 1, "no prompt"),
                              ("x" * (MAX_PROMPT_CHARS + 1), 1, "characters"), ("a seven", 0, "num_images"),
                              ("a seven", MAX_IMAGES + 1, "num_images"), (["a", "b"], MAX_IMAGES, "at most")]:
        with pytest.raises(PromptError, match=match):
            check_prompts(prompts, n)


def test_pipeline_saves_loads_and_reproduces_every_stage(tmp_path):
    import open_clip

    from genlab.multimodal.models import CONFIG_DIR

    pipe_dir = tiny_pipeline(tmp_path / "pipe")
    pipe = TextToImagePipeline.from_pretrained(pipe_dir)
    out = pipe(["a seven", "the digit 2"], num_images=3, seed=4)
    assert out.images.shape == out.raw.shape == (6, 1, 28, 28) and out.latents.shape == (6, 4)
    assert out.prompts == ["a seven"] * 3 + ["the digit 2"] * 3
    assert set(out.timings_ms) == {"text_encoder", "prior", "decoder", "refiner"}
    assert 0 <= out.images.min() and out.images.max() <= 1
    again = TextToImagePipeline.from_pretrained(pipe_dir)(["a seven", "the digit 2"], num_images=3, seed=4)
    assert torch.equal(out.images, again.images) and torch.equal(out.raw, again.raw)
    other = pipe(["a seven", "the digit 2"], num_images=3, seed=5)
    assert not torch.equal(out.latents, other.latents)
    assert not torch.equal(out.images, out.raw)  # the refiner ran
    assert torch.equal(pipe("a seven", 2, seed=1, refine=False).images, pipe("a seven", 2, seed=1).raw)
    # the CLIP inside loads in open_clip alone
    open_clip.add_model_config(CONFIG_DIR)
    plain = open_clip.create_model(CLIP, pretrained=str(pipe_dir / "clip" / "model.safetensors"))
    tokens = open_clip.get_tokenizer(CLIP)(["a seven"])
    torch.testing.assert_close(F.normalize(plain.eval().encode_text(tokens), dim=1), pipe.encode_prompts(["a seven"]))
    with pytest.raises(FileNotFoundError, match="jobs/pipeline.py"):
        TextToImagePipeline.from_pretrained(tmp_path)


def test_text_conditioned_ddpm_trains_and_generates_behind_the_same_call(tmp_path, tiny_mnist):
    from genlab.core.checkpoint import find_latest_checkpoint, load_model
    from genlab.core.runtime import LocalRuntime
    from genlab.distributed.pipeline_job import assemble_diffusion
    from genlab.pipeline.config import FrozenParts, TextDiffusionTrainConfig, smoke_text_diffusion
    from genlab.pipeline.train import train_text_diffusion

    parts = FrozenParts(clip_weights=str(random_clip_weights(tmp_path / "clip")))
    cfg = smoke_text_diffusion(TextDiffusionTrainConfig(parts=parts))
    cfg = dataclasses.replace(cfg, diffusion=dataclasses.replace(cfg.diffusion, epochs=3, max_steps_per_epoch=8))
    train_text_diffusion(cfg, LocalRuntime(tmp_path / "ddpm", {"train": tiny_mnist}, seed=0), tiny_mnist)
    losses = [r["train/loss"] for r in read_metrics(tmp_path / "ddpm" / "metrics.jsonl") if "epoch" in r]
    assert len(losses) == 3 and losses[-1] < 0.8 * losses[0], losses  # it learns: the epoch's mean loss falls
    ckpt = find_latest_checkpoint(tmp_path / "ddpm")
    pipe = TextToImagePipeline.from_pretrained(assemble_diffusion(parts, ckpt, tmp_path / "pipe"))
    assert pipe.generator == "diffusion" and pipe.diffusion.cond_dim == pipe.encode_prompts(["a"]).shape[1]
    ema = load_model(ckpt, ema=True).state_dict()  # the pipeline samples with the EMA weights
    assert all(torch.equal(v, ema[k]) for k, v in pipe.diffusion.unet.state_dict().items())
    out = pipe(["a seven", "the digit 2"], num_images=2, seed=3)
    assert out.images.shape == (4, 1, 28, 28) and out.latents.shape == (4, 0) and torch.equal(out.images, out.raw)
    assert set(out.timings_ms) == {"text_encoder", "generator"} and 0 <= out.images.min() <= out.images.max() <= 1
    again = TextToImagePipeline.from_pretrained(tmp_path / "pipe")(["a seven", "the digit 2"], num_images=2, seed=3)
    assert torch.equal(out.images, again.images)
    assert not torch.equal(out.images, pipe(["a seven", "the digit 2"], num_images=2, seed=4).images)
    # the prompt reaches the image through the guided U-Net (same seed, same noise, another prompt)
    assert not torch.equal(out.images[:1], pipe("a two", 1, seed=3).images)
    with pytest.raises(PromptError):
        pipe("", 1)


def _job(*args, cwd=ROOT, timeout=600):
    return subprocess.run([sys.executable, "jobs/pipeline.py", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def test_job_refuses_bad_parts_before_training(tmp_path):
    from tests.cli_helpers import run_cli

    out = run_cli("jobs/pipeline.py", "--clip", str(tmp_path / "nope"), "--ray.storage", str(tmp_path))
    assert out.returncode != 0 and "no such file" in out.stderr
    clip = random_clip_weights(tmp_path / "clip")
    out = run_cli("jobs/pipeline.py", "--clip", str(clip), "--vae", str(tmp_path), "--ray.storage", str(tmp_path))
    assert out.returncode != 0 and "no checkpoint there" in out.stderr
    assert not list(tmp_path.glob("pipeline__*"))  # nothing started


@pytest.mark.ray
def test_pipeline_job_smoke_on_ray_then_resume_keeps_the_stages(tmp_path):
    clip = random_clip_weights(tmp_path / "clip")
    vae = tiny_vae_checkpoint(tmp_path / "vae")
    args = ["--smoke-test", "--text-ddpm", "--clip", str(clip), "--vae", str(vae), "--ray.storage",
            str(tmp_path / "runs")]
    out = _job(*args)
    assert out.returncode == 0, out.stderr[-3000:]
    run = next((tmp_path / "runs").glob("pipeline__*"))
    stages = ("prior", "refiner", "text_ddpm")
    for stage in stages:
        assert (run / stage / "done.json").exists() and (run / stage / "metrics.jsonl").exists()
    # the stages trained at the same time (three on two CPUs: one may wait for a CPU, two overlap): training
    # windows, from the worker group's start to the last optimizer step
    start = {s: json.loads((run / s / "worker_groups.jsonl").read_text().splitlines()[0])["started_at"]
             for s in stages}
    end = {s: read_timeline(run / s, "last_step_end")[-1]["at"] for s in stages}
    assert any(start[a] < end[b] and start[b] < end[a] for a in stages for b in stages if a < b), (start, end)
    report = json.loads((run / "report.json").read_text())
    assert {f"diversity/{d}" for d in range(10)} <= set(report)
    assert (run / "raw_vs_refined.png").exists() and (run / "one_prompt_64_images.png").exists()
    pipe = TextToImagePipeline.from_pretrained(run / "pipeline")
    # the report scores the saved pipeline: its held-out prompts again, the digit the classifier reads in each
    # image against the digit asked for
    from genlab.eval.fld_reference import reference_classifier
    from genlab.eval.fld import predict
    from genlab.pipeline.evaluate import generate_many

    prompts, digits = balanced_prompts(20, "heldout", seed=0)
    refined, _, _ = generate_many(pipe, prompts, seed=0, temperature=report["temperature"])
    read = predict(reference_classifier("mnist", quick=True)[0], refined)
    assert report["n_images"] == 200
    assert report["refined/class_agreement"] == pytest.approx(float((read == torch.tensor(digits)).double().mean()))
    assert pipe("a seven", 2, seed=0).images.shape == (2, 1, 28, 28)
    # the other generator: its own pipeline directory, figures and report, the same interface
    ddpm_report = json.loads((run / "ddpm" / "report.json").read_text())
    assert ddpm_report["n_images"] == 200 and ddpm_report["refiner_fld_reduction"] == 0  # no raw stage to improve
    assert (run / "ddpm" / "prompts_ddpm.png").exists() and (run / "ddpm" / "one_prompt_64_images.png").exists()
    ddpm = TextToImagePipeline.from_pretrained(run / "pipeline_ddpm")
    assert ddpm.generator == "diffusion" and ddpm("a seven", 2, seed=0).images.shape == (2, 1, 28, 28)
    assert "diffusion:" in out.stdout and "prior_vae:" in out.stdout
    # resuming the finished run retrains and re-measures nothing (no Ray starts); other flags are refused
    from tests.cli_helpers import run_cli

    again = run_cli("jobs/pipeline.py", *args, "--ray.resume", str(run), "--eval-per-digit", "0")
    assert again.returncode != 0 and "differs" in again.stderr
    before = (run / "report.json").stat().st_mtime
    again = _job(*args, "--ray.resume", str(run))
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stderr.count("finished before, kept") == 3 and "Started a local Ray instance" not in again.stderr
    assert (run / "report.json").stat().st_mtime == before


def test_text_conditioned_refiner_step_with_class_discriminator_and_clip_content_loss(tmp_path, tiny_mnist):
    """The refiner's options together in the local loop: the prompt's CLIP embedding into the U-Net, the digit
    into the discriminator, the content loss through the frozen CLIP image tower (reported)."""
    from genlab.core.checkpoint import load_model
    from genlab.core.runtime import LocalRuntime
    from genlab.pipeline import RefinerConfig
    from genlab.pipeline.config import FrozenParts, RefinerTrainConfig, smoke_refiner
    from genlab.pipeline.train import train_refiner

    parts = FrozenParts(clip_weights=str(random_clip_weights(tmp_path / "clip")),
                        vae=str(tiny_vae_checkpoint(tmp_path / "vae")))
    cfg = smoke_refiner(RefinerTrainConfig(parts=parts, refiner=RefinerConfig(channels=8), clip_weight=10.0,
                                           max_steps_per_epoch=3, batch_size=16))  # text_condition etc.: defaults
    train_refiner(cfg, LocalRuntime(tmp_path / "run", {"train": tiny_mnist}), test=tiny_mnist)
    records = read_metrics(tmp_path / "run" / "metrics.jsonl")
    (last,) = [r for r in records if "train/clip_content" in r]
    assert 0 < last["train/clip_content"] <= 2
    assert any("eval/l1_refined" in r for r in records)  # the evaluation reads test captions' embeddings too
    refiner = load_model(next((tmp_path / "run" / "checkpoints").iterdir()))
    assert refiner.generator.film is not None and refiner.discriminator.embed.num_embeddings == 10
    assert refiner.generator.film.weight.abs().sum() > 0  # the condition was trained, not left at its zero start
