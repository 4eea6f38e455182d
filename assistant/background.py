"""Hypothesis jobs off the chat path: after a turn or when a chat ends, enqueue a job if one is due
and run it in the background. Any process can run a queued job; the job table's claim makes sure
only one does, and its lease makes sure a process that dies mid-job never blocks the user for ever
(hypotheses/job.py)."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Coroutine
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine
from sqlmodel import Session

from assistant.llm import Gateway, Purpose
from hypotheses.job import (
    IMPORT_TRIGGER,
    LEASE,
    JobLost,
    JobOutcome,
    count_new_substantive,
    enqueue,
    run_job,
    unlearned_imports,
    waiting,
)
from hypotheses.schedule import FIRST_AFTER, due
from memory.db import read, write
from memory.embed import Embedder
from memory.models import HypothesisJob

if TYPE_CHECKING:  # usage.py writes its records with TaskSet, below
    from assistant.usage import UsageLog

logger = logging.getLogger(__name__)


class TaskSet:
    """Work started off the user's path: tracked so it can be awaited, and failures are logged, not lost."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._tasks: set[asyncio.Task] = set()

    def spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("background %s failed", self._name, exc_info=task.exception())

    async def settle(self) -> None:
        """Wait until nothing is running (tests, benchmarks, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


class HypothesisJobs:
    def __init__(self, *, engine: Engine, gateway: Gateway, embedder: Embedder, every: int,
                 lease: timedelta = LEASE, usage: UsageLog | None = None, daily_token_limit: int = 0,
                 run_here: bool = True) -> None:
        """With a `daily_token_limit`, a user who reached it gets no new job that day (it is due again later).
        `run_here`: run the jobs this process enqueues; False leaves them queued for `hyperalign worker`."""
        self._engine, self._gateway, self._embedder, self._every = engine, gateway, embedder, every
        self._run_here = run_here
        self._usage, self._daily_limit = usage, daily_token_limit
        self._lease = lease
        self._worker = f"{socket.gethostname()}:{os.getpid()}"
        self._tasks = TaskSet("hypothesis job")

    async def after_turn(self, user_id: int, *, chat_ended: bool = False) -> None:
        """Enqueue and start a job when one is due. Offline there is no model, so there are no jobs."""
        if self._gateway.offline:
            return

        def maybe_enqueue(session) -> int | None:
            new, has_run = count_new_substantive(session, user_id=user_id)
            # An import no job has learned from (no model then, or its job failed) comes first: its job
            # reads the new chat texts too.
            imported = unlearned_imports(session, user_id=user_id)
            if not imported and not due(new, has_run=has_run, chat_ended=chat_ended, every=self._every,
                                        first_after=FIRST_AFTER):
                return None
            if self._over_limit(session, user_id):
                return None
            trigger = IMPORT_TRIGGER if imported else "chat_end" if chat_ended else "messages"
            job = enqueue(session, user_id=user_id, trigger=trigger, lease=self._lease)
            if job is not None:
                session.flush()
                return job.id
            # One is queued already: a process that queued it may have died before running it. This one
            # runs it (a claim decides, should a worker be at it too); with workers, they do.
            return waiting(session, user_id=user_id) if self._run_here else None

        job_id = await asyncio.to_thread(write, self._engine, maybe_enqueue)
        if job_id is not None and self._run_here:
            self._tasks.spawn(self._run_unless_taken(job_id, user_id))

    async def after_import(self, user_id: int) -> int | None:
        """Queue the first job over what the person brought (a bounded sample of it; hypotheses.infer,
        IMPORT_BUDGET_TOKENS) and run it here unless workers do; the job's id, or None when there is
        no model, nothing substantive, the day's limit is reached, or a job of theirs is already active
        (the texts stay unseen, so a later job reads them)."""
        if self._gateway.offline:
            return None

        def queue(session) -> int | None:
            if not unlearned_imports(session, user_id=user_id) or self._over_limit(session, user_id):
                return None
            job = enqueue(session, user_id=user_id, trigger=IMPORT_TRIGGER, lease=self._lease)
            if job is None:
                return None
            session.flush()
            return job.id

        job_id = await asyncio.to_thread(write, self._engine, queue)
        if job_id is not None and self._run_here:
            self._tasks.spawn(self._run_unless_taken(job_id, user_id))
        return job_id

    async def _run_unless_taken(self, job_id: int, user_id: int) -> None:
        try:
            await self.run(job_id, user_id=user_id)
        except JobLost:  # a worker claimed it first: it is theirs to run
            logger.info("hypothesis job %s is run by another process", job_id)

    def _over_limit(self, session: Session, user_id: int) -> bool:
        return bool(self._usage is not None and self._daily_limit
                    and self._usage.used_today(session, user_id=user_id) >= self._daily_limit)

    async def run(self, job_id: int, *, user_id: int | None = None) -> JobOutcome:
        """Run a queued job; its model calls are recorded for its user (`user_id`, else read from the job)."""
        if user_id is None:
            job = await asyncio.to_thread(read, self._engine, lambda s: s.get(HypothesisJob, job_id))
            user_id = job.user_id if job is not None else None

        async def complete(messages, schema):
            return await self._gateway.complete(messages, purpose=Purpose.HYPOTHESES, json_schema=schema,
                                                user_id=user_id)

        embed = self._embedder.encode if self._embedder.ready else None
        return await run_job(self._engine, job_id=job_id, complete=complete, worker=self._worker, embed=embed,
                             vector_model=self._embedder.model_name, lease=self._lease)

    async def settle(self) -> None:
        await self._tasks.settle()
