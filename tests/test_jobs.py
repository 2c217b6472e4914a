"""One real smoke run per job, each on an embedded local Ray (jobs/ae.py goes through `ray job submit` in
test_ray_integration.py)."""

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from genlab.core.rundir import read_timeline
from tests.cli_helpers import run_cli

ROOT = Path(__file__).resolve().parents[1]


def run_job(*args, timeout=900):
    return _run(args, timeout)[0]


def _run(args: tuple[str, ...], timeout=900) -> tuple[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    out = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"{args}\n" + out.stdout[-3000:] + out.stderr[-3000:]
    return out.stdout, out.stderr


# The jobs' smoke runs, two at a time, each in its own process with its own embedded Ray: a job's start waits on
# process spawns and imports, which the other job's steps fill (the whole set ~30% sooner than one by one).
SMOKE_JOBS = {  # longest first
    "main": ("jobs/chapter1.py", "--smoke-test", "--smoke-steps", "100", "--ray.storage"),  # trainings overlap
    "rl": ("jobs/rl.py", "--smoke-test", "--storage"),
    "meta": ("jobs/meta.py", "--smoke-test", "--ray.num-workers", "2", "--ray.storage"),
    "vae": ("jobs/vae.py", "--smoke-test", "--ray.storage"),
    "caption_diffusion": ("jobs/caption_diffusion.py", "--smoke-test", "--ray.storage"),
    "tune_maml": ("jobs/tune_maml.py", "--smoke-test", "--ray.num-workers", "0", "--sweep.storage"),
    "tune_beta_vae": ("jobs/tune_beta_vae.py", "--smoke-test", "--objective", "mig", "--ray.num-workers", "0",
                      "--sweep.storage"),
}


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """`smoke(name)` -> (stdout, storage dir) of that job's smoke run; all of them start with the first call."""
    storage = {"tune_maml": tmp_path_factory.mktemp("sweeps")}
    storage["tune_beta_vae"] = storage["tune_maml"]
    storage |= {name: tmp_path_factory.mktemp(name) for name in SMOKE_JOBS if name not in storage}
    with ThreadPoolExecutor(2) as pool:
        futures = {name: pool.submit(_run, (*args, str(storage[name]))) for name, args in SMOKE_JOBS.items()}
        yield lambda name: (futures[name].result()[0], storage[name])
        for future in futures.values():
            future.cancel()


@pytest.mark.ray
def test_vae_job_smoke(smoke):
    stdout, tmp_path = smoke("vae")
    assert "eval/iw_nll_nats" in stdout
    run_dir = next(tmp_path.glob("vae-conv-beta1__0__*"))
    assert {"prior_samples.png", "interpolation.png", "latent_map.png"} <= {p.name for p in run_dir.glob("*.png")}


@pytest.mark.ray
def test_caption_diffusion_job_smoke_scores_validation_prompts_and_saves_a_loadable_model(smoke):
    from genlab.core.checkpoint import find_latest_checkpoint, load_model
    from genlab.data.captions import tokenize

    stdout, tmp_path = smoke("caption_diffusion")
    assert "val/val_phrasings/overall" in stdout and "val/val_combos/realism_fd" in stdout
    assert "test_phrasings" not in stdout and "test_combos" not in stdout  # no test prompt is touched by training
    run_dir = next(tmp_path.glob("caption-diffusion__0__*"))
    model = load_model(find_latest_checkpoint(run_dir), ema=True)  # not a glob: checkpoint_manager_snapshot.json matches checkpoint_*
    assert model.generate(tokenize(["a red seven in the top left"]), seed=0).shape == (1, 3, 32, 32)


@pytest.mark.ray
def test_main_job_smoke_writes_report(smoke):
    stdout, tmp_path = smoke("main")
    report = next(tmp_path.glob("chapter1__0__*/report.md")).read_text()
    for name in ["AE mlp (classic)", "AE conv (denoising)", "AE mlp (sparse)", "VAE conv (beta=1)"]:
        assert name in report
    assert "![reconstructions]" in report and "fld_ratio" in report
    assert "report:" in stdout
    # two models at a time; what Ray printed for them goes to the chapter's directory
    assert "2 model(s) at a time" in report
    # the two trainings overlap: each one's training window (its worker group starts training -> its last
    # optimizer step) begins before the other's ends
    window = {p.parent.name[:12]: (json.loads(p.read_text().splitlines()[0])["started_at"],
                                   read_timeline(p.parent, "last_step_end")[-1]["at"])
              for p in tmp_path.glob("*/worker_groups.jsonl")}
    (a_start, a_end), (b_start, b_end) = window["ae-mlp-class"], window["ae-conv-deno"]
    assert a_start < b_end and b_start < a_end, window
    chapter_dir = next(tmp_path.glob("chapter1__0__*"))
    assert (chapter_dir / "ray_console.log").exists() and not list(tmp_path.glob("ae-*/ray_console.log"))


@pytest.mark.ray
def test_rl_job_smoke_all_four_agents_as_tune_trials(smoke):
    stdout, tmp_path = smoke("rl")
    run_dir = next(tmp_path.glob("rl-CartPole-v1__0__*"))
    table = (run_dir / "table.md").read_text()
    for agent in ("dqn", "reinforce", "rllib_dqn", "rllib_ppo"):
        assert f"| {agent} | CartPole-v1 | 1 |" in table
        assert {"learning_curve.png", "episode.gif", "summary.json"} <= {
            p.name for p in (run_dir / agent / "seed_0").iterdir()}
    assert (run_dir / "curves.png").exists() and "run directory:" in stdout
    from genlab.distributed.rllib import load_rllib_policy
    from genlab.eval.rl import evaluate_policy

    policy = load_rllib_policy(run_dir / "rllib_dqn" / "seed_0" / "agent")  # RLlib checkpoint -> our evaluator
    assert evaluate_policy(policy, "CartPole-v1", episodes=2).returns.shape == (2,)
    import ray
    from ray.rllib.algorithms.algorithm import Algorithm

    from genlab.distributed.env import init_ray

    init_ray(num_cpus=2, object_store_memory=256 * 2**20)
    try:  # the saved algorithm restores and keeps training from where it stopped
        saved = json.loads((run_dir / "rllib_ppo" / "seed_0" / "summary.json").read_text())["env_steps"]
        algo = Algorithm.from_checkpoint(str(run_dir / "rllib_ppo" / "seed_0" / "agent"))
        assert algo.train()["num_env_steps_sampled_lifetime"] > saved > 0  # counts on from the checkpoint
        algo.stop()
    finally:
        ray.shutdown()


@pytest.mark.ray
def test_meta_job_smoke_two_ray_train_workers(smoke):
    """Data parallel over task batches: two workers draw their own episodes and average gradients (gloo)."""
    stdout, tmp_path = smoke("meta")
    assert "test/5w1s_acc" in stdout and "val/acc" in stdout
    run_dir = next(tmp_path.glob("protonet-glyphs-5w1s__0__*"))
    from genlab.core.checkpoint import find_latest_checkpoint, load_model
    from genlab.meta import ProtoNet

    assert isinstance(load_model(find_latest_checkpoint(run_dir)), ProtoNet)


@pytest.mark.ray
def test_tune_sweep_jobs_smoke_two_trials_each(smoke):
    smoke("tune_maml")
    _, tmp_path = smoke("tune_beta_vae")
    for sweep, final_glob in (("tune-maml", "maml*__0__*"), ("tune-beta-vae-mig", "vae-mlp-beta*__0__*")):
        rows = (tmp_path / sweep / "trials.md").read_text().splitlines()
        assert len(rows) == 4, rows  # header, rule, 2 trials
        assert (tmp_path / sweep / "tradeoff.png").exists() and (tmp_path / sweep / "best_config.json").exists()
        assert next((tmp_path / sweep).glob(final_glob)).is_dir()
        assert list((tmp_path / sweep).glob("*/events.out.tfevents.*"))  # TensorBoard files per trial
    # beta-VAE trials rank on the validation split; only the final run reports test numbers
    assert "val/mig" in (tmp_path / "tune-beta-vae-mig" / "trials.md").read_text().splitlines()[0]
    final = json.loads((tmp_path / "tune-beta-vae-mig" / "final.json").read_text())["metrics"]
    assert "eval/neg_elbo_nats" in final and not any(k.startswith("val/") for k in final)
    stdout = run_job("jobs/tune_maml.py", "--smoke-test", "--sweep.storage", str(tmp_path), "--sweep.resume",
                     "--sweep.no-train-best")  # Tuner.restore of the finished sweep: same trials, no new ones
    assert stdout.count("| ") >= 3 and len(list((tmp_path / "tune-maml").glob("maml_trial_*"))) == 2


def test_rl_job_rejects_bad_input_before_starting_ray():
    import ray

    for args, message in ((["--env-id", "Pendulum-v1"], "Discrete action"), (["--seeds", "0"], "--seeds must be"),
                          (["--agents", "ppo"], "invalid choice")):
        out = run_cli("jobs/rl.py", *args)
        assert out.returncode != 0 and message in out.stderr, (args, out.stderr[-2000:])
        assert not ray.is_initialized()


def test_compare_rejects_missing_and_non_generative_inputs(tmp_path):
    out = run_cli("jobs/compare.py")
    assert out.returncode != 0 and "nothing to compare" in out.stderr
    out = run_cli("jobs/compare.py", "--gan", str(tmp_path / "nope"))
    assert out.returncode != 0 and "no such directory" in out.stderr


def test_help_documents_fields():
    jobs = ["jobs/ae.py", "jobs/vae.py", "jobs/chapter1.py", "jobs/gan.py", "jobs/ddpm.py", "jobs/meta.py",
            "jobs/tune_maml.py", "jobs/tune_beta_vae.py", "jobs/rl.py", "jobs/serve_search.py", "jobs/pipeline.py",
            "jobs/serve_generate.py", "jobs/caption_diffusion.py"]
    outs = {job: run_cli(job, "--help") for job in jobs}
    for job, out in outs.items():
        assert out.returncode == 0, out.stderr[-2000:]
        if job not in ("jobs/rl.py", "jobs/serve_search.py", "jobs/serve_generate.py"):
            assert "--smoke-test" in out.stdout and "--ray.num-workers" in out.stdout, job
    stdout = outs["jobs/rl.py"].stdout
    assert "--as-test" in stdout and "--dqn.double-dqn" in stdout and "--rllib-ppo.lr" in stdout
    assert "--dqn.eval.test-seed" in stdout and "--reinforce.eval.select" in stdout
    search = outs["jobs/serve_search.py"].stdout
    assert "--allowed-root" in search and "--fast-ingress" in search
    assert "--pipeline" in outs["jobs/serve_generate.py"].stdout
    pipeline_help = outs["jobs/pipeline.py"].stdout
    assert "--prior.image-embed-frac" in pipeline_help and "--refiner.l1-weight" in pipeline_help


def test_bad_input_is_a_clear_error():
    # the search server refuses weights that are neither a file, a run, nor an open_clip tag before Ray starts
    out = run_cli("jobs/serve_search.py", "--weights", "no-such-run")
    assert out.returncode != 0 and "not a file and not a tag" in out.stderr, out.stderr[-2000:]
    out = run_cli("jobs/vae.py", "--train.model.kind", "ae")
    assert out.returncode != 0 and "jobs/ae.py" in out.stderr
    out = run_cli("jobs/ae.py", "--train.objective", "fancy")
    assert out.returncode != 0 and "objective must be one of" in out.stderr
    out = run_cli("jobs/rl.py", "--dqn.eval.test-seed", "10050")
    assert out.returncode != 0 and "overlap the validation seeds" in out.stderr


def test_resume_flag_continues_a_run_and_refuses_a_different_config(tmp_path):
    flags = ["--smoke-test", "--ray.num-workers", "0", "--ray.storage", str(tmp_path)]
    run_job("jobs/ae.py", *flags)
    run_dir = next(tmp_path.glob("ae-mlp-classic__0__*"))
    stdout = run_job("jobs/ae.py", *flags, "--ray.resume", str(run_dir))
    assert str(run_dir) in stdout and len(list(tmp_path.iterdir())) == 1  # no second run directory
    out = run_cli("jobs/ae.py", *flags, "--ray.resume", str(run_dir), "--train.lr", "0.1")
    assert out.returncode != 0 and "differs from this command's config" in out.stderr


def test_a_run_is_replayed_from_its_config_json(tmp_path):
    """`--config <run>/config.json` gives a new run the old run's settings (here a non-default beta and latent
    size), flags beside it still apply."""
    flags = ["--smoke-test", "--ray.num-workers", "0"]
    run_job("jobs/vae.py", *flags, "--train.beta", "3.5", "--train.model.latent-dim", "6",
            "--ray.storage", str(tmp_path / "a"))
    first = next((tmp_path / "a").glob("vae-*"))
    run_job("jobs/vae.py", *flags, "--config", str(first / "config.json"), "--ray.storage", str(tmp_path / "b"))
    second = next((tmp_path / "b").glob("vae-*"))
    saved = json.loads((first / "config.json").read_text())
    assert saved["beta"] == 3.5 and saved["model"]["latent_dim"] == 6
    assert json.loads((second / "config.json").read_text()) == saved
