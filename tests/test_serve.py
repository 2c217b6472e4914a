"""Chapter 5.7's search on Ray Serve: bad input refused before any model sees it, the app over a real index
(text, image and zero-shot search, indexing a folder, persistence, a killed replica, a config reload), the web page
in a real browser (Debian's chromium driven by playwright), and a bounded fuzz of the OpenAPI schema."""

import base64
import contextlib
import io
import json
import os
import shutil
import struct
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from genlab.serve.media import RequestError, decode_upload, images_under, resolve_folder
from tests.pipeline_helpers import tiny_ddpm_pipeline, tiny_pipeline
from tests.serve_helpers import MODEL, build_caption_index, free_port, train_tiny_clip

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(os.environ.get("GENLAB_TEST_ARTIFACTS", ROOT / "runs" / "test-artifacts"))


def png(rgb=(200, 30, 30), size=(32, 32)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, rgb).save(buf, format="PNG")
    return buf.getvalue()


def status_of(fn, *args) -> int:
    try:
        fn(*args)
    except RequestError as err:
        return err.status
    return 200


# -- without Ray ------------------------------------------------------------------------------------------------
def test_uploads_are_checked_before_decoding(tmp_path):
    good = png()
    assert decode_upload(good, 32).shape == (32, 32, 3)
    assert status_of(decode_upload, good[:60], 32) == 400  # truncated PNG
    assert status_of(decode_upload, b"", 32) == 400
    assert status_of(decode_upload, b"name,value\n1,2\n", 32) == 415  # not an image
    assert status_of(decode_upload, good, 32, len(good) - 1) == 413  # over the size limit
    # a 1x1 PNG whose header claims 60,000 x 60,000 pixels: refused, not allocated
    ihdr = b"IHDR" + struct.pack(">IIBBBBB", 60_000, 60_000, 8, 2, 0, 0, 0)
    bomb = good[:12] + ihdr + struct.pack(">I", zlib.crc32(ihdr)) + good[33:]
    assert status_of(decode_upload, bomb, 32) == 413


def test_folders_must_stay_under_the_allowed_root(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "photos" / "a").mkdir(parents=True)
    outside.mkdir()
    (outside / "secret.png").write_bytes(png())
    (root / "photos" / "a" / "x.png").write_bytes(png())
    (root / "photos" / "leak.png").symlink_to(outside / "secret.png")
    (root / "escape").symlink_to(outside)
    assert resolve_folder(root, "photos") == (root / "photos").resolve()
    for folder, status in [("../outside", 403), ("photos/../../outside", 403), (str(outside), 403), ("~", 403),
                           ("escape", 403), ("nope", 404), ("a\x00b", 400), ("", 400), ("x" * 5000, 400)]:
        assert status_of(resolve_folder, root, folder) == status, folder
    skipped = []
    found = images_under(root, resolve_folder(root, "photos"), 10, skipped)
    assert [p.name for p in found] == ["x.png"]  # the symlinked file pointing out is skipped, and named
    assert skipped == [{"path": "leak.png", "reason": "a link leading outside the allowed root"}]
    assert status_of(images_under, root, resolve_folder(root, "photos"), 0) == 413


def test_the_pipeline_to_serve_is_found_and_checked(tmp_path):
    from genlab.serve.search_app import newest_pipeline, pipeline_path

    with pytest.raises(FileNotFoundError, match="jobs/pipeline.py"):
        newest_pipeline(tmp_path)
    for name in ("pipeline__0__20261129-100000", "pipeline__0__20261129-110000"):
        (tmp_path / name / "pipeline").mkdir(parents=True)
        (tmp_path / name / "pipeline" / "pipeline.json").write_text("{}")
        time.sleep(0.01)
    assert newest_pipeline(tmp_path) == str(tmp_path / "pipeline__0__20261129-110000" / "pipeline")
    run = tmp_path / "pipeline__0__20261129-100000"
    assert pipeline_path(str(run)) == pipeline_path(str(run / "pipeline")) == run / "pipeline"
    with pytest.raises(FileNotFoundError, match="no pipeline.json"):
        pipeline_path(str(tmp_path))


