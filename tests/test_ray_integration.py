"""Real Ray: 2-worker TorchTrainer runs on colour sets (the 64 px DCGAN, the U-Net and the VAE at 32 px) that
checkpoint and resume, and `ray job submit` to a local head (the
GAN, DDPM and CLIP jobs' smoke runs, the comparison job over the GAN and DDPM runs, and the index job over the
CLIP run, then the search app's Serve config deployed with `serve deploy`; jobs/rl.py runs on an embedded Ray in
test_jobs.py)."""

import contextlib
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import types
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
import yaml

from genlab.core.checkpoint import find_latest_checkpoint, load_model, load_train_state
from genlab.core.rundir import make_run_dir, read_metrics
from genlab.distributed.trainer import RayConfig, fit
from tests.serve_helpers import free_port

ROOT = Path(__file__).resolve().parents[1]
RAY_BIN = str(Path(sys.executable).parent / "ray")
pytestmark = pytest.mark.ray


@pytest.fixture
def local_ray():  # function scope: each test gets its own
    from genlab.distributed.env import init_ray

    # 4 logical CPUs on 2 cores: two 2-worker runs of one thread per worker train at the same time
    ray = init_ray(num_cpus=4, object_store_memory=256 * 2**20)
    yield ray
    ray.shutdown()


def gan_on_faces():
    from genlab.gan import GANTrainConfig

    cfg = GANTrainConfig(dataset="faces", epochs=2, batch_size=16, max_steps_per_epoch=2, log_every=1,
                         ema_decay=0.9, fld_samples=0, progress=False)
    assert (cfg.model.arch, cfg.model.image_size, cfg.model.image_channels) == ("dcgan", 64, 3)
    return "genlab.gan.train:train", cfg, ("train/loss_d", [1, 2, 3, 4]), ["epochs/samples_epoch001.png", "epochs/samples_epoch002.png"]


def test_ray_data_embeds_a_caption_split_in_many_blocks_over_two_actors_as_one_loop_does(local_ray, tmp_path):
    """The index's Ray Data path: small read blocks (so results stream back) spread over two actors give every
    row once, with exactly the embeddings of the in-process loop."""
    from genlab.core.checkpoint import save_checkpoint
    from genlab.data.shards import ensure_shards
    from genlab.distributed.embed import embed_with_ray
    from genlab.multimodal.embed import embed_in_process
    from genlab.multimodal.models import create_clip

    torch.manual_seed(0)
    weights = str(save_checkpoint(tmp_path / "ckpt", family="clip", config={"model": "genlab-clip-rn"},
                                  model=create_clip("genlab-clip-rn")[0]) / "model.safetensors")
    source = ensure_shards("captions_small", "test_combos")
    ids, emb = embed_in_process(source, "genlab-clip-rn", weights, 64, progress=False)
    from genlab.multimodal.embed import Embedder

    log = tmp_path / "calls.jsonl"

    class LoggingEmbedder(Embedder):  # defined here: Ray ships it by value; each call notes its actor and time
        def __call__(self, batch: dict) -> dict:
            import json
            import os
            import time

            out = super().__call__(batch)
            with open(log, "a") as f:
                f.write(json.dumps({"pid": os.getpid(), "rows": len(batch["id"]), "at": time.time()}) + "\n")
            return out

    timings = {}
    ray_ids, ray_emb = embed_with_ray(source, "genlab-clip-rn", weights, 64, actors=2, cpus_per_actor=1.5,
                                      threads_per_actor=1, block_mb=0.05, progress=False, timings=timings,
                                      embedder=LoggingEmbedder)
    assert sorted(ray_ids) == sorted(ids) and len(ray_ids) == len(ids) == 500
    order = {i: j for j, i in enumerate(ray_ids)}
    assert torch.allclose(ray_emb[[order[i] for i in ids]], emb, atol=1e-5)
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    rows_by_actor = Counter()
    for c in calls:
        rows_by_actor[c["pid"]] += c["rows"]
    assert len(rows_by_actor) == 2 and sum(rows_by_actor.values()) == 500, rows_by_actor  # both actors embedded
    # many small blocks: results streamed back while the pool was still embedding (one block would come back whole)
    assert len(calls) >= 500 // 64 and timings["first_batch_at"] < max(c["at"] for c in calls), (timings, calls)


