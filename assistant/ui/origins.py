"""One origin: only the app's own origin, and those an operator lists, may use a signed-in session.

Chainlit allows every origin with credentials (`allow_origins = ["*"]` makes Starlette reflect any
`Origin`), its socket server checks none, and a JSON route that parses a `text/plain` body can be
posted to by any page's form without a CORS preflight. So a page on another origin could read a
user's export, chat over their socket and erase their account, and a form on any site could sign
the browser in to the attacker's account (login CSRF). This middleware replaces Chainlit's CORS:

- credentialed CORS answers only listed origins (the app's own needs none);
- a state-changing request (POST, PUT, PATCH, DELETE) whose `Origin` (or, without one, `Referer`)
  is another origin is refused with 403; requests that carry neither (command-line clients, which
  hold no browser cookie) pass;
- a state-changing request with a body must be JSON, except the HTML forms (sign-in, the console)
  and the socket's own transport;
- a cookie set over HTTPS is marked `Secure` (behind a TLS proxy that sends X-Forwarded-Proto from
  an address uvicorn trusts, see README "Security").

The socket checks the same rule when it connects (`socket_origin_allowed`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# HTML forms post here (Chainlit's login page, the script-free console); the origin rule still applies.
FORM_PATHS = ("/login", "/console/")
TRANSPORT_PATHS = ("/ws/",)  # socket.io's polling transport posts text/plain; it checks origins itself
# A file's bytes go up as they are. application/octet-stream is no type a cross-site form can send without
# a preflight, which is answered only for listed origins.
UPLOAD_PATHS = frozenset({"/api/me/imports"})
UPLOAD_TYPE = "application/octet-stream"


def origin_of(url: str | None) -> str | None:
    """`https://host:port` of a URL (a Referer), or None when it has none."""
    if not url:
        return None
    parts = urlsplit(url)
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}" if parts.scheme and parts.netloc else "null"


def own_origin(scheme: str, host: str | None) -> str | None:
    web_scheme = {"ws": "http", "wss": "https"}.get(scheme, scheme)
    return f"{web_scheme}://{host.lower()}" if host else None


def allowed(origin: str, own: str | None, listed: Iterable[str]) -> bool:
    return origin.lower() == own or origin.lower() in set(listed)


def refusal(method: str, path: str, headers: dict[str, str], own: str | None, listed: Iterable[str]) -> tuple[int, str] | None:
    """Why a request must be refused (status, sentence), or None. Pure, so each rule is testable."""
    if method not in UNSAFE:
        return None
    source = headers.get("origin") or origin_of(headers.get("referer"))
    if source is not None and not allowed(source, own, listed):
        return 403, f"This request came from another site ({source}); it may not act for you here."
    has_body = headers.get("content-length", "0") != "0" or "transfer-encoding" in headers
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    if path in UPLOAD_PATHS and method == "POST":
        if has_body and content_type != UPLOAD_TYPE:
            return 415, f"Send the file's bytes as they are (Content-Type: {UPLOAD_TYPE})."
        return None
    if has_body and content_type != "application/json" and not path.startswith(FORM_PATHS + TRANSPORT_PATHS):
        return 415, "Send this request as JSON (Content-Type: application/json)."
    return None


def socket_origin_allowed(listed: Callable[[], Iterable[str]]) -> Callable[[str | None, dict], bool]:
    """For engine.io's `cors_allowed_origins`: it asks only when the client sent an Origin."""

    def check(origin: str | None, environ: dict) -> bool:
        own = own_origin(environ.get("wsgi.url_scheme", "http"), environ.get("HTTP_HOST"))
        return origin is None or allowed(origin, own, listed())

    return check


class OriginPolicy:
    """A plain ASGI middleware; `listed` is read per request (the settings are built after import)."""

    def __init__(self, app, listed: Callable[[], Iterable[str]]) -> None:
        self.app, self.listed = app, listed

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        own = own_origin(scope.get("scheme", "http"), headers.get("host"))
        listed = tuple(self.listed())
        origin = headers.get("origin")
        cors = origin if origin and origin.lower() in listed else None
        if scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
            await _preflight(send, cors, headers)
            return
        refused = refusal(scope["method"], scope["path"], headers, own, listed)
        if refused is not None:
            await _json(send, *refused)
            return
        secure = scope.get("scheme") == "https"

        async def send_with_policy(message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": _response_headers(message.get("headers", []), cors, secure)}
            await send(message)

        await self.app(scope, receive, send_with_policy)


def _response_headers(headers: list, cors: str | None, secure: bool) -> list:
    out = [(k, v) for k, v in headers if not k.lower().startswith(b"access-control-")]
    if cors:
        out += [(b"access-control-allow-origin", cors.encode()), (b"access-control-allow-credentials", b"true")]
    out.append((b"vary", b"Origin"))
    if secure:
        out = [(k, v + b"; Secure") if k.lower() == b"set-cookie" and b"secure" not in v.lower() else (k, v)
               for k, v in out]
    return out


async def _preflight(send, cors: str | None, headers: dict[str, str]) -> None:
    if cors is None:
        await _json(send, 403, "This origin may not use this app.")
        return
    response = [(b"access-control-allow-origin", cors.encode()), (b"access-control-allow-credentials", b"true"),
                (b"access-control-allow-methods", b"GET, POST, PUT, PATCH, DELETE"),
                (b"access-control-allow-headers", headers.get("access-control-request-headers", "").encode()),
                (b"access-control-max-age", b"600"), (b"vary", b"Origin"), (b"content-length", b"0")]
    await send({"type": "http.response.start", "status": 204, "headers": response})
    await send({"type": "http.response.body", "body": b""})


async def _json(send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
