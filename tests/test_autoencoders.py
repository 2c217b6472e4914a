import math

import pytest
import torch
import torch.nn.functional as F

from genlab.autoencoders import VAE, Autoencoder, ModelConfig, TrainConfig, build_model, interpolate
from genlab.autoencoders.losses import add_gaussian_noise, ae_loss, bce_sum, kl_standard_normal, vae_loss


@pytest.mark.parametrize("kind", ["ae", "vae"])
@pytest.mark.parametrize("arch", ["mlp", "conv"])
def test_shapes(kind, arch):
    model = build_model(ModelConfig(kind=kind, arch=arch, latent_dim=7, hidden=(64, 32), channels=(4, 8), conv_fc=16))
    x = torch.rand(5, 1, 28, 28)
    out = model(x)
    assert out[0].shape == (5, 1, 28, 28)
    if kind == "vae":
        assert out[1].shape == out[2].shape == (5, 7)
        assert model.sample(3).shape == (3, 1, 28, 28)
    else:
        assert out[1].shape == (5, 7)
    assert interpolate(model, x[0], x[1], steps=6).shape == (6, 1, 28, 28)


def test_seed_mlp_autoencoder_layout():
    model = Autoencoder(ModelConfig())  # the seed's 784-512-256-32
    widths = [m.out_features for m in model.encoder.net if isinstance(m, torch.nn.Linear)]
    assert widths == [512, 256, 32]
    dec = [m.out_features for m in model.decoder.net if isinstance(m, torch.nn.Linear)]
    assert dec == [256, 512, 784]


def test_seed_vae_layout():
    vae = VAE(ModelConfig(kind="vae", hidden=(400,), latent_dim=20))
    assert (vae.fc_mu.in_features, vae.fc_mu.out_features) == (400, 20)
    assert (vae.fc_logvar.in_features, vae.fc_logvar.out_features) == (400, 20)


def test_kl_matches_hand_computation_and_torch_distributions():
    mu = torch.tensor([[0.5, -1.0]])
    logvar = torch.tensor([[math.log(2.0), 0.0]])
    hand = -0.5 * ((1 + math.log(2.0) - 0.25 - 2.0) + (1 + 0 - 1.0 - 1.0))
    assert kl_standard_normal(mu, logvar).item() == pytest.approx(hand, rel=1e-6)
    q = torch.distributions.Normal(mu, (0.5 * logvar).exp())
    ref = torch.distributions.kl_divergence(q, torch.distributions.Normal(0.0, 1.0)).sum(1)
    assert torch.allclose(kl_standard_normal(mu, logvar), ref, atol=1e-6)


def test_bce_sum_matches_hand_computation():
    logits = torch.tensor([[0.0, 2.0]]).view(1, 1, 1, 2)
    target = torch.tensor([[1.0, 0.0]]).view(1, 1, 1, 2)
    p = torch.sigmoid(torch.tensor(2.0))
    hand = -math.log(0.5) - math.log(1 - p.item())
    assert bce_sum(logits, target).item() == pytest.approx(hand, rel=1e-6)
    # the seed's form: sigmoid then BCE(sum)
    seed_form = F.binary_cross_entropy(torch.sigmoid(logits), target, reduction="sum")
    assert seed_form.item() == pytest.approx(hand, rel=1e-5)


def test_vae_loss_is_bce_plus_beta_kl():
    torch.manual_seed(0)
    x = torch.rand(4, 1, 28, 28).round()
    logits, mu, logvar = torch.randn(4, 1, 28, 28), torch.randn(4, 3), torch.randn(4, 3)
    out = vae_loss(logits, x, mu, logvar, beta=4.0)
    assert out["loss"].item() == pytest.approx(out["recon"].item() + 4.0 * out["kl"].item(), rel=1e-6)


def test_reparameterisation_gradient_flows_to_encoder():
    vae = VAE(ModelConfig(kind="vae", hidden=(32,), latent_dim=4))
    x = torch.rand(8, 1, 28, 28).round()
    logits, mu, logvar = vae(x)
    vae_loss(logits, x, mu, logvar)["loss"].backward()
    for p in [vae.fc_mu.weight, vae.fc_logvar.weight, *vae.encoder.parameters()]:
        assert p.grad is not None and p.grad.abs().sum() > 0


def test_reparameterize_distribution():
    torch.manual_seed(0)
    mu, logvar = torch.full((200_000, 1), 2.0), torch.full((200_000, 1), math.log(0.25))
    z = VAE.reparameterize(mu, logvar)
    assert z.mean().item() == pytest.approx(2.0, abs=0.01)
    assert z.std().item() == pytest.approx(0.5, abs=0.01)


def test_noise_is_clamped_and_has_the_right_scale():
    x = torch.full((1000, 1, 28, 28), 0.5)
    noisy = add_gaussian_noise(x, 0.3, generator=torch.Generator().manual_seed(0))
    assert noisy.min() == 0 and noisy.max() == 1  # 0.3 * N(0,1) leaves [0, 1] often from 0.5: clamped
    small = add_gaussian_noise(x, 0.05, generator=torch.Generator().manual_seed(0))  # 10 sigma from the edges
    assert (small - x).std().item() == pytest.approx(0.05, rel=0.01)


def test_sparse_penalty():
    logits, target = torch.zeros(2, 1, 28, 28), torch.full((2, 1, 28, 28), 0.5)
    z = torch.tensor([[1.0, -2.0], [0.0, 3.0]])
    out = ae_loss(logits, target, z, sparsity_weight=0.1)
    assert out["mse"].item() == pytest.approx(0.0)
    assert out["l1"].item() == pytest.approx(3.0)
    assert out["loss"].item() == pytest.approx(0.3)


def test_config_errors_are_clear():
    with pytest.raises(ValueError, match="objective"):
        TrainConfig(objective="fancy")
    with pytest.raises(ValueError, match="VAE trains on its ELBO"):
        TrainConfig(model=ModelConfig(kind="vae"), objective="denoising")
    with pytest.raises(ValueError, match="arch"):
        ModelConfig(arch="transformer")
