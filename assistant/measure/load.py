"""`hyperalign bench load`: many people at once, through Chainlit's real socket protocol.

Simulated users sign in over HTTP, open a socket each as a browser tab does (socket_tab.ChatTab), and
send their messages back to back, each after the previous reply ended. Against the app it starts
(SQLite, or DATABASE_URL's database) or a running one (`--url`), with a stand-in model of set latency
and token rate (stand_in_server.py). Per number of users it reports turns per second, time to first
token and turn time (p50 / p95 / p99), errors, and the app process's CPU time per turn; at the end it
checks in the database that every sent message is stored exactly once, under its sender, with a reply.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from assistant.measure.stats import percentile

TOPICS = ("a quiet place to read", "a long walk by the river", "a simple dinner for four", "a board game for two",
          "a good book about the sea", "a weekend trip by train", "a way to start running", "a houseplant that forgives")


@dataclass
class Turn:
    user: str
    message_id: str
    ttft_s: float | None = None  # None: no token arrived
    turn_s: float | None = None  # None: the turn never ended
    error: str | None = None


@dataclass
class Level:
    users: int
    seconds: float
    turns: list[Turn] = field(default_factory=list)
    cpu_s: float | None = None  # the app processes' CPU time over the level, all replicas (None: not ours)

    def figures(self) -> dict:
        done = [t for t in self.turns if t.error is None and t.turn_s is not None]
        ttft = [t.ttft_s for t in done if t.ttft_s is not None]
        times = [t.turn_s for t in done if t.turn_s is not None]
        return {
            "users": self.users, "turns": len(done), "errors": len(self.turns) - len(done),
            "turns_per_s": round(len(done) / self.seconds, 2) if self.seconds else 0.0,
            "ttft_p50_s": _q(ttft, 50), "ttft_p95_s": _q(ttft, 95),
            "turn_p50_s": _q(times, 50), "turn_p95_s": _q(times, 95), "turn_p99_s": _q(times, 99),
            "cpu_ms_per_turn": round(self.cpu_s * 1000 / len(done)) if self.cpu_s is not None and done else None,
            "error_kinds": sorted({t.error for t in self.turns if t.error}),
        }


def _q(values: Sequence[float], q: float) -> float | None:
    return round(percentile(list(values), q), 3) if values else None


# --- one simulated person ---------------------------------------------------------------------------

async def person(base_url: str, name: str, messages: int, *, timeout: float) -> list[Turn]:
    """Sign in (signing up: registration is open), open a tab, and send `messages` messages, each after
    the previous reply ended."""
    import httpx2

    from assistant.measure.socket_tab import ChatTab

    async with httpx2.AsyncClient(base_url=base_url, timeout=timeout) as http:
        signed = await http.post("/login", data={"username": name, "password": "a-bench-password"})
        token = signed.cookies.get("access_token") if signed.status_code == 200 else None
        # What else the browser would keep, such as a proxy's route cookie: its tab goes where it signed in.
        kept = {cookie: value for cookie, value in dict(http.cookies).items() if cookie != "access_token"}
    if token is None:
        return [Turn(name, "", error=f"sign-in answered {signed.status_code}")]
    tab = ChatTab(base_url, token, cookies=kept)
    turns: list[Turn] = []
    try:
        await tab.open(timeout)
        for k in range(messages):
            turns.append(await _one_turn(tab, name, f"Message {k + 1} from {name}: could you suggest "
                                                    f"{TOPICS[(k + len(name)) % len(TOPICS)]} for this weekend?",
                                         timeout))
    except Exception as exc:  # a refused or dropped socket: what was left unsent counts as failed
        turns += [Turn(name, "", error=type(exc).__name__) for _ in range(messages - len(turns))]
    finally:
        await tab.close()
    return turns


async def _one_turn(tab, name: str, text: str, timeout: float) -> Turn:
    tab.first_token_at = None
    started = time.perf_counter()
    message_id = await tab.send(text)
    turn = Turn(name, message_id)
    try:
        await asyncio.wait_for(tab.turn_ended(message_id), timeout)
    except TimeoutError:
        turn.error = "no reply in time"
        return turn
    turn.turn_s = time.perf_counter() - started
    turn.ttft_s = tab.first_token_at - started if tab.first_token_at is not None else None
    if turn.ttft_s is None:
        turn.error = "no token streamed"
    return turn


async def crowd(base_url: str, users: int, messages: int, *, run: str, timeout: float) -> list[Turn]:
    """`users` people at once, each with a fresh name."""
    everyone = await asyncio.gather(*(person(base_url, f"load-{run}-{users}-{i}", messages, timeout=timeout)
                                      for i in range(users)))
    return [turn for turns in everyone for turn in turns]


# --- the app under load -----------------------------------------------------------------------------

def process_cpu_s(pid: int) -> float:
    """User plus system CPU seconds of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def served_app(*, model_url: str, database_url: str | None, port: int, say: Callable[[str], None], workers: int = 0,
               replicas: int = 1) -> Iterator[tuple[str, list[int], str]]:
    """`hyperalign serve` in a fresh data directory against the stand-in model: (base URL, pids, database URL).
    With `workers`, that many `hyperalign worker` processes run the hypothesis jobs instead of the app.
    With `replicas` > 1, that many serve on consecutive ports behind nginx with `hyperalign deploy`'s site."""
    import httpx2

    with tempfile.TemporaryDirectory(prefix="hyperalign-load-") as folder, ExitStack() as stack:
        database = database_url or f"sqlite:///{folder}/load.db"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HYPERALIGN_", "OPENAI_"))}
        env.update(HYPERALIGN_DATA_DIR=folder, DATABASE_URL=database, OPENAI_BASE_URL=model_url,
                   HYPERALIGN_CHAT_MODEL="stand-in", HYPERALIGN_LOG_LEVEL="WARNING",
                   # every simulated person signs up from this one address
                   HYPERALIGN_SIGNUPS_PER_CLIENT="1000000", HYPERALIGN_SIGNIN_FAILURES_PER_CLIENT="1000000")
        if workers:
            env["HYPERALIGN_WEB_RUNS_JOBS"] = "false"
        log = stack.enter_context((Path(folder) / "app.log").open("wb"))  # open while the app runs
        ports = [port + i for i in range(replicas)]
        processes = [subprocess.Popen([sys.executable, "-m", "assistant.cli", "serve", "--port", str(p)],
                                      env=env | {"HYPERALIGN_INSTANCE": str(p)}, stdout=log, stderr=subprocess.STDOUT)
                     for p in ports]
        crew = [subprocess.Popen([sys.executable, "-m", "assistant.cli", "worker", "--poll", "0.5"], env=env,
                                 stdout=log, stderr=subprocess.STDOUT) for _ in range(workers)]
        stack.callback(_stop, [*processes, *crew])

        def log_tail() -> str:
            return (Path(folder) / "app.log").read_text(errors="replace")[-2000:]

        deadline = time.monotonic() + 120 + 30 * replicas
        for process, replica in zip(processes, ports, strict=True):
            while True:  # up, and its embedding model loaded (it loads in the background after start)
                if process.poll() is not None:
                    raise RuntimeError(f"the app exited with {process.returncode}; its log ends:\n{log_tail()}")
                try:
                    if httpx2.get(f"http://127.0.0.1:{replica}/api/health", timeout=2).json().get("recall") == "ready":
                        break
                except (httpx2.HTTPError, ValueError):
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the app was not up with its embedding model loaded in time; its log ends:\n"
                                       f"{log_tail()}")
                time.sleep(0.5)
        base_url = f"http://127.0.0.1:{port}"
        if replicas > 1:
            from assistant.deploy import Plan, nginx_site
            from assistant.measure.proxy import nginx_serving

            listen = port + replicas
            stack.enter_context(nginx_serving(nginx_site(Plan(replicas=replicas, first_port=port, listen=listen)),
                                              Path(folder) / "nginx", listen))
            base_url = f"http://127.0.0.1:{listen}"
        say(f"app started ({replicas} replica{'s' if replicas > 1 else ''}, pids "
            f"{', '.join(str(p.pid) for p in processes)}, {database.split(':', 1)[0]})")
        yield base_url, [p.pid for p in processes], database


