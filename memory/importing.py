"""Storing what a person brought (memory.history reads it): one batch per file, each conversation a
thread, each text of their own a message in a thread the chat list does not show. All of a batch can
be undone, and a batch that fails halfway is undone at once, so nothing is ever left half-imported.

Ids are derived from what was imported (the person, the source, the export's own conversation id or
the text's digest), so importing a file again, or another export holding some of the same
conversations, adds only what is new."""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path

from sqlalchemy import Engine, and_, delete, func, insert, or_
from sqlalchemy import update as sql_update
from sqlmodel import Session, col, select

from memory import store
from memory.db import read, write
from memory.history import (
    Conversation,
    Said,
    Skipped,
    UnreadableImport,
    Writing,
    conversations_file,
    kind_of,
    read_conversations,
    read_email_file,
    read_text_file,
)
from memory.keys import keyed_hash
from memory.models import (
    Author,
    ImportBatch,
    ImportHeld,
    ImportStatus,
    Message,
    MessageStatus,
    Thread,
    aware,
    stored_id,
    table_of,
    utcnow,
)

logger = logging.getLogger(__name__)
WRITE_EVERY = 200  # items per transaction: a big export never holds one long write lock


@dataclass
class Imported:
    """What a file held and what it added (a dry run adds nothing and says what it would)."""

    file_name: str
    source: str
    batch_id: int | None = None
    conversations: int = 0
    messages: int = 0
    texts: int = 0
    already: int = 0  # conversations and texts imported before (this file, or another holding them)
    extended: int = 0  # conversations imported before that this file holds more of (their new messages added)
    skipped: dict[str, int] = field(default_factory=dict)
    same_file_as: int | None = None  # an earlier batch of this very file: nothing was read again

    def line(self) -> str:
        if self.same_file_as is not None:
            return f"{self.file_name}: imported before (import {self.same_file_as}); nothing added"
        parts = [f"{counted(self.conversations, 'conversation')} ({counted(self.messages, 'message')})"
                 if self.source in CHATS else counted(self.texts, "text"),
                 f"{self.already} already here" if self.already else "",
                 f"{self.extended} continued with new messages" if self.extended else ""]
        skipped = "; skipped: " + ", ".join(f"{why} ({n})" for why, n in self.skipped.items()) if self.skipped else ""
        return f"{self.file_name}: " + ", ".join(p for p in parts if p) + skipped


def counted(n: int, one: str, many: str | None = None) -> str:
    """"1 conversation", "2 conversations"."""
    return f"{n} {one}" if n == 1 else f"{n} {many or one + 's'}"


CHATS = {"chatgpt", "claude", "chats"}


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


class ImportStopped(Exception):
    """The batch stopped running while this import was at it: the sweep took its process for dead."""


class StillImporting(Exception):
    """The batch is still being imported: it can be undone once it is done (or has failed)."""


HEARTBEAT_S = 60.0  # how often a running import says it is alive, whatever it is reading
# An import not heard from for this long lost its process (killed, or the machine went down): it is
# undone (assistant.imports.abandon_stale_imports), so nothing stays half-imported.
STALE = timedelta(minutes=10)
INTERRUPTED = "interrupted: the process importing it stopped"


