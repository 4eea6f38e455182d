"""Hostile input to every route of ours, over HTTP on SQLite and PostgreSQL: a clear 4xx with a JSON
`detail` sentence, never a 500; a body too large is refused before it is read."""

import json
import socket
import time

import httpx
import pytest

from memory import store
from memory.db import read, write
from memory.models import AuditRecord, Author, ProfileEntry
from tests.appserver import fresh, signed_in_operator

TOO_BIG_IDS = ["1" * 30, "9223372036854775808", "2147483648", "0", "-1", "abc", "1e3", "%00"]
# The one audit record of this module, among whatever else the shared app's database holds.
OURS = {"pseudonym": "u-uma-hostile"}
_log_from: dict[str, int] = {}  # where the server's log stood when this module began, per server


@pytest.fixture(scope="module")
def served(shared_app):
    server, engine = shared_app
    _log_from[server.base_url] = len(server.log())
    operator = signed_in_operator(server, engine, fresh("olga"))
    user = httpx.Client(base_url=server.base_url, timeout=30)
    uma = fresh("uma")
    assert server.login(user, uma, "password1").status_code == 200

    def seed(session):
        owner = store.get_user(session, identifier=uma)
        store.upsert_thread(session, thread_id="uma-t", user_id=owner.id, name="walks")
        store.save_message(session, step_id="uma-m", thread_id="uma-t", user_id=owner.id, author=Author.USER,
                           content="n" * 600)
        session.add(AuditRecord(pseudonym=OURS["pseudonym"], thread_id="uma-t", message_id="uma-m",
                                reply_id="uma-m", decision="refuse", rule_ids_json='["IWP.R1"]', rationale="r",
                                spec_version="v1", model="fake-chat", latency_ms=1.0))
        entry = ProfileEntry(user_id=owner.id, facet="preference", text="Walks by the sea.", evidence_json="[]")
        session.add(entry)
        session.flush()
        return entry.id

    entry_id = write(engine, seed)
    yield server, engine, operator, user, entry_id
    operator.close()
    user.close()


def _clear_4xx(response: httpx.Response) -> str:
    """The response is a client error that says why, as JSON; returns the sentence."""
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    detail = response.json()["detail"]
    assert isinstance(detail, str) and detail, detail
    return detail


@pytest.mark.parametrize("raw", TOO_BIG_IDS)
def test_an_id_no_row_can_have_is_not_found_on_every_id_route(served, raw):
    _, _, operator, user, _ = served
    for client, method, path, body in [
        (user, "PATCH", f"/api/me/profile/entries/{raw}", {"version": 1, "pinned": True}),
        (user, "GET", f"/api/me/profile/entries/{raw}/evidence", None),
        (operator, "GET", f"/api/console/records/{raw}", None),
        (operator, "POST", f"/api/console/records/{raw}/label", {"label": "correct"}),
        (operator, "GET", f"/console/records/{raw}", None),
        (operator, "POST", f"/console/records/{raw}/label", None),
    ]:
        response = client.request(method, path, json=body)
        assert response.status_code == 404, (method, path, response.status_code, response.text[:200])
        assert _clear_4xx(response)


@pytest.mark.parametrize("note", [5, ["a"], {"a": 1}, True, 1e308])
def test_a_label_note_that_is_not_text_is_refused(served, note):
    _, _, operator, _, _ = served
    record_id = operator.get("/api/console/records", params=OURS).json()["records"][0]["id"]
    detail = _clear_4xx(operator.post(f"/api/console/records/{record_id}/label",
                                      json={"label": "correct", "note": note}))
    assert "note" in detail


def test_a_nul_in_a_label_note_is_dropped_not_a_crash(served):
    _, _, operator, _, _ = served
    record_id = operator.get("/api/console/records", params=OURS).json()["records"][0]["id"]
    for saved in (operator.post(f"/api/console/records/{record_id}/label", json={"label": "correct", "note": "a\x00b"}),
                  operator.post(f"/console/records/{record_id}/label", data={"label": "correct", "note": "a\x00b"},
                                follow_redirects=False)):
        assert saved.status_code in (200, 303), saved.text[:200]
    assert operator.get(f"/api/console/records/{record_id}").json()["note"] == "ab"


@pytest.mark.parametrize("params", [{"date_to": "9999-12-31"}, {"date_from": "0001-01-01", "date_to": "9999-12-31"},
                                    {"date_from": "9999-12-31"}])
