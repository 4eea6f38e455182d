"""The Chainlit app. Handlers stay thin: read the signed-in user, call one application function.

Run it with `hyperalign serve` (which sets the auth secret and Chainlit's app root), not with
`chainlit run` directly.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Mapping, Sequence
from pathlib import Path

import chainlit as cl
import chainlit.config as chainlit_config_module
from chainlit.config import config as chainlit_config
from chainlit.server import SOCKET_IO_PATH, sio
from chainlit.server import app as fastapi_app
from chainlit.types import ThreadDict
from chainlit.user import PersistedUser
from fastapi.exceptions import RequestValidationError
from starlette.middleware.cors import CORSMiddleware

from assistant import drafts
from assistant.accounts import SignInLimits, sign_in
from assistant.imports import abandon_stale_imports
from assistant.llm import OFFLINE_STARTER
from assistant.privacy import drop_erased_indexes, purge_expired_holds
from assistant.safety.deliberate import Deliberation
from assistant.turn import TurnRequest
from assistant.ui import runtime
from assistant.ui.api import MeApi, install_api
from assistant.ui.coalesce import Coalesced
from assistant.ui.console import Console, install_console
from assistant.ui.datalayer import DISPLAY_ONLY, OurDataLayer, command_of, persisted_user
from assistant.ui.guard import SWEEP_S, Guard, install_guard
from assistant.ui.headers import SecurityHeaders
from assistant.ui.imports import IMPORT_PATH, ImportsApi, install_imports
from assistant.ui.limits import MAX_BODY, BoundedBodies
from assistant.ui.origins import OriginPolicy, socket_origin_allowed
from assistant.ui.page import serve_local_pages
from assistant.ui.routes import install_routes, invalid_request
from assistant.ui.sharing import refuse_sharing
from assistant.ui.views import deliberation_markdown, recalled_markdown
from assistant.usage import parse_prices
from memory import store
from memory.db import read, write
from memory.files import private_dir
from memory.models import Role
from memory.retrieve import Recalled
from memory.store import NotOwner

logger = logging.getLogger(__name__)


def _upload_limits() -> dict[str, int]:
    """A file upload may be as large as .chainlit/config.toml allows (uploads are off in ours)."""
    uploads = chainlit_config.features.spontaneous_file_upload
    if not (uploads and uploads.enabled):
        return {}
    return {f"{chainlit_config.run.root_path}/project/file": (uploads.max_size_mb or 0) * 2**20 + MAX_BODY}


# Must be added before the server starts (Starlette builds its middleware stack on the first event).
# Chainlit's CORS reflects any origin with credentials; ours answers only the listed ones (origins.py).
fastapi_app.user_middleware = [m for m in fastapi_app.user_middleware if m.cls is not CORSMiddleware]
fastapi_app.add_middleware(OriginPolicy, listed=lambda: runtime.app().settings.origins)
sio.eio.cors_allowed_origins = socket_origin_allowed(lambda: runtime.app().settings.origins)
# The last one added runs first: the headers go on every answer, the body limit's 413 included.
# The import route bounds its own body by the import limit as it streams it to disk (ui/imports.py).
fastapi_app.add_middleware(BoundedBodies, larger=_upload_limits(), exempt=(SOCKET_IO_PATH,), own=(IMPORT_PATH,))
fastapi_app.add_middleware(SecurityHeaders)
serve_local_pages(fastapi_app)
# The ignore: Starlette types every handler as taking any Exception, not its own class (Kludex/starlette#2417).
fastapi_app.add_exception_handler(RequestValidationError, invalid_request)  # type: ignore[arg-type]
_background: set[asyncio.Task] = set()


def _own_files_folder(data_dir: Path) -> Path:
    """Chainlit keeps each session's elements (the draft's verdict card) as files under APP_ROOT/.files,
    and removes that whole folder when its server stops. Processes that share an app root (replicas, a
    restart beside a live one) then delete each other's files, and a card fails to send. Each process
    gets a folder of its own, private, under the data directory; Chainlit reads the setting per call."""
    folder = private_dir(data_dir / "chainlit-files" / f"{socket.gethostname()}-{os.getpid()}")
    chainlit_config_module.FILES_DIRECTORY = folder
    return folder


@cl.on_app_startup
async def startup() -> None:
    app = runtime.app()
    _own_files_folder(app.settings.data_dir)
    guard = Guard(app.engine)
    install_guard(fastapi_app, guard, window_message=asks_for_the_panel)
    install_routes(fastapi_app, app.engine, _sign_in, app.settings.registration, lambda: app.embedder.ready,
                   instance=app.settings.instance)
    install_api(fastapi_app, MeApi(app.engine, app.embedder, app.indexes))
    imports = ImportsApi(app.engine, app.embedder, app.indexes, app.jobs, data_dir=app.settings.data_dir,
                         limit_bytes=app.settings.import_limit_mb * 2**20, embed_here=app.settings.web_runs_jobs)
    install_imports(fastapi_app, imports)
    if removed := await asyncio.to_thread(imports.remove_leftovers):
        logger.info("removed %d uploads left by a process that stopped", removed)
    install_console(fastapi_app, Console(app.engine, app.spec, parse_prices(app.settings.prices)))
    await asyncio.to_thread(write, app.engine, purge_expired_holds)
    housekeeping = asyncio.create_task(_housekeeping(guard, app))
    _background.add(housekeeping)  # held, or the loop could collect it
    if not chainlit_config.features.allow_thread_sharing:
        refuse_sharing(fastapi_app)
    app.warm_up()  # the embedding model loads in the background; nobody waits for it


async def _housekeeping(guard: Guard, app) -> None:
    """Every few seconds, what another process may have changed: sessions of revoked sign-ins end, the
    indexes of erased accounts leave memory, expired name holds are deleted, and an import whose process
    died halfway is undone."""
    while True:
        await asyncio.sleep(SWEEP_S)
        try:
            if ended := await guard.sweep():
                logger.info("ended %d sessions of revoked sign-ins", ended)
            if dropped := await asyncio.to_thread(drop_erased_indexes, app.engine, app.indexes):
                logger.info("dropped the indexes of %d erased accounts", len(dropped))
            await asyncio.to_thread(write, app.engine, purge_expired_holds)
            await asyncio.to_thread(abandon_stale_imports, app.engine, app.indexes)
        except Exception:  # the next round tries again; one failure must not stop them
            logger.exception("housekeeping failed")


@cl.on_app_shutdown
async def shutdown() -> None:
    await runtime.close()


@cl.data_layer
def data_layer() -> OurDataLayer:
    return OurDataLayer(runtime.app().engine, sharing=chainlit_config.features.allow_thread_sharing)


async def _sign_in(username: str, password: str, client: str = "") -> PersistedUser:
    app = runtime.app()
    user = await asyncio.to_thread(
        sign_in, app.engine, registration=app.settings.registration, username=username, password=password,
        client=client, limits=SignInLimits.from_settings(app.settings),
    )
    return persisted_user(user)


@cl.password_auth_callback
async def password_auth(username: str, password: str) -> cl.User | None:
    # Our POST /login (assistant/ui/routes.py) answers first, says why a sign-in failed and counts
    # failures; registering this callback is what switches on Chainlit's password login, and nothing
    # else should reach it.
    return None


# Its button (#command-Profile), "/profile" + Enter and the profile starter open the side panel through
# public/hyperalign.js, which keeps them from being sent as messages.
PROFILE_COMMAND = {
    "id": "Profile", "icon": "user-round-cog", "button": True, "persistent": False,
    "description": "Your profile: see, correct, export or erase what I hold about you",
}
# "Write as me": picked, the next message is what to draft; typed, "/write <what>" (assistant.drafts).
WRITE_COMMAND = {
    "id": drafts.COMMAND, "icon": "pen-line", "button": True, "persistent": False,
    "description": "Write as me: a draft of an email, a post or a reply in your own voice",
}
VOICE_ELEMENT = "Does it sound like you?"
VOICE_HOW = ("Measured on how it is written, not what it says (your words, punctuation and rhythm), against your own "
             "texts and an assistant's.")
# Its button (#command-Console) is a link to /console/ in the same tab: public/hyperalign.js, keyed on this id.
CONSOLE_COMMAND = {
    "id": "Console", "icon": "shield-check", "button": True, "persistent": False,
    "description": "Operators: open the audit console of refusals and safe completions",
}


def _is_operator(user: object) -> bool:
    return isinstance(user, PersistedUser) and (user.metadata or {}).get("role") == Role.OPERATOR


async def _set_commands() -> None:
    # The composer's buttons: Profile for everyone (the same as typing /profile), Console for operators.
    operator = _is_operator(cl.user_session.get("user"))
    commands = [PROFILE_COMMAND, CONSOLE_COMMAND] if operator else [PROFILE_COMMAND]
    if not runtime.app().gateway.offline:  # a draft needs a model
        commands.insert(1, WRITE_COMMAND)
    # The ignore: Chainlit's CommandDict makes every key required, while its UI and docs take "selected" as optional.
    await cl.context.emitter.set_commands(commands)  # type: ignore[arg-type]


@cl.on_chat_start
async def on_chat_start() -> None:
    # Everything a turn needs is read from the database, keyed by the session's ids.
    await _set_commands()


async def _show_console_link(user: PersistedUser) -> None:
    # The server checks the role again on every console route; this only hides the link from others.
    text = ("[Open the audit console](/console): refusals, safe completions and failed deliberations, "
            "with filters, labels, metrics and export." if _is_operator(user)
            else "The audit console is for operators.")
    await cl.Message(content=text, author="hyperalign", metadata={DISPLAY_ONLY: True}).send()


# What the page script (public/hyperalign.js) posts to ask for the panel; Chainlit forwards every window
# message to @cl.on_window_message, so anything else that arrives there is ignored.
OPEN_PROFILE = {"hyperalign": "open-profile"}
PROFILE_TITLE = "Your profile"


def profile_panel_event(thread_id: str, element: Mapping[str, object]) -> dict[str, object]:
    """Chainlit's `set_sidebar_elements` event that shows the panel, with a key of its own each time.

    The browser keeps what the side view shows when the key is the same as before, so a fresh key is
    what makes opening the panel again (while it is open) show what changed since."""
    return {"elements": [element], "key": f"profile-{thread_id}-{element['id']}"}


async def _open_profile_panel() -> None:
    """Shows the profile beside the chat (Chainlit's side view; a full-width sheet on a phone).

    Nothing of it enters the conversation: no message, no step, no element row, no thread. Its one prop
    is the chat on screen (for "Don't remember this chat"). A new chat or another thread closes it:
    Chainlit clears the side view whenever it clears the chat, so the panel never speaks for a chat
    that is no longer shown; opening it there again gives it that chat's id."""
    panel = cl.CustomElement(name="ProfilePanel", display="side", props={"threadId": cl.context.session.thread_id})
    # The two events cl.ElementSidebar.set_title / set_elements emit, minus set_elements' first step: it
    # also sends the element into the chat's element list, and Chainlit's message list closes the side
    # view whenever that list changes without a display="side" element in it, so the two events could
    # race and close the panel as it opens (read in Chainlit 2.12's MessagesContainer). A custom element
    # needs nothing but its props to render, so the side view's own event is enough.
    await cl.context.emitter.emit("set_sidebar_title", PROFILE_TITLE)
    await cl.context.emitter.emit("set_sidebar_elements", profile_panel_event(cl.context.session.thread_id,
                                                                              panel.to_dict()))


def asks_for_the_panel(message: object) -> bool:
    return message == OPEN_PROFILE


@cl.on_window_message
async def on_window_message(message: object) -> None:
    # The Profile button, "/profile" + Enter and the profile starter arrive here, not as chat messages.
    # (The guard drops every other window message before it costs anything: install_guard above.)
    if asks_for_the_panel(message) and isinstance(cl.user_session.get("user"), PersistedUser):
        await _open_profile_panel()


def _starters(offline: bool) -> list[cl.Starter]:
    """What the empty chat offers: what this assistant does differently from a plain chatbot."""
    # "/profile", as typed: should the page script miss the click, the server still reads it as the command.
    profile = cl.Starter(label="Show what you have learned about me", message="/profile",
                         command="Profile", icon="/public/starters/profile.svg")
    if offline:  # says "offline" before the first reply does; recall has nothing to show without a model
        return [cl.Starter(label=OFFLINE_STARTER, message="What can you do in offline mode?", icon="/public/offline.svg"),
                profile]
    recall = cl.Starter(label="What do you remember about me?", icon="/public/starters/recall.svg",
                        message="What do you remember about me from our earlier conversations?")
    write = cl.Starter(label="Write something as me", command=drafts.COMMAND, icon="/public/starters/write.svg",
                       message="A short note to a friend saying I can't make it on Friday, but could do Sunday.")
    return [recall, write, profile]


@cl.set_starters
async def starters(user: cl.User | None = None, language: str | None = None) -> list[cl.Starter]:
    # Starters come with the page's settings over HTTP, so they are there before the socket is. (A
    # message sent from on_chat_start is not reliable for this: Chainlit sometimes emits it before the
    # page listens.)
    return _starters(runtime.app().gateway.offline)


@cl.on_chat_resume
async def on_chat_resume(thread: ThreadDict) -> None:
    # Chainlit has checked that the thread is this user's and restores its messages itself.
    await _set_commands()
    logger.info("thread %s resumed with %d steps", thread["id"], len(thread.get("steps") or []))


async def _show_recalled(items: Sequence[Recalled]) -> None:
    if not items:
        return
    async with cl.Step(name="Recalled", type="retrieval", show_input=False) as step:
        step.output = recalled_markdown(items)


class _ReasoningStep:
    """A reasoning model's thinking, streamed into a collapsed step opened on its first words."""

    def __init__(self) -> None:
        self._step: cl.Step | None = None

    async def stream(self, text: str) -> None:
        if self._step is None:
            self._step = cl.Step(name="Reasoning", type="llm", show_input=False, default_open=False)
            await self._step.send()
        await self._step.stream_token(text)

    async def close(self) -> None:
        if self._step is not None:
            await self._step.update()


async def _show_deliberation(deliberation: Deliberation) -> None:
    async with cl.Step(name="Deliberation", type="tool", show_input=False) as step:
        # Operators see the rule ids, spec version and timing they audit by; users see it in words.
        operator = _is_operator(cl.user_session.get("user"))
        step.output = deliberation_markdown(deliberation, runtime.app().spec, operator=operator)


async def _a_command_starts_no_conversation() -> None:
    """Chainlit counts any message as the chat's first interaction, and would keep an empty thread for
    it when the tab closes; a command is no conversation, so a chat that holds nothing yet stays new
    (and the next real message names it, as a first message does)."""
    session = cl.context.session
    engine = runtime.app().engine
    if not await asyncio.to_thread(read, engine, lambda s: store.get_thread(s, thread_id=session.thread_id)):
        session.has_first_interaction = False


@cl.on_message
async def on_message(message: cl.Message) -> None:
    user = cl.user_session.get("user")
    if not isinstance(user, PersistedUser):
        await cl.ErrorMessage(content="Your account was not found. Please sign out and sign in again.").send()
        return
    command = command_of(message.content, message.command)
    if command is not None:  # Profile arrives here only when the page script did not catch it (it should)
        await _a_command_starts_no_conversation()
        await (_open_profile_panel() if command == "Profile" else _show_console_link(user))
        return
    app = runtime.app()
    # The author name picks the avatar (public/avatars/hyperalign_offline.svg in offline mode).
    author = "hyperalign offline" if app.gateway.offline else "hyperalign"
    asked = drafts.draft_request(message.content, message.command)
    if asked == "" or (asked is not None and app.gateway.offline):
        await _a_command_starts_no_conversation()
        text = drafts.HOW_TO if asked == "" else "“Write as me” needs a model; this is offline mode."
        await cl.Message(content=text, author=author, metadata={DISPLAY_ONLY: True}).send()
        return
    reply = cl.Message(content="", author=author)
    request = TurnRequest(
        user_id=int(user.id), thread_id=cl.context.session.thread_id,
        message_id=message.id, reply_id=reply.id, text=asked if asked is not None else message.content,
        draft=asked is not None,
    )
    thinking = _ReasoningStep() if app.settings.show_reasoning else None
    streamed = Coalesced(reply.stream_token)  # a burst every 50 ms, not an emit per token
    try:
        shown = _show_deliberation if app.settings.show_deliberation else None
        result = await app.turns.run(request, streamed, _show_recalled, shown,
                                     on_reasoning=thinking.stream if thinking else None)
    except NotOwner:
        await cl.ErrorMessage(content="This conversation belongs to another account.").send()
        return
    except Exception:
        logger.exception("turn failed in thread %s", request.thread_id)
        await cl.ErrorMessage(content="Something went wrong on the server while answering. Please try again.").send()
        return
    finally:
        await streamed.close()
        if thinking is not None:
            await thinking.close()
    if result.reply:
        reply.content = result.reply  # what was streamed, less any thinking known only at its end
        if result.voice:  # under the draft, not in it: it stays what they would send, and its copy button copies it
            card = cl.Text(name=VOICE_ELEMENT, content=f"{result.voice}. {VOICE_HOW}", display="inline")
            reply.elements = [card]  # type: ignore[list-item]  # Chainlit annotates it with a TypeVar of Element
        await reply.send()
    elif reply.content:  # all that was streamed turned out to be thinking: it leaves the screen
        await reply.remove()
    if result.notice:
        await cl.ErrorMessage(content=result.notice, author="hyperalign").send()
    await app.jobs.after_turn(request.user_id)  # enqueues a hypothesis job when one is due; never waits for it


@cl.on_chat_end
async def on_chat_end() -> None:
    user = cl.user_session.get("user")
    if isinstance(user, PersistedUser):
        await runtime.app().jobs.after_turn(int(user.id), chat_ended=True)
