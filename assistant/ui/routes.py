"""HTTP routes we put in front of Chainlit's own.

- `POST /login`: Chainlit's login answers every refusal with "credentialssignin"; ours says why
  (username rules, short password, too many attempts with `Retry-After`), as a code the login page
  translates. A wrong password and an unknown name answer alike.
- `GET /api/signin`: what the login page shows before the first try (public/hyperalign.js): whether a new
  name creates an account, and the rules it must meet. It says nothing a sign-in attempt would not.
- `POST /logout`: revokes every token of the account and ends its live sessions (Chainlit's only
  clears the cookie, so a copied token kept working). `POST /auth/jwt` takes only a live token.
- `PUT /feedback`, `DELETE /feedback`: Chainlit's versions do not check who owns the message.
- `signed_in_account`: the one sign-in check of all our routes (feedback, /api/me, the console): the
  token must resolve to the exact live account (assistant.ui.guard).
- `GET /api/health`: readiness of our own parts (the database answers).
- Chainlit routes this app does not use (`/project/action`, `/project/element`, `/mcp`) answer 404, and
  `/set-session-cookie` (sticky sessions behind a proxy) takes only a session id.

Chainlit's SPA catch-all `GET /{full_path:path}` answers every GET with index.html, and FastAPI
matches routes in order, so ours are moved to the front of the route list.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from chainlit.auth import clear_auth_cookie, get_token_from_cookies
from chainlit.data import get_data_layer
from chainlit.server import _authenticate_user  # Chainlit's own cookie + JWT response
from chainlit.types import DeleteFeedbackRequest, UpdateFeedbackRequest
from chainlit.user import PersistedUser
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import OAuth2PasswordRequestForm
from sqlalchemy import Engine

from assistant.accounts import SignInRefused, signin_rules
from assistant.config import Registration
from assistant.ui.bodies import StickySession
from assistant.ui.datalayer import persisted_user
from assistant.ui.guard import account_for_token, end_sessions_of
from assistant.ui.inputs import read_model
from memory import store
from memory.db import read, write
from memory.models import User, stored_id
from memory.text import clean_text

logger = logging.getLogger(__name__)
SignIn = Callable[[str, str, str], Awaitable[PersistedUser]]  # username, password, client address
STICKY_ID = re.compile(r"[A-Za-z0-9-]{1,64}")


def _token(request: Request) -> str | None:
    """The request's token, in Chainlit's order (cookie first), so both always act for the same account."""
    if cookie := get_token_from_cookies(request.cookies):
        return cookie
    header = request.headers.get("authorization", "")
    return (header[7:].strip() or None) if header.lower().startswith("bearer ") else None


async def signed_in_account(engine: Engine, request: Request) -> User:
    """The exact live account the request's token was issued to (assistant.ui.guard); else 401."""
    user = await asyncio.to_thread(account_for_token, engine, _token(request))
    if user is None:
        raise HTTPException(status_code=401, detail="Sign in first: this sign-in has ended or was never valid.")
    return user


async def revoke_account(engine: Engine, user_id: int) -> None:
    """Every token of the account stops working, and its live sessions here end now (elsewhere within
    guard.SWEEP_S seconds)."""
    def revoke(session) -> None:
        user = store.get_user_by_id(session, user_id=user_id)
        if user is not None:
            store.revoke_tokens(session, user=user)

    await asyncio.to_thread(write, engine, revoke)
    await end_sessions_of(user_id)


def install_routes(fastapi_app: FastAPI, engine: Engine, sign_in: SignIn, registration: Registration,
                   recall_ready: Callable[[], bool] = lambda: True, instance: str = "") -> None:
    """`recall_ready`: whether the embedding model has loaded (until then recall is lexical only);
    `instance`: this process's name, if the operator gave it one (replicas behind a proxy)."""
    async def login(request: Request, form: Annotated[OAuth2PasswordRequestForm, Depends()]) -> Response:
        client = request.client.host if request.client else ""
        try:
            user = await sign_in(form.username, form.password, client)
        except SignInRefused as refused:
            if refused.retry_after is not None:
                raise HTTPException(status_code=429, detail=refused.code,
                                    headers={"Retry-After": str(refused.retry_after)}) from None
            raise HTTPException(status_code=401, detail=refused.code) from None
        return await _authenticate_user(request, user)

    async def logout(request: Request) -> JSONResponse:
        account = await asyncio.to_thread(account_for_token, engine, _token(request))
        if account is not None:
            await revoke_account(engine, stored_id(account.id))
            logger.info("user %s signed out; their tokens are revoked", account.id)
        response = JSONResponse({"success": True})
        clear_auth_cookie(request, response)
        return response

    async def jwt_sign_in(request: Request) -> Response:
        # Chainlit's version signs in with any token minted with our secret; only a live one may.
        account = await signed_in_account(engine, request)
        return await _authenticate_user(request, persisted_user(account))

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

    async def sticky_session_cookie(request: Request) -> JSONResponse:
        # Chainlit's version 500s on any body but a JSON object and sets whatever it is given.
        session_id = (await read_model(request, StickySession)).session_id
        if not STICKY_ID.fullmatch(session_id):
            raise HTTPException(status_code=400, detail=StickySession.problem)
        response = JSONResponse({"message": "Session cookie set"})
        local = request.client is not None and request.client.host in {"127.0.0.1", "localhost"}
        response.set_cookie("X-Chainlit-Session-id", session_id, path="/", httponly=True, secure=not local,
                            samesite="lax" if local else "none")
        return response

    async def not_offered() -> None:
        raise HTTPException(status_code=404, detail="This app does not offer that.")

    async def signin_page() -> dict:
        return {"registration": registration.value, "rules": signin_rules(registration)}

    async def api_health() -> dict:
        await asyncio.to_thread(read, engine, store.count_users)
        health = {"status": "ok", "database": engine.dialect.name, "recall": "ready" if recall_ready() else "loading"}
        return health | ({"instance": instance} if instance else {})

    ours: list[Route] = [
        ("/login", login, ["POST"]),
        ("/logout", logout, ["POST"]),
        ("/auth/jwt", jwt_sign_in, ["POST"]),
        ("/feedback", put_feedback, ["PUT"]),
        ("/feedback", delete_feedback, ["DELETE"]),
        ("/api/health", api_health, ["GET"]),
        ("/api/signin", signin_page, ["GET"]),
        ("/set-session-cookie", sticky_session_cookie, ["POST"]),
        # Chainlit's action buttons, element edits and MCP: not features of this app, and each took a
        # session id from the client (an unknown one was a 500) or wrote files outside the data directory.
        ("/project/action", not_offered, ["POST"]),
        ("/project/element", not_offered, ["PUT", "DELETE"]),
        ("/mcp", not_offered, ["POST", "DELETE"]),
    ]
    install_first(fastapi_app, ours)


async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
    """FastAPI's 422 without the echoed input: a lone surrogate in it made the answer itself a 500, and
    what a client sent need not come back."""
    errors = [{"loc": [clean_text(str(part)) for part in e.get("loc", ())], "msg": clean_text(str(e.get("msg", ""))),
               "type": str(e.get("type", ""))} for e in exc.errors()]
    return JSONResponse({"detail": errors}, status_code=422)


Route = tuple[str, Callable[..., Any], list[str]]


def install_first(fastapi_app: FastAPI, routes: list[Route]) -> None:
    """Add the routes ahead of Chainlit's catch-all (which would answer their GETs with index.html)."""
    for path, endpoint, methods in routes:
        fastapi_app.add_api_route(path, endpoint, methods=methods)
        fastapi_app.router.routes.insert(0, fastapi_app.router.routes.pop())
