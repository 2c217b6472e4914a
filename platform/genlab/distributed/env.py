"""Ray start-up defaults that keep everything on loopback and quiet; embedded local Ray.

`HF_HUB_OFFLINE` is not among them: a connected user's `--pretrained laion2b_s34b_b79k` must be able to fetch its
weights. The set-up scripts (`scripts/env.sh`) and the tests set it, as this machine has no internet.

Every default can be overridden by setting the variable before the job starts (a real cluster may want
usage stats or token auth): we only `setdefault`.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import sys
import threading
from pathlib import Path

RAY_ENV_DEFAULTS = {
    "RAY_USAGE_STATS_ENABLED": "0",           # no usage report to an outside host
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # bind GCS, raylet and dashboard to 127.0.0.1
    "RAY_AUTH_MODE": "disabled",              # otherwise `ray status` / `ray job submit` need a token
    "RAY_TRAIN_V2_ENABLED": "1",
    "RAY_DATA_LOG_LEVEL": "WARNING",          # Ray Data's per-dataset INFO lines; its log file keeps them
    # Ray Train's controller polls its workers every 2 s by default, so every run ends up to 2 s after its last
    # step and each report waits for a poll; a poll is one cheap call per worker. Ray processes started from this
    # environment (the embedded Ray, `ray start` here) inherit it; a cloud cluster's nodes keep their own.
    "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.5",
    # One process less per run (~1.5 s here): it watches for spot-instance preemption, which a single machine
    # does not have; the cluster configs set it back on for their nodes.
    "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0",
}

log = logging.getLogger(__name__)


def configure_ray_env() -> None:
    for key, value in RAY_ENV_DEFAULTS.items():
        os.environ.setdefault(key, value)


def init_ray(num_cpus: int | None = None, object_store_memory: int | None = None, dashboard: bool = False,
             quiet: bool = True):
    """Attach to the cluster in RAY_ADDRESS (as under `ray job submit`), else start an embedded local Ray.
    `quiet`: the console shows progress bars and errors; Ray's other output goes to the run directory."""
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
        log.info("connected to the Ray cluster")
    else:
        context = ray.init(address="local", num_cpus=num_cpus, object_store_memory=object_store_memory,
                           include_dashboard=dashboard, dashboard_host="127.0.0.1", log_to_driver=True)
        if dashboard:
            print(f"Ray dashboard: http://{context.dashboard_url} (while this job runs)", flush=True)
    if quiet:
        quiet_console.install()
        # Ray Data's operator bars off. Through its environment default when ray.data is not imported yet: the
        # import costs ~0.9 s, on the path from `ray job submit` to the first step of jobs that never use it.
        if "ray.data" in sys.modules:
            sys.modules["ray.data"].DataContext.get_current().enable_progress_bars = False
        else:
            os.environ["RAY_DATA_DISABLE_PROGRESS_BARS"] = "1"
    return ray


class QuietConsole:
    """What Ray forwards from its workers to this driver's console: only progress bars (Ray's tqdm) and error
    lines; everything else (controller states, Ray Data's operator bars, placement-group warnings) goes to
    `path` (the current run's `ray_console.log`). Ray's full session logs stay where Ray keeps them; the run
    directory links to them (`ray_session_logs`)."""

    KEEP = re.compile(r"Traceback|Error|error:|Exception")

    def __init__(self):
        self.path: Path | None = None
        self.pinned = False
        self._lock = threading.Lock()

    def install(self) -> None:
        from ray._private import worker
        from ray.experimental.tqdm_ray import RAY_TQDM_MAGIC

        forward = functools.partial(worker.print_to_stdstream, ignore_prefix=False)

        def handler(data: dict) -> None:
            if data.get("pid") == "autoscaler":  # Ray prints only its events (none on a local machine)
                return forward(data)
            lines = data.get("lines", [])
            shown = [ln for ln in lines if RAY_TQDM_MAGIC in ln or self.KEEP.search(ln)]
            if shown:
                forward({**data, "lines": shown})
            hidden = [ln for ln in lines if RAY_TQDM_MAGIC not in ln]
            if hidden and self.path is not None:
                who = data.get("actor_name") or data.get("task_name") or ""
                with self._lock, open(self.path, "a") as f:
                    f.writelines(f"({who} pid={data.get('pid')}) {ln}\n" for ln in hidden)

        worker.global_worker_stdstream_dispatcher.remove_handler("ray_print_logs")
        worker.global_worker_stdstream_dispatcher.add_handler("ray_print_logs", handler)
        for name in ("ray.data", "ray.train", "ray.tune"):  # the driver's own chatter, same file
            logging.getLogger(name).setLevel(logging.WARNING)

    def attach(self, run_dir: Path) -> None:
        """Send the hidden lines to this run's directory (unless pinned) and link Ray's session logs there."""
        import ray

        if not self.pinned:
            self.path = Path(run_dir) / "ray_console.log"
        link = Path(run_dir) / "ray_session_logs"
        try:
            logs = ray._private.worker._global_node.get_logs_dir_path()
            if not link.exists():
                link.symlink_to(logs, target_is_directory=True)
        except (AttributeError, OSError):  # attached to a remote cluster: its logs live there
            pass

    @contextlib.contextmanager
    def pinned_to(self, run_dir: Path):
        """Runs trained at the same time share one console log (their lines cannot be told apart): this one."""
        self.attach(run_dir)
        self.pinned = True
        try:
            yield
        finally:
            self.pinned = False


quiet_console = QuietConsole()
