"""What the model calls use: one record per request, and the sums people look at.

The gateway meters every request (assistant.llm.ModelCall); `UsageLog` writes the records in the
background, several at a time, so recording costs a turn nothing on its path. The records name the
user only by the audit's pseudonym and keep nothing of the request, so they survive "forget me" as
anonymous counts, as the audit does.

Three readers: the operators' Usage page (`usage_report`: per day, purpose, model and heaviest users,
with an estimated cost from HYPERALIGN_PRICES), a user's export (`records_of`), and the optional
daily limit per user (`used_today`), which counts what is recorded plus what is still on its way.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial

from sqlalchemy import ColumnElement, Engine, case, func, update
from sqlalchemy import select as select_columns
from sqlmodel import Session, col, select

from assistant.background import TaskSet
from assistant.llm import ModelCall
from assistant.safety.audit import FORGOTTEN, pseudonym
from memory.db import write
from memory.models import AuditRecord, HypothesisJob, JobStatus, UsageRecord, User, aware, utcnow

logger = logging.getLogger(__name__)

MILLION = 1_000_000


# --- prices (pure) ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Price:
    """US dollars per million tokens, as providers quote them."""

    tokens_in: float
    tokens_out: float

    def of(self, tokens_in: int, tokens_out: int) -> float:
        return (tokens_in * self.tokens_in + tokens_out * self.tokens_out) / MILLION


def parse_prices(text: str) -> dict[str, Price]:
    """`MODEL=IN/OUT, ...` (dollars per million tokens in and out) as a table; raises ValueError with
    what is wrong. A model written `*` prices every model not named."""
    prices: dict[str, Price] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        model, sep, rates = item.rpartition("=")
        into, slash, out = rates.partition("/")
        try:
            price = Price(float(into), float(out))
        except ValueError:
            price = None
        if (not sep or not model.strip() or not slash or price is None
                or not all(math.isfinite(v) and v >= 0 for v in (price.tokens_in, price.tokens_out))):
            raise ValueError(f"{item!r} is not MODEL=IN/OUT (dollars per million tokens, e.g. gpt-4o-mini=0.15/0.60)")
        prices[model.strip()] = price
    return prices


def price_for(prices: dict[str, Price], model: str) -> Price | None:
    return prices.get(model) or prices.get("*")


# --- recording ----------------------------------------------------------------------------------------

class UsageLog:
    """The gateway's meter: records calls off the path, a batch per write, and knows what is unwritten."""

    def __init__(self, engine: Engine, *, retry_delays: tuple[float, ...] = (0.5, 2.0, 8.0)) -> None:
        self._engine = engine
        self._retry_delays = retry_delays
        self._pending: list[tuple[datetime, ModelCall]] = []
        self._in_flight: list[tuple[datetime, ModelCall]] = []  # being written: counted until committed
        self._lock = threading.Lock()  # `used_today` reads the queue from worker threads
        self._writing = TaskSet("usage records")
        self._flushing = False

    def record(self, call: ModelCall) -> None:
        """Queue a call's record; one background write takes everything queued by the time it runs."""
        with self._lock:
            self._pending.append((utcnow(), call))
            if self._flushing:
                return
            self._flushing = True
        flush = self._flush()
        try:
            self._writing.spawn(flush)
        except RuntimeError:  # no running event loop (a synchronous caller): `settle` writes them
            flush.close()
            with self._lock:
                self._flushing = False

    async def _flush(self) -> None:
        """Write batches until the queue is empty."""
        try:
            while True:
                with self._lock:
                    batch, self._pending = self._pending, []
                    self._in_flight = batch
                    if not batch:
                        self._flushing = False  # under the lock: a record queued now starts the next flush
                        return
                await self._write(batch)
        except BaseException:
            with self._lock:
                self._flushing = False
            raise

    async def _write(self, batch: list[tuple[datetime, ModelCall]]) -> None:
        """One transaction; retried after a pause when the database fails, then record by record, dropping
        (and counting in the log) only records that can never be written, so one bad record neither blocks
        the others nor makes the queue grow."""
        for delay in (*self._retry_delays, None):
            try:
                await asyncio.to_thread(self._commit, batch)
                return
            except Exception:
                if delay is None:
                    break
                logger.warning("usage: writing %d records failed; retrying in %.1f s", len(batch), delay)
                await asyncio.sleep(delay)
        lost = 0
        for one in batch:
            try:
                await asyncio.to_thread(self._commit, [one])
            except Exception:
                lost += 1
        with self._lock:
            self._in_flight = []
        if lost:
            logger.error("usage: %d of %d records could not be written and were dropped", lost, len(batch))

    def _commit(self, batch: list[tuple[datetime, ModelCall]]) -> None:
        write(self._engine, partial(_insert, batch=batch))
        # Right after the commit: a reader of the limit counts these in the database or here, and at worst,
        # for this instant, in neither (never in both).
        with self._lock:
            self._in_flight = [item for item in self._in_flight if item not in batch]

    def queued_tokens(self, user_id: int, since: datetime) -> int:
        with self._lock:
            return sum(c.tokens_in + c.tokens_out for at, c in (*self._in_flight, *self._pending)
                       if c.user_id == user_id and at >= since)

    def used_today(self, session: Session, *, user_id: int, now: datetime | None = None) -> int:
        """Tokens the user's calls used since midnight UTC, those still queued included."""
        since = day_start(now or utcnow())
        recorded = used_since(session, user_id=user_id, since=since)  # first: then a commit between the two
        return recorded + self.queued_tokens(user_id, since)  # reads can only miss a batch, not count it twice

    async def settle(self) -> None:
        """Wait until every record so far is written (or, unwritable, dropped): shutdown, tests."""
        await self._writing.settle()
        if self._pending:  # queued by a caller without an event loop
            with self._lock:
                self._flushing = True
            await self._flush()


