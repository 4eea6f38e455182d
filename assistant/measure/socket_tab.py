"""A browser tab without the browser: Chainlit's real socket protocol through python-socketio's client,
for `hyperalign bench load` and the tests. The protocol, as measured: path /ws/socket.io over the websocket
transport; the `access_token` cookie and an `auth` dict naming the session; `connection_successful`, to
which the server answers with a `task_end` before it runs the chat start; then per message a
`client_message`, answered by `task_start`, steps, `stream_token`s and `task_end`.

python-socketio's client comes with the `eval` and `test` extras; the app itself never needs it."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime

import socketio


class ChatTab:
    def __init__(self, base_url: str, token: str | None, *, session_id: str | None = None,
                 thread_id: str | None = None, origin: str | None = None,
                 cookies: dict[str, str] | None = None) -> None:
        """`cookies`: sent beside the sign-in's (a proxy's route cookie, say)."""
        self.base_url, self.token, self.origin = base_url, token, origin
        self.cookies = dict(cookies or {})
        self.session_id = session_id or str(uuid.uuid4())
        self.thread_id = thread_id
        self.events: list[tuple[str, object]] = []
        self.disconnected = asyncio.Event()
        self._task_end = asyncio.Event()
        # Tasks the server has started and not yet ended. A message sent while the chat start still
        # runs sees that task end first: its turn is over once the server has opened the message's own
        # run step (whose parent is the message) and no task is left running.
        self._running = 0
        self._answered: set[str] = set()  # ids of our messages whose run step the server opened
        self._task_changed = asyncio.Event()
        self.first_token_at: float | None = None  # perf_counter of the first streamed token since it was cleared
        self.client = socketio.AsyncClient(reconnection=False)

        @self.client.on("*")
        async def any_event(event: str, data: object = None) -> None:
            self.events.append((event, data))
            if event == "stream_token" and self.first_token_at is None:
                self.first_token_at = time.perf_counter()
            if event == "task_start":
                self._running += 1
            if event == "new_message" and isinstance(data, dict) and data.get("parentId"):
                self._answered.add(data["parentId"])
                self._task_changed.set()
            if event == "task_end":
                self._running = max(0, self._running - 1)  # the connection's first task_end has no start
                self._task_end.set()
                self._task_changed.set()
            if event == "first_interaction" and isinstance(data, dict):
                self.thread_id = data.get("thread_id") or self.thread_id

        @self.client.event
        async def disconnect(*_: object) -> None:
            self.disconnected.set()

    async def open(self, timeout: float = 15) -> ChatTab:
        """Connect and wait for the server's first task_end (raises socketio ConnectionError if refused)."""
        headers = {}
        cookies = self.cookies | ({"access_token": self.token} if self.token else {})
        if cookies:
            headers["Cookie"] = "; ".join(f"{name}={value}" for name, value in cookies.items())
        if self.origin:
            headers["Origin"] = self.origin
        self._task_end.clear()
        try:
            await self.client.connect(
                self.base_url, socketio_path="/ws/socket.io", transports=["websocket"], headers=headers,
                auth={"sessionId": self.session_id, "clientType": "webapp", "userEnv": "{}", "chatProfile": None,
                      "threadId": self.thread_id}, wait_timeout=timeout)
        except socketio.exceptions.ConnectionError:
            await self.close()
            raise
        await self.client.emit("connection_successful")
        await asyncio.wait_for(self._task_end.wait(), timeout)
        return self

    async def say(self, text: str, timeout: float = 30) -> list[tuple[str, object]]:
        """Send a message as the browser does and return the events until its turn ended (the server
        started a task since, and none is left running)."""
        first = len(self.events)
        message_id = await self.send(text)
        await asyncio.wait_for(self.turn_ended(message_id), timeout)
        return self.events[first:]

    async def send(self, text: str, *, command: str | None = None) -> str:
        """Send a message as the browser does (with the command its composer has picked, if any), and
        return its id without waiting for anything."""
        message_id = str(uuid.uuid4())
        message = {"id": message_id, "threadId": self.thread_id, "type": "user_message", "name": "User",
                   "output": text, "createdAt": datetime.now(UTC).isoformat()}
        if command:
            message["command"] = command
        await self.client.emit("client_message", {"message": message, "fileReferences": None})
        return message_id

    async def turn_ended(self, message_id: str) -> None:
        """Until the turn of this message has ended (see `say`)."""
        while message_id not in self._answered or self._running:
            self._task_changed.clear()
            await self._task_changed.wait()

    def task_ends(self) -> int:
        """How many tasks (the opening, each turn) the server has ended so far."""
        return sum(event == "task_end" for event, _ in self.events)

    async def close(self) -> None:
        """Disconnect if still connected, and close the HTTP session a refused or dropped socket leaves."""
        if self.client.connected:
            await self.client.disconnect()
        http = getattr(self.client.eio, "http", None)
        if http is not None and not http.closed:
            await http.close()


def event_text(events: list[tuple[str, object]]) -> str:
    """Everything the server sent, as one string (to search for text that must never arrive)."""
    return " ".join(repr(data) for _, data in events)
