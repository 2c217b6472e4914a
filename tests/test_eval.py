import math

import numpy as np
import pytest
import scipy.linalg
import torch

from genlab.autoencoders import VAE, ModelConfig
from genlab.autoencoders.losses import bce_sum
from genlab.eval.fld import LeNet, class_entropy, features, frechet_distance, frechet_distance_of_features
from genlab.eval.likelihood import binarize, iwae_log_likelihood
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


def test_iw_bound_lies_between_the_elbo_and_log_px():
    """-ELBO >= IW-NLL(k=64) up to the ELBO's Monte-Carlo error (3 standard errors of a 4,000-sample estimate),
    and IW with k=1 is an unbiased estimate of the ELBO itself."""
    from genlab.autoencoders.losses import kl_standard_normal

    torch.manual_seed(0)
    vae = VAE(ModelConfig(kind="vae", hidden=(32,), latent_dim=4)).eval()
    x = binarize(torch.rand(20, 28, 28), seed=0)
    S = 4000
    with torch.no_grad():
        mu, logvar = vae.encode(x)
        z = mu + (0.5 * logvar).exp() * torch.randn(S, *mu.shape)                           # (S, B, d)
        log_px_z = -bce_sum(vae.decoder(z.flatten(0, 1)), x.repeat(S, 1, 1, 1)).view(S, -1)  # (S, B)
        elbo = log_px_z - kl_standard_normal(mu, logvar)                                     # (S, B)
        per_sample = elbo.mean(1)                                                            # (S,) mean over images
        neg_elbo, se = -float(per_sample.mean()), float(per_sample.std() / math.sqrt(S))
        iw64 = -float(iwae_log_likelihood(vae, x, k=64).mean())
        iw1 = -float(torch.stack([iwae_log_likelihood(vae, x, k=1) for _ in range(200)]).mean())
    assert iw64 <= neg_elbo + 3 * se, (iw64, neg_elbo, se)
    assert neg_elbo - iw64 > 10 * se  # strictly tighter, by far more than the noise
    assert iw1 == pytest.approx(neg_elbo, abs=0.5)  # 200 x 20 single-sample estimates of the same ELBO


@pytest.mark.filterwarnings("ignore::scipy.linalg.LinAlgWarning")  # dead ReLU units make covariances singular
def test_frechet_distance_matches_scipy_reference():
    torch.manual_seed(0)
    net = LeNet().eval()
    a, b = torch.rand(300, 1, 28, 28), torch.rand(300, 1, 28, 28) ** 2
    fd = frechet_distance(net, a, b)
    with torch.no_grad():
        fa, fb = (net.features(t).double().numpy() for t in (a, b))
    mu1, mu2, s1, s2 = fa.mean(0), fb.mean(0), np.cov(fa, rowvar=False), np.cov(fb, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    ref = float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))
    assert fd == pytest.approx(ref, rel=1e-3)
    assert frechet_distance(net, a, a) == pytest.approx(0.0, abs=1e-3)


def test_sample_quality_compares_with_the_cached_test_features():
    from genlab.data.mnist import load_dataset
    from genlab.eval.fld_reference import reference_classifier, reference_dir, reference_test_features
    from genlab.eval.sample_quality import sample_quality

    classifier, info = reference_classifier("mnist", quick=True)
    test = load_dataset("mnist", "test")[0]
    cached = reference_test_features("mnist", quick=True)
    assert (reference_dir("mnist", quick=True) / "test_features.pt").exists()
    rows = torch.randperm(len(test), generator=torch.Generator().manual_seed(0))[:500]
    assert cached.shape == (len(test), classifier.num_features)
    torch.testing.assert_close(cached[rows], features(classifier, test[rows]))  # the test set's, row for row
    samples = test[5000:5400].flip(-1)  # mirrored digits: far from the test set, not infinitely
    q = sample_quality(samples, quick=True)
    assert q["fld"] == pytest.approx(frechet_distance_of_features(cached, features(classifier, samples)), rel=1e-9)
    assert q["fld"] > 10 * info["fld_floor_train_vs_test"]
    assert q["fld_ratio"] == pytest.approx(q["fld"] / info["fld_floor_train_vs_test"])


