"""Usage records of model calls, on SQLite and PostgreSQL, against the loopback fake model: what each
call records, whose it is, the daily limit, the export, forget-me, and the figures of the Usage page."""

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import select

from assistant.context import counter_for
from assistant.llm import ModelCall, ModelUnavailable, OpenAIGateway, Purpose, ReplyTruncated, lists, probe
from assistant.privacy import export_data, forget
from assistant.safety.audit import FORGOTTEN, pseudonym
from assistant.safety.gate import SafetyGate
from assistant.safety.router import Router
from assistant.safety.spec import load_spec
from assistant.turn import TurnLimits, TurnRequest, Turns
from assistant.usage import UsageLog, day_start, parse_prices, usage_report
from memory import store
from memory.db import read, write
from memory.models import Author, Embedding, MessageStatus, UsageRecord
from tests.fakellm import SERVERS, WINDOWS, Reply, verdict

pytestmark = pytest.mark.anyio
SPEC = load_spec()


@pytest.fixture
def people(engine):
    def create(session):
        return [store.create_user(session, identifier=name, password="password1").id for name in ("ann", "bob")]

    return write(engine, create)


@pytest.fixture
async def metered(engine, fake_llm):
    usage = UsageLog(engine)
    gateway = OpenAIGateway(api_key=None, base_url=fake_llm.base_url, models=dict.fromkeys(Purpose, "fake-chat"),
                            windows=WINDOWS, timeout=5, max_retries=0, meter=usage.record)
    yield gateway, usage
    await gateway.close()
    await usage.settle()


def records(engine) -> list[UsageRecord]:
    return read(engine, lambda s: list(s.exec(select(UsageRecord).order_by(UsageRecord.id)).all()))


async def test_a_streamed_reply_without_server_usage_is_counted_here_and_marked_estimated(engine, people, fake_llm,
                                                                                         metered):
    gateway, usage = metered
    fake_llm.use(replace(SERVERS["lmstudio"], streams_usage=False))  # as a server that ignores stream_options
    fake_llm.script("chat", "Hello there, how are you today?")
    prompt = [{"role": "user", "content": "Say hello to me, please."}]
    text = "".join([t async for t in gateway.stream(prompt, purpose=Purpose.CHAT, user_id=people[0])])
    await usage.settle()
    (row,) = records(engine)
    counter = replace(counter_for("fake-chat"), exact=True)  # o200k as it is: fitting's margin is not usage
    assert (row.purpose, row.model, row.outcome, row.estimated) == ("chat", "fake-chat", "ok", True)
    assert row.tokens_in == counter.messages(prompt) and row.tokens_out == counter.count(text) > 0
    assert row.pseudonym == read(engine, lambda s: pseudonym(s, user_id=people[0])) and row.ms > 0


async def test_a_streamed_reply_takes_the_usage_the_server_streams(engine, people, fake_llm, metered):
    gateway, usage = metered
    fake_llm.use("vllm")
    fake_llm.script("chat", Reply(text="Hi.", usage={"prompt_tokens": 42, "completion_tokens": 7, "total_tokens": 49}))
    _ = [t async for t in gateway.stream([{"role": "user", "content": "Hi"}], purpose=Purpose.CHAT, user_id=people[0])]
    await usage.settle()
    (row,) = records(engine)
    assert (row.tokens_in, row.tokens_out, row.estimated, row.outcome) == (42, 7, False, "ok")
    assert fake_llm.requests_for("chat")[0].body["stream_options"] == {"include_usage": True}