def _stop(processes: list[subprocess.Popen]) -> None:
    for running in processes:
        running.terminate()
    for running in processes:
        try:
            running.wait(timeout=20)
        except subprocess.TimeoutExpired:
            running.kill()


def check_stored(database_url: str, turns: Sequence[Turn]) -> list[str]:
    """What the database does not hold as it should: each sent message exactly once, under its sender,
    and a reply after it in the same thread. Empty when all is well."""
    from sqlmodel import select

    from memory.db import make_engine, read
    from memory.models import Author, Message, User

    sent = [t for t in turns if t.message_id]
    engine = make_engine(database_url)
    try:
        def problems(session) -> list[str]:
            found = []
            owners = {u.identifier: u.id for u in session.exec(select(User)).all()}
            for turn in sent:
                rows = session.exec(select(Message).where(Message.step_id == turn.message_id)).all()
                if len(rows) != 1:
                    found.append(f"{turn.message_id} of {turn.user}: stored {len(rows)} times")
                    continue
                (row,) = rows
                if row.user_id != owners.get(turn.user):
                    found.append(f"{turn.message_id} of {turn.user}: stored under another user")
                replies = session.exec(select(Message).where(Message.thread_id == row.thread_id,
                                                             Message.author == Author.ASSISTANT,
                                                             Message.id > row.id)).first()
                if replies is None:
                    found.append(f"{turn.message_id} of {turn.user}: no reply stored")
            return found

        return read(engine, problems)
    finally:
        engine.dispose()


