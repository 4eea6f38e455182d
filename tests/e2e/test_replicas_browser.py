"""Replicas behind a proxy, as README's deployment recipe sets them up: two `hyperalign serve` processes and
a worker on one PostgreSQL database, started together, behind nginx with the site `hyperalign deploy`
writes (tests/deployment.py). A person uses it through the proxy; the tests pin a browser to a replica
with the proxy's own route cookie, so that "one replica" and "the other" are known."""

from __future__ import annotations

import asyncio
import functools
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
import socketio
from sqlalchemy import text

from assistant.deploy import ROUTE_COOKIE
from assistant.measure.proxy import NGINX
from memory.db import MIGRATIONS, make_engine
from tests.conftest import unavailable
from tests.deployment import Deployment
from tests.e2e.people import LAST_REPLY, Person
from tests.fakellm import Reply
from tests.pgserver import create_database, drop_database
from tests.socketclient import ChatTab

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def deployment(postgres_admin_url, fake):
    if postgres_admin_url is None:
        unavailable("PostgreSQL is not installed (apt-get install postgresql)")
    if not NGINX.exists():
        unavailable(f"{NGINX} not found (apt-get install nginx)")
    url = create_database(postgres_admin_url)
    workdir = Path(tempfile.mkdtemp(prefix="hyperalign-replicas-"))
    deployed = Deployment(workdir, database_url=url, llm_base_url=fake.base_url)
    deployed.engine = make_engine(url)
    try:
        yield deployed.start()
    finally:
        deployed.stop()
        deployed.engine.dispose()
        drop_database(postgres_admin_url, url)
        shutil.rmtree(workdir, ignore_errors=True)


def rows(deployment: Deployment, sql: str, **params) -> list[tuple]:
    with deployment.engine.connect() as conn:
        return [tuple(row) for row in conn.execute(text(sql), params)]


def messages_of(deployment: Deployment, name: str) -> list[tuple]:
    return rows(deployment, 'SELECT m.author, m.content, m.thread_id FROM message m JOIN "user" u ON u.id = m.user_id '
                            "WHERE u.identifier = :name ORDER BY m.id", name=name)


def in_own_loop(coroutine_function):
    """Run an async test body on a loop of its own thread: Playwright's sync API, alive for the module,
    makes this thread count as inside an event loop."""
    @functools.wraps(coroutine_function)  # pytest reads the fixtures from the wrapped signature
    def run(*args, **kwargs):
        with ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, coroutine_function(*args, **kwargs)).result()
    return run


def signed_in(deployment: Deployment, name: str, route: str) -> tuple[httpx.Client, str]:
    """An HTTP client through the proxy, routed by `route`, signed in as `name` (signing up on first use)."""
    client = httpx.Client(base_url=deployment.url, cookies={ROUTE_COOKIE: route}, timeout=30)
    answer = client.post("/login", data={"username": name, "password": "a-good-password"})
    assert answer.status_code == 200, answer.text
    return client, client.cookies["access_token"]


def test_started_together_the_database_is_migrated_once(deployment):
    names = [name for name, _ in MIGRATIONS]
    assert sorted(r[0] for r in rows(deployment, "SELECT name FROM _migrations")) == sorted(names)  # each once
    migrated = [p for p in [*deployment.names, "worker"] if f"applied {len(names)} migrations" in deployment.log(p)]
    assert len(migrated) == 1, f"processes that migrated: {migrated}"
    for name in deployment.names:  # each replica answers, and says which it is
        health = httpx.get(f"http://127.0.0.1:{name}/api/health").json()
        assert health == {"status": "ok", "database": "postgresql", "recall": "ready", "instance": name}


def test_a_person_signs_in_and_chats_through_the_proxy(browser, deployment, fake):
    from playwright.sync_api import expect

    kit = Person(browser, SimpleNamespace(base_url=deployment.url), "kit")
    try:
        kit.sign_in()
        fake.script("chat", Reply(text="Hello from behind the proxy, streamed word by word.", chunk_delay=0.05))
        kit.send("Hello, are you there?")
        expect(kit.page.locator(LAST_REPLY).last).to_contain_text("streamed word by word.")
        kit.shot("replicas-01-chat-through-the-proxy")
        cookies = {c["name"]: c for c in kit.context.cookies(deployment.url)}
        route = cookies[ROUTE_COOKIE]
        assert route["httpOnly"] and route["sameSite"] == "Lax" and len(route["value"]) == 32
        assert [(a, c) for a, c, _ in messages_of(deployment, "kit")] == [
            ("user", "Hello, are you there?"), ("assistant", "Hello from behind the proxy, streamed word by word.")]
    finally:
        kit.close()


