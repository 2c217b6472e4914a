#!/usr/bin/env bash
# Set up (if needed) and run the test suite: unit tests, one real Ray smoke run per job, notebooks at smoke scale.
# Two test processes by default (GENLAB_TEST_WORKERS=0 runs in this one): the Ray tests spend much of their time
# waiting on process start-up, so a second process fills the idle core. Tests that share a module fixture (a Serve
# app, a Ray cluster) stay together on one process (xdist_group).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
export GENLAB_SMOKE=1
exec .venv/bin/python -m pytest -n "${GENLAB_TEST_WORKERS:-2}" --dist loadgroup --nbmake notebooks tests "$@"
