"""`hyperalign profile show|infer|export` and `hyperalign forget`: what the assistant holds about a user,
how to see it, refresh it, take it away, and erase it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from assistant.cli.base import CommandError, opened_engine, user_id_of
from assistant.config import Settings
from memory.models import EntryStatus, JobStatus, stored_id


def add_commands(commands) -> None:
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


def profile_show(settings: Settings, args: argparse.Namespace) -> int:
    from sqlmodel import col, select

    from hypotheses.style import StyleStats, describe
    from memory import profile
    from memory.db import read
    from memory.models import HypothesisJob

    with opened_engine(settings) as engine:
        user_id = user_id_of(engine, args.name)
        rows = read(engine, lambda s: profile.entries(s, user_id=user_id))
        style = read(engine, lambda s: profile.load_style(s, user_id=user_id))
        jobs = read(engine, lambda s: list(s.exec(select(HypothesisJob).where(HypothesisJob.user_id == user_id)
                                                   .order_by(col(HypothesisJob.id).desc()).limit(5)).all()))
    active = [r for r in rows if r.status == EntryStatus.ACTIVE]
    print(f"profile of {args.name}: {len(active)} active, "
          f"{sum(r.status == EntryStatus.SUPERSEDED for r in rows)} superseded, "
          f"{sum(r.status == EntryStatus.REJECTED for r in rows)} rejected")
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
            user_id = user_id_of(app.engine, args.name)
            job = write(app.engine, lambda s: enqueue(s, user_id=user_id, trigger="command"))
            if job is None:
                raise CommandError(f"a job for {args.name} is already queued or running")
            outcome = await app.jobs.run(stored_id(job.id), user_id=user_id)
        finally:
            await app.aclose()
        if outcome.status != JobStatus.DONE:
            raise CommandError(f"job {outcome.job_id} failed: {outcome.reason}")
        print(f"job {outcome.job_id} done: {sum(c.kind != 'skip' for c in outcome.changes)} changes")
        for change in outcome.changes:
            entry = change.after or change.before
            print(f"  {change.kind:<9} {entry.text if entry else '':<60} {change.reason}")
        return 0

    return asyncio.run(run())


def profile_export(settings: Settings, args: argparse.Namespace) -> int:
    import json

    from assistant.privacy import export_data
    from memory.db import read

    with opened_engine(settings) as engine:
        user_id = user_id_of(engine, args.name)
        data = read(engine, lambda s: export_data(s, user_id=user_id))
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
    with opened_engine(settings) as engine:
        user_id = user_id_of(engine, args.name)
        _, indexes = build_memory(settings, engine)
        counts = forget(engine, indexes, user_id=user_id, token_lifetime_s=TOKEN_LIFETIME_S)
    print(f"forgot {args.name}: {counts['threads']} threads and {counts['profile_entries']} profile entries erased, "
          f"{counts['audit_records_anonymised']} audit records kept as anonymous counts")
    if not counts["disk_scrubbed"]:
        print("warning: the database was busy: the rows are gone, but their bytes may stay in its files until the "
              "next erasure (SQLite: or until the app stops; PostgreSQL: or a VACUUM FULL)", file=sys.stderr)
    return 0