def ddpm_on_faces32():
    from genlab.diffusion import DiffusionConfig, SamplerConfig, ScheduleConfig, UNetConfig

    cfg = DiffusionConfig(unet=UNetConfig(channels=8, channel_mults=(1, 2), attention_levels=(1,)),
                          schedule=ScheduleConfig(timesteps=50), dataset="faces@32", epochs=2, batch_size=16,
                          max_steps_per_epoch=2, eval_images=32, ema_decay=0.9, warmup_steps=2, grid_steps=2,
                          sampler=SamplerConfig(steps=4), fld_samples=0, progress=False)
    assert (cfg.unet.in_channels, cfg.unet.image_size) == (3, 32)
    return "genlab.diffusion.train:train", cfg, ("train/loss", [2, 4]), ["epochs/samples_epoch001.png", "epochs/samples_epoch002.png"]


def vae_on_faces32():
    from genlab.autoencoders import ModelConfig, TrainConfig

    cfg = TrainConfig(model=ModelConfig(kind="vae", arch="conv", channels=(8, 16), conv_fc=32, latent_dim=4),
                      dataset="faces@32", epochs=2, batch_size=16, max_steps_per_epoch=2, eval_images=32, iw_k=0,
                      progress=False)
    assert cfg.model.image_shape == (3, 32, 32) and not cfg.binarize
    return "genlab.autoencoders.train:train", cfg, ("train/loss", [2, 4]), ["prior_samples.png", "reconstructions.png"]


@pytest.mark.parametrize("family", [gan_on_faces, ddpm_on_faces32, vae_on_faces32], ids=lambda f: f.__name__)
def test_two_workers_train_a_colour_set_and_resume_exactly(local_ray, tmp_path, family):
    """The jobs' colour paths under Ray Train with 2 workers, each reading its share of the shards (the 'auto'
    backend's choice for these sets; Ray Data's streaming split hands blocks to whichever worker asks first, so
    only this one replays exactly): the DCGAN paper's 64x64 networks on the offline faces (G and D separate DDP
    modules with BatchNorm, D run twice per step before one backward), the U-Net and the conv VAE on the faces at
    32x32. Every rank ends each epoch with rank 0's parameters and statistics and draws its own noise; a run
    stopped after its first epoch and resumed ends bit-identical to an uninterrupted one; grids written."""
    loop, cfg, (loss_key, logged_at), grids = family()  # the GAN logs every step, the others each epoch
    dataset = cfg.dataset
    two = RayConfig(num_workers=2, cpus_per_worker=1, data_backend="local")
    straight = make_run_dir("straight", 0, root=tmp_path)
    resumed = make_run_dir("resumed", 0, root=tmp_path)
    with ThreadPoolExecutor(2) as pool:  # the uninterrupted run and the stopped one side by side
        full = pool.submit(fit, loop, cfg, straight, two, dataset)
        stopped = fit(loop, cfg, resumed, dataclasses.replace(two, stop_after_s=1e-9), dataset)
        assert full.result()["step"] == 4
    assert stopped["step"] == 2 and load_train_state(find_latest_checkpoint(resumed))["step"] == 2
    fit(loop, cfg, resumed, two, dataset)  # same run name and storage: Ray Train resumes
    for run in (straight, resumed):
        records = read_metrics(run / "metrics.jsonl")
        assert [r["step"] for r in records if loss_key in r] == logged_at  # nothing lost or repeated
        epochs = [r for r in records if "epoch" in r]
        assert [r["step"] for r in epochs] == [2, 4]
        assert all(r["dist/replicas_in_sync"] == 1.0 and r["dist/rng_streams"] == 2 for r in epochs), epochs
        assert all((run / g).exists() for g in grids), sorted(p.name for p in run.rglob("*.png"))
        # TensorBoard beside metrics.jsonl: the same loss steps (the resumed run's repeats purged) and the grids
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        board = EventAccumulator(str(run / "tensorboard"), size_guidance={"images": 0, "scalars": 0})
        board.Reload()
        assert sorted({e.step for e in board.Scalars(loss_key)}) == logged_at, board.Tags()
        assert len([e.step for e in board.Scalars(loss_key)]) == len(logged_at)  # nothing logged twice
        assert board.Tags()["images"], board.Tags()
    a = load_model(find_latest_checkpoint(straight)).state_dict()
    b = load_model(find_latest_checkpoint(resumed)).state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), "the resumed run differs"
    if "gan" in loop:
        assert (find_latest_checkpoint(straight) / "ema.safetensors").exists()


