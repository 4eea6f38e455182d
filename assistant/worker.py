"""`hyperalign worker`: hypothesis jobs and embedding catch-up in a process of their own.

The web process enqueues a job when one is due; with HYPERALIGN_WEB_RUNS_JOBS=false it leaves it
queued, and workers take it. Any number of workers (and web processes that run jobs) may share one
database: each job is claimed atomically and once (hypotheses/job.py), and the claim is a lease, so
a worker killed mid-job leaves a job that the next round of any worker takes over once the lease has
expired. Each round also embeds the messages that lack a vector (a reply whose background embedding
was lost, messages stored before the model loaded), so recall catches up without a restart.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Engine

from assistant.background import HypothesisJobs
from hypotheses.job import JobLost, JobOutcome, claimable
from memory.db import read
from memory.embed import Embedder
from memory.vectors import embed_pending

logger = logging.getLogger(__name__)

EMBED_PER_ROUND = 512  # messages a round embeds at most, so a large catch-up never holds the jobs up for long
SETTLED = timedelta(minutes=2)  # a younger message may still be in its turn, which embeds it itself


@dataclass(frozen=True)
class Round:
    jobs: int  # jobs this worker ran (done or failed)
    taken: int  # jobs another process claimed first
    embedded: int  # messages given a vector


class Worker:
    def __init__(self, *, engine: Engine, jobs: HypothesisJobs, embedder: Embedder | None, concurrency: int = 2,
                 ) -> None:
        """`embedder`: None runs jobs only (no embedding catch-up)."""
        self._engine, self._jobs, self._embedder, self._concurrency = engine, jobs, embedder, concurrency

    async def round(self) -> Round:
        """Run what is claimable now, `concurrency` at a time; then embed some of what lacks a vector.

        Each worker tries the oldest jobs in its own random order, so workers that look at once mostly
        claim different ones, and one that loses a claim goes straight on to the next."""
        ids = await asyncio.to_thread(read, self._engine, lambda s: claimable(s, limit=4 * self._concurrency))
        random.shuffle(ids)
        slots = asyncio.Semaphore(self._concurrency)
        outcomes = await asyncio.gather(*(self._run(job_id, slots) for job_id in ids), return_exceptions=True)
        for failed in (o for o in outcomes if isinstance(o, BaseException)):
            logger.error("worker: a job's run raised", exc_info=failed)
        embedded = 0
        if self._embedder is not None:
            embedded = await asyncio.to_thread(embed_pending, self._engine, self._embedder, most=EMBED_PER_ROUND,
                                               settled_for=SETTLED)
        ran = [o for o in outcomes if isinstance(o, JobOutcome)]
        return Round(jobs=len(ran), taken=sum(o is None for o in outcomes), embedded=embedded)

    async def _run(self, job_id: int, slots: asyncio.Semaphore) -> JobOutcome | None:
        async with slots:
            try:
                outcome = await self._jobs.run(job_id)
            except JobLost:  # another worker, or a web process, claimed it between our read and our claim
                return None
        logger.info("worker: job %s %s", job_id, outcome.status)
        return outcome

    async def run(self, *, poll_s: float, stop: asyncio.Event | None = None) -> None:
        """Rounds until `stop` is set: at once while there is work, else after `poll_s` seconds."""
        stop = stop or asyncio.Event()
        while not stop.is_set():
            started = time.perf_counter()
            try:
                done = await self.round()
            except Exception:  # a database that is down for a moment: the next round tries again
                logger.exception("worker round failed")
                done = Round(0, 0, 0)
            if done.jobs or done.embedded:
                logger.info("worker round: %d jobs, %d taken by others, %d messages embedded in %.0f ms",
                            done.jobs, done.taken, done.embedded, (time.perf_counter() - started) * 1000)
                continue
            try:
                await asyncio.wait_for(stop.wait(), poll_s)
            except TimeoutError:
                pass
