"""Training-step time on this CPU by precision and memory format, all in one process (run on an idle machine).

    python benchmarks/cpu_precision.py            # -> benchmarks/results/cpu_precision.json
    python benchmarks/cpu_precision.py --compile  # also the U-Net under torch.compile (about a minute each)

For each model (the issue's conv block 64->128->128 at 14x14 batch 128, the DDPM U-Net batch 128, the DCGAN batch
64, the conv autoencoder batch 128): forward + backward + Adam step in fp32, fp32 channels-last, bf16 autocast and
bf16 autocast channels-last; median of `--reps` steps after warm-up. Also the fp32 and bf16 GEMM rates, and what
the CPU offers (AVX-512, AVX-512 BF16, AMX tiles: without them bf16 is emulated and cannot be faster).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

from genlab.autoencoders import ModelConfig, build_model
from genlab.diffusion import DiffusionConfig, NoiseSchedule, UNet
from genlab.diffusion.train import diffusion_loss
from genlab.gan import GAN, GANConfig
from genlab.gan.losses import discriminator_loss, generator_loss
from results_common import command  # noqa: E402

RESULTS = Path(__file__).parent / "results"
MODES = {"fp32": (False, False), "fp32_cl": (False, True), "bf16": (True, False), "bf16_cl": (True, True)}


def cpu_features() -> dict:
    c = torch.cpu
    model = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                  if ln.startswith("model name")), "unknown")
    return {"model": model, "avx512": c._is_avx512_supported(), "avx512_bf16": c._is_avx512_bf16_supported(),
            "amx_tile": c._is_amx_tile_supported(), "capability": torch.backends.cpu.get_cpu_capability(),
            "threads": torch.get_num_threads(), "torch": torch.__version__}


def gemm_rate(dtype: torch.dtype, size: int = 2048, reps: int = 10) -> float:
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    a @ b
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * size ** 3 * reps / (time.perf_counter() - t0)


def conv_block_step(cl: bool):
    net = nn.Sequential(nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(), nn.Conv2d(128, 128, 3, padding=1), nn.ReLU())
    x = torch.randn(128, 64, 14, 14)
    return _make(net, lambda m, x: m(x).square().mean(), x, cl)


def unet_step(cl: bool, compiled: bool = False):
    cfg = DiffusionConfig()
    unet, schedule = UNet(cfg.unet), NoiseSchedule(cfg.schedule)
    x = torch.rand(128, 1, 28, 28) * 2 - 1
    y = torch.randint(0, 10, (128,)) if cfg.unet.num_classes else None
    return _make(unet, lambda m, x: diffusion_loss(m, schedule, x, y), x, cl, compiled)


def ae_step(cl: bool):
    ae = build_model(ModelConfig(kind="ae", arch="conv", latent_dim=32))
    x = torch.rand(128, 1, 28, 28)
    return _make(ae, lambda m, x: (torch.sigmoid(m(x)[0]) - x).square().mean(), x, cl)


def _make(model: nn.Module, loss_fn, x: torch.Tensor, cl: bool, compiled: bool = False):
    fmt = torch.channels_last if cl else torch.contiguous_format
    model = model.to(memory_format=fmt)
    x = x.contiguous(memory_format=fmt) if x.dim() == 4 else x
    opt = torch.optim.Adam(model.parameters())
    forward = torch.compile(model) if compiled else model  # inductor's CPU kernels (the warm-up compiles)

    def step(autocast):
        with autocast():
            loss = loss_fn(forward, x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def gan_step(cl: bool):
    gan = GAN(GANConfig())
    fmt = torch.channels_last if cl else torch.contiguous_format
    gan = gan.to(memory_format=fmt)
    G, D = gan.generator, gan.discriminator
    opt_g, opt_d = torch.optim.Adam(G.parameters()), torch.optim.Adam(D.parameters())
    xr = (torch.rand(64, 1, 28, 28) * 2 - 1).contiguous(memory_format=fmt)

    def step(autocast):
        with autocast():
            fake = G(torch.randn(64, 100))
            loss_d = discriminator_loss(D(xr), D(fake.detach()))
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        with autocast():
            loss_g = generator_loss(D(fake))
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
    return step


def time_step(step, bf16: bool, reps: int) -> float:
    autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext
    for _ in range(2):
        step(autocast)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        step(autocast)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--compile", action="store_true", help="also the U-Net step under torch.compile")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    out = {"cpu": cpu_features(), "gemm_fp32_flops_per_s": gemm_rate(torch.float32),
           "gemm_bf16_flops_per_s": gemm_rate(torch.bfloat16), "steps_s": {}}
    for name, build in (("conv block 64-128-128 14x14 b128", conv_block_step), ("ddpm unet b128", unet_step),
                        ("dcgan b64", gan_step), ("conv ae b128", ae_step)):
        row = {mode: time_step(build(cl), bf16, args.reps) for mode, (bf16, cl) in MODES.items()}
        row |= {f"speedup_{m}": row["fp32"] / row[m] for m in MODES if m != "fp32"}
        out["steps_s"][name] = row
        print(name, {k: round(v, 4) for k, v in row.items()}, flush=True)
    if args.compile:
        row = out["steps_s"]["ddpm unet b128"]
        for mode, bf16 in (("fp32_compiled", False), ("bf16_compiled", True)):
            row[mode] = time_step(unet_step(False, compiled=True), bf16, args.reps)
            row[f"speedup_{mode}"] = row["fp32"] / row[mode]
        print("ddpm unet b128 compiled", {k: round(v, 4) for k, v in row.items() if "compiled" in k}, flush=True)
    out |= {"date": time.strftime("%Y-%m-%d"), "command": command(), "reps": args.reps}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "cpu_precision.json").write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps({k: v for k, v in out.items() if k != "steps_s"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