def run_load(*, levels: Sequence[int], messages: int, latency_ms: float, tokens: int, tokens_per_s: float,
             url: str | None, database_url: str | None, port: int, timeout: float, workers: int = 0,
             replicas: int = 1, say: Callable[[str], None] = print) -> dict:
    """Each level of simultaneous users in turn, against one app; the figures and the storage check."""
    from assistant.measure.stand_in_server import StandInServer

    run = uuid.uuid4().hex[:6]
    result: dict = {"latency_ms": latency_ms, "tokens": tokens, "tokens_per_s": tokens_per_s, "messages": messages,
                    "workers": workers, "replicas": replicas, "levels": []}
    with StandInServer(latency_ms=latency_ms, tokens=tokens, tokens_per_s=tokens_per_s) as model:
        with _target(url, database_url, model.base_url, port, say, workers, replicas) as (base_url, pids, database):
            result["database"] = database.split(":", 1)[0] if database else None
            asyncio.run(crowd(base_url, 1, 2, run=f"{run}-warm", timeout=timeout))  # the first turn loads things
            everything: list[Turn] = []
            for users in levels:
                cpu = sum(map(process_cpu_s, pids)) if pids else None
                started = time.perf_counter()
                turns = asyncio.run(crowd(base_url, users, messages, run=run, timeout=timeout))
                level = Level(users, time.perf_counter() - started, turns,
                              sum(map(process_cpu_s, pids)) - cpu if pids and cpu is not None else None)
                figures = level.figures()
                result["levels"].append(figures)
                everything += turns
                say(_line(figures))
            if database:
                time.sleep(2)  # replies are recorded just after their last token
                problems = check_stored(database, everything)
                result["storage_problems"] = problems[:20]
                result["storage_checked"] = len([t for t in everything if t.message_id])
                say(f"storage: {result['storage_checked']} sent messages checked, {len(problems)} problems"
                    + "".join(f"\n  {p}" for p in problems[:20]))
        result["model_calls"] = dict(model.calls)
    return result


@contextmanager
def _target(url: str | None, database_url: str | None, model_url: str, port: int, say: Callable[[str], None],
            workers: int, replicas: int) -> Iterator[tuple[str, list[int], str | None]]:
    if url is not None:  # a running app: its model is its own business, its process not ours to measure
        yield url.rstrip("/"), [], database_url
        return
    with served_app(model_url=model_url, database_url=database_url, port=port, say=say,
                    workers=workers, replicas=replicas) as (base, pids, database):
        yield base, pids, database


def _line(f: dict) -> str:
    cpu = f"{f['cpu_ms_per_turn']} ms CPU/turn" if f["cpu_ms_per_turn"] is not None else "CPU not measured"
    return (f"{f['users']:>4} users: {f['turns']} turns, {f['turns_per_s']} turns/s, TTFT p50 {f['ttft_p50_s']} s "
            f"p95 {f['ttft_p95_s']} s, turn p50 {f['turn_p50_s']} s p95 {f['turn_p95_s']} s p99 {f['turn_p99_s']} s, "
            f"{f['errors']} errors{' ' + str(f['error_kinds']) if f['errors'] else ''}, {cpu}")


def render(result: dict) -> str:
    crew = f"; hypothesis jobs in {result['workers']} worker processes" if result.get("workers") else ""
    rows = [f"stand-in model: {result['latency_ms']:.0f} ms to the first token, {result['tokens']} tokens at "
            f"{result['tokens_per_s']:.0f}/s; {result['messages']} messages per user, back to back{crew}",
            "users  turns  turns/s  ttft p50  ttft p95  turn p50  turn p95  turn p99  errors  CPU ms/turn"]
    for f in result["levels"]:
        rows.append(f"{f['users']:>5}  {f['turns']:>5}  {f['turns_per_s']:>7}  {f['ttft_p50_s']!s:>8}  "
                    f"{f['ttft_p95_s']!s:>8}  {f['turn_p50_s']!s:>8}  {f['turn_p95_s']!s:>8}  {f['turn_p99_s']!s:>8}  "
                    f"{f['errors']:>6}  {f['cpu_ms_per_turn']!s:>11}")
    if "storage_checked" in result:
        rows.append(f"storage: {result['storage_checked']} sent messages checked, "
                    f"{len(result['storage_problems'])} problems")
    return "\n".join(rows)


def draw(result: dict, path: Path) -> None:
    """Turn time p50 and p95 and time to first token p50 against users, with turns/s on the right."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    levels = result["levels"]
    users = [f["users"] for f in levels]
    figure, left = plt.subplots(figsize=(7, 4.2), dpi=120)
    for key, label, style in (("turn_p50_s", "turn p50", "-o"), ("turn_p95_s", "turn p95", "-s"),
                              ("ttft_p50_s", "first token p50", "--^")):
        left.plot(users, [f[key] for f in levels], style, label=label)
    left.set_xlabel("simultaneous users")
    left.set_ylabel("seconds")
    right = left.twinx()
    right.plot(users, [f["turns_per_s"] for f in levels], ":d", color="grey", label="turns/s")
    right.set_ylabel("turns per second")
    lines = left.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
    names = left.get_legend_handles_labels()[1] + right.get_legend_handles_labels()[1]
    left.legend(lines, names, loc="upper left", fontsize=8)
    left.set_title(f"hyperalign under load ({result.get('database') or 'running app'}, model "
                   f"{result['latency_ms']:.0f} ms)", fontsize=10)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
