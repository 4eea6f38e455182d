"""Pure: when a user's hypotheses are due for another inference job."""

from __future__ import annotations

FIRST_AFTER = 3  # the first profile appears after this many substantive texts


def due(new_substantive: int, *, has_run: bool, every: int, chat_ended: bool = False,
        first_after: int = FIRST_AFTER) -> bool:
    """`new_substantive`: substantive user texts not yet seen by a successful job; `every`: how many a
    later job waits for (the `infer_every` setting)."""
    if new_substantive <= 0:
        return False
    if not has_run:
        return new_substantive >= first_after
    return new_substantive >= every or chat_ended
