"""`hyperalign deploy`'s recipe, run for real on loopback: its systemd units' commands and settings for
two replicas and a worker on one PostgreSQL database, behind Debian's nginx with its generated site.

Nothing of the recipe is re-typed here: the processes run the units' `ExecStart` with their
`Environment` lines and the generated settings file (the database, the model and data folders swapped
for the test's own), and nginx includes the generated site inside a minimal main configuration, as
Debian's /etc/nginx/nginx.conf includes sites-enabled/."""

from __future__ import annotations

import os
import re
import secrets
import signal
import socket
import subprocess
import time
from contextlib import ExitStack
from pathlib import Path

import httpx

from assistant.deploy import ROUTE_COOKIE, Plan, render
from assistant.measure.proxy import nginx_serving
from tests.appserver import HYPERALIGN

CHECKOUT = "/srv/hyperalign"  # the plan's checkout, replaced by this one's installed command


def _ports_free(*ports: int) -> bool:
    for port in ports:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def free_run(count: int) -> int:
    """The first of `count` consecutive free loopback ports (the plan numbers replicas consecutively),
    below Linux's ephemeral range (32768 and up): a port there, free when checked, can be taken by any
    outgoing connection before the app binds it (it happened in CI, to a replica of the load test)."""
    for _ in range(200):
        first = secrets.randbelow(12000 - count) + 20000
        if _ports_free(*range(first, first + count)):
            return first
    raise RuntimeError("no run of free ports")


def settings_file(text: str) -> dict[str, str]:
    """KEY=VALUE lines of an EnvironmentFile (comments and blanks skipped)."""
    pairs = (line.split("=", 1) for line in text.splitlines() if line.strip() and not line.startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}


def unit_command(unit: str, instance: str) -> tuple[list[str], dict[str, str]]:
    """A unit's ExecStart (with %i filled in) and its Environment= settings."""
    filled = unit.replace("%i", instance)
    command = re.search(r"^ExecStart=(.+)$", filled, re.M).group(1).split()
    assert command[0] == f"{CHECKOUT}/.venv/bin/hyperalign", command
    environment = dict(line.split("=", 2)[1:] for line in filled.splitlines() if line.startswith("Environment="))
    return [str(HYPERALIGN), *command[1:]], environment


class Deployment:
    def __init__(self, workdir: Path, *, database_url: str, llm_base_url: str) -> None:
        self.workdir = workdir
        first = free_run(3)
        self.plan = Plan(replicas=2, first_port=first, listen=first + 2, checkout=CHECKOUT)
        self.files = render(self.plan)
        self.url = f"http://127.0.0.1:{self.plan.listen}"
        self.names = [str(port) for port in self.plan.ports]
        shared = settings_file(self.files["hyperalign.env"])
        shared.update(DATABASE_URL=database_url, OPENAI_BASE_URL=llm_base_url, HYPERALIGN_CHAT_MODEL="fake-chat",
                      HYPERALIGN_MAX_RETRIES="0", HYPERALIGN_REQUEST_TIMEOUT="5",
                      # Every test client signs up from 127.0.0.1.
                      HYPERALIGN_SIGNUPS_PER_CLIENT="100000", HYPERALIGN_SIGNIN_FAILURES_PER_CLIENT="100000")
        base = {k: v for k, v in os.environ.items()
                if not k.startswith(("HYPERALIGN_", "OPENAI_")) and k not in {"DATABASE_URL", "CHAINLIT_AUTH_SECRET"}}
        self.processes: dict[str, subprocess.Popen] = {}
        self._launch: dict[str, tuple[list[str], dict[str, str]]] = {}
        for name, unit in [(n, "systemd/hyperalign@.service") for n in self.names] + \
                          [("worker", "systemd/hyperalign-worker.service")]:
            command, unit_env = unit_command(self.files[unit], name)
            # One data folder for all, as the recipe has it on one machine (the plan's path, moved here).
            env = base | shared | unit_env | {"HYPERALIGN_DATA_DIR": str(workdir / "data")}
            self._launch[name] = (command, env)
        self.nginx: subprocess.Popen | None = None
        self.routes_log = workdir / "nginx" / "routes.log"
        self._stack = ExitStack()

    # --- processes ------------------------------------------------------------------------------

    def start(self, timeout: float = 120) -> Deployment:
        """Every process at once, as `systemctl enable --now` starts them, then the proxy."""
        for name in self._launch:
            self.spawn(name)
        self._start_nginx()
        deadline = time.monotonic() + timeout
        for name in self.names:
            while not self._healthy(f"http://127.0.0.1:{self._port(name)}"):
                if self.processes[name].poll() is not None:
                    raise RuntimeError(f"replica {name} exited:\n{self.log(name)}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"replica {name} never became healthy:\n{self.log(name)}")
                time.sleep(0.3)
        for name in self.names:
            self.wait_for_log(name, "embedding model", deadline - time.monotonic())
        self.wait_for_log("worker", "hyperalign worker: running", deadline - time.monotonic())
        return self

    def spawn(self, name: str) -> None:
        command, env = self._launch[name]
        folder = self.workdir / name
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / "process.log", "ab") as log:
            self.processes[name] = subprocess.Popen(command, cwd=folder, env=env, stdout=log,
                                                    stderr=subprocess.STDOUT)

    def kill(self, name: str) -> None:
        """As a crash or an OOM kill would: no shutdown, nothing flushed."""
        process = self.processes[name]
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)

    def log(self, name: str) -> str:
        path = self.workdir / name / "process.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def wait_for_log(self, name: str, pattern: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while pattern not in self.log(name):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} never logged {pattern!r}:\n{self.log(name)}")
            time.sleep(0.2)

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._stack.close()  # the proxy

    def _port(self, name: str) -> int:
        return self.plan.ports[self.names.index(name)]

    @staticmethod
    def _healthy(url: str) -> bool:
        try:
            return httpx.get(url + "/api/health", timeout=2).json().get("status") == "ok"
        except (httpx.HTTPError, ValueError):
            return False

    # --- the proxy ------------------------------------------------------------------------------

    def _start_nginx(self) -> None:
        self.nginx = self._stack.enter_context(nginx_serving(
            self.files["nginx/hyperalign.conf"], self.workdir / "nginx", self.plan.listen, routes_log=self.routes_log))

    def served_by(self, route: str, request: str, wait: float = 10.0) -> set[str]:
        """The replicas (by name) the proxy sent requests of this route to whose request line holds `request`.

        nginx logs a request when it ends, and a socket's end reaches nginx a moment after the client
        closed it: so this waits up to `wait` seconds for the first matching line."""
        deadline = time.monotonic() + wait
        while True:
            lines = self.routes_log.read_text().splitlines() if self.routes_log.exists() else []
            ports = {line.split()[1].rsplit(":", 1)[1] for line in lines
                     if line.startswith(route + " ") and request in line and line.split()[1] != "-"}
            if ports or time.monotonic() > deadline:
                return ports
            time.sleep(0.1)

    def route_to(self, name: str) -> str:
        """A route cookie value that the proxy sends to replica `name` (found by asking the proxy)."""
        for _ in range(64):
            route = secrets.token_hex(16)
            answer = httpx.get(self.url + "/api/health", cookies={ROUTE_COOKIE: route}, timeout=5).json()
            if answer.get("instance") == name:
                return route
        raise AssertionError(f"no route reached replica {name}")
