"""Chainlit's data layer over our tables, driven the way Chainlit drives it (a real websocket session)."""

import uuid

import pytest
from chainlit.context import init_ws_context
from chainlit.session import WebsocketSession
from chainlit.types import Feedback, Pagination, ThreadFilter
from sqlalchemy import text

from assistant.ui.datalayer import OurDataLayer, persisted_user
from memory import store
from memory.db import read, write
from memory.models import Author, MessageStatus

pytestmark = pytest.mark.anyio


async def _ignore(*args, **kwargs):
    return None


def signed_in(user, thread_id):
    """A websocket session for `user` on `thread_id`, set as the current Chainlit context."""
    session = WebsocketSession(
        id=str(uuid.uuid4()), socket_id=str(uuid.uuid4()), emit=_ignore, emit_call=_ignore,
        user_env={}, client_type="webapp", thread_id=thread_id, user=persisted_user(user),
    )
    session.has_first_interaction = True  # Chainlit queues step writes until the first message
    init_ws_context(session)
    return session


@pytest.fixture
def layer(engine):
    return OurDataLayer(engine)


@pytest.fixture
def users(engine):
    make = lambda name: write(engine, lambda s: store.create_user(s, identifier=name, password="password1"))  # noqa: E731
    return make("alice"), make("bob")


def step(thread_id, kind, output, **extra):
    return {"id": str(uuid.uuid4()), "threadId": thread_id, "type": kind, "name": "x", "output": output,
            "input": "", "createdAt": None, **extra}


def engine_of(layer):
    return layer._engine


def replied(engine, user, item):
    """The chat turn records its reply before Chainlit saves the reply's step (assistant.turn)."""
    write(engine, lambda s: store.save_message(
        s, step_id=item["id"], thread_id=item["threadId"], user_id=user.id, author=Author.ASSISTANT,
        content=item["output"], status=MessageStatus.COMPLETE))


async def chat(layer, user, thread_id, *texts):
    signed_in(user, thread_id)
    await layer.update_thread(thread_id, name=texts[0], user_id=str(user.id))
    run = step(thread_id, "run", "")
    await layer.create_step(run)
    ids = []
    for i, body in enumerate(texts):
        kind = "user_message" if i % 2 == 0 else "assistant_message"
        item = step(thread_id, kind, body, parentId=run["id"] if kind == "assistant_message" else None)
        if kind == "assistant_message":
            replied(engine_of(layer), user, item)
        await layer.create_step(item)
        ids.append(item["id"])
    return ids


async def test_a_conversation_reads_back_in_order_with_feedback(layer, users, engine):
    alice, _ = users
    ids = await chat(layer, alice, "t1", "hello", "hi there", "bye")
    await layer.upsert_feedback(Feedback(forId=ids[1], value=1, comment="good"))
    thread = await layer.get_thread("t1")
    assert thread["name"] == "hello" and thread["userIdentifier"] == "alice"
    messages = [s for s in thread["steps"] if s["type"].endswith("_message")]
    assert [(s["type"], s["output"]) for s in messages] == [
        ("user_message", "hello"), ("assistant_message", "hi there"), ("user_message", "bye")]
    assert messages[1]["feedback"]["value"] == 1 and messages[1]["parentId"]
    assert [s["type"] for s in thread["steps"]].count("run") == 1  # display step kept, not a message
    assert read(engine, lambda s: len(store.thread_messages(s, thread_id="t1"))) == 3
    assert await layer.get_thread_author("t1") == "alice"


async def test_update_step_rewrites_the_one_row(layer, users, engine):
    alice, _ = users
    (user_id,) = await chat(layer, alice, "t1", "frist")
    await layer.update_step({**step("t1", "user_message", "first"), "id": user_id})
    assert [m.content for m in read(engine, lambda s: store.thread_messages(s, thread_id="t1"))] == ["first"]


