"""A tab that reconnects, over Chainlit's real socket: it names the thread it was in. A process that does not
hold its session (a restarted app, another replica) resumes that thread when it is stored, and starts a
new chat without an error when it is not (yet), so that a message sent in that moment is answered."""

from __future__ import annotations

import uuid

import httpx
import pytest
import socketio
from sqlmodel import select

from memory.db import read
from memory.models import Message, Thread
from tests.appserver import fresh
from tests.socketclient import ChatTab
from tests.waiting import eventually

pytestmark = pytest.mark.anyio


def token_for(server, name: str) -> str:
    with httpx.Client(base_url=server.base_url, timeout=10) as client:
        assert server.login(client, name, "password1").status_code == 200
        return client.cookies["access_token"]


def names(tab: ChatTab) -> list[str]:
    return [event for event, _ in tab.events]


async def test_a_tab_naming_a_thread_never_stored_gets_a_new_chat_and_its_first_message_answered(shared_app):
    server, engine = shared_app
    token = token_for(server, fresh("blip"))
    unstored = str(uuid.uuid4())  # what a tab knows after `first_interaction` when the thread was not saved
    tab = await ChatTab(server.base_url, token, thread_id=unstored).open()
    try:
        events = await tab.say("Are you there after the blip?")
    finally:
        await tab.close()
    # Chainlit answered `resume_thread_error`, on which the browser leaves the chat and clears its
    # session, cancelling whatever it had just sent: that message was never answered.
    assert "resume_thread_error" not in names(tab)
    assert "task_end" in [e for e, _ in events]
    stored = read(engine, lambda s: s.exec(select(Message).where(Message.content == "Are you there after the blip?")).all())
    assert len(stored) == 1 and stored[0].thread_id == tab.thread_id == unstored  # the id the tab knows
    replies = read(engine, lambda s: s.exec(select(Message).where(Message.thread_id == tab.thread_id,
                                                                  Message.id > stored[0].id)).all())
    assert [r.author for r in replies] == ["assistant"]
    assert read(engine, lambda s: s.get(Thread, unstored)).user_id == stored[0].user_id


async def test_a_tab_naming_a_thread_id_chainlit_would_never_make_gets_a_fresh_one(shared_app):
    server, engine = shared_app
    tab = await ChatTab(server.base_url, token_for(server, fresh("odd")), thread_id="../" + "x" * 300).open()
    try:
        await tab.say("Hello with an odd thread id")
    finally:
        await tab.close()
    assert "resume_thread_error" not in names(tab)
    stored = read(engine, lambda s: s.exec(select(Message).where(Message.content == "Hello with an odd thread id")).one())
    assert str(uuid.UUID(stored.thread_id)) == stored.thread_id == tab.thread_id


async def test_a_tab_naming_its_own_stored_thread_resumes_it(shared_app):
    server, engine = shared_app
    token = token_for(server, fresh("back"))
    first = await ChatTab(server.base_url, token).open()
    try:
        await first.say("Remember the blue door")
    finally:
        await first.close()
    again = await ChatTab(server.base_url, token, thread_id=first.thread_id).open()
    try:
        await eventually(lambda: "resume_thread" in names(again))
        await again.say("Which door?")
    finally:
        await again.close()
    assert "resume_thread_error" not in names(again)
    threads = read(engine, lambda s: {m.thread_id for m in s.exec(select(Message).where(
        Message.content.in_(["Remember the blue door", "Which door?"]))).all()})
    assert threads == {first.thread_id}


async def test_a_tab_naming_anothers_stored_thread_is_refused(shared_app):
    server, _ = shared_app
    owner = await ChatTab(server.base_url, token_for(server, fresh("own"))).open()
    try:
        await owner.say("My own thread")
    finally:
        await owner.close()
    intruder = ChatTab(server.base_url, token_for(server, fresh("int")), thread_id=owner.thread_id)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await intruder.open()
