"""Request bodies are bounded before anyone reads them: one limit for every HTTP route, ours and
Chainlit's (login, feedback, the thread list, the console's labels, the profile API).

A route that reads its body first and measures it after (`await request.body()`, FastAPI parsing a
form or a JSON model) holds a 1 GB body in memory before it can refuse it. So this ASGI middleware
sits in front of them all: a declared Content-Length above the limit is answered 413 before a byte
of the body is read, and a body without one (chunked) is counted as it arrives and cut off with 413
as soon as it passes the limit. Chainlit's routes then read `request.body()` as usual; ours read
through `inputs.read_body`, which checks the same limit again, so they stay bounded without this
middleware too (an app assembled without it, a test's ASGI client).

The socket path is left alone: Socket.IO bounds its own messages (engine.io's max_http_buffer_size),
and its long-polling transport carries whole chat messages, which may be longer than a form.
"""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import HTTPException
from fastapi.responses import JSONResponse

# Far above any body of ours (an entry is at most 300 characters, a label note 2,000) and above
# Chainlit's own JSON requests; far below what would hurt the server.
MAX_BODY = 64 * 1024


def too_large(limit: int) -> str:
    return f"That request is too large (the limit is {limit // 1024} KB)."


def declared_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    """The Content-Length the client declared, if any (the server has already refused a malformed one)."""
    for name, value in headers:
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class BoundedBodies:
    """A plain ASGI middleware: bodies at most `limit` bytes, or `larger[path]` for the paths listed."""

    def __init__(self, app, *, limit: int = MAX_BODY, larger: Mapping[str, int] | None = None,
                 exempt: tuple[str, ...] = (), own: tuple[str, ...] = ()) -> None:
        """`exempt`: path prefixes left alone (the socket's); `own`: exact paths whose route bounds its
        body itself, by a limit only known once the settings are (the import upload)."""
        self.app, self.limit, self.larger, self.exempt, self.own = app, limit, dict(larger or {}), exempt, own

    async def __call__(self, scope, receive, send) -> None:
        if (scope["type"] != "http" or (self.exempt and scope["path"].startswith(self.exempt))
                or scope["path"] in self.own):
            await self.app(scope, receive, send)
            return
        limit = self.larger.get(scope["path"], self.limit)
        declared = declared_length(scope["headers"])
        if declared is not None and declared > limit:
            await JSONResponse({"detail": too_large(limit)}, status_code=413)(scope, receive, send)
            return
        received = 0

        async def bounded_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # Raised inside whatever is reading the body; FastAPI passes an HTTPException
                    # through its own body parsing, and the app answers it as a 413.
                    raise HTTPException(status_code=413, detail=too_large(limit))
            return message

        await self.app(scope, bounded_receive, send)
