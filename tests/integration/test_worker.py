"""`hyperalign worker` on SQLite and PostgreSQL, against the fake model: workers share the queue without
running a job twice, take over a dead worker's job once its lease expired, and embed what lacks a vector;
a web process set not to run jobs leaves them queued."""

import asyncio
import json
from datetime import timedelta

import pytest
from sqlalchemy import update as sql_update
from sqlmodel import select

from assistant.background import HypothesisJobs
from assistant.worker import Worker
from hypotheses.job import claim, enqueue
from memory import store
from memory.db import read, write
from memory.models import Author, Embedding, HypothesisJob, JobStatus, utcnow
from tests.fakellm import Reply

pytestmark = pytest.mark.anyio

TEXTS = ["I always sketch a map before I write a single line of code.",
         "Give me the short version first, and the details only if I ask for them.",
         "Honestly I learn best from concrete examples, not from abstract theory."]
ANSWER = json.dumps({"hypotheses": [{"action": "add", "facet": "preference", "text": "Wants the short version first.",
                                     "evidence": [2], "confidence": 0.7, "entry": None, "stated": False}]})




def people(engine, count: int, *, written=timedelta(minutes=10)) -> list[int]:
    """People with three substantive messages each, written `written` ago."""
    def create(session):
        ids = []
        for n in range(count):
            user = store.create_user(session, identifier=f"person{n}", password="password1")
            store.upsert_thread(session, thread_id=f"t{n}", user_id=user.id)
            for i, content in enumerate(TEXTS):
                store.save_message(session, step_id=f"m{n}-{i}", thread_id=f"t{n}", user_id=user.id,
                                   author=Author.USER, content=content, created_at=utcnow() - written)
            ids.append(user.id)
        return ids

    return write(engine, create)


def jobs_for(engine, gateway, embedder, *, run_here=True, lease=timedelta(minutes=5)):
    return HypothesisJobs(engine=engine, gateway=gateway, embedder=embedder, every=6, lease=lease, run_here=run_here)


async def test_two_workers_share_the_queue_and_never_run_a_job_twice(engine, fake_llm, gateway, embedder):
    users = people(engine, 5)
    for user_id in users:
        write(engine, lambda s, u=user_id: enqueue(s, user_id=u, trigger="messages"))
    fake_llm.respond("hypotheses", lambda _body: Reply(text=ANSWER, delay=0.2))  # long enough to overlap
    first, second = (Worker(engine=engine, jobs=jobs_for(engine, gateway, embedder), embedder=None, concurrency=3)
                     for _ in range(2))
    rounds = []
    while read(engine, lambda s: [j for j in s.exec(select(HypothesisJob)).all() if j.status == JobStatus.QUEUED]):
        rounds += await asyncio.gather(first.round(), second.round())
    assert sum(r.jobs for r in rounds) == 5  # each job run by exactly one of them
    done = read(engine, lambda s: s.exec(select(HypothesisJob)).all())
    assert sorted(j.user_id for j in done) == sorted(users) and {j.status for j in done} == {JobStatus.DONE}
    assert len(fake_llm.requests_for("hypotheses")) == 5  # one model call per job, none twice


async def test_a_dead_workers_job_is_taken_over_once_its_lease_expired(engine, fake_llm, gateway, embedder):
    (user_id,) = people(engine, 1)
    job = write(engine, lambda s: enqueue(s, user_id=user_id, trigger="messages"))
    assert claim(engine, job_id=job.id, worker="killed-worker") is not None  # then the process died
    crew = Worker(engine=engine, jobs=jobs_for(engine, gateway, embedder), embedder=None)
    assert (await crew.round()).jobs == 0  # its lease still runs: not ours to take
    write(engine, lambda s: s.exec(sql_update(HypothesisJob).where(HypothesisJob.id == job.id)
                                  .values(lease_until=utcnow() - timedelta(seconds=1))))
    fake_llm.script("hypotheses", ANSWER)
    assert (await crew.round()).jobs == 1
    taken = read(engine, lambda s: s.get(HypothesisJob, job.id))
    assert taken.status == JobStatus.DONE and not taken.claimed_by.startswith("killed-worker")


