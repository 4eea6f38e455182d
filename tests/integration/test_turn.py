"""One chat turn on real databases, against the loopback fake model."""

import asyncio

import pytest
from sqlalchemy import text

from assistant.llm import OfflineModel, OpenAIGateway, Purpose
from assistant.safety.gate import SafetyGate
from assistant.safety.router import Router
from assistant.safety.spec import load_spec
from assistant.turn import TurnLimits, TurnRequest, Turns
from memory import store
from memory.db import read, write
from memory.models import Author, MessageStatus
from tests.fakellm import WINDOWS, Reply
from tests.waiting import eventually

pytestmark = pytest.mark.anyio
SPEC = load_spec()


@pytest.fixture
async def turns_for(engine, embedder, indexes):
    built = []

    def build(gateway, *, max_chars=1000, history=20, embed_replies=True):
        limits = TurnLimits(max_message_chars=max_chars, history_messages=history)
        safety = None if gateway.offline else SafetyGate(spec=SPEC, router=Router(SPEC, embedder.encode),
                                                         gateway=gateway, timeout=5)
        turns = Turns(engine=engine, gateway=gateway, embedder=embedder, indexes=indexes, limits=limits,
                      safety=safety, embed_replies=embed_replies)
        built.append((turns, gateway))
        return turns

    yield build
    for turns, gateway in built:
        await turns.settle()  # background vector writes finish inside the test's event loop
        await gateway.close()


def fake_gateway(fake, timeout=5.0):
    models = dict.fromkeys(Purpose, "fake-chat")
    return OpenAIGateway(api_key=None, base_url=fake.base_url, models=models, windows=WINDOWS, timeout=timeout,
                         max_retries=0)


@pytest.fixture
def alice(engine):
    return write(engine, lambda s: store.create_user(s, identifier="alice", password="password1"))


_count = 0


def request(user, text, thread="t1"):
    global _count
    _count += 1
    return TurnRequest(user_id=user.id, thread_id=thread, message_id=f"u{_count}", reply_id=f"r{_count}", text=text)


class Screen:
    """What the user sees: tokens as they arrive."""

    def __init__(self):
        self.tokens = []

    async def __call__(self, token):
        self.tokens.append(token)


def messages(engine, thread="t1"):
    rows = read(engine, lambda s: store.thread_messages(s, thread_id=thread))
    return [(str(r.author), r.content, str(r.status), r.status_reason) for r in rows]


async def test_the_users_message_is_committed_before_the_model_is_called(engine, alice, fake_llm, turns_for):
    seen_in_db = []

    class Watching(Screen):
        async def __call__(self, token):
            # A separate connection: only committed rows are visible here.
            with engine.connect() as conn:
                seen_in_db.append(conn.execute(text("SELECT content FROM message")).scalars().all())
            await super().__call__(token)

    fake_llm.script("chat", "Hello back")
    result = await turns_for(fake_gateway(fake_llm)).run(request(alice, "hello"), Watching())
    assert result.complete and result.reply == "Hello back"
    assert seen_in_db[0] == ["hello"]
    assert messages(engine) == [("user", "hello", "complete", None), ("assistant", "Hello back", "complete", None)]


async def test_the_reply_sees_the_threads_history(engine, alice, fake_llm, turns_for):
    fake_llm.script("chat", "first answer", "second answer")
    turns = turns_for(fake_gateway(fake_llm))
    await turns.run(request(alice, "my name is Ada"), Screen())
    await turns.run(request(alice, "what is my name?"), Screen())
    sent = fake_llm.requests_for("chat")[-1].body["messages"]
    assert [(m["role"], m["content"]) for m in sent[1:]] == [
        ("user", "my name is Ada"), ("assistant", "first answer"), ("user", "what is my name?")]


async def test_a_failing_model_keeps_the_message_stores_no_reply_and_the_next_message_works(
        engine, alice, fake_llm, turns_for):
    fake_llm.script("chat", Reply(status=500), "working again")
    turns = turns_for(fake_gateway(fake_llm))
    failed = await turns.run(request(alice, "are you there?"), Screen())
    assert not failed.complete and failed.reply == ""
    assert "could not be reached" in failed.notice and "Your message is saved" in failed.notice
    assert messages(engine) == [("user", "are you there?", "complete", None)]
    ok = await turns.run(request(alice, "again"), Screen())
    assert ok.complete and messages(engine)[-1] == ("assistant", "working again", "complete", None)


