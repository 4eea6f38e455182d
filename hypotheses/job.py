"""Hypothesis jobs: load the profile, gather evidence, infer, merge, and write the changes with their
history in one commit. A job is a row of `hypothesis_job`, claimed atomically, so two app processes
never run the same one, and at most one holds each user's slot (queued or running, lease unexpired).

A job that dies is retried, never left holding the slot: every claim is a lease that the running job
renews, and every write after the claim is fenced by the claim's token. A process killed mid-job stops
renewing; once the lease expires another claim may take the job over, or the user's next trigger fails
it and queues a new one (which reads the same evidence, since only "done" jobs move the evidence mark).
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import numpy as np
from sqlalchemy import Engine, and_, func, or_
from sqlalchemy import update as sql_update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col, select

from hypotheses.infer import (
    CHARS_PER_TOKEN,
    IMPORT_BUDGET_TOKENS,
    LONGEST_SHARE,
    PER_CONVERSATION,
    Complete,
    InferenceFailed,
    Text,
    Written,
    choose_import_samples,
    choose_samples,
    infer,
    is_substantive,
    substance,
)
from hypotheses.merge import Candidate, Change, Entry, Kind, Withdrawn, merge
from memory import profile
from memory.db import read, write
from memory.models import (
    Actor,
    Author,
    EntrySource,
    EntryStatus,
    HypothesisJob,
    ImportBatch,
    ImportStatus,
    JobStatus,
    Message,
    MessageStatus,
    ProfileEntry,
    Thread,
    aware,
    stored_id,
    utcnow,
)

logger = logging.getLogger(__name__)


def load_profile(session: Session, *, user_id: int) -> list[Entry]:
    """Every entry of the user (rejected ones too: merge must know what not to bring back)."""
    return [_entry(row) for row in profile.entries(session, user_id=user_id)]


def _entry(row: ProfileEntry) -> Entry:
    vector = tuple(np.frombuffer(row.vector, dtype="<f4").tolist()) if row.vector else None
    return Entry(
        id=stored_id(row.id), facet=row.facet, text=row.text, confidence=row.confidence, support=row.support,
        evidence=tuple(json.loads(row.evidence_json)), status=EntryStatus(row.status), source=EntrySource(row.source),
        pinned=row.pinned, last_seen=aware(row.last_seen), vector=vector, sensitive=row.sensitive,
    )


def apply_changes(
    session: Session, *, user_id: int, changes: list[Change], vector_model: str | None = None, actor: Actor = Actor.INFERENCE
) -> dict[int, int]:
    """Write the changes and one history row each; return merge's provisional ids -> database ids."""
    ids: dict[int, int] = {}
    row: ProfileEntry | None
    for change in changes:
        if change.kind is Kind.SKIP or change.after is None:
            continue
        after = change.after
        if change.kind is Kind.ADD:
            row = ProfileEntry(user_id=user_id, facet=after.facet, text=after.text)
            before = None
        else:
            row = session.get(ProfileEntry, ids.get(after.id, after.id))
            if row is None or row.user_id != user_id:
                raise LookupError(f"profile entry {after.id} is not this user's")
            before = profile.snapshot(row)
            row.version += 1
        _copy(after, row, vector_model)
        if change.kind in (Kind.SUPERSEDE, Kind.EVICT):
            row.valid_to = utcnow()
        session.add(row)
        session.flush()
        if change.kind is Kind.ADD:
            ids[after.id] = stored_id(row.id)
            if after.replaces is not None:
                old = session.get(ProfileEntry, ids.get(after.replaces, after.replaces))
                if old is None:  # merge only replaces an entry it superseded in this same list of changes
                    raise LookupError(f"profile entry {after.replaces} does not exist")
                old.superseded_by = row.id
                session.add(old)
        profile.record_change(session, entry=row, actor=actor, kind=str(change.kind), before=before, reason=change.reason)
    session.flush()
    return ids


