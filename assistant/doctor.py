"""`hyperalign doctor`: is this installation ready to serve, and if not, what to do about it.

Each check becomes a row: a name, a status (ok, warn, fail), a detail a person can act on, and whether
it blocks the app from working. Pure functions turn what was found into rows and rows into a table and
a verdict; the I/O (settings, database, embedding model, model server) sits in a few gatherers. `serve`
runs the quick variant before it starts: no embedding model, the model server only asked what it
serves and what window it states, with a short timeout; a server that is down does not stop it.

Nothing here changes anything: pending migrations are reported, not applied. No row holds a secret
(the API key, a database password) or any user's text.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from assistant.config import MIN_CONTEXT, ConfigError, Settings, env_name, load_settings
from assistant.llm import LLMError, ModelBusy, ModelNotFound, Purpose, ServerProbe, probe

QUICK_TIMEOUT = 3.0  # seconds per request of serve's check: a server that is down must not hold the start
FULL_TIMEOUT = 60.0  # doctor's tiny calls: a local server may first load the model
SERVES_ANY_NAME = {"llamacpp": "llama.cpp serves its one model whatever name a request gives"}


class Status(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    blocking: bool = False


def ok(name: str, detail: str) -> Check:
    return Check(name, Status.OK, detail)


def warn(name: str, detail: str) -> Check:
    return Check(name, Status.WARN, detail)


def fail(name: str, detail: str, *, blocking: bool = True) -> Check:
    return Check(name, Status.FAIL, detail, blocking)


# --- verdict and table (pure) -------------------------------------------------------------------------

def blocked(rows: Iterable[Check]) -> bool:
    return any(row.blocking for row in rows)


def verdict(rows: list[Check]) -> str:
    stopping = sum(row.blocking for row in rows)
    if stopping:
        return f"not ready: {stopping} blocking problem{'s' * (stopping > 1)} (FAIL above)"
    others = sum(row.status != Status.OK for row in rows)
    return f"ready, with {others} warning{'s' * (others > 1)}" if others else "ready"


def shown_status(row: Check) -> str:
    return "FAIL" if row.blocking else str(row.status)


def render(rows: list[Check]) -> str:
    """A plain-text table and the verdict line."""
    width = max(len(row.name) for row in rows)
    lines = [f"{'CHECK'.ljust(width)}  STATUS  DETAIL"]
    lines += [f"{row.name.ljust(width)}  {shown_status(row).ljust(6)}  {row.detail}" for row in rows]
    return "\n".join([*lines, "", f"verdict: {verdict(rows)}"])


def as_json(rows: list[Check]) -> str:
    return json.dumps({"checks": [{**asdict(row), "status": str(row.status)} for row in rows],
                       "verdict": verdict(rows), "blocking": blocked(rows)}, indent=2)


# --- rows from what was found (pure) ------------------------------------------------------------------

def shown_url(url: str) -> str:
    """A URL without the password or query (`?api-key=...`) it may carry."""
    parts = urlsplit(url)
    if parts.query:
        parts = parts._replace(query="***")
    if parts.password is not None:
        host = parts.netloc.rsplit("@", 1)[1]
        parts = parts._replace(netloc=f"{parts.username}:***@{host}")
    return urlunsplit(parts)


def server_row(settings: Settings) -> Check:
    if settings.offline:
        return warn("model server", "offline mode: no OPENAI_API_KEY or OPENAI_BASE_URL, so replies come from the "
                    "built-in offline model (README: Connecting a model)")
    return ok("model server", shown_url(settings.openai_base_url) if settings.openai_base_url else "OpenAI (api.openai.com)")


@dataclass(frozen=True)
class DatabaseState:
    shown: str  # the URL without its password
    exists: bool = True
    error: str = ""
    pending: tuple[str, ...] = ()
    unknown: tuple[str, ...] = ()  # recorded by a newer version of the app


def database_rows(state: DatabaseState) -> list[Check]:
    if not state.exists:
        return [ok("database", f"{state.shown}: none yet; created and migrated when the app first starts")]
    if state.error:
        return [fail("database", f"{state.shown}: {state.error}")]
    rows = [ok("database", f"{state.shown}: reachable")]
    if state.unknown:
        rows.append(warn("migrations", f"applied by a newer version of the app: {', '.join(state.unknown)}"))
    if state.pending:
        rows.append(warn("migrations", f"{len(state.pending)} pending ({', '.join(state.pending)}); applied when "
                         "`hyperalign serve` or any command that opens the database next starts"))
    elif not state.unknown:
        rows.append(ok("migrations", "all applied"))
    return rows


def embedding_row(model: str, dimension: int | None, ms: float, error: str) -> Check:
    if error:
        # The app still runs: recall falls back to lexical search (assistant.wiring warm-up).
        return fail("embedding model", f"{error}; recall would be lexical only", blocking=False)
    return ok("embedding model", f"{model}: {dimension} dimensions, loaded in {ms / 1000:.1f} s")


def spec_row(version: str, categories: int, error: str) -> Check:
    if error:
        return fail("safety spec", error)
    return ok("safety spec", f"version {version}, {categories} categories")


def model_rows(model: str, purposes: list[str], found: ServerProbe, *, quick: bool) -> list[Check]:
    """What the server said of one model (asked once for all the purposes that use it)."""
    name = f"model {model} ({', '.join(purposes)})"
    if not found.reachable:
        return [fail(name, f"no answer from the server: {_problem(found.problem)}")]
    if found.problem is not None and found.listed is None:  # it answered, refusing even the model list
        return [_problem_row(name, found.problem)]
    rows = [_listed_row(name, model, found)]
    if found.problem is not None and not (found.listed is False and isinstance(found.problem, ModelNotFound)):
        rows.append(_problem_row(f"calls to {model}", found.problem))
    if not quick and found.streams:
        rows.append(ok(f"streaming {model}", f"works; a tiny answer took {found.latency_ms or 0:,.0f} ms"))
        rows.append(ok(f"usage {model}", "the server reports the tokens of each streamed reply" if found.usage_streamed
                       else "the server does not report usage while streaming: replies' tokens are counted here "
                            "and marked estimated on the Usage page"))
    if not quick and found.structured is not None:
        rows.append(_structured_row(model, found.structured))
    return rows


def _listed_row(name: str, model: str, found: ServerProbe) -> Check:
    if found.listed:
        return ok(name, f"listed by the server{f' ({found.server})' if found.server else ''}")
    served = ", ".join(found.models[:8]) + (", ..." if len(found.models) > 8 else "") or "none"
    if found.server in SERVES_ANY_NAME or (found.streams and found.problem is None):
        why = SERVES_ANY_NAME.get(found.server, "the server answered for it anyway")
        return warn(name, f"not listed (it lists: {served}); {why}")
    return fail(name, f"the server does not list it; it lists: {served}. Set the model setting to one of "
                f"them, or fetch it (Ollama: ollama pull {model})")


def _problem_row(name: str, problem: LLMError) -> Check:
    if isinstance(problem, ModelBusy):  # not the installation's fault: it passes with time
        return warn(name, f"{_problem(problem)} Run `hyperalign doctor` again in a minute.")
    return fail(name, _problem(problem))


def _problem(problem: LLMError | None) -> str:
    if problem is None:
        return "no answer"
    return f"{problem.user_message} [{problem}]"


def _structured_row(model: str, mode: str) -> Check:
    name = f"structured output {model}"
    if mode == "json_schema":
        return ok(name, "json_schema (verdicts and hypotheses follow their schema)")
    if mode == "json_object":
        return ok(name, "json_object only (JSON mode, no schema): answers are validated and re-asked once")
    return warn(name, "neither json_schema nor JSON mode: verdicts and hypotheses are parsed from free text, "
                "which small models often get wrong")


def window_setting(settings: Settings, purpose: str) -> tuple[int, str | None]:
    """A purpose's context window and the variable that set it (None: the built-in default)."""
    own = f"{purpose}_context_tokens"
    if getattr(settings, own):
        return getattr(settings, own), env_name(own)
    if purpose != "chat" and settings.model_for(purpose) == settings.chat_model and settings.chat_context_tokens:
        return settings.chat_context_tokens, env_name("chat_context_tokens")
    return settings.context_for(purpose), None