async def test_a_timeout_is_reported_and_nothing_but_the_message_is_kept(engine, alice, fake_llm, turns_for):
    fake_llm.script("chat", Reply(text="too late", delay=1.0))
    result = await turns_for(fake_gateway(fake_llm, timeout=0.3)).run(request(alice, "quick?"), Screen())
    assert "took too long" in result.notice
    assert messages(engine) == [("user", "quick?", "complete", None)]


async def test_a_stream_broken_midway_keeps_the_partial_reply_marked_incomplete(engine, alice, fake_llm, turns_for):
    fake_llm.script("chat", Reply(text="the answer is forty two", break_after=3), "recovered")
    screen = Screen()
    turns = turns_for(fake_gateway(fake_llm))
    result = await turns.run(request(alice, "tell me"), screen)
    assert "".join(screen.tokens) == "the answer is" == result.reply
    assert "broke" in result.notice and "marked as incomplete" in result.notice
    assert messages(engine)[-1] == ("assistant", "the answer is", "incomplete", "StreamBroken")
    assert (await turns.run(request(alice, "go on"), Screen())).complete


@pytest.mark.parametrize(("reply", "reason", "said"), [
    (Reply(text="the answer is", finish_reason=None, done=False), "StreamBroken", "broke"),
    (Reply(text="the answer is", finish_reason="length"), "ReplyTruncated", "token limit"),
], ids=["no-finish-reason", "length"])
async def test_a_stream_without_a_proper_finish_is_kept_incomplete_and_the_user_told(
        engine, alice, fake_llm, turns_for, reply, reason, said):
    fake_llm.script("chat", reply)
    result = await turns_for(fake_gateway(fake_llm)).run(request(alice, "tell me"), Screen())
    assert not result.complete and result.reply == "the answer is"
    assert said in result.notice and "marked as incomplete" in result.notice
    assert messages(engine)[-1] == ("assistant", "the answer is", "incomplete", reason)


async def test_an_empty_message_stores_nothing_and_calls_no_model(engine, alice, fake_llm, turns_for):
    result = await turns_for(fake_gateway(fake_llm)).run(request(alice, " \n\t\x00 "), Screen())
    assert "empty" in result.notice
    assert messages(engine) == [] and fake_llm.requests == []


async def test_a_huge_message_is_kept_but_not_sent(engine, alice, fake_llm, turns_for):
    huge = "word " * 40_000  # 200,000 characters
    result = await turns_for(fake_gateway(fake_llm), max_chars=20_000).run(request(alice, huge), Screen())
    assert "200,000 characters" in result.notice and "20,000" in result.notice
    assert fake_llm.requests == []
    assert len(messages(engine)[0][1]) == 200_000


async def test_control_characters_and_lone_surrogates_are_stored_clean(engine, alice, fake_llm, turns_for):
    fake_llm.script("chat", "ok")
    await turns_for(fake_gateway(fake_llm)).run(request(alice, "a\x00b \ud83d c\x1b[31m"), Screen())
    assert messages(engine)[0][1] == "ab \ufffd c[31m"
    assert fake_llm.requests_for("chat")[0].body["messages"][-1]["content"] == "ab \ufffd c[31m"


async def test_a_message_sent_while_a_reply_streams_waits_its_turn(engine, alice, fake_llm, turns_for):
    fake_llm.script("chat", Reply(text="slow first reply", chunk_delay=0.1), "second reply")
    turns = turns_for(fake_gateway(fake_llm))
    first = asyncio.create_task(turns.run(request(alice, "one"), Screen()))
    await eventually(lambda: fake_llm.requests_for("chat"))  # the first reply is streaming
    second = await turns.run(request(alice, "two"), Screen())
    assert (await first).complete and second.complete
    assert [m[1] for m in messages(engine)] == ["one", "slow first reply", "two", "second reply"]
    # the second request saw the whole first exchange
    sent = [m["content"] for m in fake_llm.requests_for("chat")[1].body["messages"][1:]]
    assert sent == ["one", "slow first reply", "two"]


async def test_stopping_a_reply_keeps_what_was_shown(engine, alice, fake_llm, turns_for):
    fake_llm.script("chat", Reply(text="a b c d e f g h", chunk_delay=0.1))
    screen = Screen()
    task = asyncio.create_task(turns_for(fake_gateway(fake_llm)).run(request(alice, "count"), screen))
    while len(screen.tokens) < 2:
        await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await eventually(lambda: messages(engine)[-1][0] == "assistant")  # the shielded write completes
    author, content, status, reason = messages(engine)[-1]
    assert author == "assistant" and status == "incomplete" and reason == "stopped"
    assert content == "".join(screen.tokens)


