import math

import numpy as np
import pytest
import scipy.linalg
import torch

from genlab.autoencoders import VAE, ModelConfig
from genlab.autoencoders.losses import bce_sum
from genlab.eval.fld import LeNet, _Features, class_entropy, frechet_distance
from genlab.eval.likelihood import binarize, iwae_log_likelihood, vae_test_metrics
from genlab.eval.reconstruction import psnr, reconstruction_metrics


def test_psnr_formula():
    assert psnr(0.01) == pytest.approx(20.0)
    assert psnr(0.001) == pytest.approx(30.0)


def test_reconstruction_metrics_identity_and_denoising_gain(tiny_mnist):
    images = tiny_mnist[0]
    perfect = reconstruction_metrics(lambda x: x, images)
    assert perfect["mse"] == pytest.approx(0.0, abs=1e-10)
    gen = torch.Generator().manual_seed(0)
    noisy = reconstruction_metrics(lambda x: x, images,
                                   corrupt=lambda x: (x + 0.3 * torch.randn(x.shape, generator=gen)).clamp(0, 1))
    assert noisy["psnr_gain_db"] == pytest.approx(0.0, abs=1e-6)  # identity "denoiser" gains nothing


def test_iwae_matches_numerical_integration_in_one_dimension():
    """With d=1, log p(x) = log int p(x|z) p(z) dz can be computed by quadrature: the IW estimate must agree."""
    torch.manual_seed(0)
    vae = VAE(ModelConfig(kind="vae", hidden=(16,), latent_dim=1)).double()
    x = binarize(torch.rand(3, 28, 28), seed=1).double()
    z = torch.linspace(-10, 10, 20001, dtype=torch.float64)[:, None]
    with torch.no_grad():
        log_px_z = -torch.stack([bce_sum(vae.decoder(z), xi.expand(len(z), 1, 28, 28)) for xi in x])  # (3, Z)
        log_pz = -0.5 * (math.log(2 * math.pi) + z[:, 0] ** 2)
        exact = torch.logsumexp(log_px_z + log_pz, dim=1) + math.log(float(z[1] - z[0]))
        estimate = iwae_log_likelihood(vae, x, k=20000)
    assert torch.allclose(estimate, exact, atol=0.05), (estimate, exact)


def test_iw_bound_is_tighter_than_elbo():
    torch.manual_seed(0)
    vae = VAE(ModelConfig(kind="vae", hidden=(32,), latent_dim=4))
    x = binarize(torch.rand(20, 28, 28), seed=0)
    m = vae_test_metrics(vae, x, k=64)
    assert m["iw_nll_nats"] <= m["neg_elbo_nats"] + 0.5


@pytest.mark.filterwarnings("ignore::scipy.linalg.LinAlgWarning")  # dead ReLU units make covariances singular
def test_frechet_distance_matches_scipy_reference():
    torch.manual_seed(0)
    net = LeNet().eval()
    a, b = torch.rand(300, 1, 28, 28), torch.rand(300, 1, 28, 28) ** 2
    fd = frechet_distance(net, a, b)
    with torch.no_grad():
        fa, fb = (_Features(net)(t).double().numpy() for t in (a, b))
    mu1, mu2, s1, s2 = fa.mean(0), fb.mean(0), np.cov(fa, rowvar=False), np.cov(fb, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    ref = float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))
    assert fd == pytest.approx(ref, rel=1e-3)
    assert frechet_distance(net, a, a) == pytest.approx(0.0, abs=1e-3)


def test_class_entropy():
    assert class_entropy(torch.arange(1000) % 10) == pytest.approx(math.log(10))
    assert class_entropy(torch.zeros(100, dtype=torch.long)) == pytest.approx(0.0)