def _copy(entry: Entry, row: ProfileEntry, vector_model: str | None) -> None:
    row.confidence, row.support, row.status, row.source = entry.confidence, entry.support, entry.status, entry.source
    row.evidence_json = json.dumps(list(entry.evidence))
    row.pinned, row.last_seen, row.sensitive = entry.pinned, entry.last_seen, entry.sensitive
    if entry.vector is not None:
        row.vector, row.vector_model = np.asarray(entry.vector, dtype="<f4").tobytes(), vector_model


# --- the job ----------------------------------------------------------------------------------

# How long a claim (or a queued job not yet claimed) holds the user's one slot. A running job renews
# it every third of this, so a job may take as long as it needs; a process that dies stops renewing,
# and its user's profile learns again at most this long after.
LEASE = timedelta(minutes=2)
ABANDONED = "LeaseExpired"  # the reason recorded on a job whose process died


class JobLost(Exception):
    """Another process holds the job (claimed it first, or took it over after our lease expired)."""


ACTIVE = (JobStatus.QUEUED, JobStatus.RUNNING)  # the states that hold the user's one slot


def _held(now: datetime):
    """SQL: the job holds its user's slot at `now` (queued or running, lease not yet expired)."""
    return and_(col(HypothesisJob.status).in_(ACTIVE), col(HypothesisJob.lease_until) >= now)


def _abandoned_run(now: datetime):
    """SQL: running, but the lease expired (or never existed: rows from before leases)."""
    return and_(col(HypothesisJob.status) == JobStatus.RUNNING,
                or_(col(HypothesisJob.lease_until).is_(None), col(HypothesisJob.lease_until) < now))


def _abandoned(now: datetime):
    """SQL: queued or running, but the lease expired (or never existed: rows from before leases)."""
    return and_(col(HypothesisJob.status).in_(ACTIVE),
                or_(col(HypothesisJob.lease_until).is_(None), col(HypothesisJob.lease_until) < now))


def claimable(session: Session, *, limit: int, now: datetime | None = None) -> list[int]:
    """Jobs a worker may claim, oldest first: queued ones, and running ones whose lease expired (their
    process died). `claim` decides, atomically, who gets each."""
    now = now or utcnow()
    ids = session.exec(select(HypothesisJob.id).where(
        or_(col(HypothesisJob.status) == JobStatus.QUEUED, _abandoned(now))).order_by(col(HypothesisJob.id))
        .limit(limit)).all()
    return [job_id for job_id in ids if job_id is not None]


def enqueue(session: Session, *, user_id: int, trigger: str, lease: timedelta = LEASE,
            now: datetime | None = None) -> HypothesisJob | None:
    """A queued job for the user, unless one is queued or running already (one at a time per user).

    A running job whose lease expired (its process died) is failed here first, so it never blocks the
    user for ever. A queued job is left as it is, however long it has waited: with workers, the wait is
    the queue's, and failing it would send the user to the back of the queue again and again (the web
    process runs a user's waiting job itself; see `waiting`)."""
    now = now or utcnow()
    session.exec(sql_update(HypothesisJob).where(col(HypothesisJob.user_id) == user_id, _abandoned_run(now))
                 .values(status=JobStatus.FAILED, reason=ABANDONED, finished_at=now))
    if session.exec(select(HypothesisJob.id).where(HypothesisJob.user_id == user_id,
                                                   col(HypothesisJob.status).in_(ACTIVE))).first() is not None:
        return None
    job = HypothesisJob(user_id=user_id, trigger=trigger, lease_until=now + lease)
    try:
        with session.begin_nested():  # another process may have inserted one since the read above
            session.add(job)
    except IntegrityError:  # ...and the database's one-active-job index refused ours
        return None
    return job


def waiting(session: Session, *, user_id: int) -> int | None:
    """The user's queued job, claimed by nobody yet (its process may have died before it could)."""
    return session.exec(select(HypothesisJob.id).where(HypothesisJob.user_id == user_id,
                                                       HypothesisJob.status == JobStatus.QUEUED)).first()


