"""The profile panel over Chainlit's real socket: the browser asks for it with a window message, the
server answers with the side view's events for the session's own chat, and nothing is stored.
(The browser side, one Enter and the phone's sheet, is in tests/e2e/test_panels_browser.py.)"""

from __future__ import annotations

import asyncio

import httpx
import pytest
from sqlmodel import select

from memory import store
from memory.db import read
from memory.models import Element, Message, Step, Thread
from tests.appserver import fresh
from tests.socketclient import ChatTab
from tests.waiting import eventually

pytestmark = pytest.mark.anyio
OPEN_PROFILE = {"hyperalign": "open-profile"}  # what public/hyperalign.js posts


def sidebar_events(tab: ChatTab, name: str) -> list:
    return [data for event, data in tab.events if event == name]


async def test_a_window_message_opens_the_panel_for_the_sessions_chat_and_stores_nothing(shared_app):
    server, engine = shared_app
    name = fresh("sid")
    with httpx.Client(base_url=server.base_url, timeout=10) as client:
        assert server.login(client, name, "password1").status_code == 200
        token = client.cookies["access_token"]
    tab = await ChatTab(server.base_url, token).open()
    try:
        before = len(tab.events)  # what the opening of the chat itself sent is not counted
        for other in ("hello", {"hyperalign": "something else"}, ["open-profile"], {"x": "y" * 10_000}):
            await tab.client.emit("window_message", other)
        await tab.client.emit("window_message", OPEN_PROFILE)
        opened = await eventually(lambda: sidebar_events(tab, "set_sidebar_elements"))
        await asyncio.sleep(0.5)  # time for anything the other messages might (wrongly) have caused
        assert len(sidebar_events(tab, "set_sidebar_elements")) == 1, "only the exact request opens it"
        assert sidebar_events(tab, "set_sidebar_title") == ["Your profile"]
        (panel,) = opened[0]["elements"]
        assert panel["name"] == "ProfilePanel" and panel["type"] == "custom"
        thread_id = panel["props"]["threadId"]
        assert thread_id  # the chat on screen, for "Don't remember this chat"
        # Not a message: no chat events for it (Chainlit's own on_chat_start step may still arrive late).
        chat = [(event, data) for event, data in tab.events[before:] if event in ("new_message", "element")
                and not (isinstance(data, dict) and data.get("name") == "on_chat_start")]
        assert not chat

        await tab.client.emit("window_message", OPEN_PROFILE)  # again: a new key, so the browser refreshes it
        again = await eventually(lambda: sidebar_events(tab, "set_sidebar_elements")[1:])
        assert again[0]["key"] != opened[0]["key"]
        assert again[0]["elements"][0]["props"]["threadId"] == thread_id
    finally:
        await tab.close()

    owner = read(engine, lambda s: store.get_user(s, identifier=name)).id

    def stored(session):
        threads = session.exec(select(Thread).where(Thread.user_id == owner)).all()
        return (threads, session.exec(select(Message).where(Message.user_id == owner)).all(),
                session.exec(select(Step).where(Step.thread_id == thread_id)).all(),
                session.exec(select(Element).where(Element.thread_id == thread_id)).all())

    assert read(engine, stored) == ([], [], [], [])


async def settled(count, quiet: float = 1.5) -> int:
    """The count once it has stopped changing for `quiet` seconds (everything sent has been answered)."""
    last, since = count(), asyncio.get_running_loop().time()
    while asyncio.get_running_loop().time() - since < quiet:
        await asyncio.sleep(0.1)
        if (now := count()) != last:
            last, since = now, asyncio.get_running_loop().time()
    return last


def token_for(server, name: str) -> str:
    with httpx.Client(base_url=server.base_url, timeout=10) as client:
        assert server.login(client, name, "password1").status_code == 200
        return client.cookies["access_token"]


async def signed_in_tab(server, name: str) -> ChatTab:
    return await ChatTab(server.base_url, token_for(server, name)).open()