# -- the app on Ray Serve ---------------------------------------------------------------------------------------
def test_the_load_generator_sends_each_query_once_and_warms_up_on_other_queries():
    import argparse

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from serve_load import phases, queries

    texts = phases(argparse.Namespace(warmup=50, single_requests=500, max_requests=30_000))
    sent = texts["warmup"] + texts["one"] + texts["many"]
    assert [len(texts[k]) for k in ("warmup", "one", "many")] == [50, 500, 30_000]
    assert len(set(sent)) == len(sent)  # no query twice, back to back or not
    assert queries(10, seed=1) == queries(10, seed=1) != queries(10, seed=2)
    with pytest.raises(ValueError, match="distinct queries"):
        queries(10**6)


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """The job's own start-up (`start_search`, embedded Ray) over 500 indexed caption images."""
    import ray
    from ray import serve

    from genlab.serve.run import ServeArgs, start_search
    from genlab.serve.search_app import configure_serve_env

    work = tmp_path_factory.mktemp("serve")
    weights = train_tiny_clip(work / "clip")
    _, attrs = build_caption_index(weights, work / "index")
    pipeline = tiny_pipeline(work / "pipeline", weights)  # untrained prior, VAE, refiner: the mechanics only
    root = work / "root"
    (root / "shapes").mkdir(parents=True)
    for i, rgb in enumerate([(220, 20, 20), (20, 200, 20), (20, 20, 220), (230, 230, 20)]):
        (root / "shapes" / f"{i}.png").write_bytes(png(rgb, (48, 40)))
    configure_serve_env()  # what the job sets before Ray starts (the app's processes read it)
    ray.init(address="local", num_cpus=2, object_store_memory=256 * 2**20, include_dashboard=False)
    port = free_port()
    url = start_search(ServeArgs(index_dir=str(work / "index"), allowed_root=str(root), port=port,
                                 pipeline=str(pipeline))).rstrip("/")
    base = {"pipeline": str(pipeline), "index_dir": str(work / "index"), "allowed_root": str(root)}
    yield {"url": url, "attrs": attrs, "root": root, "work": work, "weights": weights, "pipeline": pipeline,
           "base": base}
    serve.shutdown()
    ray.shutdown()


@contextlib.contextmanager
def deployed(app, **changes):
    """The app redeployed with some of its arguments changed (another index, another pipeline), and the base app
    back afterwards, whatever the test did: no test depends on the order the module's tests run in."""
    from ray import serve

    from genlab.serve.search_app import build_app

    serve.run(build_app(app["base"] | changes), name="search", route_prefix="/")
    try:
        yield
    finally:
        serve.run(build_app(app["base"]), name="search", route_prefix="/")


def call(url: str, data: bytes | None = None, headers: dict | None = None, timeout: float = 60):
    """(status, body) of one HTTP request; 4xx/5xx are answers here, not exceptions."""
    req = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def search(app, q: str, k: int = 10):
    status, body = call(f"{app['url']}/api/search?" + urllib.parse.urlencode({"q": q, "k": k}))
    return status, json.loads(body) if body.startswith(b"{") else body


