"""Calibrate the DDPM slow learning test (tests/test_learning.py): the correct loss vs broken ones (t hidden from
the network, x0 as the target) at the same budget; the test bar must pass the first and fail the broken ones.
The run on record (JSON) has `correct` and `t_ignored`; each variant's eval/loss_ema is its own objective.

    python benchmarks/ddpm_test_calibration.py 15 correct t_ignored   # epochs of 100 steps, variants
-> prints one JSON line per variant (benchmarks/results/ddpm_test_calibration.json holds a run)."""
import json, sys, time, tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent / "platform"))
import torch
import torch.nn.functional as F
import genlab.diffusion.train as dt
from genlab.core.runtime import LocalRuntime
from genlab.data import load_dataset
from genlab.diffusion import DiffusionConfig, NoiseSchedule, SamplerConfig, UNet, UNetConfig
from genlab.diffusion.evaluate import evaluate_samples

orig = dt.diffusion_loss
def t_ignored(model, schedule, x0, labels, generator=None):
    t = torch.randint(0, schedule.T, (len(x0),), device=x0.device); noise = torch.randn_like(x0)
    return F.mse_loss(model(schedule.q_sample(x0, t, noise), torch.zeros_like(t), labels), noise)
def x0_target(model, schedule, x0, labels, generator=None):
    t = torch.randint(0, schedule.T, (len(x0),), device=x0.device); noise = torch.randn_like(x0)
    return F.mse_loss(model(schedule.q_sample(x0, t, noise), t, labels), x0)
variants = {"correct": orig, "t_ignored": t_ignored, "x0_target": x0_target}
mnist = load_dataset("mnist", "train"), load_dataset("mnist", "test")
epochs = int(sys.argv[1]) if len(sys.argv) > 1 else 15
out = {}
for name in sys.argv[2:] or variants:
    dt.diffusion_loss = variants[name]
    cfg = DiffusionConfig(unet=UNetConfig(channels=16, channel_mults=(1, 2), attention_levels=(), num_classes=0),
                          epochs=epochs, max_steps_per_epoch=100, batch_size=64, warmup_steps=20, ema_decay=0.99,
                          sampler=SamplerConfig("ddim", steps=20), fld_samples=1000, figures=False, progress=False)
    torch.manual_seed(0)
    before = evaluate_samples(UNet(cfg.unet), NoiseSchedule(cfg.schedule), cfg.sampler, 1000)["fld"]
    t0 = time.time()
    m = dt.train(cfg, LocalRuntime(Path(tempfile.mkdtemp()), {"train": mnist[0]}), mnist[1])
    out[name] = {"before": before, "secs": time.time() - t0, **{k: v for k, v in m.items() if isinstance(v, (int, float))}}
    print(name, json.dumps(out[name]), flush=True)
print(json.dumps(out))