def claim(engine: Engine, *, job_id: int, worker: str, lease: timedelta = LEASE) -> str | None:
    """Atomically take a queued job, or a running one whose lease expired; the claim's token, or None
    if another process holds it. The token fences every later write of this run."""
    now, token = utcnow(), f"{worker[:50]}#{secrets.token_hex(6)}"
    with engine.begin() as conn:
        result = conn.execute(
            sql_update(HypothesisJob)
            .where(col(HypothesisJob.id) == job_id, or_(col(HypothesisJob.status) == JobStatus.QUEUED, _abandoned(now)))
            .values(status=JobStatus.RUNNING, claimed_by=token, lease_until=now + lease)
        )
        return token if result.rowcount == 1 else None


def renew(engine: Engine, *, job_id: int, token: str, lease: timedelta = LEASE) -> bool:
    """Extend our claim's lease; False when the claim is no longer ours."""
    with engine.begin() as conn:
        result = conn.execute(sql_update(HypothesisJob).where(*_ours(job_id, token))
                              .values(lease_until=utcnow() + lease))
        return result.rowcount == 1


def _ours(job_id: int, token: str) -> tuple[ColumnElement[bool], ...]:
    return (col(HypothesisJob.id) == job_id, col(HypothesisJob.status) == JobStatus.RUNNING,
            col(HypothesisJob.claimed_by) == token)


def last_seen_message(session: Session, *, user_id: int) -> int:
    """The newest user message a successful job has already considered."""
    return session.exec(select(func.coalesce(func.max(HypothesisJob.up_to_message_id), 0)).where(
        HypothesisJob.user_id == user_id, HypothesisJob.status == JobStatus.DONE)).one()


def user_texts(session: Session, *, user_id: int, after: int | None = None, before: int | None = None,
               limit: int = 200) -> list[Text]:
    """The user's own complete messages written here, in remembered threads, oldest first. Imported ones
    are read by import jobs only (`unseen_texts`), from finished imports: a job running beside an import
    never cites a text that import may yet take back."""
    query = (select(Message.id, Message.content).join(Thread, col(Thread.id) == Message.thread_id)
             .where(Message.user_id == user_id, Message.author == Author.USER, Message.status == MessageStatus.COMPLETE,
                    Thread.remember == True, col(Message.import_batch_id).is_(None)))  # noqa: E712
    if after is not None:
        query = query.where(col(Message.id) > after)
    if before is not None:
        query = query.where(col(Message.id) <= before)
    rows = session.exec(query.order_by(col(Message.id).desc()).limit(limit)).all()
    return [Text(stored_id(mid), content) for mid, content in reversed(rows)]


IMPORT_TRIGGER = "import"
POOL = 400  # the import sample is chosen from the most substantive texts, kept this many at a time
READ_EVERY = 2000  # texts per read while the pool is gathered: a large history never sits in memory


@dataclass
class Unseen:
    """What an import job reads: the imported texts' best candidates, the newest texts written here (they
    come first, as in any job), and the newest id read, which the job has then considered (a text too
    long to be chosen, newer than all of them, is left for later jobs, which pass it over as pasted)."""

    imported: list[Written]
    chatted: list[Text]
    newest: int


def last_imported_seen(session: Session, *, user_id: int) -> int:
    """The newest imported message a successful import job has considered (imports have their own mark:
    a chat job that ran while an import was storing may have moved the common one past its texts)."""
    return session.exec(select(func.coalesce(func.max(HypothesisJob.up_to_message_id), 0)).where(
        HypothesisJob.user_id == user_id, HypothesisJob.status == JobStatus.DONE,
        HypothesisJob.trigger == IMPORT_TRIGGER)).one()