async def test_threads_are_listed_only_for_their_owner_paged_and_searchable(layer, users):
    alice, bob = users
    for i in range(3):
        await chat(layer, alice, f"a{i}", f"alpha {i}")
    await chat(layer, bob, "b0", "alpha bob")
    page = await layer.list_threads(Pagination(first=2), ThreadFilter(userId=str(alice.id)))
    assert [t["id"] for t in page.data] == ["a2", "a1"] and page.pageInfo.hasNextPage
    rest = await layer.list_threads(Pagination(first=2, cursor=page.pageInfo.endCursor), ThreadFilter(userId=str(alice.id)))
    assert [t["id"] for t in rest.data] == ["a0"] and not rest.pageInfo.hasNextPage
    found = await layer.list_threads(Pagination(first=10), ThreadFilter(userId=str(alice.id), search="alpha 1"))
    assert [t["id"] for t in found.data] == ["a1"]
    with pytest.raises(PermissionError):
        await layer.list_threads(Pagination(first=10), ThreadFilter())


async def test_rename_and_delete(layer, users, engine):
    alice, _ = users
    await chat(layer, alice, "t1", "hello", "hi")
    await layer.update_thread("t1", name="Renamed")
    assert (await layer.get_thread("t1"))["name"] == "Renamed"
    await layer.delete_thread("t1")
    assert await layer.get_thread("t1") is None
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM message")).scalar() == 0
        assert conn.execute(text("SELECT count(*) FROM step")).scalar() == 0


async def test_writes_into_another_users_thread_raise_and_change_nothing(layer, users, engine):
    alice, bob = users
    await chat(layer, alice, "t1", "secret")
    signed_in(bob, "t1")
    with pytest.raises(store.NotOwner):
        await layer.create_step(step("t1", "user_message", "injected"))
    with pytest.raises(store.NotOwner):
        await layer.update_thread("t1", name="mine", user_id=str(bob.id))
    (secret,) = [m for m in read(engine, lambda s: store.thread_messages(s, thread_id="t1"))]
    await layer.delete_step(secret.step_id)  # bob's delete of alice's message is a no-op
    assert [m.content for m in read(engine, lambda s: store.thread_messages(s, thread_id="t1"))] == ["secret"]
    assert (await layer.get_thread("t1"))["name"] == "secret"


async def test_error_notices_are_display_steps_not_memory(layer, users, engine):
    alice, _ = users
    await chat(layer, alice, "t1", "hello")
    await layer.create_step(step("t1", "assistant_message", "The model failed.", isError=True))
    assert [m.content for m in read(engine, lambda s: store.thread_messages(s, thread_id="t1"))] == ["hello"]
    assert "The model failed." in [s["output"] for s in (await layer.get_thread("t1"))["steps"]]


async def test_users_are_found_not_invented(layer, users):
    alice, _ = users
    found = await layer.get_user("alice")
    assert found.id == str(alice.id) and found.metadata == {"role": "operator", "token_version": 0}
    assert await layer.get_user("nobody") is None


async def test_notices_flagged_display_only_are_not_memory(layer, users, engine):
    alice, _ = users
    await chat(layer, alice, "t1", "hello")
    await layer.create_step(step("t1", "assistant_message", "Offline mode.", metadata={"display_only": True}))
    assert [m.content for m in read(engine, lambda s: store.thread_messages(s, thread_id="t1"))] == ["hello"]
    assert "Offline mode." in [s["output"] for s in (await layer.get_thread("t1"))["steps"]]


