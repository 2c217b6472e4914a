"""One real smoke run per job, each on an embedded local Ray (jobs/ae.py goes through `ray job submit` in
test_ray_integration.py)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_job(*args, timeout=900):
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    out = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out.stdout


@pytest.mark.ray
def test_vae_job_smoke(tmp_path):
    stdout = run_job("jobs/vae.py", "--smoke-test", "--ray.storage", str(tmp_path))
    assert "eval/iw_nll_nats" in stdout
    run_dir = next(tmp_path.glob("vae-conv-beta1__0__*"))
    assert {"prior_samples.png", "interpolation.png", "latent_map.png"} <= {p.name for p in run_dir.glob("*.png")}


@pytest.mark.ray
def test_main_job_smoke_writes_report(tmp_path):
    stdout = run_job("jobs/chapter1.py", "--smoke-test", "--ray.storage", str(tmp_path))
    report = next(tmp_path.glob("chapter1__0__*/report.md")).read_text()
    for name in ["AE mlp (classic)", "AE conv (denoising)", "AE mlp (sparse)", "VAE conv (beta=1)"]:
        assert name in report
    assert "![reconstructions]" in report and "fld_ratio" in report
    assert "report:" in stdout


def test_help_documents_fields():
    for job in ["jobs/ae.py", "jobs/vae.py", "jobs/chapter1.py"]:
        out = subprocess.run([sys.executable, job, "--help"], cwd=ROOT, capture_output=True, text=True, check=True)
        assert "--smoke-test" in out.stdout and "--ray.num-workers" in out.stdout


def test_bad_input_is_a_clear_error():
    out = subprocess.run([sys.executable, "jobs/vae.py", "--train.model.kind", "ae"], cwd=ROOT, capture_output=True,
                         text=True)
    assert out.returncode != 0 and "jobs/ae.py" in out.stderr
    out = subprocess.run([sys.executable, "jobs/ae.py", "--train.objective", "fancy"], cwd=ROOT,
                         capture_output=True, text=True)
    assert out.returncode != 0 and "objective must be one of" in out.stderr


def test_resume_flag_continues_a_run_and_refuses_a_different_config(tmp_path):
    flags = ["--smoke-test", "--ray.num-workers", "0", "--ray.storage", str(tmp_path)]
    run_job("jobs/ae.py", *flags)
    run_dir = next(tmp_path.glob("ae-mlp-classic__0__*"))
    stdout = run_job("jobs/ae.py", *flags, "--ray.resume", str(run_dir))
    assert str(run_dir) in stdout and len(list(tmp_path.iterdir())) == 1  # no second run directory
    out = subprocess.run([sys.executable, "jobs/ae.py", *flags, "--ray.resume", str(run_dir), "--train.lr", "0.1"],
                         cwd=ROOT, capture_output=True, text=True)
    assert out.returncode != 0 and "differs from this command's config" in out.stderr