def import_file(engine: Engine, *, user_id: int, path: Path, max_bytes: int, dry_run: bool = False,
                progress: Callable[[Imported], None] | None = None) -> Imported:
    """Import one file for this person (see the module's docstring); raises UnreadableImport with what was
    expected, after undoing whatever it had added. `progress` hears the counts after each stored chunk."""
    kind = kind_of(path)
    if path.stat().st_size > max_bytes:  # before hashing it; an archive's member is checked again, unpacked
        raise UnreadableImport(f"{path.name} is larger than the limit of {max_bytes // 2**20} MB")
    digest = file_digest(path)
    result = Imported(file_name=path.name[:255], source=kind)
    earlier = read(engine, lambda s: s.exec(select(ImportBatch.id).where(
        ImportBatch.user_id == user_id, ImportBatch.file_digest == digest, ImportBatch.status == ImportStatus.DONE)).first())
    if earlier is not None:
        result.same_file_as = stored_id(earlier)
        return result
    skipped = Skipped()
    if not dry_run:
        result.batch_id = write(engine, lambda s: _new_batch(s, user_id=user_id, source=kind, name=result.file_name,
                                                             digest=digest))
    # The heartbeat goes on through a failure's clean-up too: a long one is not taken for a dead import.
    with _heartbeat(engine, result.batch_id):
        try:
            for chunk in _chunks(_items(path, kind, skipped, max_bytes), WRITE_EVERY):
                if dry_run:
                    _count(result, chunk)
                else:
                    _store_chunk(engine, user_id=user_id, items=chunk, result=result)
                if progress is not None:
                    progress(result)
            result.skipped = dict(skipped.reasons)
            if result.source == "chats":
                result.source = _chat_source(engine, result.batch_id) if result.batch_id else "chats"
            if result.batch_id is not None:
                write(engine, lambda s: _finish(s, result))
        except BaseException as exc:  # whatever stopped it, nothing of the file stays half-imported
            if result.batch_id is not None:  # a stopped batch keeps the status and reason the sweep gave it
                stopped = isinstance(exc, ImportStopped)
                undo_batch(engine, user_id=user_id, batch_id=result.batch_id, status=None if stopped
                           else ImportStatus.FAILED, reason=(str(exc) or type(exc).__name__)[:255])
            if isinstance(exc, UnreadableImport | OSError | ImportStopped):
                raise UnreadableImport(f"{exc}. Nothing of {path.name} was kept.") from None
            raise
    logger.info("import user=%s batch=%s: %d conversations, %d messages, %d texts, %d already here",
                user_id, result.batch_id, result.conversations, result.messages, result.texts, result.already)
    return result


def _items(path: Path, kind: str, skipped: Skipped, max_bytes: int) -> Iterator[Conversation | Writing]:
    if kind == "chats":
        with conversations_file(path, max_bytes=max_bytes) as stream:
            yield from read_conversations(stream, skipped)
    elif kind == "email":
        yield from read_email_file(path, skipped, max_bytes=max_bytes)
    else:
        yield from read_text_file(path, skipped, max_bytes=max_bytes)


# The batches this process is importing or cleaning up: the sweep passes them over, whatever their clock
# says (a machine that slept keeps its threads' timers but not the wall clock the sweep compares with).
HERE: set[int] = set()
_HERE_LOCK = threading.Lock()


@contextmanager
def _heartbeat(engine: Engine, batch_id: int | None) -> Iterator[None]:
    """While the block runs, the batch says every HEARTBEAT_S that its process is alive: a file read for
    a long time without storing anything (mail after mail skipped) is not taken for dead."""
    if batch_id is None:
        yield
        return
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(HEARTBEAT_S):
            try:
                write(engine, lambda s: s.execute(
                    sql_update(ImportBatch).where(col(ImportBatch.id) == batch_id).values(heard_at=utcnow())))
            except Exception:  # a missed beat only brings the sweep closer; the import goes on
                logger.exception("import %s: heartbeat failed", batch_id)

    with _HERE_LOCK:
        HERE.add(batch_id)
    beating = threading.Thread(target=beat, name=f"import-{batch_id}-heartbeat", daemon=True)
    beating.start()
    try:
        yield
    finally:
        stop.set()
        beating.join()
        with _HERE_LOCK:
            HERE.discard(batch_id)


def _claim(session: Session, batch_id: int | None, **values) -> None:
    """Begin a write of the import by marking its batch, only while it is running; else ImportStopped.
    An UPDATE, not a read: it takes SQLite's write lock (which ignores FOR UPDATE) and PostgreSQL's row
    lock at once, so a sweep cannot fail the batch between this check and the write it guards."""
    claimed = session.connection().execute(
        sql_update(ImportBatch).where(col(ImportBatch.id) == batch_id, col(ImportBatch.status) == ImportStatus.RUNNING)
        .values(heard_at=utcnow(), **values))
    if claimed.rowcount != 1:
        raise ImportStopped("the import was stopped: it was taken for interrupted")


