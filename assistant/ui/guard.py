"""Every request and socket event acts for the exact live account its token was issued to.

A sign-in token (Chainlit's JWT) carries the account's id, creation time and token version. Chainlit
itself only looks the token's *name* up, and falls back to the token's own claims when it finds no
account; so a token of an erased account would work again once someone registered the same name,
and a token survived sign-out. Here, in one place:

- `account_for_token` resolves a token to its account or to nothing (id, creation time and token
  version must all match the database; ids are never reused, see memory.models.NEVER_REUSE_IDS);
- Chainlit's HTTP routes get it as their `get_current_user` dependency, and its socket as the
  user check of `connect`;
- every socket event first checks that the session's token still resolves to the session's account;
  a session that fails is ended (its turns cancelled, its socket closed, never restorable);
- a client's message is always the user's (Chainlit takes the author type from the client), and
  the events this app does not offer are refused (`UNOFFERED`);
- an account's socket events, connections included, are metered over all its tabs (`EventBudget`): a
  person's pace never meets the limit, a script's flood is dropped before it costs a database read
  each, and a window message that is not one the app asks for is dropped before anything else;
- revoking (forget-me, sign-out, a role change) ends the account's sessions in this process at
  once, and `sweep` (run every `SWEEP_S` seconds by the app) ends them in every other process, since
  each process re-reads the accounts of its live sessions.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
import weakref
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import jwt as pyjwt
from chainlit import socket as chainlit_socket
from chainlit.auth import get_current_user, reuseable_oauth
from chainlit.auth.jwt import get_jwt_secret
from chainlit.chat_context import chat_contexts
from chainlit.session import WebsocketSession, ws_sessions_id
from chainlit.user import PersistedUser
from chainlit.user_session import user_sessions
from fastapi import Depends, FastAPI, HTTPException
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from assistant.ui.datalayer import iso, persisted_user
from assistant.ui.meter import EventBudget
from memory.db import read
from memory.models import User, stored_id
from memory.store import get_thread

logger = logging.getLogger(__name__)
SWEEP_S = 5.0
# Chainlit's socket events this app does not offer (editing and favourites are off; no chat settings
# or audio). Chainlit handles them whatever the settings say, and each lets a client write where it
# should not (an edit rewrote a stored reply, refusals included) or grow server memory. Window messages
# are offered: they ask for the profile panel (assistant/ui/app.py, on_window_message), act only for the
# session's own live account, store nothing, and anything else sent that way is ignored.
UNOFFERED = frozenset({"edit_message", "message_favorite", "fetch_favorites",
                       "chat_settings_change", "chat_settings_edit", "audio_start", "audio_chunk", "audio_end"})
# Every turn a session started (Chainlit remembers only the latest), so that ending it cancels them all.
_turns: dict[str, weakref.WeakSet[asyncio.Task]] = {}


def token_claims(token: str | None) -> dict | None:
    """The claims of a token signed with our secret and not expired; None for anything else."""
    if not token:
        return None
    secret = get_jwt_secret()
    if secret is None:  # the app sets it at start-up (assistant.config.load_or_create_auth_secret)
        raise RuntimeError("no JWT secret: CHAINLIT_AUTH_SECRET is not set")
    try:
        return pyjwt.decode(token, secret, algorithms=["HS256"])
    except pyjwt.PyJWTError:
        return None


def claimed_id(claims: dict | None) -> int | None:
    value = str((claims or {}).get("id", ""))
    return int(value) if value.isdigit() and len(value) < 19 else None


def matches(user: User | None, claims: dict | None) -> bool:
    """True when the claims were issued to exactly this account, in its current token version."""
    if user is None or claims is None:
        return False
    metadata = found if isinstance(found := claims.get("metadata"), dict) else {}
    return (claimed_id(claims) == user.id and claims.get("createdAt") == iso(user.created_at)
            and metadata.get("token_version") == user.token_version)


def account_for_token(engine: Engine, token: str | None) -> User | None:
    claims = token_claims(token)
    user_id = claimed_id(claims)
    if user_id is None:
        return None
    user = read(engine, lambda s: s.get(User, user_id))
    return user if matches(user, claims) else None


def _accounts(session: Session, ids: Iterable[int]) -> dict[int, User]:
    return {stored_id(u.id): u for u in session.exec(select(User).where(col(User.id).in_(list(ids)))).all()}


def _session_valid(session: WebsocketSession, accounts: dict[int, User]) -> bool:
    claims = token_claims(session.token)
    user = accounts.get(claimed_id(claims) or -1)
    return (isinstance(session.user, PersistedUser) and user is not None and str(user.id) == session.user.id
            and matches(user, claims))


class Guard:
    def __init__(self, engine: Engine, budget: EventBudget | None = None) -> None:
        self._engine = engine
        self._budget = budget or EventBudget()

    async def account(self, token: str | None) -> User | None:
        return await asyncio.to_thread(account_for_token, self._engine, token)

    # --- Chainlit's HTTP routes ----------------------------------------------------------------

    async def current_user(self, token: str | None = Depends(reuseable_oauth)) -> PersistedUser:
        account = await self.account(token)
        if account is None:
            raise HTTPException(status_code=401, detail="Sign in first.")
        return persisted_user(account)

    # --- the socket ----------------------------------------------------------------------------

    async def socket_user(self, token: str | None = None) -> PersistedUser | None:
        """Stands in for Chainlit's `get_current_user(token=...)` in its socket module, same signature.

        A connection is an event of its account too: opening socket after socket is metered like any
        other event, or each new socket would bring a fresh burst."""
        user_id = claimed_id(token_claims(token))
        if user_id is not None and not self._budget.allow(_account_key(user_id)):
            return None  # Chainlit refuses the connection
        account = await self.account(token)
        return persisted_user(account) if account else None

    async def still_valid(self, session: WebsocketSession) -> bool:
        user_id = claimed_id(token_claims(session.token))
        if user_id is None:
            return False
        accounts = await asyncio.to_thread(read, self._engine, lambda s: _accounts(s, [user_id]))
        return _session_valid(session, accounts)

    def guard_connect(self, connect: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def connect_as_the_same_account(sid: str, environ: dict, auth: dict | None) -> Any:
            # Chainlit restores a session by its id for any token of the same *name*; only the same
            # account (a fresh sign-in of it included) may take a session over.
            existing = WebsocketSession.get_by_id(str((auth or {}).get("sessionId")))
            if existing is not None:
                token = chainlit_socket._get_token(environ)
                account = await self.account(token)
                if account is None or not isinstance(existing.user, PersistedUser) or existing.user.id != str(account.id):
                    logger.warning("refused to restore session of another account (socket %s)", sid)
                    raise ConnectionRefusedError("authorization failed")
                existing.token = token  # the session now answers to the token that restored it
            connected = await connect(sid, environ, auth)
            if existing is None:
                await self._resume_only_stored(WebsocketSession.get(sid))
            return connected

        return connect_as_the_same_account

    async def _resume_only_stored(self, session: WebsocketSession | None) -> None:
        """A tab that reconnects to a process without its session (a restart, another replica) names the
        thread it was in. When that thread was never stored (its first message said nothing, or the
        process died first), Chainlit would answer `resume_thread_error`, on which the browser leaves
        the chat and clears its session, cancelling the message it had just sent: no reply, no notice.
        Nothing of it is stored, so it is simply a new chat, under the id the tab already knows; an id
        that is not one Chainlit would make gets a fresh one."""
        if session is None or not session.thread_id_to_resume:
            return
        named = session.thread_id_to_resume
        if await asyncio.to_thread(read, self._engine, lambda s: get_thread(s, thread_id=named)) is not None:
            return  # Chainlit resumes it (its owner was checked when the socket connected)
        session.thread_id_to_resume = None
        if not _is_uuid(named):
            session.thread_id = str(uuid.uuid4())
        logger.info("socket %s named a thread that is not stored; a new chat starts", session.socket_id)

    def guard_message(self, handler: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def as_the_user(sid: str, payload: Any, *args: Any) -> Any:
            message = payload.get("message") if isinstance(payload, dict) else None
            if not isinstance(message, dict):
                return None
            message["type"] = "user_message"  # a client speaks only as its user, never as the assistant
            result = await handler(sid, payload, *args)
            session = WebsocketSession.get(sid)
            if session is not None and session.current_task is not None:
                _turns.setdefault(session.id, weakref.WeakSet()).add(session.current_task)
            return result

        return as_the_user

    def guard_event(self, handler: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def for_a_live_account(sid: str, *args: Any) -> Any:
            session = WebsocketSession.get(sid)
            if session is not None and not self._budget.allow(_meter_key(session)):
                return None
            if session is not None and not await self.still_valid(session):
                await end_session(session)
                return None
            return await handler(sid, *args)

        return for_a_live_account

    # --- ending sessions -----------------------------------------------------------------------

    async def sweep(self) -> int:
        """End every live session of this process whose account is gone or whose token was revoked."""
        sessions = [s for s in list(ws_sessions_id.values()) if s.user is not None or s.token]
        if not sessions:
            _forget_cleared_sessions()
            self._budget.keep_only(())
            return 0
        ids = {i for s in sessions if (i := claimed_id(token_claims(s.token))) is not None}
        accounts = await asyncio.to_thread(read, self._engine, lambda db: _accounts(db, ids)) if ids else {}
        ended = [s for s in sessions if not _session_valid(s, accounts)]
        for session in ended:
            await end_session(session)
        _forget_cleared_sessions()
        self._budget.keep_only(_meter_key(s) for s in list(ws_sessions_id.values()))
        return len(ended)


def _account_key(user_id: int) -> str:
    return f"account:{user_id}"


def _meter_key(session: WebsocketSession) -> str:
    """Events are metered per account, over all its tabs and sockets (a session without one: alone)."""
    user = session.user
    return _account_key(int(user.id)) if isinstance(user, PersistedUser) else f"session:{session.id}"


async def end_sessions_of(user_id: int) -> int:
    """End every live session of the account in this process (after forget-me, sign-out, a role change)."""
    sessions = [s for s in list(ws_sessions_id.values())
                if isinstance(s.user, PersistedUser) and s.user.id == str(user_id)]
    for session in sessions:
        await end_session(session)
    return len(sessions)


async def end_session(session: WebsocketSession) -> None:
    """Cancel its running turn, forget whom it was for, close its socket and delete it (no restore)."""
    logger.info("ending session %s", session.id)
    session.user = None  # nothing that still runs for this session can act for the account
    session.token = None
    session.to_clear = True
    for turn in [session.current_task, *_turns.pop(session.id, ())]:
        if turn is not None:
            turn.cancel()
    from chainlit.server import sio

    try:
        await sio.disconnect(session.socket_id)
    finally:
        user_sessions.pop(session.id, None)
        chat_contexts.pop(session.id, None)  # the conversation Chainlit keeps in memory per session
        await session.delete()


def _is_uuid(text: str) -> bool:
    try:
        return str(uuid.UUID(text)) == text
    except ValueError:
        return False


def _forget_cleared_sessions() -> None:
    """What Chainlit keeps per session outlives the session (its chat context is never cleared)."""
    for held in (chat_contexts, _turns):
        for session_id in [k for k in held if k not in ws_sessions_id]:
            held.pop(session_id, None)


def install_guard(fastapi_app: FastAPI, guard: Guard, *, window_message: Callable[[Any], bool]) -> None:
    """Put the guard in front of Chainlit's routes and socket events. Call once, at startup.

    `window_message` says which window messages the app asks for; any other is dropped unread."""
    from chainlit.server import sio

    fastapi_app.dependency_overrides[get_current_user] = guard.current_user
    chainlit_socket.get_current_user = guard.socket_user  # what Chainlit's `connect` resolves tokens with
    handlers = sio.handlers["/"]
    for event, handler in list(handlers.items()):
        if event in UNOFFERED:
            handlers[event] = _refused(event)
        elif event == "connect":
            handlers[event] = guard.guard_connect(handler)
        elif event == "client_message":
            handlers[event] = guard.guard_event(guard.guard_message(handler))
        elif event == "window_message":
            handlers[event] = _only(window_message, guard.guard_event(handler))
        elif event != "disconnect":
            handlers[event] = guard.guard_event(handler)


def _only(wanted: Callable[[Any], bool], handler: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    async def if_wanted(sid: str, data: Any = None, *args: Any) -> Any:
        return await handler(sid, data, *args) if wanted(data) else None

    return if_wanted


def _refused(event: str) -> Callable[..., Awaitable[None]]:
    async def not_offered(sid: str, *_: Any) -> None:
        logger.info("refused socket event %s from %s: not offered by this app", event, sid)

    return not_offered
