"""Waiting for something to happen in another task, thread or process: poll for it with a deadline,
instead of sleeping for a guessed time (too short under load, too long everywhere else)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(probe: Callable[[], T], timeout: float = 10.0, interval: float = 0.05) -> T:
    """The probe's first truthy answer; the test fails when there is none within `timeout` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not (found := probe()):
        assert asyncio.get_running_loop().time() < deadline, "never happened"
        await asyncio.sleep(interval)
    return found