def _finished_imports(user_id: int, after: int):
    """SQL: the person's own complete texts from finished imports, in remembered threads, newer than `after`."""
    return (select(Message.id, Message.thread_id, Message.content)
            .join(Thread, col(Thread.id) == Message.thread_id)
            .join(ImportBatch, col(ImportBatch.id) == Message.import_batch_id)
            .where(Message.user_id == user_id, Message.author == Author.USER, Message.status == MessageStatus.COMPLETE,
                   Thread.remember == True, ImportBatch.status == ImportStatus.DONE,  # noqa: E712
                   col(Message.id) > after))


def unlearned_imports(session: Session, *, user_id: int, look_at: int = 500) -> bool:
    """Whether a finished import holds a substantive text of the person that no import job has read (a
    model was connected only later, or the job failed): the next job is then an import job. It looks at
    the first `look_at` such texts only: it is asked after every turn."""
    after = last_imported_seen(session, user_id=user_id)
    rows = session.exec(_finished_imports(user_id, after).order_by(col(Message.id)).limit(look_at)).all()
    return any(is_substantive(content) for _, _, content in rows)


def unseen_texts(session: Session, *, user_id: int, after: int) -> Unseen:
    """What an import job reads: the texts written here newer than `after` (the newest 200, as any job
    reads them), and of the finished imports' texts no import job has read, the most substantive POOL
    that could be chosen (short enough, PER_CONVERSATION a thread), read in chunks."""
    longest = IMPORT_BUDGET_TOKENS * CHARS_PER_TOKEN // LONGEST_SHARE
    chatted = user_texts(session, user_id=user_id, after=after)
    pool: list[Written] = []
    newest = last_imported_seen(session, user_id=user_id)
    while True:
        rows = session.exec(_finished_imports(user_id, newest)
                            .where(func.length(Message.content) <= longest)  # too long to be chosen: not loaded
                            .order_by(col(Message.id)).limit(READ_EVERY)).all()
        if not rows:
            considered = max([after, newest, *(t.message_id for t in chatted)])
            return Unseen(pool, chatted, considered)
        pool = _best(pool, [Written(Text(stored_id(mid), content), thread_id) for mid, thread_id, content in rows])
        newest = stored_id(rows[-1][0])


def _best(pool: list[Written], fresh: list[Written]) -> list[Written]:
    """The POOL most substantive of both, at most PER_CONVERSATION of one conversation: a pool that one
    long conversation fills would leave the sample two texts."""
    kept: list[Written] = []
    per: dict[str, int] = {}
    for written in sorted([*pool, *fresh], key=lambda w: (substance(w.text.content), w.text.message_id), reverse=True):
        if per.get(written.conversation, 0) < PER_CONVERSATION:
            kept.append(written)
            per[written.conversation] = per.get(written.conversation, 0) + 1
            if len(kept) == POOL:
                break
    return kept


def count_new_substantive(session: Session, *, user_id: int) -> tuple[int, bool]:
    """(substantive texts since the last successful job, whether a job ever succeeded)."""
    seen = last_seen_message(session, user_id=user_id)
    new = user_texts(session, user_id=user_id, after=seen, limit=50)
    return sum(1 for t in new if is_substantive(t.content)), seen > 0


@dataclass
class JobOutcome:
    job_id: int
    status: JobStatus
    changes: list[Change]
    reason: str | None = None