async def test_another_users_thread_is_refused(engine, alice, fake_llm, turns_for):
    bob = write(engine, lambda s: store.create_user(s, identifier="bob", password="password1"))
    fake_llm.script("chat", "hi alice")
    turns = turns_for(fake_gateway(fake_llm))
    await turns.run(request(alice, "mine"), Screen())
    with pytest.raises(store.NotOwner):
        await turns.run(request(bob, "let me in"), Screen())
    assert [m[1] for m in messages(engine)] == ["mine", "hi alice"]


async def test_offline_replies_are_labelled_and_stored(engine, alice, turns_for):
    result = await turns_for(OfflineModel()).run(request(alice, "hello?"), Screen())
    assert result.complete and "Offline mode" in result.reply
    rows = read(engine, lambda s: store.thread_messages(s, thread_id="t1"))
    assert rows[-1].author == Author.ASSISTANT and rows[-1].model == "offline model"
    assert rows[-1].status == MessageStatus.COMPLETE


async def test_recall_in_the_turn_brings_back_the_users_own_fact_and_never_anothers(
        engine, alice, fake_llm, turns_for):
    bob = write(engine, lambda s: store.create_user(s, identifier="bob", password="password1"))
    turns = turns_for(fake_gateway(fake_llm))
    fake_llm.script("chat", "Noted.", "Noted.", "Your code is 4711.")
    await turns.run(request(alice, "Please remember my locker code is 4711", thread="a-old"), Screen())
    await turns.run(request(bob, "Please remember my locker code is 9902", thread="b-old"), Screen())
    recalled = []

    async def show(items):
        recalled.extend(items)

    result = await turns.run(request(alice, "What is my locker code?", thread="a-new"), Screen(), show)
    assert [r.content for r in recalled][0] == "Please remember my locker code is 4711"
    assert result.recalled == tuple(recalled) and all(r.thread_id == "a-old" for r in recalled)
    system = fake_llm.requests_for("chat")[-1].body["messages"][0]["content"]
    assert "4711" in system and "9902" not in system
    assert "not instructions" in system


async def test_both_sides_are_embedded_the_reply_off_the_path(engine, alice, fake_llm, turns_for, embedder):
    from memory.vectors import count_pending

    fake_llm.script("chat", "Sure, noted.")
    turns = turns_for(fake_gateway(fake_llm))
    await turns.run(request(alice, "I moved to Porto"), Screen())
    await turns.settle()
    assert count_pending(engine, model=embedder.model_name, width=embedder.dimension * 4) == 0
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM embedding")).scalar() == 2


async def test_with_a_worker_the_reply_is_left_to_its_catch_up_and_the_message_is_not(
        engine, alice, fake_llm, turns_for, embedder):
    from memory.vectors import embed_pending

    fake_llm.script("chat", "Sure, noted: Porto.")
    turns = turns_for(fake_gateway(fake_llm), embed_replies=False)  # HYPERALIGN_WEB_RUNS_JOBS=false
    await turns.run(request(alice, "I moved to Porto"), Screen())
    await turns.settle()

    def embedded():
        with engine.connect() as conn:
            return [row[0] for row in conn.execute(text(
                "SELECT m.author FROM embedding e JOIN message m ON m.id = e.message_id ORDER BY m.id"))]

    assert embedded() == ["user"]  # recall needs the message's vector now; the reply's can wait
    assert embed_pending(engine, embedder) == 1  # what the worker's round does
    assert embedded() == ["user", "assistant"]


async def test_the_style_card_learns_each_message_and_reaches_the_prompt(engine, alice, fake_llm, turns_for):
    from memory import profile

    fake_llm.script("chat", "ok", "ok", "ok")
    turns = turns_for(fake_gateway(fake_llm))
    for text_ in ("hey!! wanna grab lunch? 😀", "lol yeah i'm starving", "ok cool, see you at noon"):
        await turns.run(request(alice, text_), Screen())
    system = fake_llm.requests_for("chat")[-1].body["messages"][0]["content"]
    assert "How this user writes" in system and "it is not an instruction" in system
    assert "- Writes short messages:" in system and "Leans casual" in system
    assert "How this user writes" not in fake_llm.requests_for("chat")[1].body["messages"][0]["content"]  # not before 3
    stored = read(engine, lambda s: profile.load_style(s, user_id=alice.id))
    assert stored["messages"] == 3 and stored["emoji"] == 1


async def test_the_style_card_works_offline_and_goes_with_the_user(engine, alice, turns_for):
    from memory import profile

    turns = turns_for(OfflineModel())
    await turns.run(request(alice, "Good morning, here is my first note."), Screen())
    assert read(engine, lambda s: profile.load_style(s, user_id=alice.id))["greetings"] == 1
    write(engine, lambda s: store.delete_user(s, user=s.get(store.User, alice.id)))
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM style_card")).scalar() == 0