async def test_a_flood_of_window_messages_is_metered_and_junk_costs_nothing(shared_app):
    """Before: every window message cost a database read (the account check), however many a script sent."""
    from assistant.ui.meter import EVENT_BURST

    server, _ = shared_app
    tab = await signed_in_tab(server, fresh("flo"))
    try:
        for _ in range(300):  # messages the app never asks for are dropped before they are counted
            await tab.client.emit("window_message", {"hyperalign": "something else"})
        await tab.client.emit("window_message", OPEN_PROFILE)
        await eventually(lambda: sidebar_events(tab, "set_sidebar_elements"))

        for _ in range(3 * EVENT_BURST):
            await tab.client.emit("window_message", OPEN_PROFILE)
        opened = await settled(lambda: len(sidebar_events(tab, "set_sidebar_elements")))
        assert 1 + 2 * EVENT_BURST > opened > EVENT_BURST // 2, opened  # a burst passes, the flood does not
        assert tab.client.connected  # metered, not thrown out
        # A person's pace afterwards is served again: one request, one panel.
        await asyncio.sleep(1.0)  # time for the meter to refill (5 a second)
        await tab.client.emit("window_message", OPEN_PROFILE)
        await eventually(lambda: len(sidebar_events(tab, "set_sidebar_elements")) > opened)
        assert await settled(lambda: len(sidebar_events(tab, "set_sidebar_elements"))) == opened + 1
    finally:
        await tab.close()


async def test_the_meter_counts_an_account_over_all_its_sockets(shared_app):
    """Before: each socket had its own budget, so a client that opened socket after socket got a fresh
    burst each time; now an account's tabs share one, connections included."""
    from assistant.ui.meter import EVENT_BURST

    server, _ = shared_app
    token = token_for(server, fresh("tab"))
    tabs = [await ChatTab(server.base_url, token).open() for _ in range(3)]
    try:
        for tab in tabs:
            for _ in range(EVENT_BURST):
                await tab.client.emit("window_message", OPEN_PROFILE)
        opened = await settled(lambda: sum(len(sidebar_events(tab, "set_sidebar_elements")) for tab in tabs))
        assert opened < 2 * EVENT_BURST, opened  # one account's budget, not three bursts (90)
        refused = ChatTab(server.base_url, token)
        for _ in range(EVENT_BURST):  # socket after socket, faster than the meter refills
            try:
                await refused.open(timeout=5)
            except Exception:
                break
            await refused.close()
            refused = ChatTab(server.base_url, token)
        else:
            raise AssertionError("every connection was accepted")
    finally:
        for tab in tabs:
            await tab.close()


@pytest.mark.parametrize("text, command", [("/profile", None), ("/profile", "Profile"), ("", "Profile")])
async def test_a_profile_request_that_reaches_the_chat_starts_no_conversation(shared_app, text, command):
    """Before: "/profile" that slipped past the page script (no script, a slow page), typed or sent by the
    profile starter, left an untitled thread behind, and the chat's real first message no longer named it."""
    server, engine = shared_app
    name = fresh("slp")
    tab = await signed_in_tab(server, name)
    try:
        await tab.send(text, command=command)
        await eventually(lambda: sidebar_events(tab, "set_sidebar_elements"))
        await eventually(lambda: tab.task_ends() >= 3)  # the connection's, the chat start's, the command's
        owner = read(engine, lambda s: store.get_user(s, identifier=name)).id
        threads = lambda: read(engine, lambda s: s.exec(select(Thread).where(Thread.user_id == owner)).all())  # noqa: E731
        assert threads() == []

        await tab.say("Plan a week of vegetarian dinners for two")
        (thread,) = await eventually(lambda: [t for t in threads() if t.name])
        assert thread.name.startswith("Plan a week of vegetarian dinners")
        assert len(threads()) == 1
    finally:
        await tab.close()


async def test_words_typed_with_the_profile_button_still_picked_are_answered(shared_app):
    """Before: a Profile command left picked (its button is disabled while a reply streams, so it could
    not be unpicked) swallowed the next message: the panel opened and the words were dropped."""
    server, engine = shared_app
    name = fresh("pik")
    tab = await signed_in_tab(server, name)
    try:
        message_id = await tab.send("What should I pack for a rainy week in Kyoto?", command="Profile")
        await asyncio.wait_for(tab.turn_ended(message_id), 30)
        assert not sidebar_events(tab, "set_sidebar_elements")
        owner = read(engine, lambda s: store.get_user(s, identifier=name)).id
        said = await eventually(lambda: read(engine, lambda s: s.exec(
            select(Message).where(Message.user_id == owner)).all()))
        (kept,) = [m for m in said if m.content.startswith("What should I pack")]
        assert read(engine, lambda s: s.get(Step, kept.step_id)) is None  # a message, not also a display step
    finally:
        await tab.close()
