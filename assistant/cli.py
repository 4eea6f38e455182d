"""`hyperalign`: serve the app and administer it. Every command reads the same settings as the app.

Commands (each is documented in README; a test checks):
  hyperalign serve [--host HOST] [--port PORT]
  hyperalign users add NAME [--operator] [--password-stdin]
  hyperalign users list
  hyperalign users set-role NAME operator|user
  hyperalign audit list|show|label|export [filters]
  hyperalign profile show NAME
  hyperalign profile infer NAME
  hyperalign profile export NAME [--out FILE]
  hyperalign forget NAME [--yes]
  hyperalign reindex [--user NAME]
  hyperalign bench recall --locomo PATH [--json]
  hyperalign bench turn [--json] [--sizes N,N,...] [--others N] [--latency-ms MS] [--part all|memory|ttft]
  hyperalign bench inference [--messages N] [--json]
  hyperalign spec check [PATH]
  hyperalign eval safety --dataset PATH --format FORMAT [--profile FILE] [--out DIR] [--concurrency N] [--limit N]
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path

from assistant.cli_audit import add_audit_commands
from assistant.cli_base import CommandError, open_engine as _open_engine, progress_bar as _progress_bar
from assistant.cli_base import user_id_of as _user_id
from assistant.cli_safety import add_safety_commands
from assistant.config import ConfigError, Settings, load_or_create_auth_secret, load_settings

PROJECT_ROOT = Path(__file__).resolve().parents[1]
CHAINLIT_APP = PROJECT_ROOT / "assistant" / "ui" / "app.py"


_CHAINLIT_CLI_FLAGS = {"RUN_TARGET", "WATCH", "HEADLESS", "DEBUG", "CI", "NO_CACHE"}


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
    set_role = users_cmd.add_parser("set-role", help="make an account an operator or a plain user")
    set_role.add_argument("name")
    set_role.add_argument("role", choices=["operator", "user"])
    set_role.set_defaults(run=users_set_role)

    profile_cmd = commands.add_parser("profile", help="what the assistant holds about a user").add_subparsers(
        title="profile commands")
    show = profile_cmd.add_parser("show", help="the user's profile entries, style card and recent jobs")
    show.add_argument("name")
    show.set_defaults(run=profile_show)
    infer_now = profile_cmd.add_parser("infer", help="run a hypothesis job for the user now and print the changes")
    infer_now.add_argument("name")
    infer_now.set_defaults(run=profile_infer)
    export = profile_cmd.add_parser("export", help="everything held about the user, as JSON")
    export.add_argument("name")
    export.add_argument("--out", type=Path, help="write to this file instead of standard output")
    export.set_defaults(run=profile_export)

    forget_cmd = commands.add_parser("forget", help="erase a user and everything about them")
    forget_cmd.add_argument("name")
    forget_cmd.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    forget_cmd.set_defaults(run=forget_user)

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
    bench_turn.add_argument("--turns", type=int, default=60, help="turns measured per size (and per TTFT variant)")
    bench_turn.add_argument("--latency-ms", type=float, default=300.0,
                            help="the stand-in model's latency per call, for time to first token (default 300)")
    bench_turn.add_argument("--part", choices=["all", "memory", "ttft"], default="all",
                            help="memory overhead, time to first token with and without deliberation, or both")
    bench_turn.set_defaults(run=bench_turn_command)
    bench_inference = bench_cmd.add_parser("inference", help="model calls and tokens per user message, by purpose")
    bench_inference.add_argument("--messages", type=int, default=200, help="simulated user messages (default 200)")
    bench_inference.add_argument("--json", action="store_true", help="print JSON instead of lines")
    bench_inference.set_defaults(run=bench_inference_command)
    add_safety_commands(commands)
    add_audit_commands(commands)
    return parser


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


def users_add(settings: Settings, args: argparse.Namespace) -> int:
    from assistant.privacy import name_held_back, release_hold
    from memory import store
    from memory.db import write
    from memory.models import Role

    password = sys.stdin.readline().rstrip("\n") if args.password_stdin else _ask_password()
    engine = _open_engine(settings)
    role = Role.OPERATOR if args.operator else Role.USER
    def create(session):
        # A name erased by "forget me" is held for its owner while the erased account's tokens live.
        if name_held_back(session, args.name.strip(), password):
            raise CommandError(f"{args.name!r} belonged to an account erased less than 15 days ago; only its "
                               "owner's password can take it back until then. Choose another name.")
        release_hold(session, args.name.strip())
        return store.create_user(session, identifier=args.name, password=password, role=role)

    try:
        user = write(engine, create)
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
    if args.latency_ms <= 0:
        raise CommandError("--latency-ms must be positive")
    say = lambda line: print(line, file=sys.stderr if args.json else sys.stdout, flush=True)  # noqa: E731
    result = {}
    if args.part in ("all", "memory"):
        result["memory"] = run_turn_bench(sizes=sizes, others=args.others, turns=args.turns, say=say)
    if args.part in ("all", "ttft"):
        from assistant.bench_ttft import run_ttft_bench

        result["time_to_first_token"] = run_ttft_bench(latency_ms=args.latency_ms, turns=args.turns, say=say)
    if args.json:
        print(json.dumps(result, indent=2))
    return 0


def profile_show(settings: Settings, args: argparse.Namespace) -> int:
    from sqlmodel import select

    from hypotheses.style import StyleStats, describe
    from memory import profile
    from memory.db import read
    from memory.models import HypothesisJob

    engine = _open_engine(settings)
    try:
        user_id = _user_id(engine, args.name)
        rows = read(engine, lambda s: profile.entries(s, user_id=user_id))
        style = read(engine, lambda s: profile.load_style(s, user_id=user_id))
        jobs = read(engine, lambda s: list(s.exec(select(HypothesisJob).where(HypothesisJob.user_id == user_id)
                                                   .order_by(HypothesisJob.id.desc()).limit(5)).all()))
    finally:
        engine.dispose()
    active = [r for r in rows if r.status == "active"]
    print(f"profile of {args.name}: {len(active)} active, "
          f"{sum(r.status == 'superseded' for r in rows)} superseded, {sum(r.status == 'rejected' for r in rows)} rejected")
    for facet in sorted({r.facet for r in active}):
        print(f"\n{facet}")
        for r in sorted((r for r in active if r.facet == facet), key=lambda r: -r.confidence):
            marks = "".join([" [pinned]" if r.pinned else "", " [yours]" if r.source == "user" else ""])
            print(f"  #{r.id} {r.text}  (confidence {r.confidence:.2f}, support {r.support}){marks}")
    statements = describe(StyleStats.from_json(style))
    print("\nstyle card" + ("" if statements else ": not enough messages yet"))
    for line in statements:
        print(f"  {line}")
    if jobs:
        print("\nrecent jobs")
        for job in jobs:
            print(f"  #{job.id} {job.status} {job.trigger}: {job.samples} samples, {job.changes} changes, "
                  f"{job.calls} calls, {job.tokens_in}+{job.tokens_out} tokens, {job.ms:.0f} ms"
                  + (f" ({job.reason})" if job.reason else ""))
    return 0


def profile_infer(settings: Settings, args: argparse.Namespace) -> int:
    import asyncio

    from assistant.wiring import build_app
    from hypotheses.job import enqueue
    from memory.db import write

    if settings.offline:
        raise CommandError("inferring hypotheses needs a language model: set OPENAI_API_KEY or OPENAI_BASE_URL")
    app = build_app(settings)

    async def run() -> int:
        try:
            user_id = _user_id(app.engine, args.name)
            job = write(app.engine, lambda s: enqueue(s, user_id=user_id, trigger="command"))
            if job is None:
                raise CommandError(f"a job for {args.name} is already queued or running")
            outcome = await app.jobs.run(job.id)
        finally:
            await app.aclose()
        if outcome.status != "done":
            raise CommandError(f"job {outcome.job_id} failed: {outcome.reason}")
        print(f"job {outcome.job_id} done: {sum(c.kind != 'skip' for c in outcome.changes)} changes")
        for change in outcome.changes:
            entry = change.after or change.before
            print(f"  {change.kind:<9} {entry.text if entry else '':<60} {change.reason}")
        return 0

    return asyncio.run(run())


def bench_inference_command(settings: Settings, args: argparse.Namespace) -> int:
    import json

    from assistant.bench import run_inference_bench

    if args.messages < 1:
        raise CommandError("--messages must be at least 1")
    result = run_inference_bench(messages=args.messages,
                                 say=lambda line: print(line, file=sys.stderr if args.json else sys.stdout, flush=True))
    if args.json:
        print(json.dumps(result, indent=2))
    return 0


def profile_export(settings: Settings, args: argparse.Namespace) -> int:
    import json

    from assistant.privacy import export_data
    from memory.db import read

    engine = _open_engine(settings)
    try:
        user_id = _user_id(engine, args.name)
        data = read(engine, lambda s: export_data(s, user_id=user_id))
    finally:
        engine.dispose()
    text = json.dumps(data, ensure_ascii=False, indent=2)
    if args.out:
        from memory.files import private_file

        # Everything about a person: readable by the operator who asked for it, nobody else.
        private_file(args.out).write_text(text + "\n", encoding="utf-8")
        print(f"exported {args.name}: {len(data['threads'])} threads, {len(data['profile']['entries'])} profile "
              f"entries, {len(data['safety_audit'])} audit records -> {args.out}")
    else:
        print(text)
    return 0


def forget_user(settings: Settings, args: argparse.Namespace) -> int:
    from assistant.privacy import TOKEN_LIFETIME_S, forget
    from assistant.wiring import build_memory

    if not args.yes:
        if not sys.stdin.isatty():
            raise CommandError("no terminal to confirm on: add --yes to erase without asking")
        if input(f"Erase {args.name} and everything about them? Type the name to confirm: ").strip() != args.name:
            raise CommandError("not confirmed; nothing was erased")
    engine = _open_engine(settings)
    try:
        user_id = _user_id(engine, args.name)
        _, indexes = build_memory(settings, engine)
        counts = forget(engine, indexes, user_id=user_id, token_lifetime_s=TOKEN_LIFETIME_S)
    finally:
        engine.dispose()
    print(f"forgot {args.name}: {counts['threads']} threads and {counts['profile_entries']} profile entries erased, "
          f"{counts['audit_records_anonymised']} audit records kept as anonymous counts")
    if not counts["disk_scrubbed"]:
        print("warning: the database was busy: the rows are gone, but their bytes may stay in its files until the "
              "next erasure (SQLite: or until the app stops; PostgreSQL: or a VACUUM FULL)", file=sys.stderr)
    return 0


def users_set_role(settings: Settings, args: argparse.Namespace) -> int:
    from memory import store
    from memory.db import write
    from memory.models import Role

    engine = _open_engine(settings)
    try:
        def change(session):
            user = store.get_user(session, identifier=args.name)
            if user is None:
                raise CommandError(f"no user named {args.name!r}")
            store.set_role(session, user=user, role=Role(args.role))

        write(engine, change)
    finally:
        engine.dispose()
    print(f"{args.name} is now {args.role} (they see the change at their next sign-in)")
    return 0


