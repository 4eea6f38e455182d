"""Pure: when a user's hypotheses are due for another inference job."""

from __future__ import annotations

EVERY = 6  # substantive user messages between jobs
FIRST_AFTER = 3  # the first profile appears after this many substantive texts


def due(new_substantive: int, *, has_run: bool, chat_ended: bool = False, every: int = EVERY,
        first_after: int = FIRST_AFTER) -> bool:
    """`new_substantive`: substantive user texts not yet seen by a successful job."""
    if new_substantive <= 0:
        return False
    if not has_run:
        return new_substantive >= first_after
    return new_substantive >= every or chat_ended
