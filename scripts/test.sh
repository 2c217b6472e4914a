#!/usr/bin/env bash
# Set up (if needed) and run the test suite: unit tests, one real Ray smoke run per job, notebooks at smoke scale.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
export GENLAB_SMOKE=1
exec .venv/bin/python -m pytest --nbmake notebooks tests "$@"
