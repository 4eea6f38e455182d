"""What the app holds about a user beyond their messages. For now: the counts behind the style card.

Every function takes the session keyword-only; the caller commits.
"""

from __future__ import annotations

import json

from sqlmodel import Session

from memory.models import StyleCard, utcnow


def load_style(session: Session, *, user_id: int) -> dict:
    row = session.get(StyleCard, user_id)
    return json.loads(row.stats_json) if row else {}


def save_style(session: Session, *, user_id: int, stats: dict) -> None:
    row = session.get(StyleCard, user_id) or StyleCard(user_id=user_id)
    row.stats_json, row.updated_at = json.dumps(stats, ensure_ascii=False), utcnow()
    session.add(row)
