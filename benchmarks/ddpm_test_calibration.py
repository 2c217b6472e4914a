"""Calibrate the DDPM slow learning test (tests/test_learning.py): the correct loss vs broken ones (t hidden from
the network, x0 as the target) at the same budget; the test bar must pass the first and fail the broken ones.
The run on record (JSON) has `correct` and `t_ignored`; each variant's eval/loss_ema is its own objective.

    python benchmarks/ddpm_test_calibration.py 15 correct t_ignored   # epochs of 100 steps, variants
-> prints one JSON line per variant (benchmarks/results/ddpm_test_calibration.json holds a run)."""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent / "platform"))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import genlab.diffusion.train as dt  # noqa: E402
from genlab.core.runtime import LocalRuntime  # noqa: E402
from genlab.data import load_dataset  # noqa: E402
from genlab.diffusion import DiffusionConfig, NoiseSchedule, SamplerConfig, UNet, UNetConfig  # noqa: E402
from genlab.diffusion.evaluate import evaluate_samples  # noqa: E402


def t_ignored(model, schedule, x0, labels, generator=None):
    """The noise regression with t hidden from the network (it always sees t = 0)."""
    t = torch.randint(0, schedule.T, (len(x0),), device=x0.device)
    noise = torch.randn_like(x0)
    return F.mse_loss(model(schedule.q_sample(x0, t, noise), torch.zeros_like(t), labels), noise)


def x0_target(model, schedule, x0, labels, generator=None):
    """x0 as the regression target while the samplers read the output as eps."""
    t = torch.randint(0, schedule.T, (len(x0),), device=x0.device)
    noise = torch.randn_like(x0)
    return F.mse_loss(model(schedule.q_sample(x0, t, noise), t, labels), x0)


VARIANTS = {"correct": dt.diffusion_loss, "t_ignored": t_ignored, "x0_target": x0_target}


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("epochs", type=int, nargs="?", default=15, help="epochs of 100 steps (15 = the test's)")
    ap.add_argument("variants", nargs="*", help=f"losses to train, of {', '.join(VARIANTS)} (default: all)")
    args = ap.parse_args()
    unknown = sorted(set(args.variants) - set(VARIANTS))
    if unknown:
        ap.error(f"unknown variants {unknown}; choose from {', '.join(VARIANTS)}")
    mnist = load_dataset("mnist", "train"), load_dataset("mnist", "test")
    out = {}
    for name in args.variants or VARIANTS:
        dt.diffusion_loss = VARIANTS[name]  # the test's config, with this variant's loss
        cfg = DiffusionConfig(unet=UNetConfig(channels=16, channel_mults=(1, 2), attention_levels=(), num_classes=0),
                              epochs=epochs, max_steps_per_epoch=100, batch_size=64, warmup_steps=20,
                              ema_decay=0.99, sampler=SamplerConfig("ddim", steps=20), fld_samples=1000,
                              figures=False, progress=False)
        torch.manual_seed(0)
        before = evaluate_samples(UNet(cfg.unet), NoiseSchedule(cfg.schedule), cfg.sampler, 1000)["fld"]
        t0 = time.time()
        m = dt.train(cfg, LocalRuntime(Path(tempfile.mkdtemp()), {"train": mnist[0]}), mnist[1])
        out[name] = {"before": before, "secs": time.time() - t0,
                     **{k: v for k, v in m.items() if isinstance(v, (int, float))}}
        print(name, json.dumps(out[name]), flush=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