async def test_a_reply_whose_run_step_was_lost_or_saved_late_still_reads_back(layer, users):
    """Chainlit's client drops a step whose parent it has not seen yet. The first turn of a thread can
    lose its "run" step to Chainlit's early-step queue, or save it late: either way its reply and panels
    must still be shown on resume."""
    alice, _ = users
    signed_in(alice, "t1")
    await layer.update_thread("t1", name="first", user_id=str(alice.id))
    await layer.create_step(step("t1", "user_message", "first question", createdAt="2026-11-27T10:00:00.000000Z"))
    await layer.create_step(step("t1", "tool", "Decision: comply", parentId="lost-run",
                                 createdAt="2026-11-27T10:00:01.000000Z"))
    late = step("t1", "run", "", createdAt="2026-11-27T10:00:09.000000Z")  # saved after its children
    await layer.create_step(step("t1", "assistant_message", "second answer", parentId=late["id"],
                                 createdAt="2026-11-27T10:00:05.000000Z"))
    await layer.create_step(late)
    steps = (await layer.get_thread("t1"))["steps"]
    position = {s["output"] or s["type"]: i for i, s in enumerate(steps)}
    assert next(s for s in steps if s["output"] == "Decision: comply")["parentId"] is None
    assert position["run"] < position["second answer"]  # the parent first, whatever the clocks said
    assert next(s for s in steps if s["output"] == "second answer")["parentId"] == late["id"]


async def test_with_sharing_off_no_thread_carries_a_share_mark_in_or_out(engine, users):
    """Chainlit's GET /project/share/{id} shows a thread marked is_shared to anyone: no mark, no leak."""
    alice, _ = users
    signed_in(alice, "t-share")
    marks = {"is_shared": True, "shared_at": "2026-01-01T00:00:00Z", "kept": 1}
    await OurDataLayer(engine).update_thread("t-share", user_id=str(alice.id), metadata=marks)
    assert read(engine, lambda s: store.get_thread(s, thread_id="t-share")).metadata_json == '{"kept": 1}'
    write(engine, lambda s: store.upsert_thread(s, thread_id="t-share", user_id=alice.id, metadata=marks))  # an old row
    assert (await OurDataLayer(engine).get_thread("t-share"))["metadata"] == {"kept": 1}
    assert (await OurDataLayer(engine, sharing=True).get_thread("t-share"))["metadata"] == marks


async def test_an_element_can_be_replaced_or_deleted_only_by_its_threads_owner(layer, users, engine):
    """Chainlit's PUT/DELETE /project/element take the element id from the client (only the session is checked)."""
    from chainlit.element import CustomElement

    alice, bob = users
    signed_in(alice, "t-alice")
    await layer.update_thread("t-alice", user_id=str(alice.id))
    panel = CustomElement(name="ProfilePanel", props={"owner": "alice"}, display="inline")
    panel.thread_id = "t-alice"
    await layer.create_element(panel)

    signed_in(bob, "t-bob")
    await layer.update_thread("t-bob", user_id=str(bob.id))
    await layer.delete_element(panel.id, "t-alice")
    stolen = CustomElement(name="ProfilePanel", props={"owner": "bob"}, display="inline", id=panel.id)
    stolen.thread_id = "t-bob"
    with pytest.raises(store.NotOwner):
        await layer.create_element(stolen)
    (kept,) = read(engine, lambda s: store.thread_elements(s, thread_id="t-alice"))
    assert kept.id == panel.id and '"alice"' in kept.props_json
    assert read(engine, lambda s: store.thread_elements(s, thread_id="t-bob")) == []

    signed_in(alice, "t-alice")
    await layer.delete_element(panel.id, "t-alice")
    assert read(engine, lambda s: store.thread_elements(s, thread_id="t-alice")) == []


@pytest.mark.parametrize("blank", ["   ", "\x00\x00", "\n\t "])
async def test_blank_messages_are_never_message_rows(layer, users, engine, blank):
    alice, _ = users
    await chat(layer, alice, "t1", "hello")
    await layer.create_step(step("t1", "user_message", blank))
    await layer.create_step(step("t1", "assistant_message", blank))
    assert [m.content for m in read(engine, lambda s: store.thread_messages(s, thread_id="t1"))] == ["hello"]


def stop_notice(thread_id):
    """What Chainlit's socket `stop` sends when the user presses stop (chainlit/socket.py)."""
    return step(thread_id, "assistant_message", "Task manually stopped.", name="Assistant", metadata={})


