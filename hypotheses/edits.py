"""A user's own changes to their profile: edit, pin, reject, restore, add, undo.

The user has the last word: an edited or added entry becomes the user's own (`source = user`), which
merge never changes; a rejected one is never proposed again (merge drops look-alikes). Every change
bumps the entry's version and writes a history row (actor `user`) in the caller's commit. A change
made against an older version than the stored one is refused as stale, so two tabs editing the same
entry never lose a change silently. Entries describe the user; text that instructs the assistant is
refused here just as at inference time. Every lookup is scoped by the user's id: another user's
entry id is "not found", never "forbidden", so ids reveal nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable

from sqlmodel import Session, col, select

from hypotheses.parse import Facet, instruction_like, sensitive_category
from memory import profile
from memory.models import Actor, EntrySource, EntryStatus, Message, ProfileEntry, ProfileHistory, Thread, stored_id, utcnow

MAX_ENTRY_CHARS = 300
UNDOABLE = ("edit", "pin", "unpin", "reject", "restore", "add")


class EditError(Exception):
    """A change that cannot be made; the message is for the user, `status` for HTTP."""

    status = 400


class NotFound(EditError):
    status = 404


class Stale(EditError):
    status = 409


def clean_entry_text(text: object) -> str:
    """Pure: the text as stored, or EditError saying why it cannot be an entry."""
    if not isinstance(text, str):
        raise EditError("An entry needs some text.")
    cleaned = " ".join(text.split())
    if not cleaned:
        raise EditError("An entry cannot be empty.")
    if len(cleaned) > MAX_ENTRY_CHARS:
        raise EditError(f"An entry can be at most {MAX_ENTRY_CHARS} characters; this one has {len(cleaned):,}.")
    if why := instruction_like(text):  # as written: a line break can start a command
        raise EditError("Entries describe you; they cannot give the assistant instructions "
                        f"(this one {_why_words(why)}). Try wording it as a fact about you, "
                        "e.g. \"Prefers short answers.\"")
    return cleaned


def _why_words(why: str) -> str:
    return {"imperative": "reads like a command", "addresses the assistant": "speaks to the assistant",
            "talks about the assistant": "is about the assistant", "a role marker": "contains a role marker",
            "markup": "contains markup", "claims authority over the rules": "claims authority over the rules",
            "claims special permissions": "claims special permissions",
            "disguises its wording": "spells words out letter by letter"}.get(why, why)


def clean_facet(facet: object) -> str:
    values = [f.value for f in Facet]
    if facet not in values:
        raise EditError(f"The kind of entry must be one of: {', '.join(values)}.")
    return str(facet)


def own_entry(session: Session, *, user_id: int, entry_id: int) -> ProfileEntry:
    row = session.get(ProfileEntry, entry_id)
    if row is None or row.user_id != user_id:
        raise NotFound("That profile entry does not exist (it may have been removed).")
    return row


def _change(session: Session, row: ProfileEntry, *, version: int | None, kind: str, reason: str,
            mutate: Callable[[ProfileEntry], None]) -> ProfileEntry:
    if version is not None and version != row.version:
        raise Stale("This entry was changed elsewhere (another tab or the assistant) since you opened it. "
                    "Reload the profile to see the current text, then try again.")
    before = profile.snapshot(row)
    mutate(row)
    row.version += 1
    session.add(row)
    session.flush()
    profile.record_change(session, entry=row, actor=Actor.USER, kind=kind, before=before, reason=reason)
    return row


def edit_text(session: Session, *, user_id: int, entry_id: int, text: object, version: int | None,
              vector: bytes | None = None, vector_model: str | None = None) -> ProfileEntry:
    """New wording; the entry becomes the user's own, so inference never changes it again."""
    cleaned = clean_entry_text(text)
    row = own_entry(session, user_id=user_id, entry_id=entry_id)

    def mutate(entry: ProfileEntry) -> None:
        entry.text, entry.source, entry.sensitive = cleaned, EntrySource.USER, sensitive_category(cleaned) is not None
        entry.vector, entry.vector_model = vector, vector_model if vector is not None else None
        if entry.status is not EntryStatus.ACTIVE:
            entry.status, entry.valid_to = EntryStatus.ACTIVE, None

    return _change(session, row, version=version, kind="edit", reason="edited by the user", mutate=mutate)


def set_pinned(session: Session, *, user_id: int, entry_id: int, pinned: bool, version: int | None) -> ProfileEntry:
    row = own_entry(session, user_id=user_id, entry_id=entry_id)

    def mutate(entry: ProfileEntry) -> None:
        entry.pinned = pinned

    return _change(session, row, version=version, kind="pin" if pinned else "unpin",
                   reason="pinned by the user" if pinned else "unpinned by the user", mutate=mutate)


def set_status(session: Session, *, user_id: int, entry_id: int, status: object, version: int | None) -> ProfileEntry:
    """Reject (never proposed again; listed under "rejected") or restore to active."""
    if not isinstance(status, str) or status not in (EntryStatus.REJECTED, EntryStatus.ACTIVE):
        raise EditError("An entry can be rejected or restored (active).")
    wanted = EntryStatus(status)
    row = own_entry(session, user_id=user_id, entry_id=entry_id)

    def mutate(entry: ProfileEntry) -> None:
        entry.status = wanted
        entry.valid_to = utcnow() if wanted is EntryStatus.REJECTED else None
        entry.pinned = entry.pinned and wanted is EntryStatus.ACTIVE

    rejected = wanted is EntryStatus.REJECTED
    kind, reason = ("reject", "rejected by the user") if rejected else ("restore", "restored by the user")
    return _change(session, row, version=version, kind=kind, reason=reason, mutate=mutate)