def multipart(fields: dict) -> tuple[bytes, dict]:
    boundary = "genlab-test-boundary"
    parts = []
    for name, value in fields.items():
        if isinstance(value, tuple):
            filename, content = value
            head = f'Content-Disposition: form-data; name="{name}"; filename="{filename}"\r\n' \
                   "Content-Type: application/octet-stream\r\n\r\n"
        else:
            head, content = f'Content-Disposition: form-data; name="{name}"\r\n\r\n', value.encode()
        parts.append(f"--{boundary}\r\n".encode() + head.encode() + content + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def post_json(app, path: str, payload: dict):
    status, body = call(app["url"] + path, json.dumps(payload).encode(), {"Content-Type": "application/json"})
    return status, json.loads(body)


def colours(app, item_id: str) -> set[str]:
    return {o["colour"] for o in app["attrs"][item_id]["objects"]}


@pytest.mark.ray
def test_text_search_returns_ranked_hits_with_thumbnails(app):
    status, out = search(app, "a red seven", k=5)
    assert status == 200 and len(out["results"]) == 5
    scores = [h["score"] for h in out["results"]]
    assert scores == sorted(scores, reverse=True)
    assert "red" in colours(app, out["results"][0]["id"])  # the tiny model knows colours
    # queries with known answers: the top hit has the colour each names (the tiny model reads colours, not digits)
    queries = {"a red seven": "red", "a green bag": "green", "a blue sneaker": "blue", "a yellow two": "yellow",
               "a white four": "white", "a magenta shirt": "magenta"}
    right = [c in colours(app, search(app, q, k=1)[1]["results"][0]["id"]) for q, c in queries.items()]
    assert sum(right) >= len(queries) - 1, dict(zip(queries, right))
    status, thumb = call(app["url"] + out["results"][0]["thumbnail"])
    assert status == 200 and Image.open(io.BytesIO(thumb)).size == (32, 32)
    # the index replica embeds the query itself: the hits are those of the served weights' text tower + the index
    from genlab.multimodal.index import EmbeddingIndex
    from genlab.multimodal.models import create_clip, encode_texts

    model, _, tokenizer = create_clip(MODEL, str(app["weights"]))
    scores, ids = EmbeddingIndex.load(app["work"] / "index").search(encode_texts(model, tokenizer, ["a red seven"]), 5)
    assert [h["id"] for h in out["results"]] == ids[0]
    assert np.allclose(scores[0].numpy(), [h["score"] for h in out["results"]], atol=1e-4)


@pytest.mark.ray
def test_image_search_and_zero_shot(app):
    # the query image is the best "a blue bag" hit that is red, green or blue, so the zero-shot labels below name
    # its colour (the tiny model may rank a cyan bag first, and "cyan" is not among the labels)
    status, out = search(app, "a blue bag", k=10)
    named = [h for h in out["results"] if colours(app, h["id"]) & {"red", "green", "blue"}]
    assert named, [colours(app, h["id"]) for h in out["results"]]
    hit = named[0]
    _, thumb = call(app["url"] + hit["thumbnail"])
    body, headers = multipart({"file": ("query.png", thumb)})
    status, body_out = call(f"{app['url']}/api/search/image?k=3", body, headers)
    found = json.loads(body_out)["results"]
    assert status == 200 and found[0]["id"] == hit["id"] and found[0]["score"] > 0.99  # itself, first
    body, headers = multipart({"file": ("query.png", thumb), "labels": "red digit, green digit, blue digit"})
    status, body_out = call(f"{app['url']}/api/zero-shot", body, headers)
    labels = json.loads(body_out)["labels"]
    assert status == 200 and abs(sum(x["probability"] for x in labels) - 1) < 1e-4
    assert labels[0]["label"].split()[0] in colours(app, hit["id"])


@pytest.mark.ray
def test_bad_input_gets_its_4xx_and_the_server_stays_up(app):
    u = app["url"]
    good = png()
    huge = os.urandom(8 * 2**20 + 10)
    cases = {
        "empty query": (search(app, "   ")[0], 422),
        "10,000-character query": (search(app, "seven " * 1667)[0], 422),
        "k=0": (search(app, "a red seven", 0)[0], 422),
        "k=101": (search(app, "a red seven", 101)[0], 422),
        "k not a number": (call(f"{u}/api/search?q=a&k=ten")[0], 422),
        "oversize upload": (call(f"{u}/api/search/image", *multipart({"file": ("big.png", huge)}))[0], 413),
        "not an image": (call(f"{u}/api/search/image", *multipart({"file": ("x.png", b"%PDF-1.4 nope")}))[0], 415),
        "truncated PNG": (call(f"{u}/api/search/image", *multipart({"file": ("t.png", good[:60])}))[0], 400),
        "one label": (call(f"{u}/api/zero-shot", *multipart({"file": ("a.png", good), "labels": "cat"}))[0], 422),
        "folder ../": (post_json(app, "/api/index", {"folder": "../"})[0], 403),
        "absolute folder": (post_json(app, "/api/index", {"folder": "/etc"})[0], 403),
        "missing folder": (post_json(app, "/api/index", {"folder": "nope"})[0], 404),
        "unindexed image id": (call(f"{u}/api/image?id=%2Fetc%2Fpasswd")[0], 404),
        "static outside the page": (call(f"{u}/static/..%2Fsearch_app.py")[0], 404),
    }
    (app["root"] / "escape").symlink_to(app["work"] / "clip")
    cases["symlink out of the root"] = (post_json(app, "/api/index", {"folder": "escape"})[0], 403)
    wrong = {name: got for name, (got, want) in cases.items() if got != want}
    assert not wrong, wrong
    assert call(f"{u}/api/health")[0] == 200


def _decode_data_url(url: str) -> np.ndarray:
    assert url.startswith("data:image/png;base64,")
    return np.array(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))))