async def test_a_profile_grows_from_chat_and_the_next_reply_is_written_for_the_person(
        engine, alice, fake_llm, turns_for, embedder):
    import json as json_

    from assistant.background import HypothesisJobs
    from memory import profile

    gateway = fake_gateway(fake_llm)
    turns = turns_for(gateway)
    jobs = HypothesisJobs(engine=engine, gateway=gateway, embedder=embedder, every=6)
    bob = write(engine, lambda s: store.create_user(s, identifier="bob", password="password1"))
    fake_llm.script("chat", "a", "b", "c", "d")
    fake_llm.script("hypotheses", json_.dumps({"hypotheses": [
        {"action": "add", "facet": "preference", "text": "Wants the short version first.", "evidence": [2],
         "confidence": 0.8, "entry": None, "stated": False}]}))
    for text_ in ("I always sketch a map before I write any code at all.",
                  "Give me the short version first and details only when I ask.",
                  "Concrete examples help me far more than abstract theory does."):
        await turns.run(request(alice, text_), Screen())
        await jobs.after_turn(alice.id)
    await jobs.settle()
    assert [e.text for e in read(engine, lambda s: profile.entries(s, user_id=alice.id))] == [
        "Wants the short version first."]
    await turns.run(request(alice, "How do I start learning Rust?"), Screen())
    system = fake_llm.requests_for("chat")[-1].body["messages"][0]["content"]
    assert "What is known about this user" in system and "- Wants the short version first. (preference)" in system
    assert "they are not instructions" in system
    fake_llm.script("chat", "e")
    await turns.run(request(bob, "How do I start learning Rust?", thread="bob-t"), Screen())
    assert "short version" not in fake_llm.requests_for("chat")[-1].body["messages"][0]["content"]
    hypothesis_request = fake_llm.requests_for("hypotheses")[0].body["messages"][1]["content"]
    assert "sketch a map" in hypothesis_request  # the hypotheses purpose saw only alice's own texts


async def test_the_users_own_similar_texts_are_style_exemplars_not_memories(engine, alice, fake_llm, turns_for):
    fake_llm.script("chat", "Noted.", "Sure.")
    turns = turns_for(fake_gateway(fake_llm))
    await turns.run(request(alice, "Quick q: best way to learn Rust?? asking for a friend lol", thread="old"), Screen())
    await turns.run(request(alice, "Quick q: best way to learn Go?? lol", thread="new"), Screen())
    system = fake_llm.requests_for("chat")[-1].body["messages"][0]["content"]
    exemplars = system.split("as examples of how they write")[1]
    assert "«Quick q: best way to learn Rust?? asking for a friend lol»" in exemplars
    assert "the user said: «Quick q: best way to learn Rust" not in system  # not quoted twice


async def test_chainlits_stop_notice_never_reaches_the_models_window(engine, alice, fake_llm, turns_for):
    from assistant.ui.datalayer import OurDataLayer
    from tests.integration.test_datalayer import signed_in, stop_notice

    fake_llm.script("chat", Reply(text="a long answer", chunk_delay=0.2), "next answer")
    turns = turns_for(fake_gateway(fake_llm))
    running = asyncio.create_task(turns.run(request(alice, "tell me"), Screen()))
    while not fake_llm.requests_for("chat"):
        await asyncio.sleep(0.02)
    signed_in(alice, "t1")
    await OurDataLayer(engine).create_step(stop_notice("t1"))  # the user pressed stop
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    await turns.run(request(alice, "go on"), Screen())
    sent = fake_llm.requests_for("chat")[-1].body["messages"]
    assert not any("Task manually stopped." in m["content"] for m in sent)
    assert "Task manually stopped." not in [content for _, content, _, _ in messages(engine)]


async def test_a_thread_is_titled_by_its_first_message_that_names_a_subject(engine, alice, turns_for):
    turns = turns_for(OfflineModel())

    def title():
        return read(engine, lambda s: store.get_thread(s, thread_id="t9")).name

    await turns.run(request(alice, "hi!", thread="t9"), Screen())
    assert title() == "hi!"  # small talk titles a thread only until something better comes
    await turns.run(request(alice, "Could you help me choose a pannier rack for a steel touring bike?", thread="t9"),
                    Screen())
    assert title() == "Could you help me choose a pannier rack for a…"
    await turns.run(request(alice, "And what about mudguards for winter?", thread="t9"), Screen())
    assert title() == "Could you help me choose a pannier rack for a…"  # the first subject stays


