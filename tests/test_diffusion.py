"""DDPM/DDIM numerics (against diffusers' schedulers), U-Net shapes, guidance, samplers, resume with EMA."""

import pytest
import torch

from genlab.core.checkpoint import find_latest_checkpoint, load_model, load_train_state
from genlab.core.runtime import LocalRuntime
from tests.resume_helpers import Crash, CrashAfterFirstCheckpoint
from genlab.diffusion import (DiffusionConfig, NoiseSchedule, SamplerConfig, ScheduleConfig, UNet, UNetConfig,
                              guided_eps, sample)
from genlab.diffusion.samplers import predict_eps
from genlab.diffusion.train import diffusion_loss, drop_labels, train



def diffusers():
    """The reference schedulers (a test-only dependency): only the parity tests skip without it."""
    return pytest.importorskip("diffusers")


KIND_TO_DIFFUSERS = {"linear": "linear", "cosine": "squaredcos_cap_v2"}


def test_linear_schedule_matches_ddpm_paper():
    s = NoiseSchedule(ScheduleConfig("linear"))
    assert s.T == 1000 and len(s.betas) == 1000
    assert s.betas[0].item() == pytest.approx(1e-4) and s.betas[-1].item() == pytest.approx(0.02)
    ab = s.alphas_cumprod
    assert torch.all(ab[1:] < ab[:-1]) and 0 < ab[-1] < 1e-4 < ab[0] < 1
    assert torch.all(s.snr(torch.arange(999)) > s.snr(torch.arange(1, 1000)))  # SNR strictly decreasing


def test_cosine_schedule_ends_near_pure_noise_and_starts_gentler():
    cos, lin = NoiseSchedule(ScheduleConfig("cosine")), NoiseSchedule(ScheduleConfig("linear"))
    assert cos.alphas_cumprod[-1] < 1e-4 and torch.all(cos.betas <= 0.999)
    assert cos.alphas_cumprod[500] > lin.alphas_cumprod[500]  # destroys information more slowly mid-way