def window_row(purposes: list[str], configured: int, setting: str | None, found: ServerProbe | None) -> Check:
    """The window prompts are fitted to, against what the server says it runs the model with.

    A configured window larger than the server's is a warning, not a blocking problem: vLLM and
    llama.cpp refuse such a prompt with their window in the answer, and the gateway retries it once,
    fitted to that; only long prompts pay the refused request."""
    name, variable = f"window {', '.join(purposes)}", env_name(f"{purposes[0]}_context_tokens")
    found = found or ServerProbe(reachable=False)  # not asked (offline, or no such model): nothing stated
    stated = found.window
    if stated is not None and setting is None:
        if stated < MIN_CONTEXT:
            return warn(name, f"the server runs the model with only {stated:,} tokens ({found.window_source}); "
                        f"the app needs at least {MIN_CONTEXT:,}: raise the server's window")
        return ok(name, f"{stated:,} tokens, as the server says ({found.window_source}); `hyperalign serve` "
                  "passes it to the app")
    if stated is not None and configured > stated:
        return warn(name, f"{setting}={configured:,} is more than the {stated:,} tokens the server runs the model "
                    f"with ({found.window_source}): long prompts are refused once and retried smaller. "
                    f"Set {setting}={stated}, or 0 to take the server's")
    if stated is not None:
        return ok(name, f"{configured:,} tokens ({setting}); the server allows {stated:,}")
    if found.server == "ollama":
        return _ollama_window(name, configured, setting, variable)
    source = setting or "the default for this model"
    return ok(name, f"{configured:,} tokens ({source}); the server does not say its own")


