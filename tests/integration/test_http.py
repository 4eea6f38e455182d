"""The running app over HTTP, on SQLite and on PostgreSQL: sign-in rules and thread isolation."""


import httpx
import pytest

from memory import store
from memory.db import read, write
from memory.models import Author
from tests.appserver import fresh


@pytest.fixture
def served(shared_app):
    return shared_app


@pytest.fixture
def clients():
    """Opens HTTP clients (one per simulated browser) and closes them after the test."""
    opened = []

    def open_client(server, **kwargs):
        opened.append(httpx.Client(base_url=server.base_url, timeout=10, **kwargs))
        return opened[-1]

    yield open_client
    for c in opened:
        c.close()


@pytest.fixture
def signed_in(clients):
    def sign_in(server, name, password="password1"):
        c = clients(server)
        response = server.login(c, name, password)
        assert response.status_code == 200, response.text
        return c

    return sign_in


def test_our_get_route_is_not_shadowed_by_the_single_page_app(served):
    server, _ = served
    response = httpx.get(server.base_url + "/api/health")
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["status"] == "ok"


def test_the_sign_in_rules_are_public_and_say_what_a_sign_up_needs(served):
    server, _ = served
    response = httpx.get(server.base_url + "/api/signin")  # read by the login page before anyone signs in
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["registration"] == "open" and "at least 8 characters" in body["rules"]


@pytest.mark.parametrize(
    ("username", "password", "detail"),
    [("u" * 500, "password1", "usernameinvalid"), (" " * 40, "password1", "usernameinvalid"),
     ("newcomer", "short", "passwordinvalid")],
)
def test_bad_sign_ups_say_why(served, clients, username, password, detail):
    server, engine = served
    response = server.login(clients(server), username, password)
    assert (response.status_code, response.json()["detail"]) == (401, detail)
    assert read(engine, lambda s: store.get_user(s, identifier=username.strip())) is None


def test_wrong_password_is_refused_and_the_account_is_untouched(served, clients, signed_in):
    server, engine = served
    walter = fresh("walter")
    signed_in(server, walter)
    before = read(engine, lambda s: store.get_user(s, identifier=walter)).password_hash
    response = server.login(clients(server), walter, "not-the-password")
    assert (response.status_code, response.json()["detail"]) == (401, "credentialssignin")
    assert read(engine, lambda s: store.get_user(s, identifier=walter)).password_hash == before


def test_a_tampered_or_missing_session_cookie_gets_401(served, clients, signed_in):
    server, _ = served
    trudy = fresh("trudy")
    c = signed_in(server, trudy)
    token = c.cookies["access_token"]
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    for cookies in ({"access_token": forged}, {}):
        anonymous = clients(server, cookies=cookies)
        assert anonymous.get("/user").status_code == 401
        threads = anonymous.post("/project/threads", json={"pagination": {"first": 5}, "filter": {}})
        assert threads.status_code == 401
    assert c.get("/user").json()["identifier"] == trudy  # the server carried on


def test_users_list_read_rename_delete_and_rate_only_their_own_threads(served, signed_in):
    server, engine = served
    alice_name = fresh("alice")
    alice, bob = signed_in(server, alice_name), signed_in(server, fresh("bobby"))
    alice_id = read(engine, lambda s: store.get_user(s, identifier=alice_name)).id
    thread_id, reply = f"{alice_name}-thread", f"{alice_name}-m2"

    def seed(session):
        store.upsert_thread(session, thread_id=thread_id, user_id=alice_id, name="alice's plans")
        store.save_message(session, step_id=f"{alice_name}-m1", thread_id=thread_id, user_id=alice_id,
                           author=Author.USER, content="my secret plan")
        store.save_message(session, step_id=reply, thread_id=thread_id, user_id=alice_id,
                           author=Author.ASSISTANT, content="a reply")

    write(engine, seed)
    listing = {"pagination": {"first": 20}, "filter": {}}
    assert bob.post("/project/threads", json=listing).json()["data"] == []
    assert bob.get(f"/project/thread/{thread_id}").status_code == 401
    assert bob.put("/project/thread", json={"threadId": thread_id, "name": "pwned"}).status_code == 401
    assert bob.request("DELETE", "/project/thread", json={"threadId": thread_id}).status_code == 401
    vote = {"feedback": {"forId": reply, "value": 0}, "sessionId": "x"}
    assert bob.put("/feedback", json=vote).status_code == 404
    assert read(engine, lambda s: store.thread_feedback(s, thread_id=thread_id)) == {}

    assert [t["id"] for t in alice.post("/project/threads", json=listing).json()["data"]] == [thread_id]
    thread = alice.get(f"/project/thread/{thread_id}").json()
    assert [s["output"] for s in thread["steps"]] == ["my secret plan", "a reply"]
    assert alice.put("/project/thread", json={"threadId": thread_id, "name": "Plans"}).status_code == 200
    vote["feedback"]["value"] = 1
    feedback = alice.put("/feedback", json=vote).json()
    assert bob.request("DELETE", "/feedback", json={"feedbackId": feedback["feedbackId"]}).status_code == 404
    (stored,) = read(engine, lambda s: store.thread_feedback(s, thread_id=thread_id)).values()
    assert stored.value == 1
    assert read(engine, lambda s: store.get_thread(s, thread_id=thread_id)).name == "Plans"
    assert alice.request("DELETE", "/project/thread", json={"threadId": thread_id}).status_code == 200
    assert read(engine, lambda s: store.get_thread(s, thread_id=thread_id)) is None
    assert read(engine, lambda s: store.thread_messages(s, thread_id=thread_id)) == []


def test_the_browser_is_told_to_load_images_from_this_app_only(served):
    """A reply with ![](https://elsewhere/?leak=...) must not make the browser send anything away."""
    server, _ = served
    for path in ("/", "/login", "/api/health", "/console"):
        policy = httpx.get(server.base_url + path, timeout=10).headers.get("content-security-policy")
        assert "img-src 'self' data: blob:" in policy.split("; "), path
