"""Limits that hold across processes: each counted attempt is a row, counted over a sliding window.

In the database rather than in process memory, so that several app processes (or a restart) do not
multiply an attacker's budget. What is limited (an account name, a client address) is stored only as
a keyed hash.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session, col, delete, select

from memory.keys import keyed_hash
from memory.models import ThrottleEvent, aware, utcnow


@dataclass(frozen=True)
class Limit:
    bucket: str  # what is counted, e.g. "signin-account"
    most: int  # attempts allowed within the window
    window_s: int


def _key(session: Session, limit: Limit, value: str) -> str:
    return keyed_hash(session, f"throttle:{limit.bucket}:{value}")[:32]


def retry_after(session: Session, limit: Limit, value: str, *, now: datetime | None = None) -> int | None:
    """Seconds until `value` may try again, or None while it is under the limit."""
    now = now or utcnow()
    recent = session.exec(
        select(ThrottleEvent.at)
        .where(ThrottleEvent.bucket == limit.bucket, ThrottleEvent.key == _key(session, limit, value),
               col(ThrottleEvent.at) > now - timedelta(seconds=limit.window_s))
        .order_by(col(ThrottleEvent.at).desc())
        .limit(limit.most)
    ).all()
    if len(recent) < limit.most:
        return None
    # The oldest of the last `most` attempts leaves the window first; then one more is allowed.
    frees_at = aware(recent[-1]) + timedelta(seconds=limit.window_s)
    return max(1, math.ceil((frees_at - now).total_seconds()))


def count(session: Session, limit: Limit, value: str, *, now: datetime | None = None) -> None:
    """Count one attempt, and forget this bucket's attempts that have left the window."""
    now = now or utcnow()
    session.exec(delete(ThrottleEvent).where(col(ThrottleEvent.bucket) == limit.bucket,
                                             col(ThrottleEvent.at) <= now - timedelta(seconds=limit.window_s)))
    session.add(ThrottleEvent(bucket=limit.bucket, key=_key(session, limit, value), at=now))


def clear(session: Session, limit: Limit, value: str) -> None:
    """Forget `value`'s attempts (a successful sign-in ends the account's run of failures)."""
    session.exec(delete(ThrottleEvent).where(col(ThrottleEvent.bucket) == limit.bucket,
                                             col(ThrottleEvent.key) == _key(session, limit, value)))
