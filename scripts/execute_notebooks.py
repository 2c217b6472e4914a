"""Execute the notebooks in place and keep their outputs, as they are committed (tests/test_notebooks.py checks
them: executed, at least one figure each, no machine path, no warning).

    .venv/bin/python scripts/execute_notebooks.py                      # every notebook, at the scale it picks
    .venv/bin/python scripts/execute_notebooks.py --smoke 07 08        # smoke scale (GENLAB_SMOKE=1), two of them

Each notebook runs in its own kernel from the notebooks/ folder (what Jupyter does), with the offline and quiet
environment of scripts/env.sh; a notebook that fails is left as it was and the script exits 1.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENV = {"HF_HUB_OFFLINE": "1", "RAY_USAGE_STATS_ENABLED": "0", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("which", nargs="*", help="notebook name prefixes (e.g. 07 08); none = all")
    ap.add_argument("--smoke", action="store_true", help="GENLAB_SMOKE=1: tiny data and budgets, as CI runs them")
    ap.add_argument("--timeout", type=int, default=3600, help="seconds per cell")
    args = ap.parse_args(argv)

    import nbformat
    from nbclient import NotebookClient

    os.environ.update({k: os.environ.get(k, v) for k, v in ENV.items()})
    os.environ["PYTHONPATH"] = f"{ROOT / 'platform'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"
    if args.smoke:
        os.environ["GENLAB_SMOKE"] = "1"
    paths = [p for p in sorted((ROOT / "notebooks").glob("*.ipynb"))
             if not args.which or any(p.name.startswith(w) for w in args.which)]
    failed = []
    for path in paths:
        t0 = time.perf_counter()
        nb = nbformat.read(path, as_version=4)
        try:
            NotebookClient(nb, timeout=args.timeout, kernel_name="python3",
                           resources={"metadata": {"path": str(path.parent)}}).execute()
        except Exception as err:  # noqa: BLE001 - report and go on with the next notebook
            failed.append(path.name)
            print(f"{path.name}: FAILED ({type(err).__name__}: {str(err)[-600:]})", flush=True)
            continue
        nbformat.write(nb, path)
        print(f"{path.name}: executed in {time.perf_counter() - t0:.0f} s", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