async def test_a_whole_answer_takes_the_servers_usage_and_failures_are_recorded_too(engine, people, fake_llm, metered):
    gateway, usage = metered
    fake_llm.script("safety", Reply(text='{"decision": "comply"}'), Reply(status=500),
                    Reply(text='{"decision": "com', finish_reason="length"))
    prompt = [{"role": "user", "content": "Decide this."}]
    await gateway.complete(prompt, purpose=Purpose.SAFETY, user_id=people[1])
    with pytest.raises(ModelUnavailable):
        await gateway.complete(prompt, purpose=Purpose.SAFETY, user_id=people[1])
    with pytest.raises(ReplyTruncated):  # cut off: never parsed, but what it used was used
        await gateway.complete(prompt, purpose=Purpose.SAFETY, user_id=people[1])
    await usage.settle()
    rows = records(engine)
    assert [(r.outcome, r.tokens_in, r.tokens_out, r.estimated) for r in rows] == [
        ("ok", 1, 1, False), ("ModelUnavailable", 0, 0, False), ("ReplyTruncated", 1, 1, False)]


async def test_a_stream_the_reader_stops_is_recorded_as_stopped(engine, people, fake_llm, metered):
    gateway, usage = metered
    fake_llm.script("chat", "one two three four five six")
    stream = gateway.stream([{"role": "user", "content": "Count."}], purpose=Purpose.CHAT, user_id=people[0])
    assert await anext(stream)
    await stream.aclose()
    await usage.settle()
    (row,) = records(engine)
    assert row.outcome == "stopped" and row.tokens_out > 0


def build_turns(engine, embedder, indexes, gateway, usage, *, limit):
    limits = TurnLimits(max_message_chars=1000, history_messages=20, daily_token_limit=limit)
    safety = SafetyGate(spec=SPEC, router=Router(SPEC, embedder.encode), gateway=gateway, timeout=5)
    return Turns(engine=engine, gateway=gateway, embedder=embedder, indexes=indexes, limits=limits, safety=safety,
                 usage=usage)


def turn(user_id, text, n, thread="usage-t"):
    return TurnRequest(user_id=user_id, thread_id=f"{thread}-{user_id}", message_id=f"m{user_id}-{n}",
                       reply_id=f"r{user_id}-{n}", text=text)


async def noop(_token):
    return None


async def test_over_the_daily_limit_a_message_is_kept_and_not_sent_and_others_are_not_affected(
        engine, people, fake_llm, metered, embedder, indexes):
    gateway, usage = metered
    ann, bob = people
    turns = build_turns(engine, embedder, indexes, gateway, usage, limit=50)
    fake_llm.script("chat", Reply(text="A first reply.", usage={"prompt_tokens": 40, "completion_tokens": 20,
                                                                "total_tokens": 60}), "Bob's reply.")
    first = await turns.run(turn(ann, "Tell me something about the weather in Lisbon in spring.", 1), noop)
    assert first.complete
    used = read(engine, lambda s: usage.used_today(s, user_id=ann))
    assert used >= 50  # a safety call and a reply: the limit is reached (the turn that reaches it finishes)

    second = await turns.run(turn(ann, "And what about the autumn?", 2), noop)
    assert not second.complete and second.reply == ""
    assert "today's 50 tokens" in second.notice and "It is saved" in second.notice and "midnight UTC" in second.notice
    rows = read(engine, lambda s: store.thread_messages(s, thread_id=f"usage-t-{ann}"))
    assert [(str(r.author), r.content) for r in rows][-1] == (str(Author.USER), "And what about the autumn?")
    assert rows[-1].status == MessageStatus.COMPLETE  # the user's own message, whole
    kept = rows[-1].id
    assert read(engine, lambda s: s.exec(select(Embedding).where(Embedding.message_id == kept)).first())  # recallable

    other = await turns.run(turn(bob, "Hello, what can you do?", 1), noop)
    assert other.complete and other.reply == "Bob's reply."  # another person's allowance is their own


async def test_the_limit_resets_at_midnight_utc(engine, people, metered):
    _, usage = metered
    ann = people[0]
    yesterday = datetime.now(UTC) - timedelta(days=1)

    def old(session):
        session.add(UsageRecord(at=yesterday, pseudonym=pseudonym(session, user_id=ann), purpose="chat", model="m",
                                tokens_in=900, tokens_out=100))

    write(engine, old)
    assert read(engine, lambda s: usage.used_today(s, user_id=ann)) == 0


