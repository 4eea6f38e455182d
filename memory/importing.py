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
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from memory import store
from memory.db import read, write
from memory.history import (
    Conversation,
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
from memory.models import Author, ImportBatch, ImportStatus, Message, Thread, stored_id, utcnow

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
    skipped: dict[str, int] = field(default_factory=dict)
    same_file_as: int | None = None  # an earlier batch of this very file: nothing was read again

    def line(self) -> str:
        if self.same_file_as is not None:
            return f"{self.file_name}: imported before (import {self.same_file_as}); nothing added"
        parts = [f"{self.conversations} conversations ({self.messages} messages)" if self.source in CHATS else "",
                 f"{self.texts} texts" if self.source not in CHATS else "",
                 f"{self.already} already here" if self.already else ""]
        skipped = "; skipped: " + ", ".join(f"{n} {why}" for why, n in self.skipped.items()) if self.skipped else ""
        return f"{self.file_name}: " + ", ".join(p for p in parts if p) + skipped


CHATS = {"chatgpt", "claude", "chats"}


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def import_file(engine: Engine, *, user_id: int, path: Path, max_bytes: int, dry_run: bool = False,
                progress: Callable[[Imported], None] | None = None) -> Imported:
    """Import one file for this person (see the module's docstring); raises UnreadableImport with what was
    expected, after undoing whatever it had added. `progress` hears the counts after each stored chunk."""
    kind = kind_of(path)
    if path.stat().st_size > max_bytes and kind != "chats":  # a ZIP's member is checked inside
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
    try:
        for chunk in _chunks(_items(path, kind, skipped, max_bytes), WRITE_EVERY):
            if dry_run:
                _count(result, chunk)
                if progress is not None:
                    progress(result)
                continue
            _store_chunk(engine, user_id=user_id, items=chunk, result=result)
            if progress is not None:
                progress(result)
    except BaseException as exc:  # whatever stopped it, nothing of the file stays half-imported
        if result.batch_id is not None:
            undo_batch(engine, user_id=user_id, batch_id=result.batch_id, status=ImportStatus.FAILED,
                       reason=(str(exc) or type(exc).__name__)[:255])
        if isinstance(exc, UnreadableImport | OSError):
            raise UnreadableImport(f"{exc}. Nothing of {path.name} was kept.") from None
        raise
    result.skipped = dict(skipped.reasons)
    if result.source == "chats":
        result.source = _chat_source(engine, result.batch_id) if result.batch_id else "chats"
    if result.batch_id is not None:
        write(engine, lambda s: _finish(s, result))
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


def _store_chunk(engine: Engine, *, user_id: int, items: list, result: Imported) -> None:
    def store_them(session: Session) -> None:
        _store(session, user_id=user_id, batch_id=result.batch_id, items=items, result=result)

    write(engine, store_them)


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
        if thread_id in present:
            result.already += 1
            continue
        present.add(thread_id)  # the same conversation twice in one file
        if isinstance(item, Writing):
            _store_writing(session, user_id=user_id, batch_id=batch_id, thread_id=thread_id, writing=item)
            result.texts += 1
        else:
            _store_conversation(session, user_id=user_id, batch_id=batch_id, thread_id=thread_id, conversation=item)
            result.conversations += 1
            result.messages += len(item.messages)


def _count(result: Imported, items: list) -> None:
    for item in items:
        if isinstance(item, Writing):
            result.texts += 1
        else:
            result.conversations += 1
            result.messages += len(item.messages)


def _store_conversation(session: Session, *, user_id: int, batch_id: int | None, thread_id: str,
                        conversation: Conversation) -> None:
    started = conversation.created_at or conversation.messages[0].at or utcnow()
    session.add(Thread(id=thread_id, user_id=user_id, name=conversation.title, created_at=started, updated_at=started,
                       import_batch_id=batch_id, origin=conversation.source,
                       metadata_json=json.dumps({"imported_from": conversation.source})))
    session.flush()
    last = started
    label = {"chatgpt": "ChatGPT", "claude": "Claude"}[conversation.source]
    for position, said in enumerate(conversation.messages):
        # In order even where the export has no times (or the same time twice).
        at = said.at if said.at is not None and said.at > last else last + timedelta(milliseconds=1)
        last = at
        session.add(Message(
            step_id=derived_id(session, f"{thread_id}/{position}"), thread_id=thread_id, user_id=user_id,
            author=Author.USER if said.role == "user" else Author.ASSISTANT, content=said.text, created_at=at,
            model=None if said.role == "user" else f"imported from {label}",
            name=None if said.role == "user" else label))


def _store_writing(session: Session, *, user_id: int, batch_id: int | None, thread_id: str, writing: Writing) -> None:
    at = writing.at or utcnow()
    session.add(Thread(id=thread_id, user_id=user_id, name=writing.title, created_at=at, updated_at=at,
                       import_batch_id=batch_id, origin="writing",
                       metadata_json=json.dumps({"imported_from": writing.source})))
    session.flush()
    session.add(Message(step_id=derived_id(session, f"{thread_id}/0"), thread_id=thread_id, user_id=user_id,
                        author=Author.USER, content=writing.text, created_at=at))


def _chat_source(engine: Engine, batch_id: int) -> str:
    origins = read(engine, lambda s: {o for o in s.exec(select(Thread.origin).where(Thread.import_batch_id == batch_id))
                                      if o is not None})
    return origins.pop() if len(origins) == 1 else "chats"


def _finish(session: Session, result: Imported) -> None:
    batch = session.get(ImportBatch, result.batch_id)
    assert batch is not None, "the batch was made by this import"
    batch.status, batch.finished_at, batch.source = ImportStatus.DONE, utcnow(), result.source
    batch.conversations, batch.messages, batch.texts = result.conversations, result.messages, result.texts
    batch.skipped_json = json.dumps(result.skipped)
    session.add(batch)


# --- undoing -----------------------------------------------------------------------------------

def batch_message_ids(session: Session, *, batch_id: int) -> list[int]:
    return [stored_id(i) for i in session.exec(
        select(Message.id).join(Thread, col(Thread.id) == Message.thread_id).where(Thread.import_batch_id == batch_id)
    ).all()]


def undo_batch(engine: Engine, *, user_id: int, batch_id: int, status: ImportStatus = ImportStatus.UNDONE,
               reason: str | None = None) -> int:
    """Remove everything the batch added (threads, messages, their vectors), a thread at a time so no write
    holds the database long; return the messages removed. The profile's evidence is the caller's."""
    batch = read(engine, lambda s: s.get(ImportBatch, batch_id))
    if batch is None or batch.user_id != user_id:
        raise LookupError("no such import of yours")
    removed = 0
    while True:
        threads = read(engine, lambda s: s.exec(select(Thread).where(Thread.import_batch_id == batch_id,
                                                                     Thread.user_id == user_id).limit(100)).all())
        if not threads:
            break

        def remove(session: Session, threads=threads) -> int:
            count = 0
            for thread in threads:
                row = session.get(Thread, thread.id)
                if row is not None:
                    count += len(session.exec(select(Message.id).where(Message.thread_id == row.id)).all())
                    store.delete_thread(session, thread=row)
            return count

        removed += write(engine, remove)

    def mark(session: Session) -> None:
        row = session.get(ImportBatch, batch_id)
        if row is not None:
            row.status, row.finished_at, row.reason = status, utcnow(), reason
            session.add(row)

    write(engine, mark)
    return removed


def batch_of(session: Session, *, user_id: int, batch_id: int) -> ImportBatch | None:
    batch = session.get(ImportBatch, batch_id)
    return batch if batch is not None and batch.user_id == user_id else None


def batches(session: Session, *, user_id: int) -> list[ImportBatch]:
    return list(session.exec(select(ImportBatch).where(ImportBatch.user_id == user_id)
                             .order_by(col(ImportBatch.id).desc())).all())
