"""Text-to-image search served by Ray Serve: the API, thumbnails and a web page on http://127.0.0.1:8000/.

    python jobs/serve_search.py --weights runs/clip-rn__0__<time> --source captions:train
    python jobs/serve_search.py --index-dir runs/index --allowed-root ~/pictures --port 8080
    serve run jobs/serve_search.yaml            # the same app from its Serve config (edit args there)
"""

from __future__ import annotations

from genlab.core.cli import cli
from genlab.multimodal.models import PretrainedUnavailable
from genlab.serve.run import ServeArgs, serve_search

if __name__ == "__main__":
    args = cli(ServeArgs)
    try:
        serve_search(args)
    except (FileNotFoundError, ValueError, PretrainedUnavailable) as err:  # bad weights or index: say which
        raise SystemExit(f"jobs/serve_search.py: {err}") from None