async def test_a_user_exports_only_their_own_usage_and_forget_me_leaves_anonymous_counts(
        engine, people, fake_llm, metered, tmp_path):
    gateway, usage = metered
    ann, bob = people
    fake_llm.script("chat", "For Ann.", "For Bob.")
    for who in (ann, bob):
        _ = [t async for t in gateway.stream([{"role": "user", "content": "Hi"}], purpose=Purpose.CHAT, user_id=who)]
    await usage.settle()
    exported = read(engine, lambda s: export_data(s, user_id=ann))["model_usage"]
    assert len(exported) == 1 and exported[0]["purpose"] == "chat" and exported[0]["tokens_out"] > 0
    assert set(exported[0]) == {"at", "purpose", "model", "tokens_in", "tokens_out", "reasoning_tokens", "estimated",
                                "ms", "outcome"}

    counts = forget(engine, None, user_id=ann, token_lifetime_s=60)
    assert counts["usage_records_anonymised"] == 1
    rows = records(engine)
    assert sorted(r.pseudonym for r in rows) == sorted([FORGOTTEN, read(engine, lambda s: pseudonym(s, user_id=bob))])
    report = read(engine, lambda s: usage_report(s, days=7, prices={}))
    assert report["total"]["calls"] == 2  # the cost stays counted
    assert [u["pseudonym"] for u in report["users"]] == [read(engine, lambda s: pseudonym(s, user_id=bob))]


async def test_the_usage_report_sums_per_day_purpose_model_and_user_with_prices(engine, people):
    ann, bob = people
    now = datetime.now(UTC)

    def seed(session):
        a, b = pseudonym(session, user_id=ann), pseudonym(session, user_id=bob)
        for at, who, purpose, model, tokens_in, tokens_out, outcome, estimated in [
            (now, a, "chat", "big", 1000, 500, "ok", False),
            (now, a, "safety", "small", 2000, 100, "ok", True),
            (now - timedelta(days=1), b, "chat", "big", 100, 50, "ModelTimeout", False),
            (now - timedelta(days=40), b, "chat", "big", 9999, 9999, "ok", False),  # outside the period
            (now, None, "chat", "unpriced", 10, 10, "ok", False),
        ]:
            session.add(UsageRecord(at=at, pseudonym=who, purpose=purpose, model=model, tokens_in=tokens_in,
                                    tokens_out=tokens_out, estimated=estimated, outcome=outcome, ms=100.0))

    write(engine, seed)
    prices = parse_prices("big=2/8, small=0.5/1")
    report = read(engine, lambda s: usage_report(s, days=30, prices=prices, now=now))
    assert len(report["days"]) == 30 and report["days"][-1]["day"] == str(now.date())
    assert report["days"][-1]["calls"] == 3 and report["days"][-2]["failed"] == 1
    purposes = {p["purpose"]: p for p in report["purposes"]}
    assert purposes["safety"]["estimated"] == 1 and purposes["safety"]["cost"] == pytest.approx(0.0011)
    models = {m["model"]: m for m in report["models"]}
    assert models["big"]["tokens_in"] == 1100 and models["big"]["cost"] == pytest.approx((1100 * 2 + 550 * 8) / 1e6)
    assert models["unpriced"]["cost"] is None and report["total"]["cost"] is None  # never a made-up total
    users = report["users"]
    assert [u["pseudonym"] for u in users] == [read(engine, lambda s: pseudonym(s, user_id=ann)),
                                              read(engine, lambda s: pseudonym(s, user_id=bob))]
    assert users[0]["mean_ms"] == 100  # each user's own latency, as per purpose and model
    assert users[0]["tokens_in"] == 3000 and users[0]["cost"] == pytest.approx((2000 + 8 * 500 + 1000 + 100) / 1e6)