def _insert(session: Session, batch: list[tuple[datetime, ModelCall]]) -> None:
    # A call that ends after its user was forgotten (a job, a reply still streaming) is written
    # unlinked, as "forget me" left the others.
    names: dict[int, str] = {}
    for user_id in {call.user_id for _, call in batch if call.user_id is not None}:
        names[user_id] = pseudonym(session, user_id=user_id) if session.get(User, user_id) is not None else FORGOTTEN
    for at, call in batch:
        session.add(UsageRecord(
            at=at, pseudonym=names.get(call.user_id) if call.user_id is not None else None, purpose=call.purpose,
            model=call.model[:128], tokens_in=call.tokens_in, tokens_out=call.tokens_out,
            reasoning_tokens=call.reasoning_tokens, estimated=call.estimated, ms=call.ms, outcome=call.outcome[:32],
        ))


def day_start(moment: datetime) -> datetime:
    moment = aware(moment).astimezone(UTC)
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def until_tomorrow(moment: datetime) -> timedelta:
    return day_start(moment) + timedelta(days=1) - aware(moment)


# --- reading -------------------------------------------------------------------------------------------

def used_since(session: Session, *, user_id: int, since: datetime) -> int:
    total = session.exec(select(func.coalesce(func.sum(UsageRecord.tokens_in + UsageRecord.tokens_out), 0)).where(
        UsageRecord.pseudonym == pseudonym(session, user_id=user_id), col(UsageRecord.at) >= since)).one()
    return int(total)


def records_of(session: Session, *, user_id: int) -> list[dict]:
    """A user's own records, oldest first, for their export."""
    rows = session.exec(select(UsageRecord).where(UsageRecord.pseudonym == pseudonym(session, user_id=user_id))
                        .order_by(col(UsageRecord.id))).all()
    return [{"at": aware(r.at).isoformat(), "purpose": r.purpose, "model": r.model, "tokens_in": r.tokens_in,
             "tokens_out": r.tokens_out, "reasoning_tokens": r.reasoning_tokens, "estimated": r.estimated,
             "ms": r.ms, "outcome": r.outcome} for r in rows]


def anonymise_usage(session: Session, *, user_id: int) -> int:
    """After "forget me": the records stay as counts, tied to no one."""
    return session.exec(update(UsageRecord).where(col(UsageRecord.pseudonym) == pseudonym(session, user_id=user_id))
                        .values(pseudonym=FORGOTTEN)).rowcount


@dataclass(frozen=True)
class Group:
    """Sums over some usage records."""

    calls: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    estimated: int = 0  # calls whose counts are ours, not the server's
    failed: int = 0
    ms: float = 0.0
    cost: float | None = 0.0  # None: a model without a price is among them

    def __add__(self, other: Group) -> Group:
        cost = None if self.cost is None or other.cost is None else self.cost + other.cost
        return Group(self.calls + other.calls, self.tokens_in + other.tokens_in, self.tokens_out + other.tokens_out,
                     self.estimated + other.estimated, self.failed + other.failed, self.ms + other.ms, cost)

    @property
    def tokens(self) -> int:
        return self.tokens_in + self.tokens_out