@pytest.mark.ray
def test_generate_serves_raw_and_refined_images_that_a_seed_reproduces(app):
    import torch

    from genlab.pipeline import TextToImagePipeline

    request = {"prompt": "a seven", "num_images": 3, "seed": 5}
    status, out = post_json(app, "/api/generate", request)
    assert status == 200 and len(out["images"]) == len(out["raw"]) == 3
    assert set(out["timings_ms"]) == {"text_encoder", "prior", "generator", "total"}
    refined = np.stack([_decode_data_url(u) for u in out["images"]])
    assert refined.shape == (3, 28, 28)
    assert post_json(app, "/api/generate", request)[1]["images"] == out["images"]
    assert post_json(app, "/api/generate", request | {"seed": 6})[1]["images"] != out["images"]
    # the served stages give what the pipeline object gives in-process
    ref = TextToImagePipeline.from_pretrained(app["pipeline"])("a seven", 3, seed=5)
    expected = (ref.images[:, 0] * 255).round().to(torch.uint8).numpy()
    assert np.abs(refined.astype(int) - expected).max() <= 1
    status, grid = call(f"{app['url']}/api/generate.png?q=a%20seven&n=4&seed=1")
    assert status == 200 and Image.open(io.BytesIO(grid)).size == (4 * 30 + 2, 2 * 30 + 2)
    status, grid = call(f"{app['url']}/api/generate.png?q=a%20seven&n=4&seed=1&stage=refined")
    assert status == 200 and Image.open(io.BytesIO(grid)).size == (4 * 30 + 2, 30 + 2)


@pytest.mark.ray
def test_bad_generate_requests_get_a_4xx_and_the_server_stays_up(app):
    u = app["url"]
    json_headers = {"Content-Type": "application/json"}
    cases = {
        "empty prompt": (post_json(app, "/api/generate", {"prompt": ""})[0], {422}),
        "blank prompt": (post_json(app, "/api/generate", {"prompt": "   "})[0], {422}),
        "10,000-character prompt": (post_json(app, "/api/generate", {"prompt": "seven " * 1667})[0], {422}),
        "num_images 0": (post_json(app, "/api/generate", {"prompt": "a 7", "num_images": 0})[0], {422}),
        "num_images 10,000": (post_json(app, "/api/generate", {"prompt": "a 7", "num_images": 10_000})[0], {422}),
        "negative seed": (post_json(app, "/api/generate", {"prompt": "a 7", "seed": -1})[0], {422}),
        "non-UTF-8 body": (call(f"{u}/api/generate", b'{"prompt": "\xff\xfe seven"}', json_headers)[0], {400, 422}),
        "not JSON": (call(f"{u}/api/generate", b"prompt=seven", json_headers)[0], {422}),
        "non-UTF-8 query": (call(f"{u}/api/generate.png?q=%FF%FEseven")[0], {422}),
        "n=1000 grid": (call(f"{u}/api/generate.png?q=seven&n=1000")[0], {422}),
        "unknown stage": (call(f"{u}/api/generate.png?q=seven&stage=latent")[0], {422}),
    }
    wrong = {name: got for name, (got, want) in cases.items() if got not in want}
    assert not wrong, wrong
    assert call(f"{u}/api/health")[0] == 200
    assert post_json(app, "/api/generate", {"prompt": "a seven", "num_images": 1})[0] == 200


