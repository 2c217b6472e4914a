"""FID on Inception-v3 features (genlab.eval.fid): the statistics on the real network's architecture (random
weights stand in for the download) and the offline path up to the network, with its error."""

import urllib.error

import pytest
import torch

from genlab.eval import fid


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """An empty torch hub cache whose downloads fail as they do offline."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))

    def offline(url, dst, progress=True):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    return tmp_path / "hub"


@pytest.fixture
def random_weights(tmp_path, monkeypatch):
    """A weights file for torch-fidelity's Inception-v3 in its own format, randomly initialised."""
    import torch_fidelity.feature_extractor_inceptionv3 as fe

    with monkeypatch.context() as m:  # build the network without its download, then save what it holds
        m.setattr(fe, "load_state_dict_from_url", lambda *a, **k: None)
        m.setattr(fe.FeatureExtractorInceptionV3, "load_state_dict", lambda self, state: None)
        torch.manual_seed(0)
        net = fe.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    for m in net.modules():  # He init keeps activations alive through the 94 layers (the default shrinks them)
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
    path = tmp_path / fid.WEIGHTS_FILE
    torch.save(net.state_dict(), path)
    return path


def test_offline_fid_names_the_command_that_fetches_the_weights(hub):
    with pytest.raises(fid.InceptionWeightsUnavailable) as e:
        fid.inception_weights()
    message = str(e.value)
    assert "python -m genlab.eval.fid --download" in message and "Name or service not known" in message
    assert str(hub / "checkpoints" / fid.WEIGHTS_FILE) in message and fid.WEIGHTS_URL in message


def test_a_job_asking_for_fid_offline_stops_before_training(hub, tmp_path, monkeypatch):
    from genlab.distributed import jobs
    from genlab.distributed.trainer import RayConfig
    from genlab.gan import GANTrainConfig

    monkeypatch.setattr(jobs, "fit", lambda *a, **k: pytest.fail("training started"))
    cfg = GANTrainConfig(dataset="faces", inception_fid=True)
    with pytest.raises(SystemExit, match="genlab.eval.fid --download"):
        jobs.run_training_job(cfg.run_name(), "genlab.gan.train:train", cfg, RayConfig(storage=str(tmp_path)), "faces")
    assert not list(tmp_path.glob("dcgan*")), "a run directory was made for a run that cannot be scored"


def test_fid_statistics_on_the_inception_network(random_weights):
    gen = torch.Generator().manual_seed(0)
    grey = torch.randint(0, 256, (12, 28, 28), dtype=torch.uint8, generator=gen)
    rgb = (grey.float() / 255)[:, None].repeat(1, 3, 1, 1)
    # grey uint8 images and their float RGB copies are one image set: FID 0
    assert abs(fid.inception_fid(grey, rgb, weights=random_weights)) < 1e-3
    assert fid.inception_fid(rgb, (rgb + 0.3 * torch.rand(rgb.shape, generator=gen)).clamp(0, 1),
                             weights=random_weights) > 1e-3


def test_sample_quality_adds_fid_inception_from_the_hub_cache(hub, random_weights):
    """The jobs' path (`--train.inception-fid`): the weights found in torch's hub cache, the samples scored against
    as many test images."""
    from genlab.eval.sample_quality import sample_quality

    (hub / "checkpoints").mkdir(parents=True)
    random_weights.rename(hub / "checkpoints" / fid.WEIGHTS_FILE)
    samples = torch.rand(8, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    out = sample_quality(samples, "mnist", quick=True, inception=True)
    assert out["fid_inception"] > 0 and "fld" in out
    assert "fid_inception" not in sample_quality(samples, "mnist", quick=True)
