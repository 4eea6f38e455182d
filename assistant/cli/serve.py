"""`hyperalign serve`: the chat app, served by Chainlit from this checkout, after a quick check."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from assistant.cli.base import CommandError
from assistant.config import Settings, load_or_create_auth_secret

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CHAINLIT_APP = PROJECT_ROOT / "assistant" / "ui" / "app.py"

_CHAINLIT_CLI_FLAGS = {"RUN_TARGET", "WATCH", "HEADLESS", "DEBUG", "CI", "NO_CACHE"}


def add_commands(commands) -> None:
    serve_cmd = commands.add_parser("serve", help="start the chat app")
    serve_cmd.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    serve_cmd.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
    serve_cmd.set_defaults(run=serve)


def serve(settings: Settings, args: argparse.Namespace) -> int:
    """Replace this process with Chainlit serving our app, configured from our settings."""
    if not (PROJECT_ROOT / ".chainlit" / "config.toml").exists():
        raise CommandError(f"{PROJECT_ROOT} has no .chainlit/config.toml: run hyperalign from its source checkout")
    from assistant.wiring import build_spec

    build_spec(settings)  # a faulty safety spec stops here, with its message, not inside the server
    # Chainlit's CLI reads these generic names as its own flags; CI=true, common on build machines,
    # would even put a fake OPENAI_API_KEY in the environment and end offline mode.
    env = {k: v for k, v in os.environ.items() if k not in _CHAINLIT_CLI_FLAGS}
    env.update(
        CHAINLIT_AUTH_SECRET=load_or_create_auth_secret(settings),
        # Chainlit reads its config, translations and public/ from here, whatever the cwd is.
        CHAINLIT_APP_ROOT=str(PROJECT_ROOT),
        CHAINLIT_HOST=args.host,
        CHAINLIT_PORT=str(args.port),
    )
    env.update(startup_check(settings))
    mode = "offline mode (no OPENAI_API_KEY or OPENAI_BASE_URL set)" if settings.offline else settings.chat_model
    database = "PostgreSQL" if settings.database_url and "postgresql" in settings.database_url else "SQLite"
    print(f"hyperalign: http://{args.host}:{args.port}  model: {mode}  database: {database}", flush=True)
    command = [sys.executable, "-m", "chainlit", "run", str(CHAINLIT_APP), "--headless",
               "--host", args.host, "--port", str(args.port)]
    os.execve(sys.executable, command, env)
    return 0  # not reached


def startup_check(settings: Settings) -> dict[str, str]:
    """Print the quick check's problems and verdict (a missing model is known now, not at the first
    message); return the context windows the model server states for purposes whose setting is unset,
    for the app's environment. Nothing found here stops the start: a model server may come up later."""
    from assistant import doctor

    try:
        rows, probes = doctor.examine(settings, quick=True)
    except Exception as exc:  # the outermost boundary of the check: the app starts regardless
        print(f"hyperalign: the start-up check failed ({type(exc).__name__}); starting anyway", flush=True)
        return {}
    for row in rows:
        if row.status != doctor.Status.OK:
            print(f"hyperalign: {doctor.shown_status(row)} {row.name}: {row.detail}", flush=True)
    windows = doctor.stated_windows(settings, probes)
    for name, tokens in windows.items():
        print(f"hyperalign: {name}={tokens}, as the model server states", flush=True)
    print(f"hyperalign: start-up check: {doctor.verdict(rows)}; `hyperalign doctor` checks everything", flush=True)
    return windows