@pytest.mark.ray
def test_the_page_in_a_real_browser(app):
    """Debian's chromium (no browser download) driven by playwright: type, see the grid, read the top hit."""
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.fail("Debian's chromium is missing: scripts/setup.sh installs it (apt-get install chromium)")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1100, "height": 900}, bypass_csp=True)  # eval-based waits
        page.goto(app["url"] + "/")
        page.wait_for_function("document.querySelector('#stats').textContent.includes('indexed')")
        page.select_option("#k", "5")
        page.fill("#query", "a red seven")
        page.press("#query", "Enter")
        page.wait_for_selector("#grid .hit img")
        # every thumbnail arrives and decodes (served by the app from the caption shards)
        page.wait_for_function("[...document.querySelectorAll('#grid img')].every(i => i.complete && i.naturalWidth)")
        hits = page.locator("#grid .hit")
        assert hits.count() == 5
        assert "red" in colours(app, hits.first.get_attribute("data-id"))
        page.screenshot(path=str(ARTIFACTS / "search_page.png"), full_page=True)
        # an image dropped on the page (the file input behind the drop zone) finds itself first
        query = app["work"] / "query.png"
        query.write_bytes(call(app["url"] + hits.first.locator("img").get_attribute("src"))[1])
        top = hits.first.get_attribute("data-id")
        page.set_input_files("#file", str(query))
        page.wait_for_function("document.querySelector('#summary').textContent.includes('query.png')")
        assert page.locator("#grid .hit").first.get_attribute("data-id") == top
        # a bad request shows its message, the page keeps working
        page.locator("#index-panel summary").click()
        page.fill("#folder", "../..")
        page.click("#index-form button")
        page.wait_for_selector("#error:not([hidden])")
        assert "403" in page.locator("#error").text_content()
        page.screenshot(path=str(ARTIFACTS / "search_page_error.png"), full_page=True)
        # the Generate tab: raw decodes and refined images side by side, a seed that reproduces them
        page.click("#tab-generate")
        page.fill("#prompt", "the digit 7, small, written in red")
        page.select_option("#num-images", "4")
        page.fill("#seed", "3")
        page.click("#generate-form button[type=submit]")
        page.wait_for_function("[...document.querySelectorAll('#generated .refined img')].length === 4 && "
                               "[...document.querySelectorAll('#generated img')].every(i => i.complete && "
                               "i.naturalWidth === 28)")
        assert page.locator("#generated .raw img").count() == 4
        assert "seed 3" in page.locator("#generate-summary").text_content()
        first = page.locator("#generated .refined img").first.get_attribute("src")
        page.click("#generate-form button[type=submit]")  # the same seed: the same images
        page.wait_for_function("document.querySelector('#generate-summary').textContent.includes('ms:')")
        assert page.locator("#generated .refined img").first.get_attribute("src") == first
        page.screenshot(path=str(ARTIFACTS / "generate_page.png"), full_page=True)
        page.fill("#prompt", " ")
        page.click("#generate-form button[type=submit]")
        page.wait_for_selector("#error:not([hidden])")
        assert "digit" in page.locator("#error").text_content()
        browser.close()


@pytest.mark.ray
def test_fuzzing_the_openapi_schema_finds_no_server_error(app, tmp_path):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from serve_load import fuzz

    out = fuzz(app["url"], max_examples=25, workdir=tmp_path)
    assert out["requests"] >= 150, out["output_tail"]
    assert out["server_errors"] == 0, out
    assert call(f"{app['url']}/api/health")[0] == 200


@pytest.mark.ray
def test_index_a_folder_survives_a_killed_replica_and_reloads_on_config(app):
    """On its own copy of the index (the other tests' index stays as built). (An app started afresh over an index
    on disk: the `serve deploy` step of tests/test_ray_integration.py.)"""
    own = app["work"] / "index-for-adding"
    shutil.rmtree(own, ignore_errors=True)
    shutil.copytree(app["work"] / "index", own)
    with deployed(app, index_dir=str(own)):
        _index_a_folder_then_kill_a_replica_then_reload(app)
    assert json.loads(call(f"{app['url']}/api/stats")[1])["count"] == 500  # the base app is back


