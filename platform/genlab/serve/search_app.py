"""Text-to-image search on Ray Serve: a text encoder and an image encoder (each batching with `@serve.batch`),
the index (one replica, loaded from disk, reloaded when `user_config` changes), and a FastAPI ingress that
serves the API, the thumbnails and the web page.

    text search:   request -> SearchApi (FastAPI) -> IndexStore (query tower + index) -> ids, scores, thumbnails
    image search:  request -> SearchApi -> ImageEncoder -> SearchApi -> IndexStore -> ...
    zero-shot, generation: SearchApi -> TextEncoder (and ImageEncoder, the pipeline's stages)

A text search is the hot path: the index replica embeds the query with its own copy of the text tower (a few MB)
and searches in the same batch, one handle hop instead of two (each hop costs ~2-4 ms and ~4 ms of CPU on these
two cores: benchmarks/NOTES.md).

The model and index deployments live in genlab.serve.search_backends; this module holds the ingress, its API
models and the app built from deploy-time arguments.

Writes (indexing a folder) go to the one IndexStore replica, which saves the index before it answers: a replica
that dies is replaced by one that loads everything acknowledged so far.

Built by `build_app(args)`: from Python (`jobs/serve_search.py`) or from a Serve config file
(`import_path: genlab.serve.search_app:build_app`, see `jobs/serve_search.yaml`).
"""

import asyncio
import json
import logging
import os
import time
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
from fastapi import FastAPI, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import BaseModel, Field
from ray import serve
from ray.exceptions import ActorUnavailableError, RayActorError
from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError, ReplicaUnavailableError
from ray.serve.handle import DeploymentHandle

from genlab.serve.generate import (DEFAULT_TEMPERATURE, MAX_PROMPT_CHARS, MAX_SEED, MAX_SERVED_IMAGES,
                                   CaptionGenerator, DiffusionGenerator, GenerateRequest, GenerateResponse,
                                   ImageGenerator, PriorStage, data_url, grid, run_pipeline)
from genlab.serve import guard
from genlab.serve.media import (MAX_UPLOAD_BYTES, RequestError, decode_upload, images_under, load_folder_image,
                                png_bytes, resolve_folder)
from genlab.serve.search_backends import REPO, ImageEncoder, IndexStore, TextEncoder, repo_path

log = logging.getLogger("ray.serve")
STATIC = Path(__file__).parent / "static"
STATIC_FILES = {"app.js": "text/javascript", "style.css": "text/css"}
MAX_K = 100
MAX_QUERY_CHARS = 1000
MAX_LABELS = 64
FOLDER_BATCH = 256
MAX_SKIPPED_LISTED = 100  # the response names at most this many skipped files (and counts all of them)
# Back-pressure: requests beyond the ingress's ongoing limit wait in a bounded queue, and past it get 503 at once
# (the handler below); no request runs longer than the proxy's timeout (serve/run.py, every Serve config).
MAX_QUEUED_REQUESTS = 256
REQUEST_TIMEOUT_S = 30.0


# Ray Serve's throughput-optimised mode (read by Serve's processes when they start).
FAST_INGRESS_ENV = {"RAY_SERVE_ENABLE_HA_PROXY": "1", "RAY_SERVE_ENABLE_DIRECT_INGRESS": "1",
                    "RAY_SERVE_USE_GRPC_BY_DEFAULT": "1", "RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "0",
                    "RAY_SERVE_RUN_ROUTER_IN_SEPARATE_LOOP": "0", "RAY_SERVE_LOG_TO_STDERR": "0"}


