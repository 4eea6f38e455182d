"""One chat turn, end to end: store, recall and deliberate, build the prompt, stream the reply, record it.

The user's message is committed before any model call, so it survives whatever happens next.
A reply cut short (model error, timeout, broken stream or one without a finish reason, the token
limit, the user pressing stop) is kept with the text the user saw and marked `incomplete` with the
reason; a reply that never started is not
stored at all. Either way the user is told what happened and the next message works.

Recall never waits for the embedding model: until it has loaded, a turn recalls lexically only
and its messages are embedded later (memory.vectors.embed_pending).

The safety deliberation runs beside recall (it needs only the message, its embedding and the
thread's recent window, never the profile), so it adds to the time before the first token only
what it takes beyond recall. Its verdict binds the answer; refusals, safe completions and failed
deliberations are audited in the reply's commit.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import partial

import numpy as np
from sqlalchemy import Engine
from sqlmodel import Session

from assistant import drafts
from assistant.background import TaskSet
from assistant.config import Settings
from assistant.llm import Gateway, LLMError, OnReasoning, Purpose, ReasoningOnly
from assistant.prompt import (
    MAX_EXEMPLARS,
    Memory,
    ReplyParts,
    WindowMessage,
    fit_memories,
    fit_profile,
    fit_reply,
)
from assistant.reasoning import strip_reasoning
from assistant.safety.audit import add_record, needs_record
from assistant.safety.deliberate import Deliberation
from assistant.safety.gate import SafetyGate, answer_instructions, verdict_json
from assistant.usage import UsageLog, until_tomorrow
from hypotheses import voice
from hypotheses.style import StyleStats, describe, observe
from hypotheses.voice import TooLittle
from memory import profile, store
from memory.db import read, write
from memory.embed import Embedder
from memory.index import UserIndexes
from memory.models import Author, Decision, EntryStatus, Message, MessageStatus, stored_id, utcnow
from memory.retrieve import (
    Recalled,
    RecallQuery,
    assemble,
    dense_ranking,
    lexical_confidence,
    lexical_ranking,
)
from memory.text import clean_text
from memory.vectors import save_vectors

logger = logging.getLogger(__name__)

OnToken = Callable[[str], Awaitable[None]]
OnRecalled = Callable[[Sequence[Recalled]], Awaitable[None]]
OnDeliberated = Callable[[Deliberation], Awaitable[None]]


@dataclass(frozen=True)
class TurnRequest:
    user_id: int
    thread_id: str
    message_id: str  # Chainlit's step id of the user's message
    reply_id: str  # Chainlit's step id of the reply being written
    text: str
    draft: bool = False  # "write as me": the reply is a draft in the user's own voice (assistant.drafts)


@dataclass(frozen=True)
class TurnResult:
    reply: str  # the text streamed to the user ("" when no reply was written)
    complete: bool
    notice: str | None = None  # what went wrong, in words for the user
    recalled: tuple[Recalled, ...] = ()
    deliberation: Deliberation | None = None  # None only when no model decides (offline, message too long)
    voice: str | None = None  # a draft's verdict: "sounds like you: 0.81; your own texts score 0.74–0.92"


def _setting(name: str):
    """A setting's default: defaults live once, in Settings."""
    return Settings.model_fields[name].default


@dataclass(frozen=True)
class TurnLimits:
    max_message_chars: int = _setting("max_message_chars")
    history_messages: int = _setting("history_messages")
    recall_tokens: int = _setting("recall_tokens")
    recall_results: int = _setting("recall_results")
    recall_half_life_days: float = _setting("recall_half_life_days")
    profile_tokens: int = _setting("profile_tokens")
    daily_token_limit: int = _setting("daily_token_limit")

    @classmethod
    def of(cls, settings: Settings) -> TurnLimits:
        return cls(**{name: getattr(settings, name) for name in cls.__dataclass_fields__})


@dataclass
class _Stored:
    message: Message
    window: list[WindowMessage]
    window_ids: frozenset[int] = field(default_factory=frozenset)
    style: list[str] = field(default_factory=list)  # the style card's statements, this message included
    profile: list[str] = field(default_factory=list)  # active profile entries, strongest first
    used_today: int = 0  # tokens the user's model calls used today, when there is a daily limit