def usage_report(session: Session, *, days: int, prices: dict[str, Price], now: datetime | None = None,
                 heaviest: int = 10) -> dict:
    """The Usage page's figures for the last `days` days (today included), as plain data."""
    today = day_start(now or utcnow())
    since = today - timedelta(days=days - 1)
    day, r = _day(session), UsageRecord
    purpose, model, who = col(r.purpose), col(r.model), col(r.pseudonym)
    # sqlalchemy's select: sqlmodel's is typed for at most four columns
    rows = session.execute(
        select_columns(day, purpose, model, func.count(), func.sum(r.tokens_in), func.sum(r.tokens_out),
                       func.sum(case((col(r.estimated).is_(True), 1), else_=0)),
                       func.sum(case((col(r.outcome) != "ok", 1), else_=0)), func.sum(r.ms))
        .where(col(r.at) >= since).group_by(day, purpose, model)).all()
    users = session.execute(
        select_columns(who, model, func.count(), func.sum(r.tokens_in), func.sum(r.tokens_out), func.sum(r.ms))
        .where(col(r.at) >= since, who.is_not(None)).group_by(who, model)).all()
    return summarise(
        [(str(d), p, m, Group(n, int(i or 0), int(o or 0), int(e or 0), int(f or 0), float(ms or 0)))
         for d, p, m, n, i, o, e, f, ms in rows],
        [(who, m, Group(n, int(i or 0), int(o or 0), ms=float(ms or 0))) for who, m, n, i, o, ms in users],
        prices=prices, days=[str((since + timedelta(days=k)).date()) for k in range(days)], heaviest=heaviest,
        unusable=unusable_answers(session, since=since),
    )


def summarise(rows: list[tuple[str, str, str, Group]], users: list[tuple[str, str, Group]], *,
              prices: dict[str, Price], days: list[str], heaviest: int, unusable: dict[str, int]) -> dict:
    """Pure: grouped records (day, purpose, model) and per-user sums as the page's tables."""
    def priced(model: str, group: Group) -> Group:
        price = price_for(prices, model)
        return Group(group.calls, group.tokens_in, group.tokens_out, group.estimated, group.failed, group.ms,
                     price.of(group.tokens_in, group.tokens_out) if price else None)

    by_day: dict[str, Group] = {d: Group() for d in days}
    by_purpose: dict[str, Group] = defaultdict(Group)
    by_model: dict[str, Group] = defaultdict(Group)
    for day, purpose, model, group in rows:
        group = priced(model, group)
        by_day[day] = by_day.get(day, Group()) + group
        by_purpose[purpose] += group
        by_model[model] += group
    by_user: dict[str, Group] = defaultdict(Group)
    for who, model, group in users:
        if who != FORGOTTEN:
            by_user[who] += priced(model, group)
    total = sum(by_day.values(), Group())
    return {
        "days": [{"day": d, **_figures(g)} for d, g in sorted(by_day.items())],
        "purposes": [{"purpose": p, **_figures(g)} for p, g in sorted(by_purpose.items())],
        "models": [{"model": m, **_figures(g)} for m, g in sorted(by_model.items(), key=lambda i: -i[1].tokens)],
        "users": [{"pseudonym": u, **_figures(g)}
                  for u, g in sorted(by_user.items(), key=lambda i: (-i[1].tokens, i[0]))[:heaviest]],
        "total": _figures(total),
        "unusable": unusable,
        "priced": bool(prices),
    }


def _figures(group: Group) -> dict:
    return {"calls": group.calls, "tokens_in": group.tokens_in, "tokens_out": group.tokens_out,
            "estimated": group.estimated, "failed": group.failed,
            "mean_ms": round(group.ms / group.calls) if group.calls else 0,
            "cost": None if group.cost is None else round(group.cost, 6)}


def unusable_answers(session: Session, *, since: datetime) -> dict[str, int]:
    """Answers with no usable JSON even after the re-ask, per purpose: failed deliberations (the reply
    went out under the fallback) and failed hypothesis jobs (the profile stayed as it was)."""
    verdicts = session.exec(select(func.count()).select_from(AuditRecord).where(
        col(AuditRecord.created_at) >= since, col(AuditRecord.failure).like("invalid verdict%"))).one()
    jobs = session.exec(select(func.count()).select_from(HypothesisJob).where(
        col(HypothesisJob.created_at) >= since, HypothesisJob.status == JobStatus.FAILED,
        HypothesisJob.reason == "InferenceFailed")).one()
    return {"safety": int(verdicts), "hypotheses": int(jobs)}


def _day(session: Session) -> ColumnElement[str]:
    """The record's UTC calendar day as 'YYYY-MM-DD', in each backend's words."""
    if session.get_bind().dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", UsageRecord.at), "YYYY-MM-DD")
    return func.strftime("%Y-%m-%d", UsageRecord.at)
