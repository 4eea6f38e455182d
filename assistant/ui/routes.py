"""HTTP routes we put in front of Chainlit's own.

- `POST /login`: Chainlit's login answers every refusal with "credentialssignin"; ours says why
  (username rules, short password, closed registration), as a code the login page translates.
- `PUT /feedback`, `DELETE /feedback`: Chainlit's versions do not check who owns the message.
- `GET /api/health`: readiness of our own parts (the database answers).

Chainlit's SPA catch-all `GET /{full_path:path}` answers every GET with index.html, and FastAPI
matches routes in order, so ours are moved to the front of the route list.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from chainlit.auth import get_current_user
from chainlit.data import get_data_layer
from chainlit.server import _authenticate_user  # Chainlit's own cookie + JWT response
from chainlit.types import DeleteFeedbackRequest, UpdateFeedbackRequest
from chainlit.user import PersistedUser
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from fastapi.security import OAuth2PasswordRequestForm
from sqlalchemy import Engine

from assistant.accounts import SignInRefused
from memory import store
from memory.db import read

CurrentUser = Annotated[object, Depends(get_current_user)]
SignIn = Callable[[str, str], Awaitable[PersistedUser]]


def _user_id(user: object) -> int:
    if not isinstance(user, PersistedUser):
        raise HTTPException(status_code=401, detail="Unauthorized")
    return int(user.id)


def install_routes(fastapi_app: FastAPI, engine: Engine, sign_in: SignIn) -> None:
    async def login(request: Request, form: Annotated[OAuth2PasswordRequestForm, Depends()]) -> Response:
        try:
            user = await sign_in(form.username, form.password)
        except SignInRefused as refused:
            raise HTTPException(status_code=401, detail=refused.code) from None
        return await _authenticate_user(request, user)

    async def put_feedback(update: UpdateFeedbackRequest, current_user: CurrentUser) -> JSONResponse:
        user_id = _user_id(current_user)
        message = await asyncio.to_thread(read, engine, lambda s: store.get_message(s, step_id=update.feedback.forId))
        if message is None or message.user_id != user_id:
            raise HTTPException(status_code=404, detail="Message not found")
        feedback_id = await get_data_layer().upsert_feedback(feedback=update.feedback)
        return JSONResponse({"success": True, "feedbackId": feedback_id})

    async def delete_feedback(payload: DeleteFeedbackRequest, current_user: CurrentUser) -> JSONResponse:
        user_id = _user_id(current_user)
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
