"""Chainlit's `BaseDataLayer` over our own tables: one source of truth for message text.

User messages become `message` rows (the same rows the chat turn writes; both writers upsert by
Chainlit's step id), and so do assistant replies the turn has written. Every other step (Chainlit's
"run" wrappers and its own notices, error notices, tool panels, blank text) is a display-only
`step` row. Errors are logged and raised, never swallowed.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from chainlit.context import context
from chainlit.data.base import BaseDataLayer
from chainlit.session import WebsocketSession
from chainlit.types import Feedback as FeedbackDict
from chainlit.types import PageInfo, PaginatedResponse, Pagination, ThreadDict, ThreadFilter
from chainlit.user import PersistedUser
from chainlit.user import User as ChainlitUser
from sqlalchemy import Engine
from sqlmodel import Session

from memory import store
from memory.db import read, write
from memory.models import Author, Element, Message, Step, Thread, User, aware, stored_id
from memory.text import clean_text, is_blank

logger = logging.getLogger(__name__)
T = TypeVar("T")

# Typed, pressed as the composer's buttons, or sent by the profile starter (assistant/ui/app.py).
COMMANDS = {"/profile": "Profile", "/console": "Console"}


def command_of(text: str, picked: str | None = None) -> str | None:
    """The command a message asks for: one typed ("/profile"), or one picked with a composer button
    and nothing else said. A command left picked while the person typed words of their own does not
    swallow them: that is a message, answered and kept like any other."""
    if typed := COMMANDS.get(text.strip().casefold()):
        return typed
    return picked if picked in COMMANDS.values() and is_blank(text) else None


def says_nothing(text: str) -> bool:
    """Text that says nothing to the assistant: blank, or a command."""
    return is_blank(text) or command_of(text) is not None


_MESSAGE_TYPES = {"user_message": Author.USER, "assistant_message": Author.ASSISTANT}
# Chainlit's marks on a thread that anyone may read (`GET /project/share/{id}`); see sharing.py.
SHARE_KEYS = ("is_shared", "shared_at")


def unshared(metadata: dict) -> dict:
    """The thread's metadata without the marks that make Chainlit show it to everyone."""
    return {key: value for key, value in metadata.items() if key not in SHARE_KEYS}


# Metadata flag of a message that is shown in the thread but is not part of the conversation
# (notices such as "offline mode"); like error messages, it is kept as a display-only step.
DISPLAY_ONLY = "display_only"