async def run_job(engine: Engine, *, job_id: int, complete: Complete, worker: str,
                  embed: Callable[[list[str]], np.ndarray] | None = None, vector_model: str | None = None,
                  budget_tokens: int = 1500, now: datetime | None = None, lease: timedelta = LEASE) -> JobOutcome:
    """Claim, gather evidence, infer, merge against the profile as it is *at write time*, commit once.

    Merging inside the final transaction is what lets a user's edit made during the (slow) model call
    win: the edited entry is read back as the user's own and merge never changes it. Everything after
    the claim has one error path: any exception marks the job failed with the error's type and leaves
    the profile untouched. If even that write fails, or the process dies, the lease expires instead.
    """
    token = await asyncio.to_thread(claim, engine, job_id=job_id, worker=worker, lease=lease)
    if token is None:
        raise JobLost(f"job {job_id} is held by another process")
    started = time.perf_counter()
    renewing = asyncio.create_task(_keep_renewing(engine, job_id=job_id, token=token, lease=lease))
    try:
        return await _work(engine, job_id=job_id, token=token, complete=complete, embed=embed,
                           vector_model=vector_model, budget_tokens=budget_tokens, now=now, started=started)
    except JobLost:
        raise  # another process owns the job now; its row is not ours to write
    except Exception as exc:  # the job's outermost boundary: a model, embedder or database error, or a bug
        if not isinstance(exc, InferenceFailed):
            logger.exception("hypothesis job %s raised", job_id)
        reason, ms = type(exc).__name__, (time.perf_counter() - started) * 1000
        await asyncio.to_thread(write, engine, lambda s: _finish(s, job_id, token, JobStatus.FAILED, reason=reason, ms=ms))
        logger.warning("hypothesis job %s failed: %s", job_id, reason)
        return JobOutcome(job_id, JobStatus.FAILED, [], reason)
    finally:
        renewing.cancel()


async def _keep_renewing(engine: Engine, *, job_id: int, token: str, lease: timedelta) -> None:
    """Renew the lease every third of it while the job runs; stop when the claim is lost."""
    while True:
        await asyncio.sleep(lease.total_seconds() / 3)
        try:
            if not await asyncio.to_thread(renew, engine, job_id=job_id, token=token, lease=lease):
                return
        except Exception:  # a boundary: a missed renewal only shortens the lease
            logger.exception("hypothesis job %s: lease renewal failed", job_id)


