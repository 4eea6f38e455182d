"""What an import means beyond its rows: the style card learns the person's imported words (only theirs,
never the other assistant's replies), and undoing an import takes it all back: memory.importing
removes what the batch added, hypotheses.edits the support it gave the profile, the style card is
counted again from what is left, and the person's recall index forgets the vectors."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from hypotheses.edits import withdraw_evidence
from hypotheses.style import StyleStats, observe
from memory import importing, profile
from memory.db import read, write
from memory.index import UserIndexes
from memory.models import Author, ImportStatus, Message, stored_id

if TYPE_CHECKING:
    from assistant.background import HypothesisJobs

CHUNK = 1000  # texts per read while the card counts: a large history never sits in memory at once

logger = logging.getLogger(__name__)


def undo_import(engine: Engine, indexes: UserIndexes | None, *, user_id: int, batch_id: int) -> dict:
    """Everything the batch added goes; raises LookupError for a batch that is not this person's, and
    importing.StillImporting while it is being imported. Safe to run again after a crash halfway: each
    step finds what is left (a failed batch whose clean-up was cut short keeps its status and reason)."""
    batch = read(engine, lambda s: importing.batch_of(s, user_id=user_id, batch_id=batch_id))
    if batch is None:
        raise LookupError("That import does not exist (or is not yours).")
    if batch.status is ImportStatus.RUNNING:
        raise importing.StillImporting("That import is still running: undo it once it is done.")
    if batch.status is ImportStatus.UNDONE:
        return {"undone": True, "messages": 0, "entries_withdrawn": 0, "entries_weakened": 0}
    failed = batch.status is ImportStatus.FAILED
    return _take_back(engine, indexes, user_id=user_id, batch_id=batch_id,
                      status=None if failed else ImportStatus.UNDONE)


def _take_back(engine: Engine, indexes: UserIndexes | None, *, user_id: int, batch_id: int,
               status: ImportStatus | None) -> dict:
    message_ids = read(engine, lambda s: importing.batch_message_ids(s, batch_id=batch_id))
    # The profile first: were the texts removed first and this interrupted, nothing would say which
    # entries they had supported.
    def withdraw(session: Session) -> tuple[int, int]:
        return withdraw_evidence(session, user_id=user_id, message_ids=message_ids, reason=f"import {batch_id} undone")

    withdrawn, weakened = write(engine, withdraw)
    removed = importing.undo_batch(engine, user_id=user_id, batch_id=batch_id, status=status)
    # And once more: a hypothesis job that committed while the texts were being removed may have cited them.
    late = write(engine, withdraw)
    withdrawn, weakened = withdrawn + late[0], weakened + late[1]
    recount_style(engine, user_id=user_id)
    if indexes is not None:
        indexes.drop(user_id)  # rebuilt from what is left at the next recall
    logger.info("undid import %s of user %s: %d messages, %d entries withdrawn, %d weakened",
                batch_id, user_id, removed, withdrawn, weakened)
    return {"undone": True, "messages": removed, "entries_withdrawn": withdrawn, "entries_weakened": weakened}


def abandon_stale_imports(engine: Engine, indexes: UserIndexes | None, *, stale: timedelta = importing.STALE) -> int:
    """Undo, entirely, the imports whose process died halfway (memory.importing.STALE); how many. Run by
    the web processes' housekeeping and by workers; two at once find what the other left."""
    undone = 0
    for batch_id, user_id in read(engine, lambda s: importing.stale_batches(s, stale=stale)):
        def give_up(session: Session, batch: int = batch_id) -> bool:
            return importing.give_up_stale(session, batch_id=batch, stale=stale)

        try:
            if not write(engine, give_up):
                continue  # another process took it first, or it was heard from after all
            _take_back(engine, indexes, user_id=user_id, batch_id=batch_id, status=None)
        except Exception:  # one batch's failure must not keep the others; it is taken up again later
            logger.exception("taking back interrupted import %s of user %s failed", batch_id, user_id)
            continue
        logger.warning("import %s of user %s was interrupted halfway and has been undone", batch_id, user_id)
        undone += 1
    return undone


@dataclass(frozen=True)
class Learned:
    job_id: int | None  # the first profile's job, queued (and started here unless workers run jobs)
    failed: tuple[str, ...] = ()  # what went wrong, in the person's words; what was stored stays


async def learn_from_import(engine: Engine, jobs: HypothesisJobs, *, user_id: int) -> Learned:
    """What follows an import that stored something, for the panel and the CLI alike. The first profile
    first: its one model call runs while the rest is done, so the person sees it as soon as it is
    there. Then the style card. Each step has its own boundary: what was stored stays, and the next
    chats catch up. The vectors are the caller's, last and on their own: a large history takes hours
    to embed (README, "Bring your history"), and until then recall finds it by its words."""
    job_id, failed = None, []
    try:
        job_id = await jobs.after_import(user_id)
    except Exception:
        logger.exception("import for user %s: queuing the first profile failed", user_id)
        failed.append("learning your profile")
    try:
        await asyncio.to_thread(recount_style, engine, user_id=user_id)
    except Exception:
        logger.exception("import for user %s: counting the style card failed", user_id)
        failed.append("measuring your style")
    return Learned(job_id, tuple(failed))


def recount_style(engine: Engine, *, user_id: int) -> int:
    """The style card counted again from all the person's own words as they now are: after an import
    (its texts, never the other assistant's replies) and after an undo (a card cannot subtract). The
    counting runs outside any write; the short write that saves it first counts what turns stored
    meanwhile, under the card's lock, so no message is missed or counted twice. Returns texts counted."""
    stats, last, counted = StyleStats(), 0, 0
    for rows in _own_texts(engine, user_id=user_id, after=0):
        for message_id, text in rows:
            stats, last, counted = observe(stats, text), message_id, counted + 1

    def save(session: Session) -> int:
        profile.load_style(session, user_id=user_id, for_update=True)  # a turn now waits for this commit
        final = stats
        late = _own_rows(session, user_id=user_id, after=last, limit=None)
        for _, text in late:
            final = observe(final, text)
        profile.save_style(session, user_id=user_id, stats=final.to_json())
        return len(late)

    return counted + write(engine, save)


def _own_rows(session: Session, *, user_id: int, after: int, limit: int | None) -> list[tuple[int, str]]:
    query = (select(Message.id, Message.content)
             .where(Message.user_id == user_id, Message.author == Author.USER, col(Message.id) > after)
             .order_by(col(Message.id)))
    return [(stored_id(i), c) for i, c in session.exec(query.limit(limit) if limit else query).all()]


def _own_texts(engine: Engine, *, user_id: int, after: int) -> Iterator[list[tuple[int, str]]]:
    while True:
        def chunk(session: Session, after: int = after) -> list[tuple[int, str]]:
            return _own_rows(session, user_id=user_id, after=after, limit=CHUNK)

        rows = read(engine, chunk)
        if not rows:
            return
        yield rows
        after = rows[-1][0]