def _index_a_folder_then_kill_a_replica_then_reload(app):
    import ray
    from ray import serve

    from genlab.serve.search_app import build_app

    status, out = post_json(app, "/api/index", {"folder": "shapes"})
    assert status == 200 and out["images"] == 4 and out["added"] == 4 and out["count"] == 504
    assert post_json(app, "/api/index", {"folder": "shapes"})[1]["added"] == 0  # only new images are added
    green = app["root"] / "shapes" / "1.png"
    upload = multipart({"file": ("g.png", green.read_bytes())})
    found = json.loads(call(f"{app['url']}/api/search/image?k=1", *upload)[1])
    assert found["results"][0]["id"] == str(green.resolve())  # indexed files are found by their absolute path
    assert call(app["url"] + found["results"][0]["thumbnail"])[0] == 200

    # a replica killed under load: Serve replaces it, the new one loads every acknowledged entry
    errors, stop = [], threading.Event()

    def traffic():
        while not stop.is_set():
            errors.append(search(app, "a red seven", 3)[0])

    t = threading.Thread(target=traffic)
    t.start()
    replica = next(a for a in ray.util.list_named_actors(all_namespaces=True) if "IndexStore" in a["name"])
    ray.kill(ray.get_actor(replica["name"], namespace=replica["namespace"]), no_restart=True)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and json.loads(call(f"{app['url']}/api/stats")[1]).get("count") != 504:
        time.sleep(0.5)
    time.sleep(1)
    stop.set()
    t.join()
    assert json.loads(call(f"{app['url']}/api/stats")[1])["count"] == 504
    assert errors.count(200) > 0 and set(errors) <= {200, 503}, sorted(set(errors))  # a retry hint, never a 500

    # a user_config change reloads the index in place: point it at another index directory
    other = app["work"] / "other-index"
    build_caption_index(app["weights"], other, split="test_templates")
    args = app["base"] | {"index_dir": str(other)}

    def stats() -> dict:
        return json.loads(call(f"{app['url']}/api/stats")[1])

    # (serve.run from Python gives each run a new code version, so replicas restart here; a `serve deploy` that
    # changes only the user_config reconfigures the running replica, as Ray documents; not measured here)
    serve.run(build_app(args), name="search", route_prefix="/")
    assert stats()["count"] == 500 and search(app, "a red seven", 1)[1]["results"][0]["id"].startswith(
        "captions_small:test_templates/")


@pytest.mark.ray
def test_a_text_conditioned_ddpm_pipeline_is_served_behind_the_same_endpoint(app):
    """The app redeployed with the DDPM generator (the base app back afterwards): the served images are the
    pipeline's own for that prompt and seed, batched or not; guidance steers them; the grid has one row; the page
    shows it."""
    ddpm_dir = tiny_ddpm_pipeline(app["work"] / "pipeline-ddpm", app["weights"])
    with deployed(app, pipeline=str(ddpm_dir)):
        _ddpm_generation_served(app, ddpm_dir)
    assert post_json(app, "/api/generate", {"prompt": "a seven", "num_images": 1})[1]["generator"] == "prior_vae"


def _ddpm_generation_served(app, ddpm_dir: Path):
    import torch
    from concurrent.futures import ThreadPoolExecutor

    from genlab.pipeline import TextToImagePipeline

    requests = [{"prompt": p, "num_images": n, "seed": s} for p, n, s in
                [("a seven", 3, 5), ("the digit 2", 1, 0), ("a blue four", 2, 9), ("a seven", 3, 6)]]
    with ThreadPoolExecutor(4) as pool:  # concurrent: batched together on the generator
        served = list(pool.map(lambda r: post_json(app, "/api/generate", r), requests))
    pipe = TextToImagePipeline.from_pretrained(ddpm_dir)
    for r, (status, out) in zip(requests, served):
        assert status == 200 and out["generator"] == "diffusion", out
        assert set(out["timings_ms"]) == {"text_encoder", "generator", "total"} and out["raw"] == out["images"]
        got = np.stack([_decode_data_url(u) for u in out["images"]])
        expected = (pipe(r["prompt"], r["num_images"], seed=r["seed"]).images[:, 0] * 255).round().to(torch.uint8)
        assert np.abs(got.astype(int) - expected.numpy()).max() <= 1, r
    assert served[0][1]["images"] != served[3][1]["images"]  # another seed
    unguided = post_json(app, "/api/generate", requests[0] | {"guidance": 1.0})[1]
    assert unguided["images"] != served[0][1]["images"]
    assert post_json(app, "/api/generate", requests[0] | {"guidance": -1})[0] == 422
    status, grid = call(f"{app['url']}/api/generate.png?q=a%20seven&n=4&seed=1")
    assert status == 200 and Image.open(io.BytesIO(grid)).size == (4 * 30 + 2, 30 + 2)  # one row: no raw stage
    summary, raw_images = _generate_in_the_page(app, "a seven", "generate_page_ddpm.png")
    assert raw_images == 0 and "DDPM" in summary


