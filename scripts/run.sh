#!/usr/bin/env bash
# Set up (if needed) and run the main job on an embedded local Ray. Extra arguments go to the job.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
exec .venv/bin/python jobs/chapter1.py "$@"
