"""What arrives over HTTP, checked in one place before it reaches the database.

- Ids in URLs (`/api/me/profile/entries/{entry_id}`, `/api/console/records/{record_id}`, ...): a whole
  number from 1 to `memory.store.MAX_ROW_ID` (the integer range both databases hold); a bigger one
  would reach the driver and fail there with a 500. Anything else names no row, so it answers 404
  like an id that does not exist.
- Request bodies: at most `limits.MAX_BODY` bytes, checked here before they are read (`read_body`): a
  declared Content-Length over the limit is refused with 413 without reading a byte, and a body
  without one (chunked) is read up to the limit and refused with 413 as soon as it passes it. The
  `limits.BoundedBodies` middleware enforces the same limit in front of every route, Chainlit's too;
  this check keeps our routes bounded on their own. A body is then parsed into a JSON object or form
  fields, and a JSON object into its route's model (`read_model`, models in `bodies.py`). Every string
  is cleaned as everything we store is (`memory.text.clean_text`): PostgreSQL refuses NUL and lone
  surrogates in text, and a write that fails on them would be a 500, not an answer.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar
from urllib.parse import parse_qs

from fastapi import Depends, HTTPException, Request
from pydantic import ValidationError

from assistant.ui.bodies import Body
from assistant.ui.limits import MAX_BODY, declared_length, too_large
from memory.store import MAX_ROW_ID, possible_row_id
from memory.text import clean_text

M = TypeVar("M", bound=Body)


def row_id(raw: str) -> int | None:
    """The id a URL segment names, or None when no row can have it."""
    # isdigit() alone would accept "²" and other Unicode digits that int() refuses.
    if not (raw.isascii() and raw.isdigit()) or len(raw) > len(str(MAX_ROW_ID)):
        return None
    value = int(raw)
    return value if possible_row_id(value) else None


def path_id(name: str, missing: str) -> Any:
    """A FastAPI dependency: the path parameter `name` as a row id, else 404 with `missing` as detail."""

    def parse(request: Request) -> int:
        value = row_id(request.path_params[name])
        if value is None:
            raise HTTPException(status_code=404, detail=missing)
        return value

    return Depends(parse)


def cleaned(value: Any) -> Any:
    """The JSON value with every string (keys too) cleaned; numbers, booleans and null unchanged."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, list):
        return [cleaned(item) for item in value]
    if isinstance(value, dict):
        return {clean_text(key): cleaned(item) for key, item in value.items()}
    return value


def json_object(raw: bytes) -> dict[str, Any]:
    """The body as a cleaned JSON object (an empty body is `{}`); else a 400 saying what is wrong."""
    try:
        body = cleaned(json.loads(raw or b"{}"))
    except (ValueError, RecursionError):  # RecursionError: nesting thousands deep
        raise HTTPException(status_code=400, detail="The request body must be JSON.") from None
    if not isinstance(body, dict):
        raise HTTPException(status_code=400, detail="The request body must be a JSON object.")
    return body


def form_fields(raw: bytes) -> dict[str, str]:
    """An HTML form's fields (application/x-www-form-urlencoded), cleaned; the first value of each."""
    fields = parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True)
    return {clean_text(name): clean_text(values[0]) for name, values in fields.items()}


async def read_body(request: Request, limit: int = MAX_BODY) -> bytes:
    """The raw body, at most `limit` bytes; else 413, before reading when the declared length says so."""
    declared = declared_length(request.scope["headers"])
    if declared is not None and declared > limit:
        raise HTTPException(status_code=413, detail=too_large(limit))
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:  # a chunked body: stop reading here, whatever else is on its way
            raise HTTPException(status_code=413, detail=too_large(limit))
        chunks.append(chunk)
    return b"".join(chunks)


async def read_form(request: Request) -> dict[str, str]:
    return form_fields(await read_body(request))


def parse_model(raw: bytes, model: type[M]) -> M:
    """Pure: the body as `model`, or a 400 whose detail is the model's sentence for what is wrong."""
    try:
        return model.model_validate(json_object(raw))
    except ValidationError as exc:
        raise HTTPException(status_code=400, detail=model.problem_with(exc)) from None


async def read_model(request: Request, model: type[M]) -> M:
    return parse_model(await read_body(request), model)
