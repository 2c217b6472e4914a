"""README's "results at a glance": one headline row per chapter, rendered from the results JSON (the full tables,
with commands, are RESULTS.md's)."""

from __future__ import annotations

from genlab.rl.report import agent_stats
from results_common import load, verdict


def _row(chapter: str, check: str, bar: str, measured: str, ok: bool | None) -> str:
    return f"| {chapter} | {check} | {bar} | {measured} | {'' if ok is None else verdict(ok)} |"


def glance_rows() -> list[str]:
    rows = ["| chapter | check | bar | measured | verdict |", "|---|---|---|---|---|"]
    if (r := load("ae_mlp")):
        v = r["metrics"]["eval/mse"]
        rows.append(_row("5.1 autoencoders", "MLP AE, MNIST test MSE per pixel", "<= 0.010", f"{v:.4f}", v <= 0.010))
    if (r := load("dae_conv")):
        v = r["metrics"]["eval/psnr_gain_db"]
        rows.append(_row("5.1 autoencoders", "denoising conv AE, PSNR gain at noise 0.3", ">= 8 dB", f"{v:.1f} dB",
                         v >= 8))
    if (r := load("vae_nll")):
        v = r["iw_nll_nats"]
        rows.append(_row("5.2 VAE", f"conv VAE, importance-weighted NLL (k={r['k']})", "<= 88 nats", f"{v:.2f} nats",
                         v <= 88))
    if (r := load("dcgan_quality")):
        v = r["generators"]["ema"]["fld_ratio"]
        rows.append(_row("5.3 GAN", "DCGAN (EMA), FLD / real-data floor", "<= 15", f"{v:.1f}", v <= 15))
    if (r := load("ddpm_sampler_table")):
        key, best = min(((k, row) for k, row in r["rows"].items() if k.endswith("-50")),
                        key=lambda kv: kv[1]["fld_ratio"])
        rows.append(_row("5.4 diffusion", f"unconditional DDPM, best 50-step sampler ({key}), FLD / floor", "<= 8",
                         f"{best['fld_ratio']:.2f}", best["fld_ratio"] <= 8))
    if (r := load("rl_cartpole")):
        for agent, label in (("dqn", "own DQN"), ("reinforce", "own REINFORCE")):
            a = agent_stats(r["summaries"], agent, r["budgets"][agent])  # as RESULTS.md's chapter 5.5 reads it
            ok = sum(t >= a["runs"][0]["threshold"] for t in a["test"])
            rows.append(_row("5.5 RL", f"{label}, CartPole-v1: returned agent on test seeds >= 475",
                             "5/5 seeds", f"{ok}/{a['n']} seeds", ok == a["n"] == 5))
    if (r := load("meta_protonet_hand40_20k_final")):
        acc, ci = r["metrics"]["test/5w1s_tta_acc"], r["metrics"]["test/5w1s_tta_ci95"]
        measured, ok = f"{100 * acc:.2f}% +- {100 * ci:.2f}", acc >= 0.97
    else:
        measured, ok = "not scored yet (the final model is training)", None
    rows.append(_row("5.6 meta-learning", "ProtoNet 5-way 1-shot, held-out handwriting, fresh test episodes",
                     ">= 97%", measured, ok))
    if (r := load("clip_train")):
        m = r["metrics"]
        for key, label, bar in (("test/zero_shot_mnist_top1", "CLIP zero-shot MNIST top-1", 0.95),
                                ("test/test_templates_attribute_exact_top1",
                                 "CLIP attribute-exact text->image top-1, held-out templates", 0.90)):
            rows.append(_row("5.7 CLIP", label, f">= {bar}", f"{m[key]:.4f}", m[key] >= bar))
    if (r := load("serve_load")):
        one = r["batched"]["one_client"]
        rows.append(_row("5.7 search", f"text search over {r['index_size']:,} images via HTTP, p50", "<= 15 ms",
                         f"{one['p50_ms']:.1f} ms", one["p50_ms"] <= 15))
    if (r := load("pipeline")) and "temperature_1" in r:
        v = r["temperature_1"]["refined/class_agreement"]
        rows.append(_row("final system", "digit faithfulness, held-out phrasings, temperature 1 (not chosen)",
                         ">= 0.90", f"{v:.4f}", v >= 0.90))
    if (r := load("caption_diffusion_test")):
        for split, bar in (("test_phrasings", 0.90), ("test_combos", 0.85)):
            v = r[split]["relative"]["overall"]
            rows.append(_row("final system", f"caption world, all right (relative), {split}", f">= {bar:.2f}",
                             f"{v:.3f} (abs. {r[split]['absolute']['overall']:.3f})", v >= bar))
    if (r := load("submit_latency")):
        m = r["median"]["submit_to_first_step_s"]
        rows.append(_row("scale-out", "`ray job submit` -> end of the first optimizer step, median", "<= 12 s",
                         f"{m:.1f} s (max {r['max']['submit_to_first_step_s']:.1f} s)", m <= 12))
    return rows