def test_class_entropy():
    assert class_entropy(torch.arange(1000) % 10) == pytest.approx(math.log(10))
    assert class_entropy(torch.zeros(100, dtype=torch.long)) == pytest.approx(0.0)


def test_precision_recall_on_a_case_with_a_known_answer():
    """Reals at 0..99 on a line; fakes: 50 copies of reals 0..49 and 50 points far away at 1000..1049.
    k=3: inner points' k-NN balls have radius 2, the end points' radius 3. Precision = 50/100 (the far fakes lie
    outside every real ball); recall = 53/100 (reals 0..52: the end fake at 49 has its 3rd neighbour at 46)."""
    from genlab.eval.sample_quality import precision_recall

    line = lambda v: torch.tensor(v, dtype=torch.float32)[:, None] * torch.tensor([[1.0, 0.0]])  # noqa: E731
    real = line(list(range(100)))
    fake = torch.cat([line(list(range(50))), line(list(range(1000, 1050)))])
    precision, recall = precision_recall(real, fake, k=3)
    assert precision == pytest.approx(0.50) and recall == pytest.approx(0.53)


def test_precision_recall_matches_a_brute_force_reference():
    from genlab.eval.sample_quality import precision_recall

    gen = torch.Generator().manual_seed(0)
    real, fake = torch.randn(300, 5, generator=gen), torch.randn(200, 5, generator=gen) * 0.8 + 1.0

    def reference(support, queries, k):
        d_ss = np.linalg.norm(support[:, None] - support[None], axis=-1)
        radii = np.sort(d_ss, axis=1)[:, k]  # column 0 is the point itself
        d_qs = np.linalg.norm(queries[:, None] - support[None], axis=-1)
        return float(np.mean([(d_qs[i] <= radii).any() for i in range(len(queries))]))

    p, r = precision_recall(real, fake, k=3)
    assert p == pytest.approx(reference(real.numpy(), fake.numpy(), 3), abs=1e-12)
    assert r == pytest.approx(reference(fake.numpy(), real.numpy(), 3), abs=1e-12)
    assert 0.05 < p < 0.95 and 0.05 < r < 0.95, (p, r)  # both away from the trivial 0 and 1


def test_class_mig_is_one_for_a_perfect_single_code_and_zero_for_a_duplicated_one():
    from genlab.eval.disentanglement import class_mig

    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, 10_000)
    noise = rng.normal(size=10_000)
    perfect = class_mig(np.stack([y.astype(float), noise], 1), y)
    assert perfect["top_mi"] == pytest.approx(1.0, abs=1e-9)
    assert perfect["mig"] == pytest.approx(1.0, abs=0.01)  # the noise latent's MI is only binning bias
    twice = class_mig(np.stack([y.astype(float), y * 2.0 + 1, noise], 1), y)
    assert twice["mig"] == pytest.approx(0.0, abs=1e-9) and twice["top_mi"] == pytest.approx(1.0, abs=1e-9)


def _rank_scores_alone(rank: int, init_file: str, out) -> None:
    """A 2-process gloo group where only rank 0 computes an FLD (as rank 0 scores a multi-worker run)."""
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    if rank == 0:
        gen = torch.Generator().manual_seed(0)
        out.put(frechet_distance_of_features(torch.randn(200, 8, generator=gen), torch.randn(200, 8, generator=gen)))
    dist.barrier()
    dist.destroy_process_group()


def test_fld_on_rank_zero_alone_does_not_wait_for_the_other_ranks(tmp_path):
    """torchmetrics syncs a metric across the process group by default: rank 0 scoring alone then waits forever
    (seen: a 2-worker GAN run hung in its final evaluation)."""
    import torch.multiprocessing as mp

    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_rank_scores_alone, args=(rank, str(tmp_path / "init"), out)) for rank in (0, 1)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)
    hung = [p for p in procs if p.is_alive()]
    for p in hung:
        p.kill()
    assert not hung and all(p.exitcode == 0 for p in procs)
    assert 0 < out.get(timeout=5) < 1  # two samples of one distribution