@in_own_loop
async def test_a_profile_edit_through_one_replica_shapes_the_next_reply_on_the_other(deployment, fake):
    first, other = deployment.names
    here, there = deployment.route_to(first), deployment.route_to(other)
    client, token = signed_in(deployment, "lee", here)
    try:
        added = client.post("/api/me/profile/entries",
                            json={"facet": "preference", "text": "Wants every distance given in kilometres"})
    finally:
        client.close()
    assert added.status_code == 201, added.text
    tab = await ChatTab(deployment.url, token, cookies={ROUTE_COOKIE: there}).open()
    try:
        fake.script("chat", "About twelve kilometres.")
        await tab.say("How far is the lake from the station?")
    finally:
        await tab.close()
    system = fake.requests_for("chat")[-1].body["messages"][0]["content"]
    assert "Wants every distance given in kilometres" in system
    # The proxy's own record: the edit went to one replica, the chat's socket to the other.
    assert deployment.served_by(here, "POST /api/me/profile/entries") == {first}
    assert deployment.served_by(there, "transport=websocket") == {other}


@in_own_loop
async def test_forget_me_through_one_replica_ends_the_live_session_on_the_other(deployment, fake):
    first, other = deployment.names
    here, there = deployment.route_to(first), deployment.route_to(other)
    client, token = signed_in(deployment, "max", here)
    tab = await ChatTab(deployment.url, token, cookies={ROUTE_COOKIE: there}).open()
    try:
        fake.script("chat", "Noted.")
        await tab.say("My locker code is 4471")
        sweeps = deployment.log(other).count("sessions of revoked sign-ins")
        forgotten = client.post("/api/me/forget", json={"confirm": "max"})
        client.close()
        assert forgotten.status_code == 200, forgotten.text
        started = time.monotonic()
        await asyncio.wait_for(tab.disconnected.wait(), 20)
        took = time.monotonic() - started
    finally:
        await tab.close()
    # The other replica's sweep (every 5 s) ended it, not the replica that erased the account.
    assert deployment.served_by(here, "POST /api/me/forget") == {first}
    assert deployment.served_by(there, "transport=websocket") == {other}
    deadline = time.monotonic() + 5  # the sweep logs its count once it has ended the sessions
    while deployment.log(other).count("sessions of revoked sign-ins") == sweeps and time.monotonic() < deadline:
        time.sleep(0.1)
    assert deployment.log(other).count("sessions of revoked sign-ins") == sweeps + 1
    assert took < 8, f"the session on the other replica ended {took:.1f} s after forget-me"
    with pytest.raises(socketio.exceptions.ConnectionError):  # and the token opens nothing anywhere
        await ChatTab(deployment.url, token, cookies={ROUTE_COOKIE: there}).open()
    assert messages_of(deployment, "max") == []


def test_a_replica_killed_mid_reply_loses_nothing_and_the_person_goes_on_from_the_other(browser, deployment, fake):
    """Last in the module: it leaves one replica down."""
    from playwright.sync_api import expect

    doomed, survivor = deployment.names
    ivy = Person(browser, SimpleNamespace(base_url=deployment.url), "ivy")
    try:
        route = deployment.route_to(doomed)
        ivy.context.add_cookies([{"name": ROUTE_COOKIE, "value": route, "url": deployment.url}])
        ivy.sign_in()
        long = " ".join(f"word{i}" for i in range(200))
        fake.script("chat", Reply(text=long, chunk_delay=0.1))
        ivy.send("Tell me a long story")
        expect(ivy.page.locator(LAST_REPLY).last).to_contain_text("word3")  # the reply is streaming
        deployment.kill(doomed)
        ivy.shot("replicas-02-replica-killed")

        fake.script("chat", "Still here, from the other replica.")
        ivy.send("Are you still there?")  # `send` waits for the composer: the socket is back, on the survivor
        expect(ivy.page.locator(LAST_REPLY).last).to_contain_text("Still here, from the other replica.", timeout=30_000)
        ivy.shot("replicas-03-going-on-from-the-other")
        ivy.page.reload()  # the conversation, as stored, is whole: both questions, in one thread
        ivy.page.locator("#thread-history a").filter(has_text="Tell me a long story").click()
        for question in ("Tell me a long story", "Are you still there?"):
            expect(ivy.page.locator('.step[data-step-type="user_message"]').filter(has_text=question)).to_be_visible()
        # Chainlit scrolls the newest question to the top of the chat; bring the first back for the picture.
        ivy.page.locator('.step[data-step-type="user_message"]').first.scroll_into_view_if_needed()
        ivy.shot("replicas-04-the-whole-conversation")
    finally:
        ivy.close()
    # The same browser, its route unchanged: once its replica died the proxy sent its socket to the other.
    # (nginx records a socket when it closes.)
    deadline = time.monotonic() + 10
    while deployment.served_by(route, "transport=websocket") != {doomed, survivor} and time.monotonic() < deadline:
        time.sleep(0.2)
    assert deployment.served_by(route, "transport=websocket") == {doomed, survivor}
    stored = messages_of(deployment, "ivy")
    # Each question once; the reply that was streaming when its replica died was never stored.
    assert [(a, c) for a, c, _ in stored] == [("user", "Tell me a long story"), ("user", "Are you still there?"),
                                              ("assistant", "Still here, from the other replica.")]
    assert len({thread for _, _, thread in stored}) == 1, "the conversation went on in the same thread"