def _store_chunk(engine: Engine, *, user_id: int, items: list, result: Imported) -> None:
    """One chunk in one transaction. Its counts reach `result` only once it is committed: a write that
    is retried (memory.db.write) starts again from the counts before it."""
    def store_them(session: Session) -> Imported:
        _claim(session, result.batch_id)
        counts = replace(result)
        _store(session, user_id=user_id, batch_id=result.batch_id, items=items, result=counts)
        # The counts so far, for any process to show.
        session.connection().execute(sql_update(ImportBatch).where(col(ImportBatch.id) == result.batch_id).values(
            conversations=counts.conversations, messages=counts.messages, texts=counts.texts))
        return counts

    stored = write(engine, store_them)
    result.conversations, result.messages, result.texts = stored.conversations, stored.messages, stored.texts
    result.already, result.extended = stored.already, stored.extended


def _chunks(items: Iterable, size: int) -> Iterator[list]:
    chunk: list = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _new_batch(session: Session, *, user_id: int, source: str, name: str, digest: str) -> int:
    batch = ImportBatch(user_id=user_id, source=source, file_name=name, file_digest=digest)
    session.add(batch)
    session.flush()
    return stored_id(batch.id)


def derived_id(session: Session, text: str) -> str:
    """A UUID keyed by the database's own secret: the same for the same import, and one nobody can make in
    advance. Thread and message ids also come from clients in chat; a plain uuid5 of public parts would
    let one person take the ids another's import will need (found by review: an import then failed or
    skipped the person's mail as "already here")."""
    return str(uuid.UUID(bytes=bytes.fromhex(keyed_hash(session, f"import/{text}")[:32]), version=4))


def thread_id_for(session: Session, user_id: int, item: Conversation | Writing) -> str:
    kind = "writing" if isinstance(item, Writing) else item.source
    return derived_id(session, f"{user_id}/{kind}/{item.key}")


def _store(session: Session, *, user_id: int, batch_id: int | None, items: list, result: Imported) -> None:
    ids = [thread_id_for(session, user_id, item) for item in items]
    owners = dict(session.exec(select(Thread.id, Thread.user_id).where(col(Thread.id).in_(ids))).all())
    present = {i for i, owner in owners.items() if owner == user_id}
    if len(present) != len(owners):  # cannot happen unless the key leaked: never write into another's thread
        raise UnreadableImport("an id this import needs is taken by another account; nothing was imported")
    for thread_id, item in zip(ids, items, strict=True):
        said = [Said("user", item.text, item.at)] if isinstance(item, Writing) else list(item.messages)
        if thread_id in present:
            added = _add_new_messages(session, user_id=user_id, batch_id=batch_id, thread_id=thread_id, said=said)
            result.messages += added if not isinstance(item, Writing) else 0
            if added:
                result.extended += 1
            else:
                result.already += 1
        else:
            present.add(thread_id)  # the same conversation twice in one file
            _new_thread(session, user_id=user_id, batch_id=batch_id, thread_id=thread_id, item=item)
            _add_new_messages(session, user_id=user_id, batch_id=batch_id, thread_id=thread_id, said=said)
            if isinstance(item, Writing):
                result.texts += 1
            else:
                result.conversations += 1
                result.messages += len(item.messages)
        if batch_id is not None:
            held = session.get(ImportHeld, (batch_id, thread_id))
            if held is None:
                session.add(ImportHeld(batch_id=batch_id, thread_id=thread_id, messages=len(said)))
            else:
                held.messages = max(held.messages, len(said))


def _count(result: Imported, items: list) -> None:
    for item in items:
        if isinstance(item, Writing):
            result.texts += 1
        else:
            result.conversations += 1
            result.messages += len(item.messages)


def _new_thread(session: Session, *, user_id: int, batch_id: int | None, thread_id: str,
                item: Conversation | Writing) -> None:
    if isinstance(item, Writing):
        at, origin, source = item.at or utcnow(), "writing", str(item.source)
    else:
        at, origin, source = item.created_at or item.messages[0].at or utcnow(), item.source, item.source
    name = item.title
    session.add(Thread(id=thread_id, user_id=user_id, name=name, created_at=at, updated_at=at,
                       import_batch_id=batch_id, origin=origin, metadata_json=json.dumps({"imported_from": source})))
    session.flush()


