"""The layer around the search app's parameter checks, without Ray: the ASGI guard (Host allowlist, a body limit
enforced while the body streams, security headers) driven message by message, and the folder indexer's file
checks (hidden files, formats, decompression bombs, a file swapped for a symlink after listing)."""

import asyncio
import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from genlab.serve import guard
from genlab.serve.media import RequestError, images_under, load_folder_image, resolve_folder


def png(size=(32, 32), rgb=(10, 200, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, rgb).save(buf, format="PNG")
    return buf.getvalue()


async def _reading_app(scope, receive, send):
    """Reads the whole body (as FastAPI does before a handler runs), answers its length."""
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise OSError("client went away")  # what Starlette raises (ClientDisconnect) when the body stops
        size += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": str(size).encode()})


def run(headers: dict, chunks: list[bytes]) -> tuple[int, dict, bytes, int]:
    """(status, response headers, body, chunks the app pulled) for a request whose body arrives in `chunks`."""
    scope = {"type": "http", "method": "POST", "path": "/api/x",
             "headers": [(k.encode(), v.encode()) for k, v in headers.items()]}
    pulled, sent = [0], []

    async def receive():
        i = pulled[0]
        pulled[0] += 1
        if i >= len(chunks):
            return {"type": "http.disconnect"}
        return {"type": "http.request", "body": chunks[i], "more_body": i < len(chunks) - 1}

    async def send(message):
        sent.append(message)

    asyncio.run(guard.RequestGuard(_reading_app)(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], dict(start["headers"]), body, pulled[0]


@pytest.fixture(autouse=True)
def settings():
    old = guard.SETTINGS
    guard.configure(["127.0.0.1", "localhost", "::1"], max_upload_bytes=1000, max_json_bytes=100)
    yield
    guard.SETTINGS = old


def test_a_foreign_host_is_refused_and_loopback_names_pass():
    for host in ["127.0.0.1:8000", "localhost", "[::1]:8000", "LOCALHOST:80"]:
        assert run({"host": host}, [b"{}"])[0] == 200, host
    for host in ["evil.example", "evil.example:8000", "127.0.0.1.evil.example", ""]:
        status, _, body, pulled = run({"host": host}, [b"{}"])
        assert status == 421 and pulled == 0, host  # refused before the body is read
        assert b"allowed_hosts" in body
    guard.configure(["*"])
    assert run({"host": "anything.example"}, [b"{}"])[0] == 200


def test_a_declared_length_over_the_limit_is_refused_before_reading():
    status, _, body, pulled = run({"host": "localhost", "content-length": "101"}, [b"x" * 101])
    assert status == 413 and pulled == 0
    upload = {"host": "localhost", "content-type": "multipart/form-data; boundary=b"}
    assert run(upload | {"content-length": str(1000 + guard.MULTIPART_OVERHEAD)}, [b"x"])[0] == 200
    assert run(upload | {"content-length": str(1001 + guard.MULTIPART_OVERHEAD)}, [b"x"])[0] == 413


def test_a_streamed_body_is_cut_off_at_the_limit_without_reading_the_rest():
    chunks = [b"x" * 40] * 1000  # 40 kB without a Content-Length (chunked), against a 100-byte limit
    status, headers, body, pulled = run({"host": "localhost"}, chunks)
    assert status == 413 and b"limit" in body
    assert pulled <= 4  # the guard stops after the chunk that crossed the limit
    assert run({"host": "localhost"}, [b"x" * 50, b"x" * 50])[:3:2] == (200, b"100")  # at the limit: passes


def test_every_response_carries_the_security_headers():
    for status, headers, _, _ in [run({"host": "localhost"}, [b"{}"]), run({"host": "evil.example"}, [b""])]:
        assert headers[b"x-content-type-options"] == b"nosniff", status
        assert b"default-src 'self'" in headers[b"content-security-policy"]
        assert headers[b"x-frame-options"] == b"DENY"


def test_host_names_are_read_without_their_port():
    assert guard.host_name("Example.COM:8000") == "example.com"
    assert guard.host_name("[::1]:8000") == "::1"
    assert guard.host_name("::1") == "::1"


def test_the_indexer_skips_hidden_files_and_reads_only_its_formats(tmp_path):
    root = tmp_path / "root"
    (root / "photos" / ".cache").mkdir(parents=True)
    (root / "photos" / "a.png").write_bytes(png())
    (root / "photos" / ".hidden.png").write_bytes(png())
    (root / "photos" / ".cache" / "b.png").write_bytes(png())
    folder = resolve_folder(root, "photos")
    assert [p.name for p in images_under(root, folder, 10)] == ["a.png"]
    assert load_folder_image(root, root / "photos" / "a.png", 16).shape == (16, 16, 3)
    # a file named .png that holds another format Pillow could read (here: an ICO) is not opened
    ico = io.BytesIO()
    Image.new("RGB", (16, 16)).save(ico, format="ICO")
    (root / "photos" / "icon.png").write_bytes(ico.getvalue())
    with pytest.raises(RequestError) as err:
        load_folder_image(root, root / "photos" / "icon.png", 16)
    assert err.value.status == 415


def test_the_indexer_refuses_a_bomb_a_corrupt_file_and_a_symlink_swapped_in(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    good = png()
    ihdr = b"IHDR" + struct.pack(">IIBBBBB", 60_000, 60_000, 8, 2, 0, 0, 0)
    (root / "bomb.png").write_bytes(good[:12] + ihdr + struct.pack(">I", zlib.crc32(ihdr)) + good[33:])
    (root / "corrupt.png").write_bytes(good[:60])
    (outside / "secret.png").write_bytes(png(rgb=(255, 0, 0)))
    (root / "swapped.png").symlink_to(outside / "secret.png")  # listed as a file, then replaced by a link
    for name, status in [("bomb.png", 413), ("corrupt.png", 400)]:
        with pytest.raises(RequestError) as err:
            load_folder_image(root, root / name, 16)
        assert err.value.status == status, name
    with pytest.raises((RequestError, OSError)):  # O_NOFOLLOW: the link itself is not followed
        load_folder_image(root, root / "swapped.png", 16)
    # a big JPEG is decoded at a reduced scale (draft mode), and still comes out at the tower's size
    big = io.BytesIO()
    Image.fromarray(np.full((2000, 3000, 3), 120, np.uint8)).save(big, format="JPEG")
    (root / "big.jpg").write_bytes(big.getvalue())
    assert load_folder_image(root, root / "big.jpg", 32).shape == (32, 32, 3)


def test_duplicate_hosts_are_refused_and_configured_ports_are_ignored():
    scope_headers = {"host": "localhost"}
    status, _, _, _ = run(scope_headers, [b"{}"])
    assert status == 200
    guard.configure(["my.host:8000"])
    assert guard.SETTINGS.allowed_hosts == ("my.host",) and run({"host": "my.host:9000"}, [b"{}"])[0] == 200


def test_two_host_headers_get_a_400():
    scope = {"type": "http", "method": "GET", "path": "/", "headers": [(b"host", b"localhost"), (b"host", b"evil")]}
    sent = []

    async def receive():
        return {"type": "http.request", "body": b""}

    async def send(m):
        sent.append(m)

    asyncio.run(guard.RequestGuard(_reading_app)(scope, receive, send))
    assert sent[0]["status"] == 400
