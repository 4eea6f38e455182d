"""What the app holds about a user beyond their messages: the style card's counts, the profile entries
and the history of every change to them.

Every function takes the session keyword-only; the caller commits.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from sqlalchemy import update
from sqlmodel import Session, col, select

from memory.models import Actor, EntryStatus, ProfileEntry, ProfileHistory, StyleCard, stored_id, utcnow


def load_style(session: Session, *, user_id: int, for_update: bool = False) -> dict:
    """The card's counts. `for_update`: this transaction will write them back, so the row is locked
    until it commits (PostgreSQL; SQLite's writer already holds the database), or two tabs of one user
    would each add their message to the same old counts and one would be lost."""
    if for_update and session.get_bind().dialect.name == "sqlite":
        # SQLite has no row locks: a write (that changes nothing) takes its writer lock before the read.
        session.exec(update(StyleCard).where(col(StyleCard.user_id) == user_id).values(user_id=StyleCard.user_id))
    row = session.get(StyleCard, user_id, with_for_update=for_update, populate_existing=for_update)
    return json.loads(row.stats_json) if row else {}


def save_style(session: Session, *, user_id: int, stats: dict) -> None:
    row = session.get(StyleCard, user_id) or StyleCard(user_id=user_id)
    row.stats_json, row.updated_at = json.dumps(stats, ensure_ascii=False), utcnow()
    session.add(row)


def entries(session: Session, *, user_id: int, statuses: Sequence[EntryStatus] | None = None) -> list[ProfileEntry]:
    query = select(ProfileEntry).where(ProfileEntry.user_id == user_id)
    if statuses:
        query = query.where(col(ProfileEntry.status).in_(list(statuses)))
    return list(session.exec(query.order_by(col(ProfileEntry.id))).all())


def history(session: Session, *, user_id: int) -> list[ProfileHistory]:
    query = select(ProfileHistory).where(ProfileHistory.user_id == user_id).order_by(col(ProfileHistory.id))
    return list(session.exec(query).all())


def replaced_wordings(session: Session, *, user_id: int, limit: int = 200) -> list[str]:
    """Texts the user's own edits replaced (edits they undid excepted), newest first: wording the user
    took back, which inference must never propose again."""
    undone = select(ProfileHistory.undoes).where(ProfileHistory.user_id == user_id,
                                                 col(ProfileHistory.undoes).is_not(None))
    rows = session.exec(select(ProfileHistory.before_json).where(
        ProfileHistory.user_id == user_id, ProfileHistory.actor == Actor.USER, ProfileHistory.kind == "edit",
        col(ProfileHistory.before_json).is_not(None), col(ProfileHistory.id).not_in(undone))
        .order_by(col(ProfileHistory.id).desc()).limit(limit)).all()
    texts = (json.loads(before).get("text") for before in rows if before is not None)  # the query skips NULLs
    return list(dict.fromkeys(text for text in texts if isinstance(text, str) and text.strip()))


def snapshot(entry: ProfileEntry) -> str:
    """An entry as history keeps it (no vector: history is for people)."""
    return json.dumps(entry.model_dump(exclude={"vector"}), default=str, ensure_ascii=False)


def record_change(
    session: Session, *, entry: ProfileEntry, actor: Actor, kind: str, before: str | None, reason: str
) -> None:
    session.add(ProfileHistory(
        user_id=entry.user_id, entry_id=stored_id(entry.id), actor=actor, kind=kind, before_json=before,
        after_json=snapshot(entry), reason=reason[:255],
    ))
