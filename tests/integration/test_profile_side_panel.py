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
