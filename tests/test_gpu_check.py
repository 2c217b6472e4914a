"""scripts/gpu_check.sh: its --help, its refusal without a GPU, and its CPU dry run (every generative job trained
one short epoch, checkpointed, then resumed from that checkpoint for a second epoch)."""

import json
import subprocess
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def run(*args, timeout=600):
    return subprocess.run(["bash", "scripts/gpu_check.sh", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def test_help_lists_the_options():
    out = run("--help")
    assert out.returncode == 0, out.stderr
    assert "--dry-run" in out.stdout and "--jobs" in out.stdout and "--ray.use-gpu" in out.stdout


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_without_a_gpu_it_says_what_to_do():
    out = run("--jobs", "ae")
    assert out.returncode == 2 and "no CUDA GPU" in out.stderr and "--dry-run" in out.stderr


def test_cpu_dry_run_trains_checkpoints_and_resumes_every_job(tmp_path):
    out = run("--dry-run", "--workers", "0", "--steps", "2", "--out", str(tmp_path / "gpu_check.json"))
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert [r["job"] for r in report["rows"]] == ["ae", "vae", "gan", "ddpm", "clip"] and not report["failed"]
    for row in report["rows"]:
        assert row["resumed_on_cpu"] and row["samples_per_s"] > 0, row
        assert row["final"], row  # the resumed run evaluated at its end
