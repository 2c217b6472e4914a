#!/usr/bin/env bash
# GPU readiness: every generative job briefly on the GPU (samples/s, peak memory), its checkpoint resumed on the
# CPU. `--help` for the options; `--dry-run --workers 0` runs the same flow on a CPU-only machine.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
exec .venv/bin/python benchmarks/gpu_check.py "$@"
