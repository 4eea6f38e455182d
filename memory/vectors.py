"""Message vectors in SQL: save them, find the messages that lack a usable one, embed those.

A vector is usable for a model when it exists for that model name, has the model's width and was
made from the message's current text (content hash). Anything else is re-embedded, never mixed in.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from functools import partial

import numpy as np
from sqlalchemy import Engine, and_, func, or_
from sqlmodel import Session, col, select

from memory.db import read, write
from memory.embed import Embedder, content_hash
from memory.models import Embedding, Message, MessageStatus, stored_id, utcnow

logger = logging.getLogger(__name__)

Progress = Callable[[int, int], None]  # (done, total)


def save_vectors(session: Session, *, model: str, messages: Sequence[Message], vectors: np.ndarray) -> None:
    """Each message's vector, except for messages deleted since they were read (a chat deleted, an import
    undone while it was embedded): their vector would point at nothing."""
    alive = set(session.exec(select(Message.id).where(col(Message.id).in_([m.id for m in messages]))).all())
    for message, vector in zip(messages, vectors, strict=True):
        if message.id not in alive:
            continue
        digest, blob = content_hash(message.content), np.asarray(vector, dtype="<f4").tobytes()
        row = session.get(Embedding, (stored_id(message.id), model))
        if row is None:
            row = Embedding(message_id=stored_id(message.id), model=model, user_id=message.user_id,
                            content_hash=digest, vector=blob)
        else:
            row.content_hash, row.vector = digest, blob
        session.add(row)
    session.flush()


def _lacking(model: str, width: int, user_id: int | None):
    """Messages with no vector of `model`, or one of the wrong size."""
    query = (
        select(Message)
        .outerjoin(Embedding, and_(col(Embedding.message_id) == Message.id, col(Embedding.model) == model))
        .where(Message.status == MessageStatus.COMPLETE,
               or_(col(Embedding.message_id).is_(None), func.length(Embedding.vector) != width))
    )
    return query.where(Message.user_id == user_id) if user_id is not None else query


def count_pending(engine: Engine, *, model: str, width: int, user_id: int | None = None) -> int:
    query = select(func.count()).select_from(_lacking(model, width, user_id).subquery())
    return read(engine, lambda s: s.exec(query).one())


def stale_by_hash(session: Session, *, model: str, user_id: int | None = None) -> list[int]:
    """Ids of messages whose stored vector was made from other text (e.g. an edited message)."""
    query = select(Message.id, Message.content, Embedding.content_hash).join(
        Embedding, and_(col(Embedding.message_id) == Message.id, col(Embedding.model) == model))
    if user_id is not None:
        query = query.where(Message.user_id == user_id)
    return [stored_id(mid) for mid, content, digest in session.exec(query).all() if content_hash(content) != digest]


def _delete_vectors(session: Session, *, model: str, message_ids: list[int]) -> None:
    for mid in message_ids:
        session.delete(session.get(Embedding, (mid, model)))


def _next_lacking(session: Session, *, model: str, width: int, user_id: int | None, after: int,
                  batch: int, before: datetime | None = None) -> list[Message]:
    """The next batch of messages lacking a usable vector, in id order after `after` (and stored before
    `before`, when given)."""
    query = _lacking(model, width, user_id).where(col(Message.id) > after)
    if before is not None:
        query = query.where(col(Message.created_at) < before)
    return list(session.exec(query.order_by(col(Message.id)).limit(batch)).all())


def embed_pending(
    engine: Engine, embedder: Embedder, *, user_id: int | None = None, batch: int = 64,
    progress: Progress | None = None, check_hashes: bool = False, most: int | None = None,
    settled_for: timedelta | None = None,
) -> int:
    """Embed every message that lacks a usable vector for the embedder's model; return how many.

    `most`: stop after about this many (a worker's round, which must not hold its jobs up for long).
    `settled_for`: only messages stored at least this long ago; a younger one may still be in its turn,
    which embeds it itself."""
    model, width = embedder.model_name, embedder.dimension * 4
    if check_hashes:
        stale = read(engine, lambda s: stale_by_hash(s, model=model, user_id=user_id))
        if stale:
            write(engine, partial(_delete_vectors, model=model, message_ids=stale))
    total = count_pending(engine, model=model, width=width, user_id=user_id) if progress else 0
    done, started, after = 0, time.perf_counter(), 0
    before = utcnow() - settled_for if settled_for is not None else None
    while most is None or done < most:
        messages = read(engine, partial(_next_lacking, model=model, width=width, user_id=user_id, after=after,
                                        batch=batch, before=before))
        if not messages:
            break
        vectors = embedder.encode([m.content for m in messages])
        write(engine, partial(save_vectors, model=model, messages=messages, vectors=vectors))
        after, done = stored_id(messages[-1].id), done + len(messages)
        if progress:
            progress(done, total)
    if done:
        logger.info("embedded %d messages in %.1f s", done, time.perf_counter() - started)
    return done
