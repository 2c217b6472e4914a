"""Chapter 5.6: meta-learning. Prototypical Networks and MAML over a Conv-4 encoder. Pure torch, no ray."""

from genlab.core.checkpoint import register_family
from genlab.core.config import from_dict
from genlab.meta.config import FewShotDataConfig, MetaConfig
from genlab.meta.maml import MAML
from genlab.meta.protonet import ProtoNet


def _build_from_checkpoint(config: dict):
    from genlab.meta.train import build_learner

    return build_learner(from_dict(MetaConfig, config))


register_family("meta", _build_from_checkpoint)

__all__ = ["FewShotDataConfig", "MAML", "MetaConfig", "ProtoNet"]