def _generate_in_the_page(app, prompt: str, screenshot: str, **fields: str) -> tuple[str, int]:
    """The Generate tab in Chromium: the prompt (and other fields by element id), four images; returns the
    summary line and how many raw-stage images the page shows."""
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(bypass_csp=True)  # playwright's own predicates use eval; the app's CSP forbids it
        page.goto(app["url"] + "/")
        page.click("#tab-generate")
        page.fill("#prompt", prompt)
        for element, value in fields.items():
            page.fill(f"#{element}", value)
        page.select_option("#num-images", "4")
        page.click("#generate-form button[type=submit]")
        page.wait_for_function("[...document.querySelectorAll('#generated .refined img')].length === 4")
        out = page.locator("#generate-summary").text_content(), page.locator("#generated .raw img").count()
        page.screenshot(path=str(ARTIFACTS / screenshot), full_page=True)
        browser.close()
    return out


@pytest.mark.ray
def test_the_guard_holds_over_http_a_foreign_host_an_endless_body_and_the_headers(app):
    import http.client

    u = app["url"]
    status, body = call(f"{u}/api/health", headers={"Host": "evil.example:8000"})  # DNS rebinding's Host
    assert status == 421 and b"allowed_hosts" in body
    req = urllib.request.Request(f"{u}/")
    with urllib.request.urlopen(req, timeout=30) as r:
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert "default-src 'self'" in r.headers["Content-Security-Policy"]
    assert call(f"{u}/docs")[0] == 404 and call(f"{u}/openapi.json")[0] == 200  # no CDN-loaded docs page
    # a chunked upload with no Content-Length, far over the limit: cut off with 413 while it streams
    host, port = urllib.parse.urlsplit(u).netloc.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    conn.putrequest("POST", "/api/search/image?k=1")
    conn.putheader("Content-Type", "multipart/form-data; boundary=x")
    conn.putheader("Transfer-Encoding", "chunked")
    conn.endheaders()
    head = (b'--x\r\nContent-Disposition: form-data; name="file"; filename="big.png"\r\n'
            b"Content-Type: image/png\r\n\r\n")  # a valid form, so the parser reads on until the limit cuts it
    conn.send(b"%x\r\n%s\r\n" % (len(head), head))
    chunk = b"x" * 2**20
    sent = 0
    try:
        for _ in range(40):  # up to 40 MiB, against the 8 MiB limit
            conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            sent += 1
        conn.send(b"0\r\n\r\n")
    except OSError:
        pass  # the server stopped reading and closed: what the limit is for
    try:  # the 413, or the connection closed under the client still sending: both mean it was cut off; a server
        # that read all 40 MiB would answer 415 (not an image) instead
        assert conn.getresponse().status == 413
    except ConnectionResetError:
        pass
    conn.close()
    # a declared length over the limit: refused from the headers alone, before a byte of the body is sent
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    conn.putrequest("POST", "/api/search/image?k=1")
    conn.putheader("Content-Type", "multipart/form-data; boundary=x")
    conn.putheader("Content-Length", str(9 * 2**20))
    conn.endheaders()
    assert conn.getresponse().status == 413
    conn.close()
    assert call(f"{u}/api/health")[0] == 200


