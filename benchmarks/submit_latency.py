"""`ray job submit` -> end of the first optimizer step, against a running `ray start --head` on this machine
(loopback).

    python benchmarks/submit_latency.py --repeats 7

Starts a head (2 CPUs), submits one warm-up job (it also pays the runtime_env upload of the checkout, which later
jobs find cached, as a user's second job does), then `jobs/ae.py --smoke-test` `--repeats` times, and splits each
job's latency with timestamps the job leaves behind:

- `driver`: submit -> the job's driver has imported everything and connects to Ray (its first log line);
- `ray_init`: -> connected (the `py_modules` upload of the genlab package on first use);
- `to_worker_group`: driver connected -> the Ray Train worker group starts training (worker_groups.jsonl: data
  shards, the Ray Dataset, the controller, the worker processes, the process group, the model);
- `to_first_step_end`: -> rank 0's first optimizer step is applied (timeline.jsonl `first_step_end`: its first
  batch read, forward, backward, all-reduce and optimizer step).

`submit_to_first_step_s` is submit -> the end of that first step. Every job is kept in the JSON (the warm-up
too, marked); the summary is the median and the max over the measured jobs.
Results: benchmarks/results/submit_latency.json (bar: median <= 12 s from submit to the end of the first step).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from results_common import command

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"
STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")


def cpu_name() -> str:
    """The CPU a timing comes from: model name and the vector extensions that decide torch's speed here."""
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next((ln.split(":", 1)[1].strip() for ln in info.splitlines() if ln.startswith("model name")), "unknown")
    flags = set(next((ln.split(":", 1)[1].split() for ln in info.splitlines() if ln.startswith("flags")), []))
    ext = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_tile") if f in flags]
    return f"{model} ({', '.join(ext) or 'no AVX2'}), {os.cpu_count()} cores"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log_time(logs: str, pattern: str) -> float | None:
    """Epoch seconds of the first log line of the job matching `pattern` (its asctime stamp)."""
    for line in logs.splitlines():
        m = STAMP.match(line)
        if m and re.search(pattern, line):
            return datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
    return None


def one_job(client, storage: Path, extra: list[str]) -> dict:
    from ray.job_submission import JobStatus

    from genlab.core.rundir import read_timeline

    storage.mkdir(parents=True)
    entry = f"python jobs/ae.py --smoke-test --ray.storage {storage} " + " ".join(extra)
    t0 = time.time()
    job_id = client.submit_job(entrypoint=entry, runtime_env={"working_dir": str(ROOT)})
    submitted = time.time()
    while client.get_job_status(job_id) not in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED):
        time.sleep(0.2)
    logs = client.get_job_logs(job_id)
    if client.get_job_status(job_id) != JobStatus.SUCCEEDED:
        raise RuntimeError(f"job {job_id} failed:\n{logs[-3000:]}")
    run_dir = next(storage.glob("ae-*"))
    group_start = json.loads((run_dir / "worker_groups.jsonl").read_text().splitlines()[0])["started_at"]
    (first_step,) = [r["at"] for r in read_timeline(run_dir, "first_step_end")]
    connecting = log_time(logs, r"connecting to the Ray cluster")
    connected = log_time(logs, r"connected to the Ray cluster")
    info = client.get_job_info(job_id)
    row = {"submit_call_s": submitted - t0, "driver_s": connecting - t0, "ray_init_s": connected - connecting,
           "to_worker_group_s": group_start - connected, "to_first_step_end_s": first_step - group_start,
           "submit_to_first_step_s": first_step - t0,
           "job_total_s": info.end_time / 1000 - t0}
    print(json.dumps({k: round(v, 2) for k, v in row.items()}), flush=True)
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7, help="measured jobs, after one warm-up job")
    parser.add_argument("--label", default="", help="a name for this configuration in the results file")
    parser.add_argument("--job-args", nargs="*", default=[], help="extra flags for jobs/ae.py")
    args = parser.parse_args(argv)

    from genlab.distributed.env import configure_ray_env

    configure_ray_env()
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"  # the job's `python` = this venv's
    ray_bin = str(Path(sys.executable).parent / "ray")
    port, dash = free_port(), free_port()
    temp_dir = Path("/tmp") / f"ray-submit-{os.getpid()}"
    work = Path(tempfile.mkdtemp(prefix="submit-latency-"))
    subprocess.run([ray_bin, "start", "--head", f"--port={port}", f"--dashboard-port={dash}",
                    "--dashboard-host=127.0.0.1", "--num-cpus=2", "--object-store-memory=268435456",
                    f"--temp-dir={temp_dir}", "--disable-usage-stats"], env=env, check=True, capture_output=True)
    try:
        from ray.job_submission import JobSubmissionClient

        client = JobSubmissionClient(f"http://127.0.0.1:{dash}")
        rows = [one_job(client, work / f"job{i}", args.job_args) | {"warm_up": i == 0}
                for i in range(args.repeats + 1)]
    finally:
        subprocess.run([ray_bin, "stop", "--force"], env=env, capture_output=True)
        shutil.rmtree(temp_dir, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
    measured = [r for r in rows if not r["warm_up"]]
    keys = [k for k in rows[0] if k != "warm_up"]
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"submit_latency{'_' + args.label if args.label else ''}.json"
    m = {"date": time.strftime("%Y-%m-%d"), "command": command(),
         "cpu": cpu_name(), "jobs": rows, "median": {k: statistics.median(r[k] for r in measured) for k in keys},
         "max": {k: max(r[k] for r in measured) for k in keys}}
    out.write_text(json.dumps(m, indent=2) + "\n")
    print(f"submit -> end of first step over {len(measured)} jobs after a warm-up: median "
          f"{m['median']['submit_to_first_step_s']:.1f} s, max {m['max']['submit_to_first_step_s']:.1f} s; wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