def _ollama_window(name: str, configured: int, setting: str | None, variable: str) -> Check:
    # Ollama's /api/show gives the model's trained maximum, not the num_ctx it runs it with, and Ollama
    # silently drops the start of a longer prompt: only the person who started it knows the window.
    if setting is not None:
        return ok(name, f"{configured:,} tokens ({setting}); Ollama does not say its window: keep "
                  "OLLAMA_CONTEXT_LENGTH at least this large")
    return warn(name, f"{configured:,} tokens assumed: Ollama does not say the window it runs a model with (by "
                "default 4,096 tokens below 24 GiB of VRAM, more above; OLLAMA_CONTEXT_LENGTH sets it) and silently "
                f"cuts longer prompts. Set {variable} to the window you gave Ollama")


def stated_windows(settings: Settings, probes: dict[str, ServerProbe]) -> dict[str, str]:
    """The window settings `serve` passes to the app: a purpose's server-stated window where its own
    setting is unset, so the gateway fits prompts to the server's real window."""
    found = {}
    for purpose in Purpose:
        _, setting = window_setting(settings, purpose)
        stated = probes.get(settings.model_for(purpose), ServerProbe(reachable=False)).window
        if setting is None and stated is not None and stated >= MIN_CONTEXT:
            found[env_name(f"{purpose}_context_tokens")] = str(stated)
    return found


# --- gathering (I/O) ----------------------------------------------------------------------------------

def loaded_settings() -> tuple[Settings | None, Check]:
    try:
        settings = load_settings()
    except ConfigError as exc:
        return None, fail("settings", str(exc).replace("\n", " "))
    return settings, ok("settings", f"valid; data directory {settings.data_dir}")