class Turns:
    """Runs chat turns; one at a time per thread, so replies never interleave."""

    def __init__(
        self, *, engine: Engine, gateway: Gateway, embedder: Embedder, indexes: UserIndexes, limits: TurnLimits,
        safety: SafetyGate | None = None, usage: UsageLog | None = None, embed_replies: bool = True,
    ) -> None:
        """`embed_replies`: false leaves replies to a `hyperalign worker`'s catch-up, which encodes them in
        batches (about 40% less CPU a text) and off the web process, whose one core is what a crowd waits for."""
        self._engine = engine
        self._embed_replies = embed_replies
        self._usage = usage
        self._safety = safety
        self._gateway = gateway
        self._embedder = embedder
        self._indexes = indexes
        self._limits = limits
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self._background = TaskSet("memory work")

    async def run(self, request: TurnRequest, on_token: OnToken, on_recalled: OnRecalled | None = None,
                  on_deliberated: OnDeliberated | None = None, *, on_reasoning: OnReasoning | None = None,
                  ) -> TurnResult:
        """One turn. `on_reasoning` receives a reasoning model's thinking, which is never part of the reply."""
        text = clean_text(request.text)
        if not text.strip():
            return TurnResult("", False, "Your message was empty, so there was nothing to answer.")
        lock = self._locks.setdefault(request.thread_id, asyncio.Lock())
        # A message sent while the previous reply still streams waits for it instead of racing it.
        async with lock:
            return await self._run_locked(request, text, on_token, on_recalled, on_deliberated, on_reasoning)

    async def _run_locked(
        self, request: TurnRequest, text: str, on_token: OnToken, on_recalled: OnRecalled | None,
        on_deliberated: OnDeliberated | None, on_reasoning: OnReasoning | None,
    ) -> TurnResult:
        started = time.perf_counter()
        too_long = len(text) > self._limits.max_message_chars
        # Embedding is the slowest step; storing and the lexical search run while it does.
        embedding = None if too_long else asyncio.create_task(self._embed(text))
        try:
            stored = await asyncio.to_thread(write, self._engine, lambda s: self._store_user_message(s, request, text))
        except BaseException:
            if embedding is not None:
                embedding.cancel()
            raise
        if embedding is None:
            return TurnResult("", False, (
                f"Your message is {len(text):,} characters long; the limit is {self._limits.max_message_chars:,}. "
                "It is saved in this conversation but was not sent to the model. Please send a shorter message."
            ))
        if self._limits.daily_token_limit and stored.used_today >= self._limits.daily_token_limit:
            logger.info("turn thread=%s user=%s: daily token limit reached", request.thread_id, request.user_id)
            # Kept whole, embedding included, so it is recalled like any other once replies resume.
            await self._record(request, stored.message, await embedding, "", None, reason="daily limit")
            return TurnResult("", False, _limit_notice(self._limits.daily_token_limit))
        learned = None
        if request.draft:
            try:  # before any model call: without enough of their writing there is no voice to write in
                learned = await asyncio.to_thread(drafts.voice_of, self._engine, user_id=request.user_id)
            except TooLittle as exc:
                await self._record(request, stored.message, await embedding, "", None, reason="too little writing")
                return TurnResult("", False, str(exc))
        deciding = None
        if self._safety is not None:
            window = [(item.author, item.content) for item in stored.window]
            deciding = asyncio.create_task(self._safety.decide(text, window, embedding, user_id=request.user_id))
        try:
            recalled, vector = await self._recall(request, text, embedding, stored)
            if on_recalled is not None:
                await on_recalled(recalled)
            deliberation = await deciding if deciding is not None else None
        finally:  # a failed recall or panel must not leave the safety call running unowned
            if deciding is not None and not deciding.done():
                deciding.cancel()
        if deliberation is not None and on_deliberated is not None:
            await on_deliberated(deliberation)
        # The user's own recalled texts double as style exemplars (they resemble the request by
        # construction); the rest, and the assistant's replies, stay memories.
        exemplars = [r for r in recalled if r.author == Author.USER][:MAX_EXEMPLARS]
        examples = [r.content for r in exemplars]
        if learned is not None:  # a draft follows how they write first, then how they write about this
            examples = drafts.exemplars(learned[0], learned[1], examples, n=MAX_EXEMPLARS)
        memories = fit_memories(
            [Memory(str(r.author), r.content, r.created_at, r.thread_name) for r in recalled if r not in exemplars],
            self._limits.recall_tokens,
        )
        parts = ReplyParts(
            stored.window, text, max_chars=self._limits.max_message_chars, memories=memories, style=stored.style,
            profile=stored.profile, exemplars=examples, draft=request.draft,
            safety=(answer_instructions(deliberation, self._safety.spec)
                    if deliberation is not None and self._safety is not None else None),
        )
        received: list[str] = []
        try:
            fitted = partial(fit_reply, parts)  # to the chat model's window, by the gateway
            async for token in self._gateway.stream(fitted, purpose=Purpose.CHAT, on_reasoning=on_reasoning,
                                                    user_id=request.user_id):
                received.append(token)
                await on_token(token)
            # A template that opened the thinking block itself leaves only its closing tag in the
            # stream, known once it arrives: what came before it is thinking, never the reply.
            reply, thinking = strip_reasoning("".join(received))
            received = [reply] if reply else []
            if thinking and on_reasoning is not None:
                await on_reasoning(thinking)
            if thinking and not reply.strip():
                raise ReasoningOnly(f"only thinking ({len(thinking)} characters) before a closing tag")
        except LLMError as exc:
            logger.warning("turn thread=%s failed: %s", request.thread_id, type(exc).__name__)
            partial_reply = strip_reasoning("".join(received))[0]  # a cut-off reply may hold thinking too
            await self._record(request, stored.message, vector, partial_reply, deliberation,
                               reason=type(exc).__name__)
            return TurnResult(partial_reply, False, _failure_notice(exc, bool(partial_reply.strip())),
                              tuple(recalled), deliberation)
        except asyncio.CancelledError:
            # The user pressed stop: keep what they saw (less any thinking), then let the cancellation proceed.
            await asyncio.shield(self._record(request, stored.message, vector, strip_reasoning("".join(received))[0],
                                              deliberation, reason="stopped"))
            raise
        reply = "".join(received)
        await self._record(request, stored.message, vector, reply, deliberation, reason=None)
        verdict = None
        if learned is not None and _drafted(request, deliberation):
            if voice.words_in(reply) < voice.MIN_WORDS:  # a few words say too little about how anyone writes
                verdict = f"too short to tell whether it sounds like you (under {voice.MIN_WORDS} words)"
            else:
                score = await asyncio.to_thread(learned[0].score, reply)
                verdict = voice.describe(score, learned[0])
                logger.info("draft thread=%s user=%s voice=%.2f own=%.2f-%.2f", request.thread_id, request.user_id,
                            score, *learned[0].own)
        logger.info(
            "turn thread=%s user=%s chars_in=%d chars_out=%d recalled=%d decision=%s ms=%.0f",
            request.thread_id, request.user_id, len(text), len(reply), len(recalled),
            deliberation.decision if deliberation else "none", (time.perf_counter() - started) * 1000,
        )
        return TurnResult(reply, True, recalled=tuple(recalled), deliberation=deliberation, voice=verdict)

    def _store_user_message(self, session: Session, request: TurnRequest, text: str) -> _Stored:
        thread = store.upsert_thread(session, thread_id=request.thread_id, user_id=request.user_id)
        if thread is not None:
            store.title_from_message(session, thread=thread, text=text)
        message = store.save_message(
            session, step_id=request.message_id, thread_id=request.thread_id, user_id=request.user_id,
            author=Author.USER, content=text, status=MessageStatus.COMPLETE,
        )
        rows = store.recent_window(
            session, thread_id=request.thread_id, limit=self._limits.history_messages, before_step_id=request.message_id
        )
        window = [WindowMessage(author=str(row.author), content=row.content) for row in rows]
        # The style card learns from every message the user writes, in the same commit.
        stats = observe(StyleStats.from_json(profile.load_style(session, user_id=request.user_id, for_update=True)), text)
        profile.save_style(session, user_id=request.user_id, stats=stats.to_json())
        entries = sorted(profile.entries(session, user_id=request.user_id, statuses=[EntryStatus.ACTIVE]),
                         key=lambda e: (-e.confidence, -e.support, e.id))
        lines = fit_profile([f"{e.text} ({e.facet}{', written by the user' if e.source == 'user' else ''})"
                             for e in entries], self._limits.profile_tokens)
        used = (self._usage.used_today(session, user_id=request.user_id)
                if self._usage is not None and self._limits.daily_token_limit else 0)
        return _Stored(message=message, window=window, window_ids=frozenset(stored_id(row.id) for row in rows),
                       style=describe(stats), profile=lines, used_today=used)

    async def _embed(self, text: str) -> np.ndarray | None:
        if not self._embedder.ready:
            return None
        return await asyncio.to_thread(self._embedder.encode_one, text)

    async def _recall(
        self, request: TurnRequest, text: str, embedding: asyncio.Task, stored: _Stored
    ) -> tuple[list[Recalled], np.ndarray | None]:
        if self._limits.recall_results == 0:
            return [], await embedding
        query = RecallQuery(
            user_id=request.user_id, text=text, vector=None, k=self._limits.recall_results,
            exclude_message_ids=stored.window_ids | {stored_id(stored.message.id)},
            recency_half_life_days=self._limits.recall_half_life_days or None,
        )
        # Both while the model is still embedding. Before the model has loaded there is no dense
        # side at all (building an index would need the model's width, i.e. wait for it).
        def lexical_side(session: Session) -> tuple[list[tuple[int, float]], float | None]:
            hits = lexical_ranking(session, query)
            # How much the hits count once fused: asked now, while the model embeds, not after it.
            return hits, lexical_confidence(session, query, hits) if hits and self._embedder.ready else None

        (lexical, confidence), _ = await asyncio.gather(
            asyncio.to_thread(read, self._engine, lexical_side),
            asyncio.to_thread(self._indexes.refresh, request.user_id) if self._embedder.ready else asyncio.sleep(0),
        )
        vector = await embedding
        query = replace(query, vector=vector)
        dense = await asyncio.to_thread(dense_ranking, self._indexes, query, fresh=True)
        recalled = await asyncio.to_thread(
            read, self._engine, lambda s: assemble(s, query, dense, lexical, confidence=confidence))
        return recalled, vector

    async def _record(
        self, request: TurnRequest, message: Message, vector: np.ndarray | None, reply: str,
        deliberation: Deliberation | None, *, reason: str | None,
    ) -> None:
        """The reply, its audit record and the user message's vector in one commit; the reply's vector
        follows off the path."""
        status = MessageStatus.COMPLETE if reason is None else MessageStatus.INCOMPLETE

        def record(session: Session) -> Message | None:
            saved = None
            if reply:  # nothing shown, nothing kept
                saved = store.save_message(
                    session, step_id=request.reply_id, thread_id=request.thread_id, user_id=request.user_id,
                    author=Author.ASSISTANT, content=reply, status=status, status_reason=reason,
                    model=self._gateway.label, draft=_drafted(request, deliberation),
                    safety_json=verdict_json(deliberation) if deliberation is not None else None,
                )
            if needs_record(deliberation):
                add_record(session, deliberation=deliberation, user_id=request.user_id, thread_id=request.thread_id,
                           message_id=request.message_id, reply_id=request.reply_id)
            if vector is not None:
                save_vectors(session, model=self._embedder.model_name, messages=[message], vectors=vector[None])
            return saved

        saved = await asyncio.to_thread(write, self._engine, record)
        if vector is not None:
            self._indexes.add(request.user_id, [stored_id(message.id)], vector[None])
        if saved is not None and reason is None and self._embed_replies and self._embedder.ready:
            # Embedding the reply would add a second model call after the user has read it; it runs in
            # the background instead (memory.vectors.embed_pending catches up if it ever fails).
            self._background.spawn(self._embed_reply(request.user_id, saved))

    async def _embed_reply(self, user_id: int, reply: Message) -> None:
        vector = await asyncio.to_thread(self._embedder.encode_one, reply.content)
        await asyncio.to_thread(write, self._engine, lambda s: save_vectors(
            s, model=self._embedder.model_name, messages=[reply], vectors=vector[None]))
        self._indexes.add(user_id, [stored_id(reply.id)], vector[None])

    async def settle(self) -> None:
        """Wait for background memory work (tests, benchmarks, shutdown)."""
        await self._background.settle()


def _drafted(request: TurnRequest, deliberation: Deliberation | None) -> bool:
    """A draft was asked for and the decision let it be written (a refusal is no draft of theirs)."""
    return request.draft and (deliberation is None or deliberation.decision != Decision.REFUSE)


def _limit_notice(limit: int, now: datetime | None = None) -> str:
    left = until_tomorrow(now or utcnow())
    hours, minutes = divmod(max(1, round(left.total_seconds() / 60)), 60)
    return (f"You have used today's {limit:,} tokens, so this message was not sent to the model. It is saved; "
            f"replies resume at midnight UTC, in {hours} h {minutes} min. If you need more, ask the "
            "administrator to raise your daily limit.")


def _failure_notice(exc: LLMError, partial: bool) -> str:
    kept = " The part written so far is kept, marked as incomplete." if partial else ""
    return f"{exc.user_message}{kept} Your message is saved; send another message to try again."
