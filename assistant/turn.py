"""One chat turn, end to end: store, build the prompt, stream the reply, record it.

The user's message is committed before any model call, so it survives whatever happens next.
A reply cut short (model error, timeout, broken stream, the user pressing stop) is kept with the
text the user saw and marked `incomplete` with the reason; a reply that never started is not
stored at all. Either way the user is told what happened and the next message works.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlmodel import Session

from assistant.llm import Gateway, LLMError, Purpose
from assistant.prompt import WindowMessage, build_reply_messages
from memory import store
from memory.db import read, write
from memory.models import Author, MessageStatus
from memory.text import clean_text

logger = logging.getLogger(__name__)

OnToken = Callable[[str], Awaitable[None]]


@dataclass(frozen=True)
class TurnRequest:
    user_id: int
    thread_id: str
    message_id: str  # Chainlit's step id of the user's message
    reply_id: str  # Chainlit's step id of the reply being written
    text: str


@dataclass(frozen=True)
class TurnResult:
    reply: str  # the text streamed to the user ("" when no reply was written)
    complete: bool
    notice: str | None = None  # what went wrong, in words for the user


class Turns:
    """Runs chat turns; one at a time per thread, so replies never interleave."""

    def __init__(self, *, engine: Engine, gateway: Gateway, max_message_chars: int, history_messages: int) -> None:
        self._engine = engine
        self._gateway = gateway
        self._max_chars = max_message_chars
        self._history = history_messages
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    async def run(self, request: TurnRequest, on_token: OnToken) -> TurnResult:
        text = clean_text(request.text)
        if not text.strip():
            return TurnResult("", False, "Your message was empty, so there was nothing to answer.")
        lock = self._locks.setdefault(request.thread_id, asyncio.Lock())
        # A message sent while the previous reply still streams waits for it instead of racing it.
        async with lock:
            return await self._run_locked(request, text, on_token)

    async def _run_locked(self, request: TurnRequest, text: str, on_token: OnToken) -> TurnResult:
        started = time.perf_counter()
        window = await asyncio.to_thread(write, self._engine, lambda s: self._store_user_message(s, request, text))
        if len(text) > self._max_chars:
            return TurnResult("", False, (
                f"Your message is {len(text):,} characters long; the limit is {self._max_chars:,}. "
                "It is saved in this conversation but was not sent to the model. Please send a shorter message."
            ))
        messages = build_reply_messages(window, text, max_chars=self._max_chars)
        received: list[str] = []
        try:
            async for token in self._gateway.stream(messages, purpose=Purpose.CHAT):
                received.append(token)
                await on_token(token)
        except LLMError as exc:
            logger.warning("turn thread=%s failed: %s", request.thread_id, exc)
            await self._record_reply(request, "".join(received), reason=type(exc).__name__)
            return TurnResult("".join(received), False, _failure_notice(exc, bool(received)))
        except asyncio.CancelledError:
            # The user pressed stop: keep what they saw, then let the cancellation proceed.
            await asyncio.shield(self._record_reply(request, "".join(received), reason="stopped"))
            raise
        reply = "".join(received)
        await self._record_reply(request, reply, reason=None)
        logger.info(
            "turn thread=%s user=%s chars_in=%d chars_out=%d ms=%.0f",
            request.thread_id, request.user_id, len(text), len(reply), (time.perf_counter() - started) * 1000,
        )
        return TurnResult(reply, True)

    def _store_user_message(self, session: Session, request: TurnRequest, text: str) -> list[WindowMessage]:
        store.upsert_thread(session, thread_id=request.thread_id, user_id=request.user_id)
        store.save_message(
            session, step_id=request.message_id, thread_id=request.thread_id, user_id=request.user_id,
            author=Author.USER, content=text, status=MessageStatus.COMPLETE,
        )
        rows = store.recent_window(
            session, thread_id=request.thread_id, limit=self._history, before_step_id=request.message_id
        )
        return [WindowMessage(author=str(row.author), content=row.content) for row in rows]

    async def _record_reply(self, request: TurnRequest, reply: str, *, reason: str | None) -> None:
        if not reply:
            return  # nothing was shown, so nothing is kept
        status = MessageStatus.COMPLETE if reason is None else MessageStatus.INCOMPLETE

        def record(session: Session) -> None:
            store.save_message(
                session, step_id=request.reply_id, thread_id=request.thread_id, user_id=request.user_id,
                author=Author.ASSISTANT, content=reply, status=status, status_reason=reason,
                model=self._gateway.label,
            )

        await asyncio.to_thread(write, self._engine, record)


def _failure_notice(exc: LLMError, partial: bool) -> str:
    kept = " The part written so far is kept, marked as incomplete." if partial else ""
    return f"{exc.user_message}{kept} Your message is saved; send another message to try again."