async def _work(engine: Engine, *, job_id: int, token: str, complete: Complete,
                embed: Callable[[list[str]], np.ndarray] | None, vector_model: str | None, budget_tokens: int,
                now: datetime | None, started: float) -> JobOutcome:
    job = await asyncio.to_thread(read, engine, lambda s: s.get(HypothesisJob, job_id))

    def gather(session: Session):
        seen = last_seen_message(session, user_id=job.user_id)
        if job.trigger == IMPORT_TRIGGER:  # a history brought at once: a bounded sample of its best texts
            unseen = unseen_texts(session, user_id=job.user_id, after=seen)
            # What was written here since the last job comes first, as in any job, within half the budget;
            # the imported texts' best fill the rest.
            chatted = choose_samples(unseen.chatted, [], budget_tokens=IMPORT_BUDGET_TOKENS // 2)
            left = IMPORT_BUDGET_TOKENS - sum(len(t.content) for t in chatted) // CHARS_PER_TOKEN
            samples = sorted([*chatted, *choose_import_samples(unseen.imported, budget_tokens=left)],
                             key=lambda t: t.message_id)
            considered = unseen.newest
        else:
            new = user_texts(session, user_id=job.user_id, after=seen)
            older = user_texts(session, user_id=job.user_id, before=seen, limit=20)
            samples = choose_samples(new, older, budget_tokens=budget_tokens)
            considered = max((t.message_id for t in samples), default=0)
        return (samples, considered, load_profile(session, user_id=job.user_id),
                profile.replaced_wordings(session, user_id=job.user_id))

    samples, up_to, current, replaced = await asyncio.to_thread(read, engine, gather)
    result = await infer(complete, samples, current, replaced)
    candidates, known = result.candidates, {}
    if embed is not None and candidates:
        texts = [c.text for c in candidates]
        vectors = await asyncio.to_thread(embed, [*texts, *replaced])
        candidates = [replace(c, vector=tuple(v.tolist())) for c, v in zip(candidates, vectors[:len(texts)], strict=True)]
        known = {text: tuple(v.tolist()) for text, v in zip(replaced, vectors[len(texts):], strict=True)}
    moment = now or utcnow()

    def commit(session: Session) -> list[Change]:
        fresh = load_profile(session, user_id=job.user_id)
        alive = _still_there(session, user_id=job.user_id, candidates=candidates)
        withdrawn = _withdrawn(profile.replaced_wordings(session, user_id=job.user_id), known,
                               embed if candidates else None)
        next_id = -1_000_000  # provisional ids for new entries; apply_changes maps them to real ones
        changes = merge(fresh, alive, now=moment, next_id=next_id, withdrawn=withdrawn)
        apply_changes(session, user_id=job.user_id, changes=changes, vector_model=vector_model)
        _finish(session, job_id, token, JobStatus.DONE, up_to=up_to, samples=len(samples), changes=changes,
                refused=len(result.refused), completions=result.completions, ms=(time.perf_counter() - started) * 1000)
        return changes

    changes = await asyncio.to_thread(write, engine, commit)
    logger.info("hypothesis job %s user=%s samples=%d changes=%d refused=%d", job_id, job.user_id, len(samples),
                sum(1 for c in changes if c.kind is not Kind.SKIP), len(result.refused))
    return JobOutcome(job_id, JobStatus.DONE, changes)


def _still_there(session: Session, *, user_id: int, candidates: Sequence[Candidate]) -> list[Candidate]:
    """The candidates with the evidence that is still stored, remembered, and not part of an import being
    taken back: during the model's call the person may have undone an import, deleted a chat or asked
    not to remember it. One left with no
    evidence is dropped; an entry must never rest on texts that are gone."""
    cited = {m for c in candidates for m in c.evidence}
    if not cited:
        return list(candidates)
    kept = set(session.exec(
        select(Message.id).join(Thread, col(Thread.id) == Message.thread_id)
        .outerjoin(ImportBatch, col(ImportBatch.id) == Message.import_batch_id)
        .where(col(Message.id).in_(cited), Message.user_id == user_id, Thread.remember == True,  # noqa: E712
               or_(col(Message.import_batch_id).is_(None), col(ImportBatch.status) == ImportStatus.DONE))).all())
    alive = []
    for candidate in candidates:
        left = tuple(m for m in candidate.evidence if m in kept)
        if left or not candidate.evidence:
            alive.append(replace(candidate, evidence=left))
    return alive


def _withdrawn(texts: Sequence[str], known: dict[str, tuple[float, ...]],
               embed: Callable[[list[str]], np.ndarray] | None) -> list[Withdrawn]:
    """The wordings the user replaced, with their vectors. One edited while the model was thinking is
    embedded here, inside the commit: rare, and it must count as much as the others."""
    late = [text for text in texts if text not in known]
    if late and embed is not None:
        known = {**known, **{text: tuple(v.tolist()) for text, v in zip(late, embed(late), strict=True)}}
    return [Withdrawn(text, known.get(text)) for text in texts]


def _finish(session: Session, job_id: int, token: str, status: JobStatus, *, reason: str | None = None, up_to: int = 0,
            samples: int = 0, changes: Sequence[Change] = (), refused: int = 0, completions: Sequence = (),
            ms: float = 0.0) -> None:
    """Record the outcome, fenced by the claim's token: a run whose lease was taken over raises JobLost
    and its whole transaction (the profile changes too) rolls back."""
    job = session.exec(select(HypothesisJob).where(*_ours(job_id, token)).with_for_update()).first()
    if job is None:
        raise JobLost(f"job {job_id} was taken over after its lease expired")
    job.status, job.reason, job.finished_at, job.ms = status, reason, utcnow(), ms
    job.up_to_message_id, job.samples, job.refused = up_to, samples, refused
    job.changes = sum(1 for c in changes if c.kind is not Kind.SKIP)
    job.calls = len(completions)
    job.tokens_in = sum(getattr(c, "tokens_in", 0) for c in completions)
    job.tokens_out = sum(getattr(c, "tokens_out", 0) for c in completions)
    job.model = getattr(completions[-1], "model", None) if completions else None
    session.add(job)