def test_the_calendars_last_day_is_a_valid_filter(served, params):
    _, _, operator, _, _ = served
    listing = operator.get("/api/console/records", params={**params, **OURS})
    assert listing.status_code == 200, listing.text[:300]
    assert listing.json()["total"] == (0 if "date_from" in params and params["date_from"] > "2" else 1)
    for path in ("/api/console/metrics", "/console", "/console/export.csv", "/api/console/export"):
        assert operator.get(path, params=params).status_code == 200, path


@pytest.mark.parametrize("name", ["rule_id", "pseudonym", "model", "spec_version", "decision", "label"])
@pytest.mark.parametrize("value", ["x" * 50_000, "a\x00b"])
def test_overlong_or_nul_filter_values_are_refused(served, name, value):
    _, _, operator, _, _ = served
    for path in ("/api/console/records", "/api/console/metrics", "/api/console/export"):
        assert _clear_4xx(operator.get(path, params={name: value})), path
    page = operator.get("/console", params={name: value})
    assert page.status_code == 400 and "text/html" in page.headers["content-type"]


def test_a_thread_search_as_long_as_a_book_is_clipped_and_still_finds(served):
    """A pasted passage is searched by its first MAX_SEARCH characters (the message holds 600 n's)."""
    _, _, _, user, _ = served
    for search in ("n" * 50_000, "n" * 600):
        found = user.post("/project/threads", json={"pagination": {"first": 5}, "filter": {"search": search}})
        assert found.status_code == 200, found.text[:300]
        assert [t["id"] for t in found.json()["data"]] == ["uma-t"]
    none = user.post("/project/threads", json={"pagination": {"first": 5}, "filter": {"search": "m" * 50_000}})
    assert none.status_code == 200 and none.json()["data"] == []


@pytest.mark.parametrize("thread_id", ["%00", "a%00b", "x" * 3000])
def test_a_thread_id_no_thread_can_have_is_not_found(served, thread_id):
    _, _, _, user, _ = served
    for method, path, body in [("GET", f"/api/me/threads/{thread_id}", None),
                               ("PUT", f"/api/me/threads/{thread_id}/remember", {"remember": True}),
                               ("GET", f"/project/thread/{thread_id}", None)]:
        response = user.request(method, path, json=body)
        assert response.status_code in (401, 404), (path[:60], response.status_code)  # Chainlit says 401
    cursor = user.post("/project/threads", json={"pagination": {"first": 5, "cursor": "a\x00"}, "filter": {"search": "\x00"}})
    assert cursor.status_code == 200


def test_feedback_for_a_nul_id_is_not_found(served):
    _, _, _, user, _ = served
    assert user.put("/feedback", json={"feedback": {"forId": "\x00", "value": 1}, "sessionId": "x"}).status_code == 404
    assert user.request("DELETE", "/feedback", json={"feedbackId": "\x00"}).status_code == 404


@pytest.mark.parametrize("body", [b'{"a":' * 5000, b"\xff\xfe", b"[1]", b"null"])
def test_bodies_that_are_not_a_json_object_are_refused(served, body):
    _, _, operator, user, entry_id = served
    for client, method, path in [(user, "PATCH", f"/api/me/profile/entries/{entry_id}"),
                                 (user, "POST", "/api/me/profile/entries"),
                                 (user, "PUT", "/api/me/threads/uma-t/remember"),
                                 (operator, "POST", "/api/console/records/1/label")]:
        response = client.request(method, path, content=body, headers={"content-type": "application/json"})
        assert 400 <= response.status_code < 500, (path, body[:20], response.status_code)


@pytest.mark.parametrize("sent, kept", [(b"Likes\\u0000 tea.", "Likes tea."), (b"Likes \\ud800 coffee.", "Likes \ufffd coffee.")])
def test_a_nul_or_a_lone_surrogate_in_an_entry_is_cleaned_not_a_crash(served, sent, kept):
    """PostgreSQL refuses both in text; they are cleaned as everything we store is (memory.text)."""
    _, _, _, user, _ = served
    added = user.post("/api/me/profile/entries", content=b'{"facet": "preference", "text": "%s"}' % sent,
                      headers={"content-type": "application/json"})
    assert added.status_code == 201, added.text[:300]
    assert added.json()["text"] == kept


# --- bodies too large -------------------------------------------------------------------------

BODY_ROUTES = [("PATCH", "/api/me/profile/entries/1"), ("POST", "/api/me/profile/entries"),
               ("PUT", "/api/me/threads/uma-t/remember"), ("POST", "/api/me/forget"),
               ("POST", "/api/console/records/1/label"), ("POST", "/console/records/1/label"),
               ("PUT", "/feedback"), ("DELETE", "/feedback"), ("POST", "/login"), ("POST", "/project/threads")]


