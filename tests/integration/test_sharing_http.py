"""Thread sharing is off (`allow_thread_sharing = false` in .chainlit/config.toml), over HTTP on SQLite
and PostgreSQL: nobody can share a thread, and no share path shows a thread to anyone but its owner."""

import json

import httpx
import pytest

from memory import store
from memory.db import read, write
from memory.models import Author
from tests.appserver import fresh


@pytest.fixture(scope="module")
def served(shared_app):
    server, engine = shared_app
    clients, names = {}, {name: fresh(name) for name in ("amy", "ben")}
    for name in ("amy", "ben"):
        clients[name] = httpx.Client(base_url=server.base_url, timeout=30)
        assert server.login(clients[name], names[name], "password1").status_code == 200

    def seed(session):
        amy = store.get_user(session, identifier=names["amy"])
        store.upsert_thread(session, thread_id="amy-t", user_id=amy.id, name="amy's secret")
        store.save_message(session, step_id="amy-m", thread_id="amy-t", user_id=amy.id, author=Author.USER,
                           content="my secret plan")
        # As a thread shared before the switch was honoured, or through any other metadata write.
        store.upsert_thread(session, thread_id="amy-old", user_id=amy.id, name="shared long ago",
                            metadata={"is_shared": True, "shared_at": "2026-01-01T00:00:00Z"})
        store.save_message(session, step_id="amy-old-m", thread_id="amy-old", user_id=amy.id,
                           author=Author.USER, content="my old secret")

    write(engine, seed)
    yield server, engine, clients
    for c in clients.values():
        c.close()


def test_the_owner_cannot_share_a_thread(served):
    _, engine, clients = served
    answer = clients["amy"].put("/project/thread/share", json={"threadId": "amy-t", "isShared": True})
    assert answer.status_code in (403, 404) and "sharing" in answer.json()["detail"].lower()
    metadata = json.loads(read(engine, lambda s: store.get_thread(s, thread_id="amy-t")).metadata_json)
    assert "is_shared" not in metadata


@pytest.mark.parametrize("thread_id", ["amy-t", "amy-old"])
def test_no_share_path_shows_a_thread_to_another_user_or_to_nobody(served, thread_id):
    server, _, clients = served
    clients["amy"].put("/project/thread/share", json={"threadId": thread_id, "isShared": True})
    with httpx.Client(base_url=server.base_url, timeout=30) as anonymous:
        for reader in (clients["ben"], anonymous):
            for path in (f"/project/share/{thread_id}", f"/project/thread/{thread_id}"):
                answer = reader.get(path)
                assert answer.status_code in (401, 403, 404), (path, answer.status_code)
                assert "secret" not in answer.text


def test_the_owner_still_reads_her_thread_and_it_does_not_say_shared(served):
    _, _, clients = served
    thread = clients["amy"].get("/project/thread/amy-old").json()
    assert [s["output"] for s in thread["steps"]] == ["my old secret"]
    assert "is_shared" not in thread["metadata"] and "shared_at" not in thread["metadata"]
    listed = clients["amy"].post("/project/threads", json={"pagination": {"first": 10}, "filter": {}}).json()["data"]
    assert all("is_shared" not in t["metadata"] for t in listed)
    assert clients["amy"].get("/project/settings", params={"language": "en-US"}).json()["threadSharing"] is False
