"""Every job's `--config FILE`: defaults from a JSON/YAML file or a run's config.json, flags on top, clear errors."""

import json
from dataclasses import dataclass, field

import pytest

from genlab.autoencoders import ModelConfig, TrainConfig
from genlab.core.cli import cli, defaults_from_file
from genlab.distributed.trainer import RayConfig
from tests.cli_helpers import run_cli


@dataclass
class VaeArgs:  # the shape of jobs/vae.py's Args
    train: TrainConfig = field(default_factory=lambda: TrainConfig(model=ModelConfig(kind="vae", arch="conv")))
    ray: RayConfig = field(default_factory=RayConfig)
    smoke_test: bool = False


def _vae_args():
    return VaeArgs


def test_a_runs_config_json_is_read_as_the_training_config(tmp_path):
    Args = _vae_args()
    from genlab.core.config import to_dict

    base = Args()
    saved = to_dict(base.train) | {"beta": 4.0, "epochs": 2}
    (tmp_path / "config.json").write_text(json.dumps(saved))
    args = defaults_from_file(Args, str(tmp_path))  # a run directory works as well as its config.json
    assert args.train.beta == 4.0 and args.train.epochs == 2 and args.train.model == base.train.model
    assert args.ray == base.ray
    flagged = cli(Args, ["--config", str(tmp_path / "config.json"), "--train.epochs", "7"])
    assert flagged.train.beta == 4.0 and flagged.train.epochs == 7  # flags win over the file


def test_a_partial_yaml_sets_only_its_fields_and_unknown_keys_are_named(tmp_path):
    Args = _vae_args()
    (tmp_path / "run.yaml").write_text("train:\n  beta: 2.0\n  model: {latent_dim: 8}\nray:\n  num_workers: 0\n")
    args = cli(Args, ["--config", str(tmp_path / "run.yaml")])
    assert args.train.beta == 2.0 and args.train.model.latent_dim == 8 and args.train.model.arch == "conv"
    assert args.ray.num_workers == 0
    (tmp_path / "bad.yaml").write_text("train: {betta: 2.0}\n")
    with pytest.raises(SystemExit, match="betta"):
        cli(Args, ["--config", str(tmp_path / "bad.yaml")])
    with pytest.raises(SystemExit, match="no such file"):
        cli(Args, ["--config", str(tmp_path / "missing.json")])


def test_every_job_help_names_the_config_flag():
    out = run_cli("jobs/ddpm.py", "--help")
    assert out.returncode == 0 and "--config FILE" in out.stdout