@pytest.mark.ray
def test_a_hostile_folder_is_indexed_without_a_server_error_and_each_skip_is_named(app, tmp_path):
    """A decompression bomb, a corrupt file, a symlink out and a hidden file beside one good image; indexing it
    again decodes and embeds nothing (counted)."""
    import struct
    import zlib

    own = app["work"] / "index-hostile"
    shutil.rmtree(own, ignore_errors=True)
    shutil.copytree(app["work"] / "index", own)
    folder = app["root"] / "hostile"
    folder.mkdir(exist_ok=True)
    good = png((10, 220, 10), (40, 40))
    ihdr = b"IHDR" + struct.pack(">IIBBBBB", 60_000, 60_000, 8, 2, 0, 0, 0)
    (folder / "bomb.png").write_bytes(good[:12] + ihdr + struct.pack(">I", zlib.crc32(ihdr)) + good[33:])
    (folder / "corrupt.png").write_bytes(good[:60])
    (folder / "good.png").write_bytes(good)
    (folder / ".hidden.png").write_bytes(good)
    (tmp_path / "secret.png").write_bytes(good)
    (folder / "link.png").symlink_to(tmp_path / "secret.png")
    with deployed(app, index_dir=str(own)):
        status, out = post_json(app, "/api/index", {"folder": "hostile"})
        assert status == 200, out
        assert out["added"] == 1 and out["images"] == 3 and out["count"] == 501
        reasons = {s["path"]: s["reason"] for s in out["skipped_files"]}
        assert set(reasons) == {"bomb.png", "corrupt.png", ".hidden.png", "link.png"}, reasons
        assert "pixels" in reasons["bomb.png"] and "outside" in reasons["link.png"]
        again = post_json(app, "/api/index", {"folder": "hostile"})[1]  # the unreadable files are tried again
        assert again["added"] == 0 and again["already_indexed"] == 1 and again["count"] == 501
        stats = json.loads(call(f"{app['url']}/api/stats")[1])
        assert str(app["work"]) not in stats["index_dir"]  # no absolute server path of the index


@pytest.mark.ray
def test_a_caption_world_pipeline_is_served_in_colour_as_the_pipeline_draws_it(app):
    """The app redeployed with a CaptionDiffusionPipeline (search keeps its own CLIP): the served RGB images are
    the pipeline's own for that prompt and seed; guidance steers them; a prompt over the token limit is a 422;
    the page shows the one stage."""
    import torch

    from genlab.pipeline import CaptionDiffusionPipeline
    from tests.pipeline_helpers import tiny_caption_pipeline

    caption_dir = tiny_caption_pipeline(app["work"] / "pipeline-caption")
    pipe = CaptionDiffusionPipeline.from_pretrained(caption_dir)
    with deployed(app, pipeline=str(caption_dir), weights=str(app["weights"])):
        request = {"prompt": "a red seven in the top left", "num_images": 2, "seed": 3}
        status, out = post_json(app, "/api/generate", request)
        assert status == 200 and out["generator"] == "caption_diffusion", out
        got = np.stack([_decode_data_url(u) for u in out["images"]])
        expected = (pipe(request["prompt"], 2, seed=3).images * 255).round().to(torch.uint8).permute(0, 2, 3, 1)
        assert got.shape == (2, 32, 32, 3) and np.abs(got.astype(int) - expected.numpy()).max() <= 1
        assert post_json(app, "/api/generate", request | {"guidance": 0.0})[1]["images"] != out["images"]
        assert post_json(app, "/api/generate", request | {"prompt": "a red seven " * 20})[0] == 422
        status, grid = call(f"{app['url']}/api/generate.png?q=a%20blue%20bag&n=3&seed=1")
        assert status == 200 and Image.open(io.BytesIO(grid)).size == (3 * 34 + 2, 34 + 2)
        assert Image.open(io.BytesIO(grid)).mode == "RGB"
        assert search(app, "a red seven", 1)[0] == 200  # search still served, by the CLIP given
        summary, raw_images = _generate_in_the_page(app, "a blue bag to the right of a green two",
                                                    "generate_page_caption.png", guidance="2")
        assert raw_images == 0 and "caption DDPM" in summary