def _raw_request(server, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, float]:
    """Send the head and part of a body; return the status and how long the answer took."""
    host, port = server.base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        started = time.monotonic()
        sock.sendall(head.encode() + b"\r\n" + body)
        answer = sock.recv(200)
    return int(answer.split(b" ", 2)[1]), time.monotonic() - started


def _signed_in_headers(served, path: str) -> dict[str, str]:
    """Headers that get the request past the sign-in and role checks to where the body is read."""
    _, _, operator, user, _ = served
    client = operator if "console" in path else user
    kind = "application/x-www-form-urlencoded" if path in ("/login", "/console/records/1/label") else "application/json"
    return {"Content-Type": kind, "Cookie": f"access_token={client.cookies['access_token']}"}


@pytest.mark.parametrize("method, path", BODY_ROUTES)
def test_a_gigabyte_body_is_refused_unread(served, method, path):
    """The declared length alone is enough: only 1 KB of the 1 GB is ever sent."""
    server = served[0]
    status, took = _raw_request(server, method, path, {**_signed_in_headers(served, path),
                                                       "Content-Length": str(2**30)}, b"{" + b" " * 1023)
    assert status == 413 and took < 5


@pytest.mark.parametrize("method, path", BODY_ROUTES)
def test_a_chunked_body_is_cut_off_past_the_limit(served, method, path):
    """No declared length: the server stops reading at the limit instead of waiting for the end."""
    server = served[0]
    chunk = b" " * 16384
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(6))  # 96 KiB, and never a last chunk
    status, took = _raw_request(server, method, path, {**_signed_in_headers(served, path),
                                                       "Transfer-Encoding": "chunked"}, body)
    assert status == 413 and took < 5


def test_a_body_under_the_limit_still_works(served):
    _, _, _, user, _ = served
    response = user.put("/api/me/threads/uma-t/remember", content=json.dumps({"remember": True, "pad": "x" * 60_000}),
                        headers={"content-type": "application/json"})
    assert response.status_code == 200


# --- a little fuzzing -------------------------------------------------------------------------

HOSTILE_TEXT = ["\x00", "x" * 50_000, "'; drop table thread; --", "%_\\", "\u202e", "🙂" * 1000, "9" * 40]
HOSTILE_JSON = [None, 1, 10**30, -1, True, [], {}, ["a"], {"a": 1}, "", "\x00", "x" * 40_000]


def test_hostile_values_in_every_parameter_never_cause_a_500(served):
    server, _, operator, user, entry_id = served
    failures = []

    def hit(client, method, path, **kwargs):
        response = client.request(method, path, **kwargs)
        if response.status_code >= 500:
            failures.append((method, path[:60], str(kwargs)[:100], response.status_code))

    for value in HOSTILE_TEXT:
        for name in ("date_from", "date_to", "decision", "rule_id", "pseudonym", "label", "model", "spec_version",
                     "page", "page_size", "format"):
            for path in ("/api/console/records", "/api/console/metrics", "/api/console/export", "/console",
                         "/console/export.csv", "/console/export.jsonl"):
                hit(operator, "GET", path, params={name: value})
        hit(user, "POST", "/project/threads", json={"pagination": {"first": 5, "cursor": value}, "filter": {"search": value}})
        hit(user, "PUT", "/project/thread", json={"threadId": "uma-t", "name": value})
    for value in HOSTILE_JSON:
        for field in ("text", "facet", "version", "pinned", "status"):
            hit(user, "PATCH", f"/api/me/profile/entries/{entry_id}", json={"version": 1, field: value})
            hit(user, "POST", "/api/me/profile/entries", json={"facet": "preference", "text": "Likes tea.", field: value})
        hit(user, "PUT", "/api/me/threads/uma-t/remember", json={"remember": value})
        hit(operator, "POST", "/api/console/records/1/label", json={"label": value, "note": value})
        hit(operator, "POST", "/console/records/1/label", data={"label": str(value), "note": str(value)})
        hit(user, "PUT", "/feedback", json={"feedback": {"forId": value, "value": value, "comment": value}, "sessionId": "x"})
        hit(user, "DELETE", "/feedback", json={"feedbackId": value})
        hit(user, "POST", "/project/threads", json={"pagination": {"first": value}, "filter": {"feedback": value}})
        hit(user, "POST", "/api/me/forget", json={"confirm": value})
    assert failures == []
    assert "Traceback" not in server.log(since=_log_from[server.base_url])
