"""`hyperalign serve`: the chat app, served by Chainlit from this checkout."""

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
    mode = "offline mode (no OPENAI_API_KEY or OPENAI_BASE_URL set)" if settings.offline else settings.chat_model
    database = "PostgreSQL" if settings.database_url and "postgresql" in settings.database_url else "SQLite"
    print(f"hyperalign: http://{args.host}:{args.port}  model: {mode}  database: {database}", flush=True)
    command = [sys.executable, "-m", "chainlit", "run", str(CHAINLIT_APP), "--headless",
               "--host", args.host, "--port", str(args.port)]
    os.execve(sys.executable, command, env)
    return 0  # not reached
