"""Runs the real app (`hyperalign serve`) in a subprocess on a free loopback port."""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
import subprocess
import sys
import time
from pathlib import Path

import httpx

HYPERALIGN = Path(sys.executable).parent / "hyperalign"


_names = itertools.count(1)


def fresh(prefix: str) -> str:
    """A user name no other test of this run has: the HTTP modules share one app per database."""
    return f"{prefix}{next(_names)}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class AppServer:
    def __init__(self, workdir: Path, *, database_url: str | None = None, llm_base_url: str | None = None,
                 extra_env: dict[str, str] | None = None) -> None:
        self.workdir, self.port = workdir, free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "server.log"
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("HYPERALIGN_", "OPENAI_")) and k not in {"DATABASE_URL", "CHAINLIT_AUTH_SECRET"}}
        env.update(HYPERALIGN_DATA_DIR=str(workdir / "data"), HYPERALIGN_MAX_RETRIES="0",
                   HYPERALIGN_REQUEST_TIMEOUT="5",
                   # Every test client signs up from 127.0.0.1; the limits' own tests set them low.
                   HYPERALIGN_SIGNUPS_PER_CLIENT="100000", HYPERALIGN_SIGNIN_FAILURES_PER_CLIENT="100000")
        if database_url:
            env["DATABASE_URL"] = database_url
        if llm_base_url:
            env.update(OPENAI_BASE_URL=llm_base_url, HYPERALIGN_CHAT_MODEL="fake-chat")
        env.update(extra_env or {})
        self.env = env
        self._process: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0) -> AppServer:
        self.started_at = time.perf_counter()
        with open(self.log_path, "wb") as log:  # the child keeps its own descriptor
            self._process = subprocess.Popen(
                [str(HYPERALIGN), "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                cwd=self.workdir, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"the app exited with {self._process.returncode}:\n{self.log()}")
            try:
                if httpx.get(self.base_url + "/api/health", timeout=1).json().get("status") == "ok":
                    self.ready_after = time.perf_counter() - self.started_at
                    return self
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the app did not become healthy in {timeout} s:\n{self.log()}")

    def wait_for_log(self, pattern: str, timeout: float = 60.0) -> None:
        """Block until the server's log contains `pattern` (e.g. the embedding model has loaded)."""
        deadline = time.monotonic() + timeout
        while pattern not in self.log():
            if time.monotonic() > deadline:
                raise RuntimeError(f"the app never logged {pattern!r}:\n{self.log()}")
            time.sleep(0.2)

    def log(self, since: int = 0) -> str:
        """The server's log, from character `since` on (a length taken earlier: what came after it)."""
        return self.log_path.read_text(errors="replace")[since:] if self.log_path.exists() else ""

    def stop(self) -> None:
        if self._process and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()

    def login(self, client: httpx.Client, username: str, password: str) -> httpx.Response:
        return client.post(self.base_url + "/login", data={"username": username, "password": password})


@contextmanager
def served_on(kind: str, admin_url: str | None, prefix: str) -> Iterator[tuple[AppServer, object]]:
    """The running app on a fresh database of `kind` (sqlite or postgres), with an engine onto it."""
    from memory.db import make_engine
    from tests.pgserver import create_database, drop_database

    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    url = f"sqlite:///{workdir / 'app.db'}" if kind == "sqlite" else create_database(admin_url)
    server = AppServer(workdir, database_url=url).start()
    engine = make_engine(url)
    try:
        yield server, engine
    finally:
        engine.dispose()
        server.stop()
        if kind != "sqlite":
            drop_database(admin_url, url)
        shutil.rmtree(workdir, ignore_errors=True)


def signed_in_operator(server: AppServer, engine, name: str) -> httpx.Client:
    """A client signed in as a new operator account. On a shared app the first account (the one
    that becomes operator on sign-up) was made long before, by the fixture that started it."""
    from memory import store
    from memory.db import write
    from memory.models import Role

    write(engine, lambda s: store.create_user(s, identifier=name, password="password1", role=Role.OPERATOR))
    client = httpx.Client(base_url=server.base_url, timeout=30)
    assert server.login(client, name, "password1").status_code == 200
    return client