def inspect_database(url: str) -> DatabaseState:
    """Reachable, and which migrations are pending; applies none (memory.db.migrate is the app's)."""
    from sqlalchemy import inspect, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from memory.db import MIGRATIONS, make_engine

    try:
        parsed = make_url(url)
    except (ValueError, SQLAlchemyError) as exc:  # e.g. a port that is not a number
        return DatabaseState("(the database URL)", error=f"not a database URL: {type(exc).__name__}")
    shown = parsed.render_as_string(hide_password=True)
    if parsed.get_backend_name() == "sqlite" and parsed.database and not Path(parsed.database).exists():
        return DatabaseState(shown, exists=False)
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            has_table = inspect(conn).has_table("_migrations")
            done = set(conn.execute(text("SELECT name FROM _migrations")).scalars()) if has_table else set()
    except SQLAlchemyError as exc:
        said = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        return DatabaseState(shown, error=said.replace(parsed.password or "\0", "***"))
    finally:
        engine.dispose()
    names = [name for name, _ in MIGRATIONS]
    return DatabaseState(shown, pending=tuple(n for n in names if n not in done),
                         unknown=tuple(sorted(done - set(names))))


def load_embedding(model: str) -> Check:
    from memory.embed import Embedder, EmbedderUnavailable

    started = time.perf_counter()
    try:
        dimension = Embedder(model).dimension
    except EmbedderUnavailable as exc:
        return embedding_row(model, None, 0, str(exc))
    return embedding_row(model, dimension, (time.perf_counter() - started) * 1000, "")


def check_spec(settings: Settings) -> Check:
    from assistant.wiring import build_spec

    try:
        spec = build_spec(settings)
    except ConfigError as exc:
        return spec_row("", 0, str(exc))
    return spec_row(spec.version, len(spec.categories), "")


async def probe_models(settings: Settings, *, quick: bool) -> dict[str, ServerProbe]:
    """Each distinct model of the purposes, asked once, all at the same time."""
    models = sorted({settings.model_for(purpose) for purpose in Purpose})
    timeout = QUICK_TIMEOUT if quick else min(settings.request_timeout, FULL_TIMEOUT)
    found = await asyncio.gather(*(probe(api_key=settings.openai_api_key, base_url=settings.openai_base_url,
                                         model=model, timeout=timeout, calls=not quick) for model in models))
    return dict(zip(models, found, strict=True))


def model_server_rows(settings: Settings, probes: dict[str, ServerProbe], *, quick: bool) -> list[Check]:
    rows = []
    for model, found in probes.items():
        purposes = [str(p) for p in Purpose if settings.model_for(p) == model]
        rows += model_rows(model, purposes, found, quick=quick)
    # One row for the purposes that share a model and its window setting (usually all three).
    groups: dict[tuple[str, int, str | None], list[str]] = {}
    for purpose in Purpose:
        groups.setdefault((settings.model_for(purpose), *window_setting(settings, purpose)), []).append(str(purpose))
    for (model, configured, setting), purposes in groups.items():
        rows.append(window_row(purposes, configured, setting, probes.get(model)))
    return rows


def examine(settings: Settings, *, quick: bool = False) -> tuple[list[Check], dict[str, ServerProbe]]:
    """Every check but the settings' own (the caller loaded them); the probes, for `stated_windows`."""
    rows = [server_row(settings), *database_rows(inspect_database(settings.resolved_database_url))]
    if not quick:
        rows.append(load_embedding(settings.embedding_model))
    rows.append(check_spec(settings))
    if settings.offline:
        return rows, {}
    probes = asyncio.run(probe_models(settings, quick=quick))
    return rows + model_server_rows(settings, probes, quick=quick), probes


def diagnose() -> list[Check]:
    """The whole check, settings first: `hyperalign doctor`."""
    settings, row = loaded_settings()
    if settings is None:
        return [row]
    return [row, *examine(settings)[0]]