def _logged(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    async def wrapper(self: OurDataLayer, *args: Any, **kwargs: Any) -> Any:
        try:
            return await method(self, *args, **kwargs)
        except Exception:
            logger.exception("data layer %s failed", method.__name__)
            raise

    return wrapper


def iso(moment: datetime) -> str:
    """Chainlit's timestamp format."""
    return aware(moment).astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def persisted_user(user: User) -> PersistedUser:
    return PersistedUser(
        id=str(user.id),
        identifier=user.identifier,
        display_name=user.display_name or user.identifier,
        # Signed into the token with the id and creation time: assistant.ui.guard checks all three.
        metadata={"role": str(user.role), "token_version": user.token_version},
        createdAt=iso(user.created_at),
    )


def _session_user_id() -> int | None:
    """The signed-in user of the current websocket session, if any."""
    try:
        session = context.session
    except Exception:  # no Chainlit context: called from an HTTP route or a test
        return None
    user = getattr(session, "user", None) if isinstance(session, WebsocketSession) else None
    return int(user.id) if isinstance(user, PersistedUser) else None


class OurDataLayer(BaseDataLayer):
    def __init__(self, engine: Engine, *, sharing: bool = False) -> None:
        # Without sharing (Chainlit's allow_thread_sharing) no thread carries a share mark (sharing.py).
        self._engine, self._sharing = engine, sharing

    def _shown(self, thread: ThreadDict) -> ThreadDict:
        return thread if self._sharing else {**thread, "metadata": unshared(thread["metadata"] or {})}

    async def _write(self, work: Callable[[Session], T]) -> T:
        return await asyncio.to_thread(write, self._engine, work)

    async def _read(self, work: Callable[[Session], T]) -> T:
        return await asyncio.to_thread(read, self._engine, work)

    # --- users ------------------------------------------------------------------------------

    @_logged
    async def get_user(self, identifier: str) -> PersistedUser | None:
        user = await self._read(lambda s: store.get_user(s, identifier=identifier))
        return persisted_user(user) if user else None

    @_logged
    async def create_user(self, user: ChainlitUser) -> PersistedUser | None:
        # Accounts are created by the password callback (or `hyperalign users add`), never here:
        # a user Chainlit does not find has no password and must not be invented.
        return await self.get_user(user.identifier)

    # --- threads ----------------------------------------------------------------------------

    @_logged
    async def get_thread_author(self, thread_id: str) -> str:
        def author(session: Session) -> str:
            thread = store.get_thread(session, thread_id=thread_id)
            owner = store.get_user_by_id(session, user_id=thread.user_id) if thread else None
            return owner.identifier if owner else ""

        return await self._read(author)

    @_logged
    async def list_threads(self, pagination: Pagination, filters: ThreadFilter) -> PaginatedResponse[ThreadDict]:
        if not filters.userId:
            raise PermissionError("list_threads needs the signed-in user's id")
        user_id = int(filters.userId)
        first = max(1, min(pagination.first, 100))

        def page(session: Session) -> tuple[list[ThreadDict], bool]:
            owner = store.get_user_by_id(session, user_id=user_id)
            threads, more = store.list_threads(
                session, user_id=user_id, first=first, cursor=pagination.cursor,
                search=filters.search, feedback=filters.feedback,
            )
            # Chainlit's sidebar sorts and groups the threads by `createdAt` itself (as its own data
            # layer does, it carries the last activity here), so a continued chat moves to the top.
            return [self._shown(_thread_dict(t, owner, steps=[], elements=[], created_at=last)) for t, last in threads], more

        rows, more = await self._read(page)
        return PaginatedResponse(
            pageInfo=PageInfo(
                hasNextPage=more,
                startCursor=rows[0]["id"] if rows else None,
                endCursor=rows[-1]["id"] if rows else None,
            ),
            data=rows,
        )

    @_logged
    async def get_thread(self, thread_id: str) -> ThreadDict | None:
        def load(session: Session) -> ThreadDict | None:
            thread = store.get_thread(session, thread_id=thread_id)
            if thread is None:
                return None
            owner = store.get_user_by_id(session, user_id=thread.user_id)
            feedback = store.thread_feedback(session, thread_id=thread_id)
            steps = [_message_step(m, feedback.get(stored_id(m.id))) for m in store.thread_messages(session, thread_id=thread_id)]
            steps += [_display_step(s) for s in store.thread_steps(session, thread_id=thread_id)]
            steps.sort(key=lambda step: step["createdAt"] or "")
            steps = _parents_first(steps)
            elements = [_element_dict(e) for e in store.thread_elements(session, thread_id=thread_id)]
            return self._shown(_thread_dict(thread, owner, steps=steps, elements=elements))

        return await self._read(load)

    @_logged
    async def update_thread(
        self,
        thread_id: str,
        name: str | None = None,
        user_id: str | None = None,
        metadata: dict | None = None,
        tags: list[str] | None = None,
    ) -> None:
        owner = int(user_id) if user_id else _session_user_id()
        if metadata is not None and not self._sharing:
            metadata = unshared(metadata)
        # Chainlit names a thread after its first message, word for word, and says so by passing the
        # user's id; a rename from the sidebar passes none and is kept as typed.
        first_message, name = (name, None) if name is not None and user_id else (None, name)

        def save(session: Session) -> None:
            if first_message is not None and says_nothing(first_message) and not store.get_thread(session, thread_id=thread_id):
                return  # a chat opened only to ask for the profile is no conversation: no thread for it
            thread = store.upsert_thread(session, thread_id=thread_id, user_id=owner, name=name, metadata=metadata,
                                         tags=tags)
            if thread is not None and first_message is not None and not says_nothing(first_message):
                store.title_from_message(session, thread=thread, text=first_message)

        await self._write(save)

    @_logged
    async def delete_thread(self, thread_id: str) -> None:
        def delete(session: Session) -> None:
            thread = store.get_thread(session, thread_id=thread_id)
            if thread is not None:
                store.delete_thread(session, thread=thread)

        await self._write(delete)
        logger.info("thread %s deleted", thread_id)

    # --- steps ------------------------------------------------------------------------------

    @_logged
    async def create_step(self, step_dict: dict) -> None:
        # Chainlit sends a step's creation and its update as separate tasks that can land in either
        # order: a creation that lands second must not blank the content the update already wrote.
        await self._save_step(step_dict, replace=False)

    @_logged
    async def update_step(self, step_dict: dict) -> None:
        await self._save_step(step_dict, replace=True)

    async def _save_step(self, step_dict: dict, *, replace: bool) -> None:
        thread_id, user_id = step_dict.get("threadId"), _session_user_id()
        if not thread_id or user_id is None:
            raise PermissionError("steps are only saved for a signed-in user's thread")

        def save(session: Session) -> None:
            author = _conversation_author(session, step_dict)
            # Always through the thread row first, as the chat turn's writes do: the row lock then orders
            # this save and the turn's (saving the message first deadlocked them on PostgreSQL). A message
            # rewrites the row (the thread's last activity); a display step only locks it.
            if author is None:
                if store.held_thread(session, thread_id=thread_id, user_id=user_id) is None:
                    # A thread exists once it has a message: a display step before the first one (Chainlit's
                    # on_chat_start wrapper, on every page load or "New chat") made an empty conversation.
                    return
            else:
                store.upsert_thread(session, thread_id=thread_id, user_id=user_id)
            if author is not None:
                store.save_message(
                    session, step_id=step_dict["id"], thread_id=thread_id, user_id=user_id, author=author,
                    content=step_dict.get("output") or "", name=(step_dict.get("name") or "")[:64] or None,
                    parent_step_id=step_dict.get("parentId"), created_at=_parse_time(step_dict.get("createdAt")),
                )
            else:
                store.save_step(session, step=_step_row(step_dict, thread_id), replace=replace)

        await self._write(save)

    @_logged
    async def delete_step(self, step_id: str) -> None:
        user_id = _session_user_id()

        def delete(session: Session) -> None:
            message = store.get_message(session, step_id=step_id)
            if message is not None and message.user_id == user_id:
                store.delete_message(session, message=message)
                return
            step = session.get(Step, step_id) if store.possible_key(step_id) else None
            if step is not None and store.owned_thread(session, thread_id=step.thread_id, user_id=user_id or -1):
                session.delete(step)

        await self._write(delete)

    @_logged
    async def get_favorite_steps(self, user_id: str) -> list[dict]:
        return []  # the favourites feature is switched off in .chainlit/config.toml

    # --- feedback ---------------------------------------------------------------------------

    @_logged
    async def upsert_feedback(self, feedback: FeedbackDict) -> str:
        """Thumbs up/down. Ownership is checked by our /feedback route before this is called."""
        # Our id, never the client's: a chosen id could collide with another user's feedback row.
        feedback_id = str(uuid.uuid4())

        def save(session: Session) -> str:
            message = store.get_message(session, step_id=feedback.forId)
            if message is None:
                raise LookupError("feedback for an unknown message")
            return store.save_feedback(
                session, feedback_id=feedback_id, message=message, value=int(feedback.value), comment=feedback.comment
            ).id

        return await self._write(save)

    @_logged
    async def delete_feedback(self, feedback_id: str) -> bool:
        return await self._write(lambda s: store.delete_feedback(s, feedback_id=feedback_id))

    # --- elements ---------------------------------------------------------------------------

    @_logged
    async def create_element(self, element: Any) -> None:
        element_dict = element.to_dict()
        thread_id = element_dict.get("threadId")
        user_id = _session_user_id()
        if not thread_id or user_id is None:
            raise PermissionError("elements are only saved for a signed-in user's thread")

        def save(session: Session) -> None:
            store.upsert_thread(session, thread_id=thread_id, user_id=user_id)
            store.save_element(session, element=Element(
                id=element_dict["id"], thread_id=thread_id, for_step_id=element_dict.get("forId"),
                type=element_dict.get("type") or "custom", name=element_dict.get("name") or "",
                display=element_dict.get("display") or "inline", mime=element_dict.get("mime"),
                url=element_dict.get("url"), props_json=json.dumps(element_dict.get("props") or {}),
            ))

        await self._write(save)

    @_logged
    async def get_element(self, thread_id: str, element_id: str) -> dict | None:
        def load(session: Session) -> dict | None:
            row = session.get(Element, element_id) if store.possible_key(element_id) else None
            return _element_dict(row) if row and row.thread_id == thread_id else None

        return await self._read(load)

    @_logged
    async def delete_element(self, element_id: str, thread_id: str | None = None) -> None:
        user_id = _session_user_id()
        if user_id is None:
            raise PermissionError("elements are only deleted from a signed-in user's thread")
        await self._write(lambda s: store.delete_element(s, element_id=element_id, user_id=user_id))

    async def build_debug_url(self) -> str:
        return ""

    async def close(self) -> None:
        return None  # the engine belongs to the composition root, which closes it


# --- row <-> dict ---------------------------------------------------------------------------

def _conversation_author(session: Session, step_dict: dict) -> Author | None:
    """Who said this step in the conversation, or None for a display-only step.

    Blank text is never a message. An assistant message is one only when the chat turn wrote it
    first (assistant.turn records the reply before Chainlit saves its step): anything else said in
    the assistant's voice, such as Chainlit's own "Task manually stopped." sent by its socket `stop`
    handler, is a notice the model must never read back as something it said.
    """
    author = _MESSAGE_TYPES.get(step_dict.get("type", ""))
    if author is None or _display_only(step_dict) or is_blank(step_dict.get("output") or ""):
        return None
    if author == Author.ASSISTANT and store.get_message(session, step_id=step_dict.get("id") or "") is None:
        return None
    return author


def _display_only(step_dict: dict) -> bool:
    # A command ("/profile") is a request to the app, not something the user said to the assistant:
    # shown in the thread, never a message, so never recalled, learned from or counted in the style card.
    return bool(step_dict.get("isError") or (step_dict.get("metadata") or {}).get(DISPLAY_ONLY)
                or command_of(step_dict.get("output") or "", step_dict.get("command")))


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _thread_dict(thread: Thread, owner: User | None, *, steps: list, elements: list,
                 created_at: datetime | None = None) -> ThreadDict:
    return ThreadDict(
        id=thread.id,
        createdAt=iso(created_at or thread.created_at),
        name=thread.name,
        userId=str(thread.user_id),
        userIdentifier=owner.identifier if owner else None,
        tags=json.loads(thread.tags_json),
        metadata=json.loads(thread.metadata_json),
        steps=steps,
        elements=elements,
    )


def _message_step(message: Message, feedback: Any) -> dict:
    kind = "user_message" if message.author == Author.USER else "assistant_message"
    when = iso(message.created_at)
    step = {
        "id": message.step_id, "threadId": message.thread_id, "parentId": message.parent_step_id,
        "type": kind, "name": message.name or ("User" if kind == "user_message" else "Assistant"),
        "output": message.content, "input": "", "createdAt": when, "start": when, "end": when,
        "streaming": False, "isError": False,
        "metadata": {"status": str(message.status), "model": message.model},
    }
    if feedback is not None:
        step["feedback"] = {"id": feedback.id, "forId": message.step_id, "value": feedback.value,
                            "comment": feedback.comment}
    return step


def _step_row(step_dict: dict, thread_id: str) -> Step:
    extra = {k: v for k, v in step_dict.items() if k not in {"input", "output", "id", "threadId"}}
    return Step(
        id=step_dict["id"], thread_id=thread_id, type=(step_dict.get("type") or "undefined")[:32],
        name=clean_text(step_dict.get("name") or "")[:255], parent_step_id=step_dict.get("parentId"),
        input=clean_text(str(step_dict.get("input") or "")), output=clean_text(str(step_dict.get("output") or "")),
        extra_json=json.dumps(extra, default=str),
        created_at=_parse_time(step_dict.get("createdAt")) or datetime.now(UTC),
    )


def _parents_first(steps: list[dict]) -> list[dict]:
    """Steps in time order, except that a parent always comes before its children, and a step whose
    parent was never saved is shown at the top level.

    Chainlit's client nests a turn's reply and panels under the turn's "run" step and silently drops
    a step whose parent it has not seen yet. The first turn of a thread races Chainlit's queue of early
    steps, so its run step can be saved late (sorting after its children) or not at all; either way the
    thread would reopen without its first reply.
    """
    by_id = {step["id"]: step for step in steps}
    placed: set[str] = set()
    ordered: list[dict] = []

    def place(step: dict, waiting: frozenset[str] = frozenset()) -> None:
        if step["id"] in placed:
            return
        parent = step.get("parentId")
        if parent and parent not in by_id:
            step["parentId"] = None
        elif parent and parent not in placed and parent not in waiting:  # `waiting` breaks a cycle
            place(by_id[parent], waiting | {step["id"]})
        placed.add(step["id"])
        ordered.append(step)

    for step in steps:
        place(step)
    return ordered


def _display_step(step: Step) -> dict:
    return {**json.loads(step.extra_json), "id": step.id, "threadId": step.thread_id, "input": step.input,
            "output": step.output, "createdAt": iso(step.created_at)}


def _element_dict(element: Element) -> dict:
    return {
        "id": element.id, "threadId": element.thread_id, "forId": element.for_step_id, "type": element.type,
        "name": element.name, "display": element.display, "mime": element.mime, "url": element.url,
        "props": json.loads(element.props_json), "chainlitKey": None, "objectKey": None,
    }