async def test_a_user_over_the_limit_gets_no_hypothesis_job_until_the_next_day(engine, people, fake_llm, metered,
                                                                               embedder):
    from assistant.background import HypothesisJobs
    from memory.models import HypothesisJob

    gateway, usage = metered
    ann = people[0]

    def history(session):
        store.upsert_thread(session, thread_id="jobs-t", user_id=ann)
        for i in range(4):
            store.save_message(session, step_id=f"j{i}", thread_id="jobs-t", user_id=ann, author=Author.USER,
                               content=f"I usually plan my weekends around long walks by the river, number {i}.")
        session.add(UsageRecord(pseudonym=pseudonym(session, user_id=ann), purpose="chat", model="m",
                                tokens_in=80, tokens_out=20))

    write(engine, history)
    jobs = HypothesisJobs(engine=engine, gateway=gateway, embedder=embedder, every=1, usage=usage,
                          daily_token_limit=100)
    await jobs.after_turn(ann)
    await jobs.settle()
    assert read(engine, lambda s: s.exec(select(HypothesisJob)).all()) == [] and fake_llm.requests == []


async def test_answers_with_no_usable_json_twice_are_recorded_and_counted_never_dropped(
        engine, people, fake_llm, metered, embedder, indexes):
    from assistant.background import HypothesisJobs
    from memory.models import AuditRecord, HypothesisJob, JobStatus

    gateway, usage = metered
    ann = people[0]
    turns = build_turns(engine, embedder, indexes, gateway, usage, limit=0)
    fake_llm.script("safety", "I think this is fine to answer.", "Yes, comply.")  # prose, twice: no verdict
    fake_llm.script("chat", "Here you are.")
    result = await turns.run(turn(ann, "How do I repot a large fern without hurting its roots?", 1), noop)
    assert result.complete and result.deliberation is not None and result.deliberation.verdict is None
    (record,) = read(engine, lambda s: s.exec(select(AuditRecord)).all())
    assert record.failure.startswith("invalid verdict") and record.decision == "deliberation_failed"

    def evidence(session):
        for i in range(3):
            store.save_message(session, step_id=f"e{i}", thread_id=f"usage-t-{ann}", user_id=ann, author=Author.USER,
                               content=f"I write long and careful emails to my team about our release plans, {i}.")

    write(engine, evidence)
    fake_llm.script("hypotheses", "Ann seems careful.", "Still not JSON.")
    jobs = HypothesisJobs(engine=engine, gateway=gateway, embedder=embedder, every=1, usage=usage)
    await jobs.after_turn(ann)
    await jobs.settle()
    (job,) = read(engine, lambda s: s.exec(select(HypothesisJob)).all())
    assert (job.status, job.reason) == (JobStatus.FAILED, "InferenceFailed")
    await usage.settle()
    report = read(engine, lambda s: usage_report(s, days=7, prices={}))
    assert report["unusable"] == {"safety": 1, "hypotheses": 1}
    calls = {p["purpose"]: p["calls"] for p in report["purposes"]}
    assert calls == {"safety": 2, "chat": 1, "hypotheses": 2}  # each answer and its re-ask, all recorded


# --- what a hostile review found ---------------------------------------------------------------------

async def test_a_deliberation_cut_short_by_its_time_limit_is_still_recorded(engine, people, fake_llm, metered,
                                                                           embedder):
    gateway, usage = metered
    fake_llm.script("safety", Reply(text=verdict(), delay=1.5))
    gate = SafetyGate(spec=SPEC, router=Router(SPEC, embedder.encode), gateway=gateway, timeout=0.5)
    deliberation = await gate.decide("How do I bake bread?", [], None, user_id=people[0])
    assert deliberation.verdict is None and "timeout" in deliberation.failure
    await usage.settle()
    (row,) = records(engine)  # the server did the work: its prompt counts
    assert (row.purpose, row.outcome, row.estimated) == ("safety", "stopped", True) and row.tokens_in > 0