def _add_new_messages(session: Session, *, user_id: int, batch_id: int | None, thread_id: str, said: list[Said]) -> int:
    """The messages of the file's copy that the thread lacks (by position), after what it has; how many."""
    step_ids = [derived_id(session, f"{thread_id}/{position}") for position in range(len(said))]
    stored = set(session.exec(select(Message.step_id).where(col(Message.step_id).in_(step_ids))).all())
    if len(stored) == len(said):
        return 0
    thread = session.get(Thread, thread_id)
    newest = session.exec(select(func.max(Message.created_at)).where(Message.thread_id == thread_id)).one()
    last = aware(newest or (thread.created_at if thread is not None else utcnow()))
    label = {"chatgpt": "ChatGPT", "claude": "Claude"}.get((thread.origin if thread else None) or "", "")
    rows = []
    for step_id, message in zip(step_ids, said, strict=True):
        if step_id in stored:
            continue
        # In order even where the export has no times (or the same time twice).
        at = message.at if message.at is not None and message.at > last else last + timedelta(milliseconds=1)
        last = at
        mine = message.role == "user"
        rows.append({"step_id": step_id, "thread_id": thread_id, "user_id": user_id, "import_batch_id": batch_id,
                     "author": Author.USER if mine else Author.ASSISTANT, "content": message.text, "created_at": at,
                     "status": MessageStatus.COMPLETE, "model": None if mine else f"imported from {label}",
                     "name": None if mine else label})
    if rows:  # one statement for the thread's messages, not an object each: a history has 100,000 of them
        session.connection().execute(insert(table_of(Message)), rows)  # executemany, no ids fetched back
    return len(rows)


def _chat_source(engine: Engine, batch_id: int) -> str:
    origins = read(engine, lambda s: {o for o in s.exec(select(Thread.origin).where(Thread.import_batch_id == batch_id))
                                      if o is not None})
    return origins.pop() if len(origins) == 1 else "chats"


def _finish(session: Session, result: Imported) -> None:
    _claim(session, result.batch_id)
    batch = session.get(ImportBatch, result.batch_id)
    assert batch is not None, "claimed a moment ago"
    batch.status, batch.finished_at, batch.source = ImportStatus.DONE, utcnow(), result.source
    batch.conversations, batch.messages, batch.texts = result.conversations, result.messages, result.texts
    batch.skipped_json = json.dumps(result.skipped)
    session.add(batch)


# --- undoing -----------------------------------------------------------------------------------

def batch_message_ids(session: Session, *, batch_id: int) -> list[int]:
    """The messages that would go if the batch were undone: those it brought that no other file still holds.
    Ids only: a history of 100,000 messages is not loaded to list them."""
    holders = OtherHolders(session, besides=batch_id)
    rows = session.exec(select(Message.id, Message.thread_id, Message.step_id)
                        .where(Message.import_batch_id == batch_id)).all()
    return [stored_id(mid) for mid, thread_id, step_id in rows if holders.of(thread_id, step_id) is None]


class OtherHolders:
    """Which other batch's file held a message (its copy reached the message's position), if any: the step
    ids of each thread's other copies are derived once per thread, not once per message."""

    def __init__(self, session: Session, *, besides: int) -> None:
        self._session, self._besides = session, besides
        self._threads: dict[str, list[tuple[int, set[str]]]] = {}

    def of(self, thread_id: str, step_id: str) -> int | None:
        copies = self._threads.get(thread_id)
        if copies is None:
            copies = self._threads[thread_id] = [
                (held.batch_id, {derived_id(self._session, f"{thread_id}/{i}") for i in range(held.messages)})
                for held in self._session.exec(select(ImportHeld).where(ImportHeld.thread_id == thread_id,
                                                                        ImportHeld.batch_id != self._besides)).all()]
        return next((batch for batch, step_ids in copies if step_id in step_ids), None)