# Always: user code and the handle router on each replica's main event loop (two of the throughput mode's
# settings that open no port): no hand-off between threads per call, ~0.7 ms of a text search's ~15 ms here.
SAME_LOOP_ENV = {"RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "0", "RAY_SERVE_RUN_ROUTER_IN_SEPARATE_LOOP": "0"}


def configure_serve_env(fast_ingress: bool = False) -> None:
    """Call before Ray starts (its processes read these when they start). `fast_ingress`: HAProxy instead of
    Serve's Python proxy (see ServeArgs)."""
    for key, value in (SAME_LOOP_ENV | (FAST_INGRESS_ENV if fast_ingress else {})).items():
        os.environ.setdefault(key, value)


class IndexFolderRequest(BaseModel):
    folder: str = Field(description="folder relative to the allowed root, e.g. 'photos/2024'")


class SearchHit(BaseModel):
    id: str
    score: float
    thumbnail: str


class SearchResponse(BaseModel):
    query: str
    k: int
    took_ms: float
    results: list[SearchHit]


class LabelScore(BaseModel):
    label: str
    probability: float
    score: float


class ZeroShotResponse(BaseModel):
    labels: list[LabelScore]


class SkippedFile(BaseModel):
    path: str = Field(description="relative to the indexed folder")
    reason: str


class IndexResponse(BaseModel):
    folder: str
    images: int = Field(description="image files found (hidden files and links out of the root not counted)")
    added: int = Field(description="new entries (files the index already held are neither decoded nor embedded)")
    already_indexed: int
    count: int
    skipped: int
    skipped_files: list[SkippedFile] = Field(description=f"the first {MAX_SKIPPED_LISTED} files that could not be "
                                                         "indexed, each with why")
    took_s: float


class StatsResponse(BaseModel):
    count: int
    dim: int
    model: str
    weights: str
    index_dir: str
    replica: str
    allowed_root: str


# No /docs or /redoc: both pull Swagger UI / ReDoc from a CDN, which the page's CSP (and this machine) forbid;
# the schema is at /openapi.json.
api = FastAPI(title="genlab search", description="Text-to-image search over a CLIP embedding index (chapter 5.7).",
              version="1", docs_url=None, redoc_url=None)
api.add_middleware(guard.RequestGuard)  # Host allowlist, streaming body limit, security headers


@api.exception_handler(RayActorError)
@api.exception_handler(ActorUnavailableError)
@api.exception_handler(DeploymentUnavailableError)
@api.exception_handler(ReplicaUnavailableError)
@api.exception_handler(BackPressureError)
async def unavailable(request: Request, err: Exception) -> JSONResponse:
    """A replica that died or restarts mid-request (Serve replaces it): 503 and a hint, not a 500."""
    log.warning("%s %s: %s", request.method, request.url.path, type(err).__name__)
    return JSONResponse({"detail": f"a part of the app is restarting ({type(err).__name__}); retry in a few "
                                   "seconds"}, status_code=503, headers={"Retry-After": "2"})


Kind = Annotated[int, Query(ge=1, le=MAX_K, description=f"results to return (1..{MAX_K})")]


@serve.deployment(ray_actor_options={"num_cpus": 0.25}, max_ongoing_requests=128,
                  max_queued_requests=MAX_QUEUED_REQUESTS)
@serve.ingress(api)
class SearchApi:
    def __init__(self, text: DeploymentHandle, image: DeploymentHandle, index: DeploymentHandle, model: str,
                 allowed_root: str, max_upload_bytes: int = MAX_UPLOAD_BYTES, max_folder_images: int = 20_000,
                 prior: DeploymentHandle | None = None, generator: DeploymentHandle | None = None,
                 allowed_hosts: tuple[str, ...] | list[str] | str = guard.LOOPBACK_HOSTS,
                 generator_kind: str = "prior_vae"):
        from genlab.multimodal.models import tower_image_size

        guard.configure(allowed_hosts, max_upload_bytes)  # this replica's process: see genlab.serve.guard
        self.text, self.image, self.index = text, image, index
        self.prior, self.generator = prior, generator  # the text-to-image pipeline's stages, when deployed
        self.generator_kind = generator_kind
        self.image_size = tower_image_size(model)
        self.root = repo_path(allowed_root).resolve()
        self.allowed_root = allowed_root  # as configured: what /api/stats shows (no absolute server path)
        self.max_upload_bytes, self.max_folder_images = max_upload_bytes, max_folder_images
        self.indexing = asyncio.Lock()  # one folder at a time: a second call gets 429 instead of doubling the work

    # -- page -----------------------------------------------------------------------------------------------
    @api.get("/", include_in_schema=False)
    def page(self):
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @api.get("/static/{name}", include_in_schema=False)
    def static(self, name: str):
        if name not in STATIC_FILES:  # a fixed set: nothing else on disk is reachable
            raise HTTPException(404, f"no static file {name!r}")
        return FileResponse(STATIC / name, media_type=STATIC_FILES[name])

    # -- API ------------------------------------------------------------------------------------------------
    @api.get("/api/health")
    async def health(self) -> dict:
        stats = await self.index.stats.remote()
        return {"status": "ok", "count": stats["count"], "generate": self.generator is not None}

    @api.get("/api/stats", response_model=StatsResponse)
    async def stats(self) -> dict:
        return await self.index.stats.remote() | {"allowed_root": self.allowed_root}

    @api.get("/api/search", response_model=SearchResponse)
    async def search(self, q: Annotated[str, Query(max_length=MAX_QUERY_CHARS, description="the text to find")],
                     k: Kind = 10) -> dict:
        t0 = time.perf_counter()
        if not q.strip():
            raise HTTPException(422, "the query is empty: type what the image should show, e.g. 'a red seven'")
        ids, scores = await self.index.search_text.remote(q.strip(), k)
        return self._response(q, ids, scores, k, t0)

    @api.post("/api/search/image", response_model=SearchResponse)
    async def search_image(self, file: Annotated[UploadFile, File(description="an image")],
                           k: Kind = 10) -> dict:
        t0 = time.perf_counter()
        rgb = await self._upload(file)
        vec = await self.image.encode.remote(rgb)
        return await self._results(file.filename or "upload", vec, k, t0)

    @api.post("/api/zero-shot", response_model=ZeroShotResponse)
    async def zero_shot(self, file: Annotated[UploadFile, File(description="an image")],
                        labels: Annotated[str, Form(description="candidate labels, comma-separated")]) -> dict:
        names = list(dict.fromkeys(s.strip() for s in labels.split(",") if s.strip()))
        if not 2 <= len(names) <= MAX_LABELS or max(map(len, names)) > 200:
            raise HTTPException(422, f"give 2 to {MAX_LABELS} comma-separated labels of at most 200 characters")
        rgb = await self._upload(file)
        img, *texts = await asyncio.gather(self.image.encode.remote(rgb),
                                          *(self.text.encode.remote(f"a {n}.") for n in names))
        sims = np.stack(texts) @ img
        probs = np.exp(100 * (sims - sims.max()))  # CLIP's softmax at its maximum temperature
        probs /= probs.sum()
        order = np.argsort(-sims)
        return {"labels": [{"label": names[i], "probability": float(probs[i]), "score": float(sims[i])}
                           for i in order]}

    @api.post("/api/index", response_model=IndexResponse, responses={429: {"description": "another folder is "
                                                                                        "being indexed"}})
    async def index_folder(self, body: IndexFolderRequest) -> dict:
        if self.indexing.locked():
            raise HTTPException(429, "another folder is being indexed; retry when it is done",
                                headers={"Retry-After": "5"})
        async with self.indexing:
            return await self._index_folder(body.folder)

    async def _index_folder(self, folder_arg: str) -> dict:
        t0 = time.perf_counter()
        try:  # walking and sorting a tree is file-system work: off the event loop, as every decode below
            folder = await asyncio.to_thread(resolve_folder, self.root, folder_arg)
            left_out: list[dict] = []
            paths = await asyncio.to_thread(images_under, self.root, folder, self.max_folder_images, left_out)
        except RequestError as err:
            raise HTTPException(err.status, err.message) from None
        if not paths:
            raise HTTPException(400, f"no images (png, jpg, jpeg, webp, bmp) under {folder_arg!r}")
        ids = [str(p.resolve()) for p in paths]  # the ids jobs/index.py gives files: absolute paths
        new = await self.index.missing.remote(ids)
        todo = [(p, i) for p, i, n in zip(paths, ids, new) if n]
        added, count, unreadable = 0, None, []
        for s in range(0, len(todo), FOLDER_BATCH):
            chunk = todo[s:s + FOLDER_BATCH]
            decoded = await asyncio.to_thread(self._decode_files, [p for p, _ in chunk])
            ok = [(i, img) for (p, i), img in zip(chunk, decoded) if not isinstance(img, str)]
            unreadable += [{"path": str(p.relative_to(folder)), "reason": img}
                           for (p, _), img in zip(chunk, decoded) if isinstance(img, str)]
            if ok:
                emb = await self.image.encode_many.remote(np.stack([img for _, img in ok]))
                out = await self.index.add.remote([i for i, _ in ok], emb, save=False)
                added, count = added + out["added"], out["count"]
        if added:
            count = (await self.index.save.remote())["count"]  # one rewrite of the index for the whole folder
        skipped = left_out + unreadable
        if len(unreadable) == len(paths):  # nothing in the folder could be read (and nothing was indexed before)
            raise HTTPException(400, {"message": f"none of the {len(paths)} image files under {folder_arg!r} could "
                                                 "be read", "skipped_files": skipped[:MAX_SKIPPED_LISTED]})
        if count is None:
            count = (await self.index.stats.remote())["count"]
        return {"folder": folder_arg, "images": len(paths), "added": added, "already_indexed": len(paths) - len(todo),
                "count": count, "skipped": len(skipped), "skipped_files": skipped[:MAX_SKIPPED_LISTED],
                "took_s": round(time.perf_counter() - t0, 3)}

    def _decode_files(self, paths: list[Path]) -> list[np.ndarray | str]:
        """Each file decoded (uint8 (S, S, 3)) or the reason it was skipped; runs in a worker thread."""
        out = []
        for p in paths:
            try:
                out.append(load_folder_image(self.root, p, self.image_size))
            except RequestError as err:
                out.append(err.message)
            except Exception as err:  # whatever else a decoder raises: this file is skipped, the folder goes on
                out.append(f"unreadable ({type(err).__name__})")
        return out

    @api.get("/api/image", responses={200: {"content": {"image/png": {}}}})
    async def image(self, id: Annotated[str, Query(max_length=4096, description="an indexed image's id")]):
        png = await self.index.thumbnail.remote(id)
        if png is None:
            raise HTTPException(404, "no indexed image with this id")
        return Response(png, media_type="image/png", headers={"Cache-Control": "max-age=3600"})

    # -- text to image (the final system) ---------------------------------------------------------------------
    @api.post("/api/generate", response_model=GenerateResponse)
    async def generate(self, body: GenerateRequest) -> dict:
        out = await self._generate(body)
        return {k: v for k, v in out.items() if not k.endswith("_arrays")} | {
            "images": [data_url(i) for i in out["refined_arrays"]], "raw": [data_url(i) for i in out["raw_arrays"]]}

    @api.get("/api/generate.png", responses={200: {"content": {"image/png": {}}}})
    async def generate_png(self, q: Annotated[str, Query(min_length=1, max_length=MAX_PROMPT_CHARS,
                                                         description="what to draw")],
                           n: Annotated[int, Query(ge=1, le=MAX_SERVED_IMAGES, description="images")] = 4,
                           seed: Annotated[int, Query(ge=0, le=MAX_SEED)] = 0,
                           temperature: Annotated[float, Query(ge=0.0, le=2.0)] = DEFAULT_TEMPERATURE,
                           guidance: Annotated[float | None, Query(ge=0.0, le=20.0)] = None,
                           stage: Annotated[Literal["both", "refined", "raw"], Query()] = "both"):
        """A PNG grid (row 1: raw decodes, row 2: refined, for stage=both; a DDPM pipeline: its one row);
        timings in the X-Timings-Ms header."""
        out = await self._generate(GenerateRequest(prompt=q, num_images=n, seed=seed, temperature=temperature,
                                                   guidance=guidance))
        rows = {"both": [out["raw_arrays"], out["refined_arrays"]], "raw": [out["raw_arrays"]],
                "refined": [out["refined_arrays"]]}[stage]
        rows = rows[-1:] if out["generator"] != "prior_vae" else rows
        return Response(png_bytes(grid(rows)), media_type="image/png",
                        headers={"X-Timings-Ms": json.dumps(out["timings_ms"]), "Cache-Control": "no-store"})

    async def _generate(self, req: GenerateRequest) -> dict:
        if self.generator is None:
            # 404, not 503: this deployment has no such resource, and waiting will not bring it
            raise HTTPException(404, "text-to-image is not deployed in this app: start it with "
                                     "`python jobs/serve_generate.py` (a pipeline of jobs/pipeline.py)")
        if not req.prompt.strip():
            raise HTTPException(422, "the prompt is empty: describe a digit, e.g. 'a seven' or 'the digit 3'")
        if "\ufffd" in req.prompt:
            raise HTTPException(422, "the prompt is not valid UTF-8 text")
        from genlab.pipeline.pipeline import PromptError

        try:
            return await run_pipeline(self.text, self.prior, self.generator, req, self.generator_kind)
        except PromptError as err:  # raised in a replica (Ray's error is also a PromptError): the request's fault
            raise HTTPException(422, str(getattr(err, "cause", None) or err)) from None

    # -- helpers --------------------------------------------------------------------------------------------
    async def _upload(self, file: UploadFile) -> np.ndarray:
        # the body as a whole was limited while it streamed in (genlab.serve.guard); the file itself here
        data = await file.read(self.max_upload_bytes + 1)
        try:  # a 40-MP decode takes a second: in a worker thread, so other requests go on meanwhile
            return await asyncio.to_thread(decode_upload, data, self.image_size, self.max_upload_bytes)
        except RequestError as err:
            raise HTTPException(err.status, err.message) from None

    async def _results(self, query: str, vec: np.ndarray, k: int, t0: float) -> Response:
        ids, scores = await self.index.search.remote(vec, k)
        return self._response(query, ids, scores, k, t0)

    @staticmethod
    def _response(query: str, ids: list[str], scores: list[float], k: int, t0: float) -> Response:
        """The SearchResponse as JSON, written directly: FastAPI would validate and re-serialise it through the
        response model on the ingress's CPU (the schema in the OpenAPI docs stays the same)."""
        from urllib.parse import quote

        body = {"query": query[:200], "k": k, "took_ms": round(1000 * (time.perf_counter() - t0), 2),
                "results": [{"id": i, "score": round(s, 4), "thumbnail": f"/api/image?id={quote(i, safe='')}"}
                            for i, s in zip(ids, scores)]}
        return Response(json.dumps(body, separators=(",", ":")), media_type="application/json")


def newest_clip_run(root: Path = REPO / "runs") -> str:
    """The most recently written CLIP run under runs/ that has a checkpoint (the default weights to serve)."""
    from genlab.core.checkpoint import newest_run

    run = newest_run(root, "clip-*")
    if run is None:
        raise FileNotFoundError(f"no trained CLIP under {root}: train one with `python jobs/clip.py` (about 35 min "
                                "here; --smoke-test for a minute) or pass --weights <run dir | checkpoint | tag>")
    return str(run)


def serving_weights(weights: str, model: str, pipeline: str = "") -> tuple[str, str]:
    """(model, weights file or tag) from what a user deploys with; checked before any replica starts. With a
    digit-configuration pipeline its CLIP serves both search and generation; the caption pipeline has no CLIP, so
    search takes `weights` as without one."""
    from genlab.multimodal.models import check_weights, resolve_weights
    from genlab.pipeline.directory import pipeline_clip

    clip = pipeline_clip(pipeline_path(pipeline)) if pipeline else None
    if clip is not None:
        clip_model, clip_weights = clip
        if weights and repo_path(weights).resolve() != Path(clip_weights).resolve():
            raise ValueError(f"weights {weights!r} and pipeline {pipeline!r}: the pipeline's CLIP serves search "
                             "too; leave weights empty (or pass the pipeline's CLIP weights)")
        check_weights(clip_model, clip_weights)
        return clip_model, clip_weights
    weights = weights or newest_clip_run()
    if repo_path(weights).exists():  # a path (relative ones mean the checkout), else an open_clip tag
        weights = str(repo_path(weights))
    model, weights = resolve_weights(weights, model)
    check_weights(model, weights)
    return model, weights


def pipeline_path(pipeline: str) -> Path:
    """A pipeline directory (or the run directory holding one), checked; relative paths mean the checkout."""
    from genlab.pipeline.directory import pipeline_dir

    return pipeline_dir(repo_path(pipeline))


def newest_pipeline(root: Path = REPO / "runs") -> str:
    """The newest runs/pipeline-* run's pipeline directory."""
    from genlab.pipeline.directory import newest_pipeline as newest

    return str(newest(root))


def build_app(args: dict) -> serve.Application:
    """The application from deploy-time arguments (a Serve config's `args`, or jobs/serve_search.py):
    model, weights (a weights file, checkpoint or CLIP run directory; default the newest runs/clip-* run),
    index_dir, allowed_root, batching, max_upload_bytes, max_folder_images, allowed_hosts (Host header names the
    app answers; default the loopback names, "*" = any); pipeline (a jobs/pipeline.py run or
    its pipeline directory, or "newest": adds text-to-image generation, whose CLIP then serves search too)."""
    pipeline = args.get("pipeline", "")
    pipeline = newest_pipeline() if pipeline == "newest" else pipeline
    model, weights = serving_weights(args.get("weights", ""), args.get("model", "genlab-clip-rn"), pipeline)
    batching = bool(args.get("batching", True))
    index_dir = args.get("index_dir", "runs/index")
    stages = {}
    if pipeline:
        from genlab.pipeline.directory import pipeline_kind

        directory = str(pipeline_path(pipeline))
        kind = pipeline_kind(directory)
        if kind == "caption_diffusion":  # the caption world's model reads the prompt itself
            stages = {"generator": CaptionGenerator.bind(directory), "generator_kind": kind}
        elif kind == "diffusion":  # a text-conditioned DDPM pipeline: no prior stage
            stages = {"generator": DiffusionGenerator.bind(directory, batching), "generator_kind": kind}
        else:
            stages = {"prior": PriorStage.bind(directory), "generator": ImageGenerator.bind(directory, batching)}
    return SearchApi.bind(
        TextEncoder.bind(model, weights, batching),
        ImageEncoder.bind(model, weights, batching),
        IndexStore.options(user_config={"index_dir": index_dir}).bind(model, weights, batching),
        model, args.get("allowed_root", "runs"),
        int(args.get("max_upload_bytes", MAX_UPLOAD_BYTES)), int(args.get("max_folder_images", 20_000)),
        allowed_hosts=args.get("allowed_hosts") or guard.LOOPBACK_HOSTS, **stages)
