"""Ray start-up defaults that keep everything on loopback, quiet and offline; embedded local Ray.

Every default can be overridden by setting the variable before the job starts (a real cluster may want
usage stats or token auth): we only `setdefault`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

RAY_ENV_DEFAULTS = {
    "RAY_USAGE_STATS_ENABLED": "0",           # no usage report to an outside host
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # bind GCS, raylet and dashboard to 127.0.0.1
    "RAY_AUTH_MODE": "disabled",              # otherwise `ray status` / `ray job submit` need a token
    "HF_HUB_OFFLINE": "1",                    # nothing may try a model hub
    "RAY_TRAIN_V2_ENABLED": "1",
}

log = logging.getLogger(__name__)


def configure_ray_env() -> None:
    for key, value in RAY_ENV_DEFAULTS.items():
        os.environ.setdefault(key, value)


def init_ray(num_cpus: int | None = None, object_store_memory: int | None = None, dashboard: bool = False):
    """Attach to the cluster in RAY_ADDRESS (as under `ray job submit`), else start an embedded local Ray."""
    configure_ray_env()
    import ray

    if ray.is_initialized():
        return ray
    if os.environ.get("RAY_ADDRESS"):
        import genlab

        # Ship the genlab package to every worker of the cluster (the job's working_dir does not put the
        # `platform/` source root on their sys.path).
        log.info("connecting to the Ray cluster at %s", os.environ["RAY_ADDRESS"])
        ray.init(runtime_env={"py_modules": [str(Path(genlab.__file__).parent)]}, log_to_driver=True)
    else:
        ray.init(address="local", num_cpus=num_cpus, object_store_memory=object_store_memory,
                 include_dashboard=dashboard, log_to_driver=True)
    return ray
