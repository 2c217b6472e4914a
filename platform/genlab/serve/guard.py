"""The layer around the search app's per-parameter checks, as one ASGI middleware (no Ray, no FastAPI):

- a Host allowlist (loopback names by default): a web page the user opens elsewhere cannot reach the app through
  DNS rebinding, since its requests carry that page's host name;
- a body limit enforced while the body streams in: a declared Content-Length over the limit is refused before a
  byte is read, and a chunked body is cut off at the limit, so a 1 GiB upload never sits in the replica's memory;
- response headers that keep the browser from sniffing types, framing the page or loading foreign scripts.

Serve freezes a copy of the FastAPI app (and its middleware options) when the ingress class is declared, so the
deployment's settings cannot travel as middleware options: `configure()` is called by the ingress replica in its
own process, and the middleware reads `SETTINGS` of this module at each request.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
MAX_JSON_BYTES = 64 * 1024
MULTIPART_OVERHEAD = 64 * 1024  # form boundaries and headers around an upload's bytes
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    # the page loads only its own script and style; generated images arrive as data: URLs
    (b"content-security-policy",
     b"default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"),
]


@dataclass
class GuardSettings:
    allowed_hosts: tuple[str, ...] = LOOPBACK_HOSTS
    """Host header names accepted (ports ignored); "*" accepts every name (behind a proxy that checks them)."""
    max_upload_bytes: int = 8 * 2**20
    """Largest image upload (multipart bodies get MULTIPART_OVERHEAD on top)."""
    max_json_bytes: int = MAX_JSON_BYTES
    """Largest body of any other request."""


SETTINGS = GuardSettings()


def configure(allowed_hosts: tuple[str, ...] | list[str] | str | None = None, max_upload_bytes: int | None = None,
              max_json_bytes: int | None = None) -> GuardSettings:
    """Set this process's guard (the ingress replica calls it from its constructor)."""
    global SETTINGS
    if isinstance(allowed_hosts, str):
        allowed_hosts = [h.strip() for h in allowed_hosts.split(",") if h.strip()]
    SETTINGS = GuardSettings(
        tuple("*" if h == "*" else host_name(h) for h in allowed_hosts) if allowed_hosts else SETTINGS.allowed_hosts,
        max_upload_bytes or SETTINGS.max_upload_bytes, max_json_bytes or SETTINGS.max_json_bytes)
    return SETTINGS


def host_name(host: str) -> str:
    """'Example.com:8000' -> 'example.com', '[::1]:8000' -> '::1'."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def body_limit(headers: dict[bytes, bytes], settings: GuardSettings) -> int:
    multipart = headers.get(b"content-type", b"").strip().lower().startswith(b"multipart/form-data")
    return settings.max_upload_bytes + MULTIPART_OVERHEAD if multipart else settings.max_json_bytes


class RequestGuard:
    """ASGI middleware: Host allowlist, streaming body limit, security headers (see the module docstring)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        settings = SETTINGS
        raw = scope.get("headers") or []
        headers = dict(raw)
        if sum(1 for k, _ in raw if k == b"host") > 1:  # which one would the app read? refuse instead
            return await _reply(send, 400, "more than one Host header")
        host = host_name(headers.get(b"host", b"").decode("latin-1"))
        if "*" not in settings.allowed_hosts and host not in settings.allowed_hosts:
            return await _reply(send, 421, f"host {host!r} is not served here (allowed: "
                                           f"{', '.join(settings.allowed_hosts)}; the app's allowed_hosts option)")
        limit = body_limit(headers, settings)
        length = headers.get(b"content-length", b"")
        if length.isdigit() and int(length) > limit:
            return await _reply(send, 413, f"request body of {int(length)} bytes is over the {limit}-byte limit")

        state = {"read": 0, "over": False, "started": False}

        async def limited_receive():
            if state["over"]:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                state["read"] += len(message.get("body", b""))
                if state["read"] > limit:
                    state["over"] = True  # the app sees the client go away and stops reading
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message):
            if state["over"]:
                return  # whatever the app answers to a cut-off body, the client gets the 413 below
            if message["type"] == "http.response.start":
                state["started"] = True
                message = {**message, "headers": list(message.get("headers", [])) + SECURITY_HEADERS}
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not state["over"]:
                raise
        if state["over"] and not state["started"]:
            await _reply(send, 413, f"request body over the {limit}-byte limit (cut off while it streamed)")


async def _reply(send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close"), *SECURITY_HEADERS]})
    await send({"type": "http.response.body", "body": body})
