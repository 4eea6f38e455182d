"""The chat's HTML page, served without a reference to any other host.

Chainlit's index.html (`chainlit/frontend/dist/index.html`, filled in by `server.get_html_template`
for every page path: /, /login, /thread/<id>, ...) links the KaTeX stylesheet from cdn.jsdelivr.net,
preconnects to Google Fonts and names Chainlit's banner and GitHub page in its `og:` tags. Each
page view would tell those hosts that someone opened the app (and from where), although the README
promises that nothing leaves the machine. `public/theme.json` (`custom_fonts: []`) empties the font
stylesheet, but no setting removes the rest, so `LocalPages` takes out every tag that points
elsewhere from each HTML response. Nothing is lost: LaTeX is off (`latex = false`), the UI's own
stylesheet and fonts are served from /assets, and `og:` previews are for public sites.

It works on the response rather than on Chainlit's route: in FastAPI 0.165 Chainlit's routes sit
inside one included router whose route cache is private, and the page function is Chainlit's.
It must run inside Chainlit's GZip middleware (it reads the page uncompressed), so it is appended
to the innermost end of the middleware list, not added with `add_middleware` (outermost).

The Content-Security-Policy (`headers.py`) refuses stylesheets and fonts from other hosts, so a tag
this misses after a Chainlit upgrade fails visibly in the browser instead of loading.
"""

from __future__ import annotations

import re

from starlette.middleware import Middleware

# An attribute whose value is an absolute URL: http://, https:// or protocol-relative //.
_ELSEWHERE = r"""\b(?:href|src|content)\s*=\s*["']?\s*(?:https?:)?//"""
_TAG = re.compile(rf"<(?:link|meta)\b[^>]*{_ELSEWHERE}[^>]*>\s*", re.I)
_SCRIPT = re.compile(rf"<script\b[^>]*{_ELSEWHERE}[^>]*>\s*</script>\s*", re.I)


def local_only(html: str) -> str:
    """The page without the <link>, <meta> and <script src> tags that point to another host."""
    return _SCRIPT.sub("", _TAG.sub("", html))


def _is_html(headers: list[tuple[bytes, bytes]]) -> bool:
    return any(name.lower() == b"content-type" and value.startswith(b"text/html") for name, value in headers)


class LocalPages:
    """A plain ASGI middleware: every text/html response passes through `local_only`."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] == "HEAD":
            await self.app(scope, receive, send)
            return
        start: dict | None = None
        chunks: list[bytes] = []

        async def send_local(message) -> None:
            nonlocal start
            if message["type"] == "http.response.start" and _is_html(message.get("headers", [])):
                start = message  # held back until the whole page is here: its length changes
                return
            if start is None or message["type"] != "http.response.body":
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body"):
                return
            page = local_only(b"".join(chunks).decode("utf-8", "surrogateescape")).encode("utf-8", "surrogateescape")
            headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
            await send({**start, "headers": [*headers, (b"content-length", str(len(page)).encode())]})
            await send({"type": "http.response.body", "body": page})

        await self.app(scope, receive, send_local)


def serve_local_pages(fastapi_app) -> None:
    """Run `LocalPages` innermost, where responses are not yet compressed (call before the app starts)."""
    fastapi_app.user_middleware.append(Middleware(LocalPages))
