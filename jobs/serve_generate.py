"""The final system served by Ray Serve: text -> CLIP text encoder -> prior -> VAE decoder -> GAN refiner ->
image, as /api/generate (JSON) and /api/generate.png, and the web page's Generate tab (raw and refined side by
side, a seed control) on http://127.0.0.1:8000/#generate; text search stays on the same page.

    python jobs/serve_generate.py                                  # the newest runs/pipeline__* pipeline
    python jobs/serve_generate.py --pipeline runs/pipeline__0__<time> --port 8080
    serve run jobs/serve_generate.yaml                             # the same app from its Serve config
    curl -s 'http://127.0.0.1:8000/api/generate.png?q=a%20seven&n=8&seed=3' -o seven.png
"""

from __future__ import annotations

import dataclasses

from genlab.core.cli import cli
from genlab.multimodal.models import PretrainedUnavailable
from genlab.serve.run import ServeArgs, serve_search
from genlab.serve.search_app import newest_pipeline

if __name__ == "__main__":
    args = cli(ServeArgs)
    try:
        serve_search(dataclasses.replace(args, pipeline=args.pipeline or newest_pipeline()))
    except (FileNotFoundError, ValueError, PretrainedUnavailable) as err:  # bad pipeline or index: say which
        raise SystemExit(f"jobs/serve_generate.py: {err}") from None