def add_own(session: Session, *, user_id: int, facet: object, text: object, vector: bytes | None = None,
            vector_model: str | None = None) -> ProfileEntry:
    cleaned, kind = clean_entry_text(text), clean_facet(facet)
    row = ProfileEntry(user_id=user_id, facet=kind, text=cleaned, confidence=0.9, support=1, source=EntrySource.USER,
                       sensitive=sensitive_category(cleaned) is not None, vector=vector,
                       vector_model=vector_model if vector is not None else None)
    session.add(row)
    session.flush()
    profile.record_change(session, entry=row, actor=Actor.USER, kind="add", before=None, reason="written by the user")
    return row


def undo_last(session: Session, *, user_id: int) -> ProfileEntry | None:
    """Put back the entry as it was before the user's most recent change not yet undone; None if none."""
    done = session.exec(select(ProfileHistory.undoes).where(
        ProfileHistory.user_id == user_id, col(ProfileHistory.undoes).is_not(None))).all()
    last = session.exec(select(ProfileHistory).where(
        ProfileHistory.user_id == user_id, ProfileHistory.actor == Actor.USER,
        col(ProfileHistory.kind).in_(UNDOABLE), col(ProfileHistory.id).not_in(list(done) or [-1]))
        .order_by(col(ProfileHistory.id).desc())).first()
    if last is None:
        return None
    row = own_entry(session, user_id=user_id, entry_id=last.entry_id)
    before = profile.snapshot(row)
    if last.before_json is None:  # undoing an addition: the entry goes out of use, its history stays
        row.status, row.valid_to = EntryStatus.SUPERSEDED, utcnow()
    else:
        _restore_fields(row, json.loads(last.before_json))
    row.version += 1
    session.add(row)
    session.flush()
    session.add(ProfileHistory(user_id=user_id, entry_id=stored_id(row.id), actor=Actor.USER, kind="undo", before_json=before,
                               after_json=profile.snapshot(row), reason=f"undid: {last.kind}", undoes=last.id))
    return row


_RESTORED = ("text", "facet", "status", "source", "pinned", "sensitive", "confidence", "support")


_VOCABULARY = {"status": EntryStatus, "source": EntrySource}  # history keeps their values as text


def _restore_fields(row: ProfileEntry, before: dict) -> None:
    for name in _RESTORED:
        if name in before:
            value = before[name]
            setattr(row, name, _VOCABULARY[name](value) if name in _VOCABULARY else value)
    row.valid_to = utcnow() if row.status is not EntryStatus.ACTIVE else None


def evidence(session: Session, *, user_id: int, entry_id: int) -> list[dict]:
    """The user's own messages an entry rests on: quote, date, thread (oldest first)."""
    row = own_entry(session, user_id=user_id, entry_id=entry_id)
    ids = [int(i) for i in json.loads(row.evidence_json or "[]")]
    if not ids:
        return []
    rows = session.exec(select(Message, Thread.name).join(Thread, col(Thread.id) == Message.thread_id).where(
        col(Message.id).in_(ids), Message.user_id == user_id).order_by(col(Message.id))).all()
    # step_id is the message's id in the chat page (Chainlit's `step-<id>` element), to scroll to it.
    return [{"message_id": m.id, "step_id": m.step_id, "text": m.content, "at": m.created_at.isoformat(),
             "thread_id": m.thread_id, "thread_name": name} for m, name in rows]


def withdraw_evidence(session: Session, *, user_id: int, message_ids: Iterable[int], reason: str) -> tuple[int, int]:
    """Texts that are gone (an import undone) stop supporting what the profile says: an inferred entry
    that rested only on them goes (superseded, with its history), one that rested partly on them loses
    that support. What the person wrote or edited themselves stays: it rests on their word, not on
    evidence. Returns (entries gone, entries weakened)."""
    gone_ids = set(message_ids)
    retired = weakened = 0
    if not gone_ids:
        return retired, weakened
    rows = session.exec(select(ProfileEntry).where(
        ProfileEntry.user_id == user_id, col(ProfileEntry.source) == EntrySource.INFERRED,
        ProfileEntry.status == EntryStatus.ACTIVE)).all()
    for row in rows:
        evidence = [int(i) for i in json.loads(row.evidence_json or "[]")]
        lost = [i for i in evidence if i in gone_ids]
        if not lost:
            continue
        before = profile.snapshot(row)
        kept = [i for i in evidence if i not in gone_ids]
        row.evidence_json = json.dumps(kept)
        if kept:
            row.support = max(1, row.support - len(lost))
            kind, weakened = "weaken", weakened + 1
        else:
            row.status, row.valid_to, row.pinned = EntryStatus.SUPERSEDED, utcnow(), False
            kind, retired = "withdraw", retired + 1
        row.version += 1
        session.add(row)
        session.flush()
        profile.record_change(session, entry=row, actor=Actor.SYSTEM, kind=kind, before=before, reason=reason)
    return retired, weakened
