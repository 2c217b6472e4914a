"""A job script's command line run in this process (its `if __name__ == "__main__":` block, through runpy): the
argument parsing, `--help` and the checks a job makes before Ray starts, without a new interpreter's imports
(torch, Ray, open_clip: several seconds per script). Jobs that train run as subprocesses (test_jobs.run_job)."""

from __future__ import annotations

import contextlib
import io
import os
import runpy
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str


def run_cli(script: str, *args: str) -> CliResult:
    """Like `python <script> <args>` run from the repository root: the exit status as Python would set it
    (SystemExit's code; 1 and the message or traceback on stderr otherwise) and what went to stdout / stderr."""
    out, err = io.StringIO(), io.StringIO()
    argv, cwd, code = sys.argv, os.getcwd(), 0
    sys.argv = [script, *args]
    os.chdir(ROOT)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                runpy.run_path(str(ROOT / script), run_name="__main__")
            except SystemExit as e:
                if e.code is None or isinstance(e.code, int):
                    code = e.code or 0
                else:
                    code = 1
                    print(e.code, file=sys.stderr)
            except Exception:  # noqa: BLE001 - an uncaught error: the interpreter would print it and exit 1
                code = 1
                traceback.print_exc()
    finally:
        sys.argv = argv
        os.chdir(cwd)
    return CliResult(code, out.getvalue(), err.getvalue())
