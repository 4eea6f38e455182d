"""Streamed text sent to the browser in small bursts rather than token by token.

Each socket emit costs the web process about as much CPU as a token's worth of everything else in a
turn (JSON, a websocket frame, Chainlit's bookkeeping), and a fast model sends 50-200 tokens a second.
Nobody reads faster than 20 updates a second, so the text a model sends within `interval` goes out
as one emit: the first piece at once, the rest at most `interval` later, even when the model stalls
right after it. The text and its order are unchanged."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

INTERVAL_S = 0.05


class Coalesced:
    def __init__(self, send: Callable[[str], Awaitable[None]], interval: float = INTERVAL_S) -> None:
        self._send, self._interval = send, interval
        self._pending: list[str] = []
        self._last_sent = float("-inf")
        self._timer: asyncio.TimerHandle | None = None
        self._flushing: asyncio.Task | None = None
        self._lock = asyncio.Lock()  # one emit at a time, so bursts arrive in order
        self.emits = 0

    async def __call__(self, text: str) -> None:
        if not text:
            return
        self._pending.append(text)
        loop = asyncio.get_running_loop()
        wait = self._last_sent + self._interval - loop.time()
        if wait <= 0:
            await self.flush()
        elif self._timer is None:  # held: it goes out when the interval is over, whatever the model does
            self._timer = loop.call_later(wait, self._flush_later)

    def _flush_later(self) -> None:
        self._timer = None
        self._flushing = asyncio.ensure_future(self.flush())

    async def flush(self) -> None:
        """Send what is held now (the end of a stream calls it, so nothing is left behind)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        async with self._lock:
            if not self._pending:
                return
            text, self._pending = "".join(self._pending), []
            self._last_sent = asyncio.get_running_loop().time()
            self.emits += 1
            await self._send(text)

    async def close(self) -> None:
        """Flush, and wait for a flush the timer started."""
        await self.flush()
        if self._flushing is not None:
            await self._flushing
