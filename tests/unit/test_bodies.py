"""Request bodies: size checked before reading, parsed into each route's model, wrong ones explained in a
sentence. In process: a bare FastAPI app with no middleware, so what is checked here is the routes' own
reading (`inputs.read_body`), not `limits.BoundedBodies` in front of it."""

import json

import httpx
import pytest
from fastapi import FastAPI, HTTPException, Request
from starlette.requests import Request as StarletteRequest

from assistant.ui import bodies
from assistant.ui.inputs import parse_model, read_body, read_model
from assistant.ui.limits import MAX_BODY

pytestmark = pytest.mark.anyio
CHUNK = 16 * 1024


def _request(headers: dict[str, str], chunks: int | None) -> tuple[StarletteRequest, list[int]]:
    """A request whose body arrives in 16 KiB chunks (`None`: endlessly); also the list of chunks handed out."""
    handed_out: list[int] = []

    async def receive() -> dict:
        handed_out.append(CHUNK)
        more = chunks is None or len(handed_out) < chunks
        return {"type": "http.request", "body": b" " * CHUNK, "more_body": more}

    scope = {"type": "http", "method": "POST", "path": "/", "query_string": b"",
             "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]}
    return StarletteRequest(scope, receive), handed_out


async def test_a_declared_length_over_the_limit_is_refused_before_a_byte_is_read():
    request, handed_out = _request({"Content-Length": str(2**30)}, chunks=None)
    with pytest.raises(HTTPException) as refused:
        await read_body(request)
    assert refused.value.status_code == 413 and "64 KB" in refused.value.detail
    assert handed_out == []


async def test_a_body_without_a_length_is_read_up_to_the_limit_and_no_further():
    request, handed_out = _request({"Transfer-Encoding": "chunked"}, chunks=None)  # it never ends
    with pytest.raises(HTTPException) as refused:
        await read_body(request)
    assert refused.value.status_code == 413
    assert len(handed_out) == MAX_BODY // CHUNK + 1  # the chunk that passed the limit was the last one asked for


async def test_a_body_at_the_limit_is_read_whole():
    request, _ = _request({"Content-Length": str(MAX_BODY)}, chunks=MAX_BODY // CHUNK)
    assert await read_body(request) == b" " * MAX_BODY


def _app() -> FastAPI:
    app = FastAPI()

    async def remember(request: Request) -> dict:
        return (await read_model(request, bodies.RememberChoice)).model_dump()

    app.add_api_route("/remember", remember, methods=["PUT"])
    return app


async def _put(content, headers: dict[str, str] | None = None) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=_app()), base_url="http://app") as client:
        return await client.put("/remember", content=content, headers=headers)


async def test_over_http_an_oversized_body_is_a_413_with_a_sentence_declared_or_chunked():
    async def endless():
        while True:
            yield b" " * CHUNK

    declared = await _put(b"{}", {"Content-Length": str(MAX_BODY + 1)})
    chunked = await _put(endless())
    for response in (declared, chunked):
        assert response.status_code == 413
        assert response.json() == {"detail": "That request is too large (the limit is 64 KB)."}


async def test_over_http_a_wrong_type_is_a_400_with_the_routes_sentence():
    for body in ({"remember": "no"}, {"remember": 1}, {}, {"remember": None}):
        response = await _put(json.dumps(body))
        assert (response.status_code, response.json()) == (400, {"detail": "Send remember: true or false."}), body
    assert (await _put(b"[true]")).json() == {"detail": "The request body must be a JSON object."}
    assert (await _put(json.dumps({"remember": False, "pad": "x" * 60_000}))).json() == {"remember": False}


# --- the models -------------------------------------------------------------------------------

WRONG = [
    (bodies.NewEntry, {"facet": 5, "text": "Likes tea."}, "The kind of entry must be one of: communication"),
    (bodies.NewEntry, {"facet": "style"}, "An entry needs some text."),
    (bodies.NewEntry, {"facet": "style", "text": ["Likes tea."]}, "An entry needs some text."),
    (bodies.EntryChange, {"text": "Walks."}, "Say which version of the entry you changed (version)."),
    (bodies.EntryChange, {"version": True, "pinned": True}, "Say which version"),
    (bodies.EntryChange, {"version": "1", "pinned": True}, "Say which version"),
    (bodies.EntryChange, {"version": 1.0, "pinned": True}, "Say which version"),
    (bodies.EntryChange, {"version": 1, "pinned": "yes"}, "Send pinned: true or false."),
    (bodies.EntryChange, {"version": 1, "pinned": 1}, "Send pinned: true or false."),
    (bodies.EntryChange, {"version": 1, "text": 5}, "An entry needs some text."),
    (bodies.EntryChange, {"version": 1, "status": ["rejected"]}, "An entry can be rejected or restored"),
    (bodies.RememberChoice, {"remember": "false"}, "Send remember: true or false."),
    (bodies.ForgetConfirmation, {"confirm": 1}, "To erase everything, type your username to confirm."),
    (bodies.ForgetConfirmation, {}, "To erase everything, type your username to confirm."),
    (bodies.AuditLabel, {"label": 5}, "A label is one of correct, over_refusal, under_refusal."),
    (bodies.AuditLabel, {"label": "correct", "note": 1e308}, "A note is text (or left out)."),
    (bodies.StickySession, {"session_id": 5}, "Send session_id: the chat session's id."),
]


@pytest.mark.parametrize("model, body, says", WRONG)
def test_a_wrong_field_is_explained_in_the_models_own_sentence(model, body, says):
    with pytest.raises(HTTPException) as refused:
        parse_model(json.dumps(body).encode(), model)
    detail = refused.value.detail
    assert refused.value.status_code == 400 and isinstance(detail, str) and detail.startswith(says)
    for pydantic_words in ("Input should", "validation error", "type=", "errors.pydantic.dev"):
        assert pydantic_words not in detail


def test_unknown_fields_are_ignored_and_go_no_further():
    """The policy (bodies.py): a body with more than a route reads is understood; the extra never travels on."""
    change = parse_model(b'{"version": 2, "pinned": false, "user_id": 7, "facet": "style"}', bodies.EntryChange)
    assert change.model_dump() == {"version": 2, "text": None, "pinned": False, "status": None}
    assert not hasattr(change, "user_id") and change.changes() == ["pinned"]


def test_strings_are_cleaned_before_the_model_sees_them():
    entry = parse_model(b'{"facet": "preference", "text": "Likes\\u0000 tea \\ud800."}', bodies.NewEntry)
    assert entry.text == "Likes tea \ufffd."


def test_a_change_names_what_it_changes():
    assert bodies.EntryChange(version=1).changes() == []
    assert bodies.EntryChange(version=1, text="Walks.", status="rejected").changes() == ["text", "status"]
