"""How many socket events an account may send: a token bucket per key, pure and clock-driven."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

logger = logging.getLogger(__name__)

# A person sends a message, a stop or a panel request every few seconds at most; a page script that
# loops, or a client made to flood, sends hundreds a second. Each event costs a database read (the
# guard's account check, assistant/ui/guard.py), so an account may burst this many events, then this many a
# second.
EVENT_BURST = 30
EVENTS_PER_S = 5.0


class EventBudget:
    """A token bucket per key (an account, or a session without one): bursts pass, a flood is dropped
    (and logged once per flood)."""

    def __init__(self, burst: int = EVENT_BURST, per_s: float = EVENTS_PER_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._burst, self._per_s, self._clock = burst, per_s, clock
        self._buckets: dict[str, tuple[float, float]] = {}  # session id -> (tokens, when counted)
        self._flooding: set[str] = set()

    def allow(self, key: str) -> bool:
        now = self._clock()
        tokens, then = self._buckets.get(key, (float(self._burst), now))
        tokens = min(float(self._burst), tokens + (now - then) * self._per_s)
        allowed = tokens >= 1.0
        self._buckets[key] = (tokens - 1.0 if allowed else tokens, now)
        if allowed:
            self._flooding.discard(key)
        elif key not in self._flooding:
            self._flooding.add(key)
            logger.warning("dropping socket events of %s: more than %d at once", key, self._burst)
        return allowed

    def keep_only(self, live: Iterable[str]) -> None:
        """Forget every key but these (the accounts and sessions still live)."""
        kept = set(live)
        for key in [k for k in self._buckets if k not in kept]:
            self._buckets.pop(key, None)
        self._flooding &= kept
