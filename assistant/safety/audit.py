"""The audit trail: one record per refusal, safe completion and failed deliberation.

Records are written in the same commit as the reply they explain, so there is never a reply without
its record or a record without its reply. Users appear only under a pseudonym, an HMAC of their id
with a key generated once in the database (table `app_key`): stable across processes and restarts,
meaningless without the key. Compliant turns are not recorded (the message table holds them).
"""

from __future__ import annotations

import json
from typing import TypeGuard

from sqlmodel import Session, col, select

from assistant.safety.deliberate import Deliberation
from memory.keys import keyed_hash
from memory.models import AuditDecision, AuditRecord, Label

AUDITED = frozenset(AuditDecision)
LABELS = tuple(Label)


def pseudonym(session: Session, *, user_id: int) -> str:
    return "u-" + keyed_hash(session, str(user_id))[:16]


def needs_record(deliberation: Deliberation | None) -> TypeGuard[Deliberation]:
    return deliberation is not None and deliberation.decision in AUDITED


def add_record(session: Session, *, deliberation: Deliberation, user_id: int, thread_id: str, message_id: str,
               reply_id: str) -> AuditRecord:
    """Stage the record in the caller's session; the caller commits it with the reply."""
    verdict = deliberation.verdict
    record = AuditRecord(
        pseudonym=pseudonym(session, user_id=user_id), thread_id=thread_id, message_id=message_id,
        reply_id=reply_id, decision=AuditDecision(deliberation.decision),
        rule_ids_json=json.dumps(list(verdict.rules) if verdict else []),
        rationale=verdict.rationale if verdict else "", failure=deliberation.failure,
        spec_version=deliberation.spec_version, model=deliberation.model, latency_ms=round(deliberation.ms, 1),
        routed_json=json.dumps(list(deliberation.routed)),
    )
    session.add(record)
    return record


FORGOTTEN = "forgotten"


def anonymise_records(session: Session, *, user_id: int) -> int:
    """After "forget me": keep only what counts (time, decision, rules, spec, model, latency, labels);
    drop the pseudonym, the ids that led to the messages, the rationale and the operator's note."""
    records = records_for(session, user_id=user_id)
    for record in records:
        record.pseudonym, record.thread_id, record.message_id, record.reply_id = FORGOTTEN, "", "", ""
        record.rationale, record.failure, record.note = "", None, None
        session.add(record)
    return len(records)


def records_for(session: Session, *, user_id: int) -> list[AuditRecord]:
    """The records about one user, oldest first."""
    mine = pseudonym(session, user_id=user_id)
    return list(session.exec(select(AuditRecord).where(AuditRecord.pseudonym == mine).order_by(col(AuditRecord.id))))