def undo_batch(engine: Engine, *, user_id: int, batch_id: int, status: ImportStatus | None = ImportStatus.UNDONE,
               reason: str | None = None) -> int:
    """Remove what the batch added and no other import still holds, a thread at a time so no write holds
    the database long; return the messages removed. What another file also held passes to that file's
    batch; messages written here in an imported conversation stay, and so does their thread. The
    profile's evidence is the caller's (assistant.imports). `status` None keeps the batch's own."""
    batch = read(engine, lambda s: s.get(ImportBatch, batch_id))
    if batch is None or batch.user_id != user_id:
        raise LookupError("no such import of yours")
    removed = 0
    while True:
        held = read(engine, lambda s: s.exec(select(ImportHeld.thread_id).where(ImportHeld.batch_id == batch_id)
                                             .limit(100)).all())
        if not held:
            break

        def let_go(session: Session, threads=held) -> int:
            count = 0
            holders = OtherHolders(session, besides=batch_id)
            for thread_id in threads:
                going = []
                # By thread (its index), the batch filtered here: asked for both, SQLite may take the batch's
                # index and read all of the batch for every thread (minutes for a large history).
                for message_id, step_id, batch in session.exec(
                        select(Message.id, Message.step_id, Message.import_batch_id)
                        .where(Message.thread_id == thread_id)).all():
                    if batch != batch_id:
                        continue
                    other = holders.of(thread_id, step_id)
                    if other is not None:
                        session.execute(sql_update(Message).where(col(Message.id) == message_id)
                                        .values(import_batch_id=other))
                    else:
                        going.append(stored_id(message_id))
                store.delete_messages(session, thread_id=thread_id, message_ids=going)
                count += len(going)
                session.exec(delete(ImportHeld).where(col(ImportHeld.batch_id) == batch_id,
                                                      col(ImportHeld.thread_id) == thread_id))
                session.flush()
                thread = session.get(Thread, thread_id)
                if thread is None:
                    continue
                left = session.exec(select(func.count()).select_from(Message).where(Message.thread_id == thread_id)).one()
                others = session.exec(select(ImportHeld.batch_id).where(ImportHeld.thread_id == thread_id)).first()
                if not left and others is None:
                    store.delete_thread(session, thread=thread)
                elif thread.import_batch_id == batch_id:
                    thread.import_batch_id = others  # None: what is left was written here, a conversation of theirs
                    session.add(thread)
            return count

        removed += write(engine, let_go)

    def mark(session: Session) -> None:
        row = session.get(ImportBatch, batch_id)
        if row is not None and status is not None:
            row.status, row.finished_at, row.reason = status, utcnow(), reason
            session.add(row)

    write(engine, mark)
    return removed


def give_up_stale(session: Session, *, batch_id: int, stale: timedelta = STALE) -> bool:
    """Take a stale batch for clean-up (see stale_batches): atomically, so that only one sweeper takes it,
    and its import, should it be alive after all, stops at its next write. The batch is marked failed
    and heard from now: a sweeper that dies while cleaning up leaves it to the next one, 10 minutes on."""
    cutoff = utcnow() - stale
    result = session.connection().execute(sql_update(ImportBatch).where(
        col(ImportBatch.id) == batch_id,
        col(ImportBatch.status).in_([ImportStatus.RUNNING, ImportStatus.FAILED]),
        func.coalesce(col(ImportBatch.heard_at), col(ImportBatch.created_at)) < cutoff)
        .values(status=ImportStatus.FAILED, finished_at=utcnow(), heard_at=utcnow(),
                reason=func.coalesce(col(ImportBatch.reason), INTERRUPTED)))
    return result.rowcount == 1



def stale_batches(session: Session, *, stale: timedelta = STALE) -> list[tuple[int, int]]:
    """(batch id, user id) of the imports whose process died halfway (see STALE): running ones not heard
    from, and failed ones whose clean-up stopped (they still hold threads), none of this process's own."""
    cutoff = utcnow() - stale
    rows = session.exec(select(ImportBatch.id, ImportBatch.user_id).where(
        or_(col(ImportBatch.status) == ImportStatus.RUNNING,
            and_(col(ImportBatch.status) == ImportStatus.FAILED,
                 col(ImportBatch.id).in_(select(ImportHeld.batch_id).distinct()))),
        func.coalesce(ImportBatch.heard_at, ImportBatch.created_at) < cutoff)).all()
    with _HERE_LOCK:
        mine = set(HERE)
    return [(stored_id(b), stored_id(u)) for b, u in rows if b not in mine]


def batch_of(session: Session, *, user_id: int, batch_id: int) -> ImportBatch | None:
    batch = session.get(ImportBatch, batch_id)
    return batch if batch is not None and batch.user_id == user_id else None


def batches(session: Session, *, user_id: int) -> list[ImportBatch]:
    return list(session.exec(select(ImportBatch).where(ImportBatch.user_id == user_id)
                             .order_by(col(ImportBatch.id).desc())).all())