async def test_chainlits_stop_notice_is_shown_but_is_not_a_message(layer, users, engine):
    alice, _ = users
    await chat(layer, alice, "t1", "hello")
    await layer.create_step(stop_notice("t1"))
    assert [m.content for m in read(engine, lambda s: store.thread_messages(s, thread_id="t1"))] == ["hello"]
    assert "Task manually stopped." in [s["output"] for s in (await layer.get_thread("t1"))["steps"]]


async def test_a_steps_creation_landing_after_its_update_does_not_blank_it(layer, users):
    """Chainlit saves a step's creation (empty) and its update (full) as separate tasks; before, when the
    creation landed second, a reopened thread showed an empty Deliberation or Recalled panel."""
    alice, _ = users
    await chat(layer, alice, "t1", "hello")
    created = step("t1", "tool", "", name="Deliberation")
    updated = {**created, "output": "**Decision:** Answer fully (`comply`)"}
    await layer.update_step(updated)
    await layer.create_step(created)
    steps = {s["id"]: s for s in (await layer.get_thread("t1"))["steps"]}
    assert steps[created["id"]]["output"] == "**Decision:** Answer fully (`comply`)"
    await layer.update_step({**created, "output": "the latest update wins"})
    steps = {s["id"]: s for s in (await layer.get_thread("t1"))["steps"]}
    assert steps[created["id"]]["output"] == "the latest update wins"


async def test_the_sidebar_lists_threads_by_their_newest_message(layer, users):
    """Chainlit's sidebar sorts by each thread's `createdAt`: it carries the newest message's time."""
    alice, _ = users
    await chat(layer, alice, "older", "my first chat")
    await chat(layer, alice, "newer", "my second chat")
    everything = Pagination(first=10)
    mine = ThreadFilter(userId=str(alice.id))
    assert [t["id"] for t in (await layer.list_threads(everything, mine)).data] == ["newer", "older"]

    signed_in(alice, "older")
    await layer.create_step(step("older", "user_message", "back to the first chat"))
    listed = (await layer.list_threads(everything, mine)).data
    assert [t["id"] for t in listed] == ["older", "newer"]
    assert listed[0]["createdAt"] > listed[1]["createdAt"]  # what Chainlit's sidebar sorts by
    assert (await layer.get_thread("older"))["createdAt"] < listed[1]["createdAt"]  # the thread itself is older

    await layer.update_thread("newer", name="Renamed")  # a rename is no message: the order stays
    assert [t["id"] for t in (await layer.list_threads(everything, mine)).data] == ["older", "newer"]
    first = await layer.list_threads(Pagination(first=1), mine)
    rest = await layer.list_threads(Pagination(first=1, cursor=first.pageInfo.endCursor), mine)
    assert [t["id"] for t in first.data + rest.data] == ["older", "newer"] and not rest.pageInfo.hasNextPage


async def test_a_thread_is_titled_briefly_by_its_first_message_and_never_by_a_command(layer, users):
    alice, _ = users
    signed_in(alice, "t1")
    await layer.update_thread("t1", name="/profile", user_id=str(alice.id))  # Chainlit's first interaction
    assert await layer.get_thread("t1") is None  # a command is no conversation: no thread for it
    await layer.create_step(step("t1", "user_message", "hi"))
    await layer.update_thread("t1", name="/profile", user_id=str(alice.id))  # a command later in a chat
    assert (await layer.get_thread("t1"))["name"] is None  # names nothing
    long = "Can you help me plan a three week cycling trip through the Pyrenees next summer, with rest days?"
    signed_in(alice, "t2")
    await layer.update_thread("t2", name=long, user_id=str(alice.id))
    assert (await layer.get_thread("t2"))["name"] == "Can you help me plan a three week cycling trip…"
    await layer.update_thread("t2", name=long)  # the user's own rename, from the sidebar: kept as typed
    assert (await layer.get_thread("t2"))["name"] == long