def test_q_sample_has_the_forward_process_moments():
    s = NoiseSchedule()
    t = torch.full((20000,), 300)
    x0 = torch.full((20000, 1, 1, 1), 0.7)
    xt = s.q_sample(x0, t, torch.randn(20000, 1, 1, 1, generator=torch.Generator().manual_seed(0)))
    ab = s.alphas_cumprod[300]
    assert xt.mean().item() == pytest.approx((ab.sqrt() * 0.7).item(), abs=0.02)
    assert xt.var().item() == pytest.approx((1 - ab).item(), rel=0.03)


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_add_noise_matches_diffusers(kind):
    ours = NoiseSchedule(ScheduleConfig(kind))
    ref = diffusers().DDPMScheduler(num_train_timesteps=1000, beta_schedule=KIND_TO_DIFFUSERS[kind])
    gen = torch.Generator().manual_seed(1)
    x0, noise = torch.randn(16, 1, 28, 28, generator=gen), torch.randn(16, 1, 28, 28, generator=gen)
    t = torch.tensor([0, 1, 2, 10, 99, 100, 250, 400, 500, 600, 750, 900, 990, 997, 998, 999])
    torch.testing.assert_close(ours.q_sample(x0, t, noise), ref.add_noise(x0, noise, t), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kind", ["linear", "cosine"])
@pytest.mark.parametrize("clip", [False, True])
@pytest.mark.parametrize("t", [999, 500, 37, 1, 0])
def test_ddpm_step_matches_diffusers(kind, clip, t):
    ours = NoiseSchedule(ScheduleConfig(kind))
    ref = diffusers().DDPMScheduler(num_train_timesteps=1000, beta_schedule=KIND_TO_DIFFUSERS[kind],
                                  variance_type="fixed_small", clip_sample=clip)
    gen = torch.Generator().manual_seed(t)
    xt, eps = torch.randn(4, 1, 28, 28, generator=gen), torch.randn(4, 1, 28, 28, generator=gen)
    expected = ref.step(eps, t, xt, generator=torch.Generator().manual_seed(5)).prev_sample
    noise = torch.randn(xt.shape, generator=torch.Generator().manual_seed(5))  # the noise diffusers draws
    torch.testing.assert_close(ours.ddpm_step(xt, t, eps, noise, clip_x0=clip), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kind", ["linear", "cosine"])
@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("clip", [False, True])
def test_ddim_steps_match_diffusers(kind, eta, clip):
    ours = NoiseSchedule(ScheduleConfig(kind))
    ref = diffusers().DDIMScheduler(num_train_timesteps=1000, beta_schedule=KIND_TO_DIFFUSERS[kind],
                                  clip_sample=clip, set_alpha_to_one=True, steps_offset=0)
    ref.set_timesteps(50)
    timesteps = ours.ddim_timesteps(50)
    assert timesteps == ref.timesteps.tolist()
    gen = torch.Generator().manual_seed(2)
    for i in (0, 1, 25, 48, 49):  # first, middle and last steps (the last lands on alpha_bar = 1)
        t = timesteps[i]
        t_prev = timesteps[i + 1] if i + 1 < len(timesteps) else -1
        xt, eps, noise = (torch.randn(4, 1, 28, 28, generator=gen) for _ in range(3))
        for clipped_eps in (False, True):  # diffusers' use_clipped_model_output
            expected = ref.step(eps, t, xt, eta=eta, variance_noise=noise,
                                use_clipped_model_output=clipped_eps).prev_sample
            got = ours.ddim_step(xt, t, t_prev, eps, eta=eta, noise=noise, clip_x0=clip, clipped_eps=clipped_eps)
            torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_ddim_timesteps_validate():
    s = NoiseSchedule()
    assert s.ddim_timesteps(1000) == list(range(999, -1, -1))
    with pytest.raises(ValueError, match="sampler steps"):
        s.ddim_timesteps(0)
    with pytest.raises(ValueError, match="spacing"):
        s.ddim_timesteps(10, "sideways")


@pytest.mark.parametrize("kind", ["linear", "cosine"])
@pytest.mark.parametrize("steps", [10, 50])
def test_trailing_ddim_matches_diffusers(kind, steps):
    ours = NoiseSchedule(ScheduleConfig(kind))
    ref = diffusers().DDIMScheduler(num_train_timesteps=1000, beta_schedule=KIND_TO_DIFFUSERS[kind],
                                    clip_sample=False, set_alpha_to_one=True, timestep_spacing="trailing")
    ref.set_timesteps(steps)
    timesteps = ours.ddim_timesteps(steps, "trailing")
    assert timesteps == ref.timesteps.tolist() and timesteps[0] == 999
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(3, 1, 28, 28, generator=gen)
    for i, t in enumerate(timesteps):
        eps = torch.randn(x.shape, generator=gen)
        t_prev = timesteps[i + 1] if i + 1 < len(timesteps) else -1
        expected = ref.step(eps, t, x, eta=0.0).prev_sample
        x_ours = ours.ddim_step(x, t, t_prev, eps, clip_x0=False)
        torch.testing.assert_close(x_ours, expected, atol=1e-5, rtol=1e-5)
        x = expected


@pytest.mark.parametrize("kind", ["linear", "cosine"])
@pytest.mark.parametrize("steps", [10, 20])
def test_dpm_solver_pp_2m_matches_diffusers_every_step(kind, steps):
    """A whole trajectory of DPM-Solver++(2M) against diffusers' DPMSolverMultistepScheduler (dpmsolver++,
    midpoint, final sigma 0, trailing spacing): first-order first and last steps, second order in between."""
    ours = NoiseSchedule(ScheduleConfig(kind))
    ref = diffusers().DPMSolverMultistepScheduler(num_train_timesteps=1000, beta_schedule=KIND_TO_DIFFUSERS[kind],
                                                  algorithm_type="dpmsolver++", solver_order=2,
                                                  timestep_spacing="trailing")
    ref.set_timesteps(steps)
    timesteps = ours.ddim_timesteps(steps, "trailing")
    assert timesteps == ref.timesteps.tolist()
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(3, 1, 28, 28, generator=gen) * ref.init_noise_sigma
    prev = None
    for i, t in enumerate(timesteps):
        eps = torch.randn(x.shape, generator=gen)
        last = i == len(timesteps) - 1
        expected = ref.step(eps, t, x).prev_sample
        x0 = ours.dpm_x0(x, t, eps)
        got = ours.dpmpp_2m_step(x, t, -1 if last else timesteps[i + 1], x0, None if last else prev)
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
        prev, x = (x0, t), expected


@pytest.mark.parametrize("cfg,size", [
    (UNetConfig(channels=8, channel_mults=(1, 2), attention_levels=(1,), groups=4), 28),
    (UNetConfig(channels=12, channel_mults=(1, 2, 3), num_res_blocks=2, attention_levels=(0, 2), groups=8), 28),
    (UNetConfig(channels=8, channel_mults=(1, 2, 4, 4), attention_levels=(3,)), 28),  # 28 -> 14 -> 7 -> 4 (odd)
    (UNetConfig(channels=6, channel_mults=(1, 1, 1), attention_levels=(), attention_heads=2, groups=4), 30),
    (UNetConfig(channels=8, channel_mults=(1,), attention_levels=(0,), num_classes=10), 28),
    (UNetConfig(channels=8, channel_mults=(1, 2), in_channels=3, num_classes=3), 32),
])
def test_unet_output_shape_matches_input(cfg, size):
    model = UNet(cfg)
    x = torch.randn(2, cfg.in_channels, size, size)
    y = torch.tensor([0, 1]) if cfg.num_classes else None
    out = model(x, torch.tensor([0, 999]), y)
    assert out.shape == x.shape
    out.sum().backward()  # every parameter is reachable from the output
    assert all(p.grad is not None for p in model.parameters())


def test_unet_rejects_labels_when_unconditional_and_bad_configs():
    with pytest.raises(ValueError, match="unconditional"):
        UNet(UNetConfig(channels=8))(torch.randn(1, 1, 28, 28), torch.tensor([3]), torch.tensor([1]))
    with pytest.raises(ValueError, match="attention_levels"):
        UNetConfig(channel_mults=(1, 2), attention_levels=(2,))


def test_guidance_mixing():
    c, u = torch.randn(3, 1, 4, 4), torch.randn(3, 1, 4, 4)
    torch.testing.assert_close(guided_eps(c, u, 1.0), c)
    torch.testing.assert_close(guided_eps(c, u, 0.0), u)
    torch.testing.assert_close(guided_eps(c, u, 3.0), u + 3 * (c - u))


def test_predict_eps_guides_against_the_null_class():
    torch.manual_seed(0)
    model = UNet(UNetConfig(channels=8, channel_mults=(1,), attention_levels=(), num_classes=10)).eval()
    for p in model.parameters():  # zero-initialised output layers would make every prediction 0
        p.data.normal_(0, 0.1)
    x, y = torch.randn(4, 1, 28, 28), torch.tensor([1, 2, 3, 4])
    t = torch.full((4,), 10)
    with torch.no_grad():
        cond, uncond = model(x, t, y), model(x, t, torch.full((4,), 10))
        torch.testing.assert_close(predict_eps(model, x, 10, y, 2.5), uncond + 2.5 * (cond - uncond))
        torch.testing.assert_close(predict_eps(model, x, 10, None, 2.5), model(x, t))  # no labels: unconditional


def test_a_condition_vector_unet_reads_the_vector_and_guides_against_the_zero_vector():
    torch.manual_seed(0)
    # 16 channels in 8 groups: with one channel per group, GroupNorm would cancel any per-channel embedding
    model = UNet(UNetConfig(channels=16, channel_mults=(1,), attention_levels=(), cond_dim=6)).eval()
    for p in model.parameters():
        p.data.normal_(0, 0.1)
    x, e = torch.randn(4, 1, 28, 28), torch.randn(4, 6)
    t = torch.full((4,), 10)
    with torch.no_grad():
        cond, uncond = model(x, t, e), model(x, t, torch.zeros(4, 6))
        assert (cond - uncond).abs().max() > 1e-3  # the vector reaches the output
        torch.testing.assert_close(model(x, t), uncond)  # no condition = the null (zero) vector
        torch.testing.assert_close(predict_eps(model, x, 10, e, 3.0), uncond + 3.0 * (cond - uncond))
    with pytest.raises(ValueError, match=r"\(B, 6\) condition vectors"):
        model(x, t, torch.randn(4, 5))
    with pytest.raises(ValueError, match="one of them"):
        UNetConfig(num_classes=10, cond_dim=6)


def _context_unet(context_dim: int = 8) -> UNet:
    torch.manual_seed(0)
    model = UNet(UNetConfig(channels=16, channel_mults=(1, 2), attention_levels=(-1,), context_dim=context_dim,
                            in_channels=3, image_size=16)).eval()
    for p in model.parameters():  # past the zero initialisation, so every path reaches the output
        p.data.normal_(0, 0.1)
    return model


def test_a_token_sequence_unet_cross_attends_to_the_tokens_not_only_to_their_mean():
    model = _context_unet()
    x, t = torch.randn(2, 3, 16, 16), torch.full((2,), 10)
    c = torch.randn(2, 5, 8)
    d = torch.randn(2, 5, 8)
    same_mean = c + d - d.mean(1, keepdim=True)  # another sequence with the same mean token
    with torch.no_grad():
        out = model(x, t, c)
        assert (out - model(x, t, same_mean)).abs().max() > 1e-5  # the pooled path alone cannot tell them apart
        torch.testing.assert_close(model(x, t, c[:, [4, 3, 2, 1, 0]]), out)  # a set: order comes from the encoder
        torch.testing.assert_close(model(x, t), model(x, t, torch.zeros(2, 5, 8)))  # no condition = zero sequence
        padded = torch.cat([c, torch.zeros(2, 3, 8)], 1)  # padding (all-zero tokens) is neither attended nor pooled
        torch.testing.assert_close(model(x, t, padded), out)
        torch.testing.assert_close(predict_eps(model, x, 10, c, 2.0),
                                   model(x, t, torch.zeros_like(c)) + 2.0 * (out - model(x, t, torch.zeros_like(c))))
    with pytest.raises(ValueError, match=r"\(B, L, 8\) token sequences"):
        model(x, t, torch.randn(2, 8))


def test_the_token_encoder_gives_word_order_and_zeros_at_padding():
    from genlab.data.captions import tokenize
    from genlab.pipeline.token_encoder import TokenEncoder, TokenEncoderConfig

    torch.manual_seed(0)
    enc = TokenEncoder(TokenEncoderConfig(width=8, layers=1, heads=2)).eval()
    tokens = tokenize(["a red seven on the left and a blue two on the right",
                       "a blue two on the left and a red seven on the right"])
    with torch.no_grad():
        feats = enc(tokens)
        assert feats.shape == (2, 32, 8) and feats[tokens == 0].abs().max() == 0
        model = _context_unet()
        x, t = torch.randn(1, 3, 16, 16).expand(2, -1, -1, -1), torch.full((2,), 10)
        out = model(x, t, feats)
        assert (out[0] - out[1]).abs().max() > 1e-5  # the same words in another order draw something else


def test_training_with_condition_vectors_needs_a_condition_function(tmp_path, tiny_mnist):
    cfg = DiffusionConfig(unet=UNetConfig(channels=8, channel_mults=(1, 2), attention_levels=(), cond_dim=4),
                          schedule=ScheduleConfig(timesteps=50), epochs=1, batch_size=32, max_steps_per_epoch=3,
                          eval_images=64, fld_samples=0, figures=False, progress=False)
    rt = LocalRuntime(tmp_path / "a", {"train": tiny_mnist}, seed=0)
    with pytest.raises(ValueError, match="condition"):
        train(cfg, rt, tiny_mnist)  # a cond_dim U-Net without its condition function
    table = torch.eye(10)[:, :4] * 3  # one vector per class (classes 4-9 share the zero vector with the null)
    seen = []

    def condition(labels, generator):
        seen.append(generator is None)
        return table[labels]

    metrics = train(cfg, LocalRuntime(tmp_path / "b", {"train": tiny_mnist}, seed=0), tiny_mnist, condition)
    assert metrics["eval/loss_ema"] > 0 and seen.count(True) == 3 and seen.count(False) >= 1  # 3 steps, 1 eval


def test_drop_labels_uses_the_null_class():
    torch.manual_seed(0)
    dropped = drop_labels(torch.zeros(10_000, dtype=torch.long), 0.2, null=10)
    assert set(dropped.unique().tolist()) == {0, 10}
    assert (dropped == 10).float().mean().item() == pytest.approx(0.2, abs=0.02)


def test_drop_labels_replaces_whole_condition_vectors_by_the_null_vector():
    torch.manual_seed(0)
    e = torch.randn(10_000, 8)
    dropped = drop_labels(e, 0.2, torch.zeros_like(e))
    nulled = (dropped == 0).all(1)
    assert nulled.float().mean().item() == pytest.approx(0.2, abs=0.02)
    assert torch.equal(dropped[~nulled], e[~nulled])  # the rest untouched, row by row


class Oracle(torch.nn.Module):
    """The ideal eps-model of a data set holding one image x*: eps = (x_t - sqrt(ab_t) x*) / sqrt(1 - ab_t)."""

    def __init__(self, schedule, target):
        super().__init__()
        self.schedule, self.target = schedule, target

    def forward(self, x, t, y=None):
        ab = self.schedule.alpha_bar(t).view(-1, 1, 1, 1)
        return (x - ab.sqrt() * self.target) / (1 - ab).sqrt()


@pytest.mark.parametrize("sampler", [SamplerConfig("ddim", steps=4), SamplerConfig("ddim", steps=3, eta=1.0),
                                     SamplerConfig("ddpm", batch_size=3), SamplerConfig("dpm++2m", steps=5),
                                     SamplerConfig("dpm++2m", steps=4, spacing="trailing")])
def test_samplers_are_seeded_and_reach_the_data_of_an_ideal_model(sampler):
    schedule = NoiseSchedule(ScheduleConfig(timesteps=20))
    model = UNet(UNetConfig(channels=8, channel_mults=(1,), attention_levels=()))
    a, traj = sample(model, schedule, 5, sampler, seed=1, keep_every=2)
    b, _ = sample(model, schedule, 5, sampler, seed=1)
    c, _ = sample(model, schedule, 5, sampler, seed=2)
    assert torch.equal(a, b) and not torch.equal(a, c)
    steps = 20 if sampler.kind == "ddpm" else sampler.steps
    assert len(traj) == 1 + -(-steps // 2)  # the noise, then every 2nd step and the last
    torch.testing.assert_close(traj[-1].add(1).div(2).clamp(0, 1), a[:len(traj[-1])])
    # whatever the start noise, an exact eps-model of a one-image data set leads every sampler to that image
    target = torch.rand(1, 1, 28, 28, generator=torch.Generator().manual_seed(5)) * 1.6 - 0.8  # inside (-1, 1)
    for seed in (1, 2):
        out, _ = sample(Oracle(schedule, target), schedule, 3, sampler, seed=seed)
        torch.testing.assert_close(out, ((target + 1) / 2).expand(3, -1, -1, -1), atol=1e-4, rtol=0)


def test_ddim_with_all_steps_and_eta_1_is_ddpm_in_distribution():
    """With every timestep and eta=1, DDIM's step variance is DDPM's posterior variance."""
    s = NoiseSchedule()
    for t in (999, 500, 10, 1):
        ab, ab_prev = s.alpha_bar(t), s.alpha_bar(t - 1)
        ddim_var = (1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev)
        xt, eps = torch.randn(2, 1, 4, 4), torch.randn(2, 1, 4, 4)
        zero = torch.zeros_like(xt)
        torch.testing.assert_close(s.ddim_step(xt, t, t - 1, eps, eta=1.0, noise=zero, clip_x0=False),
                                   s.ddpm_step(xt, t, eps, zero, clip_x0=False), atol=1e-5, rtol=1e-4)
        assert ddim_var.item() == pytest.approx(((1 - ab_prev) / (1 - ab) * s.betas[t]).item(), rel=1e-3)  # float32 rounding


def test_loss_is_zero_for_the_true_noise_and_about_one_for_none():
    """The ideal model of a one-image data set recovers the noise exactly (loss ~0); one that returns 0 scores
    about 1 (unit Gaussian noise)."""
    s = NoiseSchedule()
    x0 = (torch.rand(1, 1, 28, 28) * 2 - 1).expand(64, -1, -1, -1)

    class Zero(torch.nn.Module):
        def forward(self, x, t, y=None):
            return torch.zeros_like(x)

    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    assert diffusion_loss(Oracle(s, x0[:1]), s, x0, None, generator=gen()).item() < 1e-8
    assert diffusion_loss(Zero(), s, x0, None, generator=gen()).item() == pytest.approx(1.0, abs=0.02)


def tiny_cfg(**kw):
    return DiffusionConfig(unet=UNetConfig(channels=8, channel_mults=(1, 2), attention_levels=(1,), num_classes=10),
                           schedule=ScheduleConfig(timesteps=50), epochs=2, batch_size=32, eval_images=64,
                           ema_decay=0.9, warmup_steps=3, fld_samples=0, figures=False, progress=False, **kw)


def test_ddpm_resume_with_ema_equals_uninterrupted_run(tmp_path, tiny_mnist):
    data = {"train": tiny_mnist}
    train(tiny_cfg(seed=3), LocalRuntime(tmp_path / "straight", data, seed=3), tiny_mnist)
    with pytest.raises(Crash):
        train(tiny_cfg(seed=3), CrashAfterFirstCheckpoint(tmp_path / "resumed", data, seed=3), tiny_mnist)
    torch.manual_seed(999)
    train(tiny_cfg(seed=3), LocalRuntime(tmp_path / "resumed", data, seed=3), tiny_mnist)
    a, b = find_latest_checkpoint(tmp_path / "straight"), find_latest_checkpoint(tmp_path / "resumed")
    for ema in (False, True):
        sa, sb = load_model(a, ema=ema).state_dict(), load_model(b, ema=ema).state_dict()
        for name in sa:
            assert torch.equal(sa[name], sb[name]), (ema, name)
    assert load_train_state(b)["ema_n_averaged"] == load_train_state(a)["ema_n_averaged"] == 16
    assert not torch.equal(load_model(b).stem.weight, load_model(b, ema=True).stem.weight)  # EMA is its own copy


def test_ddpm_on_colour_32px_images_resumes_exactly_and_samples_colour(tmp_path):
    """A colour set (the offline faces at 32x32) sets the U-Net's channels and size; a crashed run resumes to the
    uninterrupted one's weights; samplers draw (n, 3, 32, 32)."""
    from genlab.data.faces import make_faces

    faces = make_faces(64, "train", size=32)
    cfg = tiny_cfg(seed=1, dataset="faces@32")
    assert (cfg.unet.in_channels, cfg.unet.image_size) == (3, 32) and cfg.run_name().startswith("ddpm-faces32")
    data = {"train": faces}
    train(cfg, LocalRuntime(tmp_path / "straight", data, seed=1), faces)
    with pytest.raises(Crash):
        train(cfg, CrashAfterFirstCheckpoint(tmp_path / "resumed", data, seed=1), faces)
    train(cfg, LocalRuntime(tmp_path / "resumed", data, seed=1), faces)
    a, b = (load_model(find_latest_checkpoint(tmp_path / run)).state_dict() for run in ("straight", "resumed"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    model = load_model(find_latest_checkpoint(tmp_path / "resumed"))
    images, _ = sample(model, NoiseSchedule(cfg.schedule), 3, SamplerConfig(kind="ddim", steps=3))
    assert images.shape == (3, 3, 32, 32) and 0 <= images.min() and images.max() <= 1
