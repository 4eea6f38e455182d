"""Undoing an import, whole: memory.importing removes what the batch added, hypotheses.edits takes back
the support it gave the profile, and the person's recall index forgets its vectors."""

from __future__ import annotations

import logging

from sqlalchemy import Engine

from hypotheses.edits import withdraw_evidence
from memory import importing
from memory.db import read, write
from memory.index import UserIndexes
from memory.models import ImportStatus

logger = logging.getLogger(__name__)


def undo_import(engine: Engine, indexes: UserIndexes | None, *, user_id: int, batch_id: int) -> dict:
    """Everything the batch added goes; raises LookupError for a batch that is not this person's.
    Safe to run again after a crash halfway: each step finds what is left."""
    batch = read(engine, lambda s: importing.batch_of(s, user_id=user_id, batch_id=batch_id))
    if batch is None:
        raise LookupError("That import does not exist (or is not yours).")
    if batch.status is ImportStatus.UNDONE:
        return {"undone": True, "messages": 0, "entries_withdrawn": 0, "entries_weakened": 0}
    message_ids = read(engine, lambda s: importing.batch_message_ids(s, batch_id=batch_id))
    # The profile first: were the texts removed first and this interrupted, nothing would say which
    # entries they had supported.
    withdrawn, weakened = write(engine, lambda s: withdraw_evidence(
        s, user_id=user_id, message_ids=message_ids, reason=f"import {batch_id} undone"))
    removed = importing.undo_batch(engine, user_id=user_id, batch_id=batch_id)
    if indexes is not None:
        indexes.drop(user_id)  # rebuilt from what is left at the next recall
    logger.info("undid import %s of user %s: %d messages, %d entries withdrawn, %d weakened",
                batch_id, user_id, removed, withdrawn, weakened)
    return {"undone": True, "messages": removed, "entries_withdrawn": withdrawn, "entries_weakened": weakened}