@contextlib.contextmanager
def ray_head(env: dict, port: int, dash: int, log: Path):
    """`ray start --head --block` in a process group of its own, ended by a signal to that group: `ray stop`
    would end every Ray on the machine, also one the user runs beside the tests."""
    temp_dir = Path("/tmp") / f"ray-genlab-{os.getpid()}"  # short: Ray's socket paths have a length limit
    with open(log, "w") as out:
        head = subprocess.Popen([RAY_BIN, "start", "--head", "--block",
                                 f"--port={port}", f"--dashboard-port={dash}", "--dashboard-host=127.0.0.1",
                                 # not Ray's fixed defaults (52365, 10001): another Ray may run beside this one
                                 f"--dashboard-agent-listen-port={free_port()}",
                                 f"--ray-client-server-port={free_port()}",
                                 "--num-cpus=2", "--object-store-memory=268435456", f"--temp-dir={temp_dir}",
                                 "--disable-usage-stats"], env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while "Ray runtime started" not in log.read_text():
            assert head.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
        yield
    finally:
        os.killpg(head.pid, signal.SIGTERM)  # `--block` shuts its node down on SIGTERM
        try:
            head.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def head(tmp_path_factory):
    """A running `ray start --head`, `submit(*args)` that sends `python <args>` to it with `ray job submit` and
    returns its output, and `start(*args)`: the same in the background (a future)."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"  # `python` = this venv's, as activated
    port, dash = free_port(), free_port()

    def submit(*args, expect_run=True) -> str:
        for _ in range(30):  # the head's job agent comes up a few seconds after `ray start` reports the node
            out = subprocess.run([RAY_BIN, "job", "submit", f"--address=http://127.0.0.1:{dash}",
                                  "--working-dir", str(ROOT), "--", "python", *args], env=env,
                                 capture_output=True, text=True, timeout=600)
            if "No available agent to submit job" not in out.stderr:
                break
            time.sleep(2)
        assert out.returncode == 0, args[0] + out.stdout[-3000:] + out.stderr[-3000:]
        assert "succeeded" in out.stdout and (not expect_run or "run directory:" in out.stdout), out.stdout[-3000:]
        return out.stdout

    with ray_head(env, port, dash, tmp_path_factory.mktemp("head") / "head.log"), ThreadPoolExecutor(3) as pool:
        yield types.SimpleNamespace(submit=submit, start=lambda *args: pool.submit(submit, *args), env=env,
                                    dashboard=f"http://127.0.0.1:{dash}")


@pytest.fixture(scope="module")
def smoke_runs(head, tmp_path_factory):
    """The GAN, DDPM and CLIP jobs' smoke runs, submitted together (each job's one worker takes one of the head's
    2 CPUs: the third starts when one is free): {job: future of its output}, and their storage. The GAN's worker
    streams its data from Ray Data (the others read their shards)."""
    storage = tmp_path_factory.mktemp("runs")
    flags = {"jobs/gan.py": ("--ray.data-backend", "ray"), "jobs/ddpm.py": (), "jobs/clip.py": ()}  # GAN: Ray Data
    return {job: head.start(job, "--smoke-test", "--ray.storage", str(storage), *extra)
            for job, extra in flags.items()}, storage


def test_gan_and_ddpm_jobs_submitted_to_a_local_head_then_compared(head, smoke_runs, tmp_path):
    # (jobs/ae.py is submitted in tests/test_multinode.py, to a two-node cluster)
    futures, storage = smoke_runs
    for job, run_glob, figure in (("jobs/gan.py", "dcgan__0__*", "diagnostics.png"),
                                  ("jobs/ddpm.py", "ddpm-linear-cond__0__*", "reverse_process.png")):
        stdout = futures[job].result()
        run_dirs = list(storage.glob(run_glob))
        assert len(run_dirs) == 1 and (run_dirs[0] / figure).exists(), job
        assert find_latest_checkpoint(run_dirs[0]) is not None
        if job == "jobs/gan.py":
            assert "eval/class_entropy" in stdout and "eval/fld_ratio" in stdout
            assert (run_dirs[0] / "samples.png").exists()
        if job == "jobs/ddpm.py":
            assert "eval/cond_class_agreement" in stdout and "eval/sampler = ddim-5" in stdout
            assert {"forward_process.png", "samples.png", "samples_by_class.png"} <= {
                p.name for p in run_dirs[0].glob("*.png")}
    # the comparison job (no Ray) over the two submitted runs
    gan_dir, ddpm_dir = next(storage.glob("dcgan__0__*")), next(storage.glob("ddpm-linear-cond__0__*"))
    out = subprocess.run([sys.executable, "jobs/compare.py", "--gan", str(gan_dir), "--ddpm", str(ddpm_dir),
                          "--n", "200", "--ddim-steps", "5", "--quick-fld", "--out", str(tmp_path)], cwd=ROOT,
                         env=head.env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    compared = next(tmp_path.glob("compare__0__*"))
    table = (compared / "comparison.md").read_text()
    assert "DCGAN (EMA G)" not in table and "DCGAN" in table and "DDPM (EMA)" in table
    assert (compared / "comparison.png").exists()
    header = (compared / "comparison.csv").read_text().splitlines()[0]
    assert header.startswith("model,sampler,n_samples,fld,fld_ratio,precision,recall")


def test_clip_job_then_its_index_then_the_search_config_deployed_to_a_local_head(head, smoke_runs, tmp_path):
    # chapter 5.7: CLIP trained by Ray Train, then its index embedded by a Ray Data actor pool
    futures, storage = smoke_runs
    stdout = futures["jobs/clip.py"].result()
    assert "test/zero_shot_mnist_top1" in stdout and "test/test_combos_attribute_exact_top1" in stdout
    clip_dir = next(storage.glob("clip-rn__0__*"))
    assert {"similarity_test_combos.png", "retrieval_test_templates.png"} <= {p.name for p in clip_dir.glob("*.png")}
    stdout = head.submit("jobs/index.py", "--source", "captions_small:test_combos", "--pretrained", str(clip_dir),
                         "--out", str(tmp_path / "index"), "--query", "a red 7", "--labels", "seven", "sneaker",
                         expect_run=False)
    assert "added 500 new; index holds 500" in stdout and "'a red 7': captions_small:test_combos/" in stdout
    assert len((tmp_path / "index" / "labels.csv").read_text().splitlines()) == 501
    # the search app's committed Serve config, deployed onto this running cluster over that index
    config = yaml.safe_load((ROOT / "jobs" / "serve_search.yaml").read_text())
    http = free_port()
    config["http_options"]["port"] = http
    config["applications"][0]["args"] |= {"weights": str(clip_dir), "index_dir": str(tmp_path / "index"),
                                          "allowed_root": str(tmp_path)}
    (tmp_path / "serve.yaml").write_text(yaml.safe_dump(config))
    serve_cli = [str(Path(sys.executable).parent / "serve")]
    out = subprocess.run([*serve_cli, "deploy", str(tmp_path / "serve.yaml"), "-a", head.dashboard],
                         env=head.env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    deadline, found = time.monotonic() + 240, None
    while time.monotonic() < deadline and found is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{http}/api/search?q=a+red+7&k=3", timeout=10) as r:
                found = json.loads(r.read())
        except OSError:
            time.sleep(2)
    assert found is not None, subprocess.run([*serve_cli, "status", "-a", head.dashboard],
                                             env=head.env, capture_output=True, text=True).stdout
    assert [h["id"].split("/")[0] for h in found["results"]] == ["captions_small:test_combos"] * 3
    subprocess.run([*serve_cli, "shutdown", "-y", "-a", head.dashboard], env=head.env,
                   capture_output=True, timeout=120)