async def test_a_call_that_ends_after_its_user_was_forgotten_is_recorded_unlinked(engine, people, fake_llm, metered):
    gateway, usage = metered
    ann = people[0]
    fake_llm.script("hypotheses", Reply(text='{"ok": 1}', delay=0.5))
    call = asyncio.create_task(gateway.complete([{"role": "user", "content": "json"}], purpose=Purpose.HYPOTHESES,
                                                user_id=ann))
    await asyncio.sleep(0.1)
    await asyncio.to_thread(forget, engine, None, user_id=ann, token_lifetime_s=60)
    await call
    await usage.settle()
    assert [r.pseudonym for r in records(engine)] == [FORGOTTEN]


async def test_a_failed_write_is_retried_and_a_record_that_never_fits_does_not_block_the_others(
        engine, people, monkeypatch):
    import assistant.usage as usage_module

    usage = UsageLog(engine, retry_delays=(0.01,))
    real, attempts = usage_module.write, []

    def flaky(engine_, work):
        attempts.append(work.keywords["batch"])
        if len(attempts) == 1:
            raise RuntimeError("database is locked")  # SQLite busy, a PostgreSQL failover
        if any(call.model == "poison" for _, call in work.keywords["batch"]):
            raise RuntimeError("this record can never be written")
        return real(engine_, work)

    monkeypatch.setattr(usage_module, "write", flaky)
    call = ModelCall("chat", "m", people[0], 10, 5, 0, False, 12.0, "ok")
    usage.record(call)
    await usage.settle()
    assert len(records(engine)) == 1  # written on the retry, before settle returned (the app's shutdown)
    usage.record(replace(call, model="poison"))
    usage.record(call)
    await usage.settle()
    assert [r.model for r in records(engine)] == ["m", "m"] and usage.queued_tokens(people[0], day_start(
        datetime.now(UTC))) == 0


async def test_a_record_made_without_an_event_loop_is_written_by_settle(engine, people):
    usage = UsageLog(engine)
    call = ModelCall("chat", "m", people[0], 10, 5, 0, False, 12.0, "ok")
    await asyncio.to_thread(usage.record, call)  # a worker thread has no running loop
    assert usage.queued_tokens(people[0], day_start(datetime.now(UTC))) == 15
    await usage.settle()
    assert len(records(engine)) == 1


@pytest.mark.parametrize("status", [400, 422])
async def test_a_server_that_refuses_stream_options_is_asked_without_them_and_doctor_says_so(
        engine, people, fake_llm, metered, status):
    gateway, usage = metered
    refusal = (status, {"error": {"message": "Unrecognized request argument supplied: stream_options",
                                  "type": "invalid_request_error", "param": None, "code": None}})
    fake_llm.use(replace(SERVERS["openai"], refuse_stream_options=refusal))
    fake_llm.script("chat", "Hello.", "Again.")
    for _ in range(2):
        said = [t async for t in gateway.stream([{"role": "user", "content": "Hi"}], purpose=Purpose.CHAT,
                                                user_id=people[0])]
        assert "".join(said).strip() in ("Hello.", "Again.")
    sent = [("stream_options" in r.body) for r in fake_llm.requests_for("chat")]
    assert sent == [True, False, False]  # refused once; not asked again
    await usage.settle()
    assert [r.estimated for r in records(engine)] == [True, True]
    fake_llm.script("doctor", Reply(text="Hi"), Reply(text='{"ok": true}'))  # the probe's own calls
    found = await probe(api_key=None, base_url=fake_llm.base_url, model="fake-chat", timeout=5)
    assert found.streams and found.usage_streamed is False and found.problem is None


def test_ollama_lists_a_pulled_model_with_its_latest_tag():
    assert lists(["llama3.2:latest", "qwen3:8b"], "llama3.2") and lists(["llama3.2"], "llama3.2:latest")
    assert not lists(["llama3.2:1b"], "llama3.2")
