"""`/api/me/...`: the signed-in user's own profile, privacy switches, export and erasure, over HTTP.

Every route takes the user from the sign-in token (`routes.signed_in_account`) and from nowhere else;
no route accepts a user id. An id that is not the caller's answers 404, exactly like one that does
not exist.

Bodies are read by `inputs.read_model`: at most `limits.MAX_BODY` bytes (413 before reading, when the
declared length is over it), then checked against their model in `bodies.py` (400 with one sentence).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Annotated, Any

from chainlit.auth import clear_auth_cookie
from chainlit.config import config as chainlit_config
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import Engine

from assistant.privacy import export_data, forget
from assistant.profile_view import entry_view, load_panel
from assistant.ui.bodies import EntryChange, ForgetConfirmation, NewEntry, RememberChoice
from assistant.ui.guard import end_sessions_of
from assistant.ui.inputs import path_id, read_model
from assistant.ui.routes import install_first, signed_in_account
from hypotheses import edits
from memory import store
from memory.db import read, write
from memory.embed import Embedder
from memory.index import UserIndexes
from memory.models import stored_id
from memory.names import normal_username

logger = logging.getLogger(__name__)
EntryId = Annotated[int, path_id("entry_id", "That profile entry does not exist (it may have been removed).")]


class MeApi:
    def __init__(self, engine: Engine, embedder: Embedder, indexes: UserIndexes) -> None:
        self._engine, self._embedder, self._indexes = engine, embedder, indexes

    async def user_id(self, request: Request) -> int:
        return stored_id((await signed_in_account(self._engine, request)).id)

    async def _write(self, work: Callable[[Any], Any]) -> Any:
        try:
            return await asyncio.to_thread(write, self._engine, work)
        except edits.EditError as exc:
            raise HTTPException(status_code=exc.status, detail=str(exc)) from None

    def _vector(self, text: str) -> tuple[bytes | None, str | None]:
        """The text's vector, so merge can recognise it later; none while the model is still loading."""
        if not self._embedder.ready:
            return None, None
        cleaned = edits.clean_entry_text(text)
        return self._embedder.encode_one(cleaned).astype("<f4").tobytes(), self._embedder.model_name

    # --- routes ---------------------------------------------------------------------------------

    async def panel(self, request: Request) -> JSONResponse:
        user_id = await self.user_id(request)
        return JSONResponse(await asyncio.to_thread(read, self._engine, lambda s: load_panel(s, user_id=user_id)))

    async def evidence(self, request: Request, entry_id: EntryId) -> JSONResponse:
        user_id = await self.user_id(request)
        try:
            found = await asyncio.to_thread(read, self._engine, lambda s: edits.evidence(
                s, user_id=user_id, entry_id=entry_id))
        except edits.EditError as exc:
            raise HTTPException(status_code=exc.status, detail=str(exc)) from None
        return JSONResponse({"entry_id": entry_id, "messages": found})

    async def _text_vector(self, text: str) -> tuple[bytes | None, str | None]:
        try:
            return await asyncio.to_thread(self._vector, text)
        except edits.EditError as exc:
            raise HTTPException(status_code=400, detail=str(exc)) from None

    async def add_entry(self, request: Request) -> JSONResponse:
        user_id, body = await self.user_id(request), await read_model(request, NewEntry)
        vector, model = await self._text_vector(body.text)
        row = await self._write(lambda s: edits.add_own(s, user_id=user_id, facet=body.facet, text=body.text,
                                                        vector=vector, vector_model=model))
        return JSONResponse(entry_view(row), status_code=201)

    async def change_entry(self, request: Request, entry_id: EntryId) -> JSONResponse:
        """One change per request: new `text`, `pinned` true/false, or `status` rejected/active; with `version`."""
        user_id, body = await self.user_id(request), await read_model(request, EntryChange)
        changes = body.changes()
        if not changes:
            raise HTTPException(status_code=400, detail="Nothing to change: send text, pinned or status.")
        if len(changes) > 1:
            raise HTTPException(status_code=400, detail="One change at a time: send text, pinned or status, not "
                                                        f"{' and '.join(changes)} together.")
        if body.text is not None:
            vector, model = await self._text_vector(body.text)
            change = lambda s: edits.edit_text(s, user_id=user_id, entry_id=entry_id, text=body.text,  # noqa: E731
                                               version=body.version, vector=vector, vector_model=model)
        elif (pinned := body.pinned) is not None:
            change = lambda s: edits.set_pinned(s, user_id=user_id, entry_id=entry_id,  # noqa: E731
                                                pinned=pinned, version=body.version)
        else:
            change = lambda s: edits.set_status(s, user_id=user_id, entry_id=entry_id,  # noqa: E731
                                                status=body.status, version=body.version)
        return JSONResponse(entry_view(await self._write(change)))

    async def undo(self, request: Request) -> JSONResponse:
        user_id = await self.user_id(request)
        row = await self._write(lambda s: edits.undo_last(s, user_id=user_id))
        if row is None:
            raise HTTPException(status_code=409, detail="There is no change of yours left to undo.")
        return JSONResponse(entry_view(row))

    async def remember(self, request: Request, thread_id: str) -> JSONResponse:
        user_id, body = await self.user_id(request), await read_model(request, RememberChoice)
        thread = await self._write(lambda s: store.set_remember(s, thread_id=thread_id, user_id=user_id,
                                                                remember=body.remember))
        if thread is None:
            raise HTTPException(status_code=404, detail="That conversation does not exist.")
        return JSONResponse({"thread_id": thread_id, "remember": body.remember})

    async def thread(self, request: Request, thread_id: str) -> JSONResponse:
        user_id = await self.user_id(request)
        thread = await asyncio.to_thread(read, self._engine, lambda s: store.owned_thread(
            s, thread_id=thread_id, user_id=user_id))
        if thread is None:
            raise HTTPException(status_code=404, detail="That conversation does not exist.")
        return JSONResponse({"thread_id": thread_id, "remember": thread.remember})

    async def export(self, request: Request) -> Response:
        user_id = await self.user_id(request)
        data = await asyncio.to_thread(read, self._engine, lambda s: export_data(s, user_id=user_id))
        name = f"hyperalign-{data['account']['username']}-{data['exported_at'][:10]}.json"
        logger.info("user %s exported their data: threads=%d", user_id, len(data["threads"]))
        return Response(json.dumps(data, ensure_ascii=False, indent=2), media_type="application/json",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})

    async def forget_me(self, request: Request) -> JSONResponse:
        user, body = await signed_in_account(self._engine, request), await read_model(request, ForgetConfirmation)
        user_id = stored_id(user.id)
        if normal_username(body.confirm) != normal_username(user.identifier):
            raise HTTPException(status_code=400, detail=ForgetConfirmation.problem)
        counts = await asyncio.to_thread(forget, self._engine, self._indexes, user_id=user_id,
                                         token_lifetime_s=chainlit_config.project.user_session_timeout)
        await end_sessions_of(user_id)  # an open tab must not go on as nobody (or, once, as somebody else)
        response = JSONResponse({"forgotten": True, **counts})
        clear_auth_cookie(request, response)
        return response


def install_api(fastapi_app: FastAPI, api: MeApi) -> None:
    install_first(fastapi_app, [
        ("/api/me/profile", api.panel, ["GET"]),
        ("/api/me/profile/entries", api.add_entry, ["POST"]),
        ("/api/me/profile/entries/{entry_id}", api.change_entry, ["PATCH"]),
        ("/api/me/profile/entries/{entry_id}/evidence", api.evidence, ["GET"]),
        ("/api/me/profile/undo", api.undo, ["POST"]),
        ("/api/me/threads/{thread_id}", api.thread, ["GET"]),
        ("/api/me/threads/{thread_id}/remember", api.remember, ["PUT"]),
        ("/api/me/export", api.export, ["GET"]),
        ("/api/me/forget", api.forget_me, ["POST"]),
    ])