async def test_a_reasoning_models_thinking_is_never_shown_as_or_stored_with_the_reply(
        engine, alice, fake_llm, turns_for):
    from tests.fakellm import verdict

    # The verdict, too, comes after a thinking block that quotes the other decision.
    fake_llm.respond("safety", lambda body: '<think>Not {"decision": "refuse"}; it is a greeting.</think>' + verdict())
    fake_llm.script("chat", Reply(chunks=["<think>", "They said hi. ", "Greet them.</think>", "\n\nHi ", "Ada!"]),
                    Reply(chunks=["The template opened the block. ", "</think>\n", "Fine, thanks."]))
    turns = turns_for(fake_gateway(fake_llm))
    screen, thought = Screen(), []

    async def on_reasoning(text):
        thought.append(text)

    first = await turns.run(request(alice, "hi"), screen, on_reasoning=on_reasoning)
    assert first.complete and first.reply == "Hi Ada!" and "".join(screen.tokens) == "Hi Ada!"
    assert "".join(thought) == "They said hi. Greet them." and first.deliberation.decision == "comply"
    second = await turns.run(request(alice, "how are you?"), Screen())
    assert second.reply == "Fine, thanks."  # known only when the closing tag came: cleaned before it is kept
    assert [m[1] for m in messages(engine) if m[0] == "assistant"] == ["Hi Ada!", "Fine, thanks."]
    window = fake_llm.requests_for("chat")[-1].body["messages"]
    assert not any("think" in m["content"] for m in window)  # the next prompt never carries thinking


async def test_an_answer_that_was_all_thinking_tells_the_user_and_keeps_their_message(
        engine, alice, fake_llm, turns_for):
    fake_llm.script("chat", Reply(chunks=["<think>Let me consider", " every angle"], finish_reason="length"))
    result = await turns_for(fake_gateway(fake_llm)).run(request(alice, "tell me a story"), Screen())
    assert not result.complete and "thinking" in result.notice and "Your message is saved" in result.notice
    assert messages(engine)[0] == ("user", "tell me a story", "complete", None)
    assert all(m[1] == "" or m[0] == "user" for m in messages(engine))


async def test_a_4k_model_with_a_long_conversation_and_a_full_profile_still_answers(
        engine, alice, fake_llm, turns_for, embedder):
    """Every request of the turn (deliberation and reply) fits a 4,096-token window the fake enforces
    as vLLM does, and a hypotheses job over long texts fits it too."""
    from assistant.background import HypothesisJobs
    from memory.models import ProfileEntry

    small = OpenAIGateway(api_key=None, base_url=fake_llm.base_url, models=dict.fromkeys(Purpose, "llama3.2"),
                          windows=dict.fromkeys(Purpose, 4096), timeout=5, max_retries=0)
    fake_llm.window, fake_llm.window_style = 4096, "vllm"
    essay = " ".join(["I keep a long diary about gardening, cooking, travel and the books I read."] * 40)

    def history(session):
        store.upsert_thread(session, thread_id="t1", user_id=alice.id)
        for i in range(30):
            store.save_message(session, step_id=f"old{i}", thread_id="t1", user_id=alice.id,
                               author=Author.USER if i % 2 == 0 else Author.ASSISTANT, content=essay,
                               status=MessageStatus.COMPLETE)
        for i in range(60):
            session.add(ProfileEntry(user_id=alice.id, facet="preference", text=f"Prefers option {i}: " + "x" * 60))

    write(engine, history)
    fake_llm.script("chat", "Here is a short answer.")
    turns = turns_for(small, max_chars=20_000)
    result = await turns.run(request(alice, essay + " So what should I plant first?"), Screen())
    assert result.complete and result.reply == "Here is a short answer."
    assert not result.deliberation.failed
    for record in fake_llm.requests:
        assert fake_llm.tokens(record.body) + record.body["max_tokens"] <= 4096, record.purpose
    reply_prompt = fake_llm.requests_for("chat")[0].body["messages"]
    assert reply_prompt[-1]["content"].endswith("So what should I plant first?")  # the message, its end kept
    fake_llm.script("hypotheses", '{"hypotheses": []}')
    jobs = HypothesisJobs(engine=engine, gateway=small, embedder=embedder, every=1)
    await jobs.after_turn(alice.id, chat_ended=True)
    await jobs.settle()
    (asked,) = fake_llm.requests_for("hypotheses")
    assert fake_llm.tokens(asked.body) + asked.body["max_tokens"] <= 4096
