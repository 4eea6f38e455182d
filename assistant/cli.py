"""`hyperalign`: serve the app and administer it. Every command reads the same settings as the app.

Commands (each is documented in README; a test checks):
  hyperalign serve [--host HOST] [--port PORT]
  hyperalign users add NAME [--operator] [--password-stdin]
  hyperalign users list
  hyperalign reindex [--user NAME]
  hyperalign bench recall --locomo PATH [--json]
  hyperalign bench turn [--json] [--sizes N,N,...] [--others N]
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path

from assistant.config import ConfigError, Settings, load_or_create_auth_secret, load_settings

PROJECT_ROOT = Path(__file__).resolve().parents[1]
CHAINLIT_APP = PROJECT_ROOT / "assistant" / "ui" / "app.py"


_CHAINLIT_CLI_FLAGS = {"RUN_TARGET", "WATCH", "HEADLESS", "DEBUG", "CI", "NO_CACHE"}


class CommandError(Exception):
    """A command could not do what was asked; the message says why."""


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    try:
        return args.run(load_settings(), args) or 0
    except (ConfigError, CommandError) as exc:
        print(f"hyperalign: {exc}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hyperalign", description="A chat assistant that gets to know you.")
    commands = parser.add_subparsers(title="commands")

    serve_cmd = commands.add_parser("serve", help="start the chat app")
    serve_cmd.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    serve_cmd.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
    serve_cmd.set_defaults(run=serve)

    users_cmd = commands.add_parser("users", help="manage accounts").add_subparsers(title="users commands")
    add = users_cmd.add_parser("add", help="create an account (the way to add users when registration is closed)")
    add.add_argument("name")
    add.add_argument("--operator", action="store_true", help="give the account the operator role")
    add.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    add.set_defaults(run=users_add)
    listing = users_cmd.add_parser("list", help="list accounts with their role and creation date")
    listing.set_defaults(run=users_list)

    reindex_cmd = commands.add_parser("reindex", help="embed every message that lacks a vector of the current model")
    reindex_cmd.add_argument("--user", help="only this user's messages")
    reindex_cmd.set_defaults(run=reindex)

    bench_cmd = commands.add_parser("bench", help="benchmarks that print figures").add_subparsers(title="benchmarks")
    bench_recall = bench_cmd.add_parser("recall", help="turn-level evidence recall on LoCoMo-format data")
    bench_recall.add_argument("--locomo", required=True, type=Path, help="a JSON file in LoCoMo's format")
    bench_recall.add_argument("--json", action="store_true", help="print JSON instead of a table")
    bench_recall.set_defaults(run=bench_recall_command)
    bench_turn = bench_cmd.add_parser("turn", help="memory overhead of one chat turn (everything but the model)")
    bench_turn.add_argument("--json", action="store_true", help="print JSON instead of lines")
    bench_turn.add_argument("--sizes", default="1000,10000,100000", help="messages of the measured user, comma-separated")
    bench_turn.add_argument("--others", type=int, default=1000, help="other users in the database")
    bench_turn.add_argument("--turns", type=int, default=60, help="turns measured per size")
    bench_turn.set_defaults(run=bench_turn_command)
    return parser


def serve(settings: Settings, args: argparse.Namespace) -> int:
    """Replace this process with Chainlit serving our app, configured from our settings."""
    if not (PROJECT_ROOT / ".chainlit" / "config.toml").exists():
        raise CommandError(f"{PROJECT_ROOT} has no .chainlit/config.toml: run hyperalign from its source checkout")
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


def _open_engine(settings: Settings):
    from assistant.wiring import build_engine  # deferred: `--help` should not touch the database

    return build_engine(settings)


def users_add(settings: Settings, args: argparse.Namespace) -> int:
    from memory import store
    from memory.db import write
    from memory.models import Role

    password = sys.stdin.readline().rstrip("\n") if args.password_stdin else _ask_password()
    engine = _open_engine(settings)
    role = Role.OPERATOR if args.operator else Role.USER
    try:
        user = write(engine, lambda s: store.create_user(s, identifier=args.name, password=password, role=role))
    except store.InvalidInput as exc:
        raise CommandError(str(exc)) from None
    finally:
        engine.dispose()
    print(f"created {user.identifier} ({user.role})")
    return 0


def _ask_password() -> str:
    if not sys.stdin.isatty():
        raise CommandError("no terminal to ask for a password: pipe it in with --password-stdin")
    first = getpass.getpass("Password: ")
    if first != getpass.getpass("Again: "):
        raise CommandError("the two passwords differ")
    return first


def users_list(settings: Settings, args: argparse.Namespace) -> int:
    from memory import store
    from memory.db import read

    engine = _open_engine(settings)
    try:
        users = read(engine, store.list_users)
    finally:
        engine.dispose()
    print(f"{'name':<32} {'role':<9} created")
    for user in users:
        print(f"{user.identifier:<32} {user.role!s:<9} {user.created_at:%Y-%m-%d %H:%M}")
    return 0


if __name__ == "__main__":
    sys.exit(main())


def reindex(settings: Settings, args: argparse.Namespace) -> int:
    from assistant.wiring import build_memory
    from memory import store
    from memory.db import read
    from memory.vectors import embed_pending

    engine = _open_engine(settings)
    try:
        user_id = None
        if args.user:
            user = read(engine, lambda s: store.get_user(s, identifier=args.user))
            if user is None:
                raise CommandError(f"no user named {args.user!r}")
            user_id = user.id
        embedder, indexes = build_memory(settings, engine)
        print(f"embedding with {embedder.model_name} ...", file=sys.stderr, flush=True)
        done = embed_pending(engine, embedder, user_id=user_id, progress=_progress_bar, check_hashes=True)
    finally:
        engine.dispose()
    print(f"\nre-embedded {done} messages", flush=True)
    return 0


def _progress_bar(done: int, total: int) -> None:
    width = 30
    filled = width * done // max(total, 1)
    print(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total}", end="", file=sys.stderr, flush=True)


def bench_recall_command(settings: Settings, args: argparse.Namespace) -> int:
    import json

    from assistant.bench import render_recall_table, run_recall_bench

    if not args.locomo.is_file():
        raise CommandError(f"{args.locomo} is not a file")
    result = run_recall_bench(args.locomo, say=lambda line: print(line, file=sys.stderr, flush=True))
    print(json.dumps(result, indent=2) if args.json else render_recall_table(result))
    return 0


def bench_turn_command(settings: Settings, args: argparse.Namespace) -> int:
    import json

    from assistant.bench import run_turn_bench

    try:
        sizes = [int(n) for n in args.sizes.split(",") if n.strip()]
    except ValueError:
        raise CommandError("--sizes takes whole numbers separated by commas, e.g. 1000,10000") from None
    result = run_turn_bench(sizes=sizes, others=args.others, turns=args.turns,
                            say=lambda line: print(line, file=sys.stderr if args.json else sys.stdout, flush=True))
    if args.json:
        print(json.dumps(result, indent=2))
    return 0