async def test_a_worker_embeds_the_messages_that_lack_a_vector_and_leaves_those_still_in_their_turn(
        engine, gateway, embedder):
    (user_id,) = people(engine, 1)
    write(engine, lambda s: store.save_message(s, step_id="just-now", thread_id="t0", user_id=user_id,
                                               author=Author.USER, content="A message whose turn is still running."))
    crew = Worker(engine=engine, jobs=jobs_for(engine, gateway, embedder), embedder=embedder)
    assert (await crew.round()).embedded == 3  # not the one sent a moment ago: its turn embeds it
    assert len(read(engine, lambda s: s.exec(select(Embedding).where(Embedding.user_id == user_id)).all())) == 3
    assert (await crew.round()).embedded == 0


async def test_a_web_process_set_not_to_run_jobs_leaves_them_queued_for_a_worker(engine, fake_llm, gateway, embedder):
    (user_id,) = people(engine, 1)
    web = jobs_for(engine, gateway, embedder, run_here=False)
    await web.after_turn(user_id)  # three substantive texts: the first job is due
    await web.settle()
    (job,) = read(engine, lambda s: s.exec(select(HypothesisJob)).all())
    assert job.status == JobStatus.QUEUED and fake_llm.requests == []
    fake_llm.script("hypotheses", ANSWER)
    assert (await Worker(engine=engine, jobs=jobs_for(engine, gateway, embedder), embedder=None).round()).jobs == 1


async def test_a_job_waiting_for_busy_workers_keeps_its_place_in_the_queue(engine, fake_llm, gateway, embedder):
    first, second = people(engine, 2)
    old = write(engine, lambda s: enqueue(s, user_id=first, trigger="messages", lease=timedelta(seconds=1)))
    write(engine, lambda s: enqueue(s, user_id=second, trigger="messages"))
    await asyncio.sleep(1.2)  # longer than the queued job's lease: the workers are busy elsewhere
    web = jobs_for(engine, gateway, embedder, run_here=False)
    await web.after_turn(first)  # due again, but it waits already: neither failed nor queued anew
    assert read(engine, lambda s: [(j.id, j.status) for j in s.exec(select(HypothesisJob)
                                                                     .order_by(HypothesisJob.id)).all()])[0] == (
        old.id, JobStatus.QUEUED)
    assert len(read(engine, lambda s: s.exec(select(HypothesisJob)).all())) == 2


async def test_a_web_process_runs_the_job_its_dead_predecessor_queued(engine, fake_llm, gateway, embedder):
    (user_id,) = people(engine, 1)
    orphan = write(engine, lambda s: enqueue(s, user_id=user_id, trigger="messages"))  # then that process died
    fake_llm.script("hypotheses", ANSWER)
    web = jobs_for(engine, gateway, embedder, run_here=True)
    await web.after_turn(user_id)
    await web.settle()
    assert read(engine, lambda s: s.get(HypothesisJob, orphan.id)).status == JobStatus.DONE


async def test_the_workers_loop_runs_jobs_as_they_come_and_stops_when_told(engine, fake_llm, gateway, embedder):
    (user_id,) = people(engine, 1)
    crew = Worker(engine=engine, jobs=jobs_for(engine, gateway, embedder), embedder=None)
    stop = asyncio.Event()
    running = asyncio.create_task(crew.run(poll_s=0.1, stop=stop))
    await asyncio.sleep(0.3)  # idle rounds first
    fake_llm.script("hypotheses", ANSWER)
    job = write(engine, lambda s: enqueue(s, user_id=user_id, trigger="messages"))
    for _ in range(100):
        if read(engine, lambda s: s.get(HypothesisJob, job.id)).status == JobStatus.DONE:
            break
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(running, 5)
    assert read(engine, lambda s: s.get(HypothesisJob, job.id)).status == JobStatus.DONE


def test_the_setting_decides_whether_the_web_process_runs_jobs(engine, database_url, fake_llm, monkeypatch):
    from assistant.config import load_settings
    from assistant.wiring import build_app

    (user_id,) = people(engine, 1)
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("OPENAI_BASE_URL", fake_llm.base_url)
    monkeypatch.setenv("HYPERALIGN_WEB_RUNS_JOBS", "false")
    app = build_app(load_settings())

    async def turn_ends() -> None:
        await app.jobs.after_turn(user_id)
        await app.aclose()

    asyncio.run(turn_ends())
    (job,) = read(engine, lambda s: s.exec(select(HypothesisJob)).all())
    assert job.status == JobStatus.QUEUED and fake_llm.requests == []  # left for a worker
