"""A user's data, to take away or to erase: "export my data" and "forget me".

The export is everything the app holds about the user, as JSON: account, threads with their
messages (and each reply's safety decision), the profile with every entry's full history, the
style card, the hypothesis jobs, the audit records about them without the operators' notes or
names, and the usage records of their model calls. Forgetting deletes all of it, vectors and index
files included, then scrubs what the deleted rows leave in the database's files (memory/erasure.py),
and leaves the audit and the usage records only what counts (decisions, rules, tokens, times), no
longer linked to anyone. Until the erased account's
sign-in tokens expire, the username is held back as a keyed hash beside the account's password
hash: the same person can sign up again at once (and starts empty), anybody else must wait, so a
replayed token can never reach a stranger's new account. The hold is deleted when it expires.
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta

from sqlalchemy import Engine
from sqlmodel import Session, col, delete, select

from assistant.safety.audit import anonymise_records, records_for
from assistant.usage import anonymise_usage, records_of
from hypotheses.style import StyleStats, describe
from memory import importing, profile, store
from memory.db import read, write
from memory.erasure import scrub
from memory.index import UserIndexes
from memory.keys import keyed_hash
from memory.models import (
    AuditRecord,
    Element,
    Embedding,
    Feedback,
    ForgottenName,
    HypothesisJob,
    Message,
    ProfileEntry,
    ProfileHistory,
    Step,
    StyleCard,
    Thread,
    UsageRecord,
    User,
    aware,
    table_of,
    utcnow,
)
from memory.names import normal_username
from memory.passwords import verify_password

logger = logging.getLogger(__name__)

EXPORT_FORMAT = "hyperalign-export/1"
# Chainlit's sign-in token lifetime (`user_session_timeout` in .chainlit/config.toml): the app passes
# Chainlit's configured value; commands, which do not load Chainlit, use this default.
TOKEN_LIFETIME_S = 15 * 24 * 3600


def export_data(session: Session, *, user_id: int) -> dict:
    user = store.get_user_by_id(session, user_id=user_id)
    if user is None:
        raise LookupError("no such account")
    threads = session.exec(select(Thread).where(Thread.user_id == user_id).order_by(col(Thread.created_at))).all()
    entries = profile.entries(session, user_id=user_id)
    return {
        "format": EXPORT_FORMAT,
        "exported_at": utcnow().isoformat(),
        "account": {"username": user.identifier, "role": str(user.role), "created_at": aware(user.created_at).isoformat()},
        "threads": [_thread(session, thread) for thread in threads],
        "profile": {
            "entries": [_entry(e) for e in entries],
            "history": [_history(h) for h in profile.history(session, user_id=user_id)],
        },
        "style_card": _style(profile.load_style(session, user_id=user_id)),
        "hypothesis_jobs": [_job(j) for j in session.exec(
            select(HypothesisJob).where(HypothesisJob.user_id == user_id).order_by(col(HypothesisJob.id))).all()],
        "safety_audit": [_audit(r) for r in records_for(session, user_id=user_id)],
        "model_usage": records_of(session, user_id=user_id),
        "imports": [_import(b) for b in importing.batches(session, user_id=user_id)],
    }


def _import(b) -> dict:
    return {"id": b.id, "source": b.source, "file_name": b.file_name, "status": str(b.status),
            "conversations": b.conversations, "messages": b.messages, "texts": b.texts,
            "skipped": json.loads(b.skipped_json or "{}"), "reason": b.reason,
            "created_at": aware(b.created_at).isoformat()}


def _thread(session: Session, thread: Thread) -> dict:
    return {
        "id": thread.id, "name": thread.name, "remember": thread.remember,
        "origin": thread.origin, "import": thread.import_batch_id,
        "created_at": aware(thread.created_at).isoformat(),
        "messages": [{
            "id": m.step_id, "author": str(m.author), "text": m.content, "status": str(m.status),
            "status_reason": m.status_reason, "model": m.model, "created_at": aware(m.created_at).isoformat(),
            "safety": json.loads(m.safety_json) if m.safety_json else None,
        } for m in store.thread_messages(session, thread_id=thread.id)],
    }


def _entry(e) -> dict:
    return {"id": e.id, "facet": e.facet, "text": e.text, "status": e.status, "source": e.source, "pinned": e.pinned,
            "sensitive": e.sensitive, "confidence": e.confidence, "support": e.support,
            "evidence_message_ids": json.loads(e.evidence_json or "[]"), "version": e.version,
            "valid_from": aware(e.valid_from).isoformat(),
            "valid_to": aware(e.valid_to).isoformat() if e.valid_to else None}


def _history(h) -> dict:
    return {"id": h.id, "entry_id": h.entry_id, "actor": h.actor, "kind": h.kind, "reason": h.reason,
            "at": aware(h.at).isoformat(), "before": json.loads(h.before_json) if h.before_json else None,
            "after": json.loads(h.after_json) if h.after_json else None, "undoes": h.undoes}


def _style(stats: dict) -> dict:
    return {"statements": describe(StyleStats.from_json(stats)), "counts": stats}


def _job(j) -> dict:
    return {"id": j.id, "status": j.status, "trigger": j.trigger, "samples": j.samples, "changes": j.changes,
            "model": j.model, "tokens_in": j.tokens_in, "tokens_out": j.tokens_out,
            "created_at": aware(j.created_at).isoformat()}


def _audit(r) -> dict:
    # Operators' notes and names are theirs, not the user's; the decision and its reasons are the user's.
    return {"at": aware(r.created_at).isoformat(), "thread_id": r.thread_id, "message_id": r.message_id,
            "decision": r.decision, "rules": json.loads(r.rule_ids_json), "rationale": r.rationale,
            "spec_version": r.spec_version, "model": r.model, "reviewed": r.label is not None}


def name_hash(session: Session, username: str) -> str:
    return keyed_hash(session, "username:" + normal_username(username))


def name_held_back(session: Session, username: str, password: str) -> bool:
    """True while an erased account's name is held for its owner and `password` is not theirs."""
    row = session.get(ForgottenName, name_hash(session, username))
    return row is not None and aware(row.until) > utcnow() and not verify_password(password, row.password_hash)


