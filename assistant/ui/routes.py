"""HTTP routes we put in front of Chainlit's own.

- `POST /login`: Chainlit's login answers every refusal with "credentialssignin"; ours says why
  (username rules, short password, closed registration), as a code the login page translates.
- `PUT /feedback`, `DELETE /feedback`: Chainlit's versions do not check who owns the message.
- `signed_in_account`: the one sign-in check of all our routes (feedback, /api/me, the console). The
  token must match the account it names exactly (id and creation time, both signed into it), so a
  token issued to an erased account is refused even if someone has since registered the same name.
- `GET /api/health`: readiness of our own parts (the database answers).

Chainlit's SPA catch-all `GET /{full_path:path}` answers every GET with index.html, and FastAPI
matches routes in order, so ours are moved to the front of the route list.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import jwt as pyjwt
from chainlit.auth import get_token_from_cookies
from chainlit.auth.jwt import get_jwt_secret
from chainlit.data import get_data_layer
from chainlit.server import _authenticate_user  # Chainlit's own cookie + JWT response
from chainlit.types import DeleteFeedbackRequest, UpdateFeedbackRequest
from chainlit.user import PersistedUser
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from fastapi.security import OAuth2PasswordRequestForm
from sqlalchemy import Engine

from assistant.accounts import SignInRefused
from assistant.ui.datalayer import iso
from memory import store
from memory.db import read
from memory.models import User

SignIn = Callable[[str, str], Awaitable[PersistedUser]]


def _token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return get_token_from_cookies(request.cookies)


async def signed_in_account(engine: Engine, request: Request) -> User:
    """The signed-in account, checked against the token's signed id and creation time; else 401."""
    token = _token(request)
    if not token:
        raise HTTPException(status_code=401, detail="Sign in first.")
    try:
        claims = pyjwt.decode(token, get_jwt_secret(), algorithms=["HS256"])
    except pyjwt.PyJWTError:
        raise HTTPException(status_code=401, detail="Your sign-in has expired; sign in again.") from None
    identifier = claims.get("identifier")
    user = await asyncio.to_thread(read, engine, lambda s: store.get_user(s, identifier=identifier or ""))
    if user is None or str(user.id) != str(claims.get("id")) or iso(user.created_at) != claims.get("createdAt"):
        raise HTTPException(status_code=401, detail="This sign-in belongs to an account that no longer exists.")
    return user


def install_routes(fastapi_app: FastAPI, engine: Engine, sign_in: SignIn) -> None:
    async def login(request: Request, form: Annotated[OAuth2PasswordRequestForm, Depends()]) -> Response:
        try:
            user = await sign_in(form.username, form.password)
        except SignInRefused as refused:
            raise HTTPException(status_code=401, detail=refused.code) from None
        return await _authenticate_user(request, user)

    async def put_feedback(update: UpdateFeedbackRequest, request: Request) -> JSONResponse:
        user_id = (await signed_in_account(engine, request)).id
        message = await asyncio.to_thread(read, engine, lambda s: store.get_message(s, step_id=update.feedback.forId))
        if message is None or message.user_id != user_id:
            raise HTTPException(status_code=404, detail="Message not found")
        feedback_id = await get_data_layer().upsert_feedback(feedback=update.feedback)
        return JSONResponse({"success": True, "feedbackId": feedback_id})

    async def delete_feedback(payload: DeleteFeedbackRequest, request: Request) -> JSONResponse:
        user_id = (await signed_in_account(engine, request)).id
        owner = await asyncio.to_thread(read, engine, lambda s: store.feedback_owner(s, feedback_id=payload.feedbackId))
        if owner != user_id:
            raise HTTPException(status_code=404, detail="Feedback not found")
        await get_data_layer().delete_feedback(payload.feedbackId)
        return JSONResponse({"success": True})

    async def api_health() -> dict:
        await asyncio.to_thread(read, engine, store.count_users)
        return {"status": "ok", "database": engine.dialect.name}

    ours = [
        ("/login", login, ["POST"]),
        ("/feedback", put_feedback, ["PUT"]),
        ("/feedback", delete_feedback, ["DELETE"]),
        ("/api/health", api_health, ["GET"]),
    ]
    install_first(fastapi_app, ours)


Route = tuple[str, Callable[..., Any], list[str]]


def install_first(fastapi_app: FastAPI, routes: list[Route]) -> None:
    """Add the routes ahead of Chainlit's catch-all (which would answer their GETs with index.html)."""
    for path, endpoint, methods in routes:
        fastapi_app.add_api_route(path, endpoint, methods=methods)
        fastapi_app.router.routes.insert(0, fastapi_app.router.routes.pop())