def release_hold(session: Session, username: str) -> None:
    """The name is taken again (by its owner, or after the hold): the hold and its hash have done their job."""
    session.exec(delete(ForgottenName).where(col(ForgottenName.name_hash) == name_hash(session, username)))


def drop_erased_indexes(engine: Engine, indexes: UserIndexes) -> list[int]:
    """Drop the in-memory indexes of accounts erased by another process (a `hyperalign forget`, or another
    app replica): their vectors must not stay in this process's memory until the cache evicts them."""
    loaded = set(indexes.loaded())
    if not loaded:
        return []
    alive = set(read(engine, lambda s: s.exec(select(User.id).where(col(User.id).in_(loaded))).all()))
    gone = sorted(loaded - alive)
    for user_id in gone:
        indexes.drop(user_id)
    return gone


def purge_expired_holds(session: Session) -> int:
    """Delete the holds whose time is up, with the erased account's password hash they keep."""
    return session.exec(delete(ForgottenName).where(col(ForgottenName.until) <= utcnow())).rowcount


# Every table a user's erasure deletes from or rewrites (the audit keeps anonymised rows): each
# holds the user's words or traces of them in the rows it no longer shows.
ERASED_TABLES = tuple(table_of(model).name for model in (
    Message, Thread, Step, Element, Feedback, Embedding, StyleCard, ProfileEntry, ProfileHistory, HypothesisJob,
    AuditRecord, UsageRecord, User))


def forget(engine: Engine, indexes: UserIndexes | None, *, user_id: int, token_lifetime_s: int) -> dict:
    """Erase the account and everything about it in one commit; then its index files and what the deleted
    rows left on disk. Counts what went."""

    def erase(session: Session) -> dict:
        user = store.get_user_by_id(session, user_id=user_id)
        if user is None:
            raise LookupError("no such account")
        counts = {"threads": len(session.exec(select(Thread.id).where(Thread.user_id == user_id)).all()),
                  "profile_entries": len(profile.entries(session, user_id=user_id)),
                  "audit_records_anonymised": anonymise_records(session, user_id=user_id),
                  "usage_records_anonymised": anonymise_usage(session, user_id=user_id)}
        hashed = name_hash(session, user.identifier)
        session.exec(delete(ForgottenName).where(col(ForgottenName.name_hash) == hashed))
        session.add(ForgottenName(name_hash=hashed, password_hash=user.password_hash,
                                  until=utcnow() + timedelta(seconds=token_lifetime_s)))
        store.delete_user(session, user=user)
        return counts

    counts = write(engine, erase)
    if indexes is not None:
        indexes.drop(user_id)
    # Deleted rows leave their bytes on disk until scrubbed; "disk_scrubbed" False says some remain
    # for now (a busy reader or lock), the rows themselves are gone either way.
    counts["disk_scrubbed"] = scrub(engine, ERASED_TABLES)
    logger.info("forgot user %s: threads=%d entries=%d audit_anonymised=%d scrubbed=%s", user_id, counts["threads"],
                counts["profile_entries"], counts["audit_records_anonymised"], counts["disk_scrubbed"])
    return counts
