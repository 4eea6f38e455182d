"""`hyperalign import NAME FILE...`: bring a person's history from elsewhere (chat exports, their own writing)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from assistant.cli.base import CommandError, opened_engine, progress_bar, user_id_of
from assistant.config import Settings


def add_commands(commands) -> None:
    import_cmd = commands.add_parser(
        "import", help="import a person's ChatGPT or Claude export, text files or sent e-mail")
    import_cmd.add_argument("name", help="the person (an existing account)")
    import_cmd.add_argument("files", nargs="*", type=Path,
                            help="a ChatGPT or Claude export (.zip or conversations.json), .txt/.md, .eml or .mbox")
    import_cmd.add_argument("--dry-run", action="store_true", help="read the files and say what they hold; store nothing")
    import_cmd.add_argument("--list", action="store_true", help="the person's imports, newest first")
    import_cmd.add_argument("--undo", type=int, metavar="ID", help="remove all that import ID added, and the support "
                            "it gave the profile")
    import_cmd.set_defaults(run=import_files)


def import_files(settings: Settings, args: argparse.Namespace) -> int:
    from memory.history import UnreadableImport
    from memory.importing import Imported, import_file

    if args.list or args.undo is not None:
        if args.files or args.dry_run or (args.list and args.undo is not None):
            raise CommandError("--list and --undo take only the person's name")
        return _list(settings, args.name) if args.list else _undo(settings, args.name, args.undo)
    if not args.files:
        raise CommandError("name at least one file to import (or --list, or --undo ID)")
    missing = [str(f) for f in args.files if not f.is_file()]
    if missing:
        raise CommandError(f"no such file: {', '.join(missing)}")
    refused = 0
    added = 0

    def show(counts: Imported) -> None:
        print(f"\r  {counts.conversations} conversations, {counts.messages} messages, {counts.texts} texts",
              end="", file=sys.stderr, flush=True)

    with opened_engine(settings) as engine:
        user_id = user_id_of(engine, args.name)
        for path in args.files:
            print(f"{'reading' if args.dry_run else 'importing'} {path.name} ...", file=sys.stderr, flush=True)
            try:
                done = import_file(engine, user_id=user_id, path=path, max_bytes=settings.import_limit_mb * 2**20,
                                   dry_run=args.dry_run, progress=show)
            except UnreadableImport as exc:
                print(f"\n{path.name}: {exc}", file=sys.stderr, flush=True)
                refused += 1
                continue
            print(file=sys.stderr)
            print(("would import " if args.dry_run else "") + done.line(), flush=True)
            added += done.conversations + done.texts
        if added and not args.dry_run:
            asyncio.run(_learn(settings, user_id))
    return 1 if refused else 0


async def _learn(settings: Settings, user_id: int) -> None:
    """What the panel does after an import (assistant.imports.learn_from_import: the first profile, run
    here unless workers run jobs, and the style card), then the vectors, here and now with a progress
    bar rather than in the background, and the first profile's outcome once its job is over."""
    from assistant.imports import learn_from_import
    from assistant.wiring import build_app
    from memory.db import read
    from memory.importing import counted
    from memory.models import HypothesisJob, JobStatus
    from memory.vectors import embed_pending

    app = build_app(settings)
    try:
        await asyncio.to_thread(app.embedder.load)  # the job's merge compares entries by their vectors
        learned = await learn_from_import(app.engine, app.jobs, user_id=user_id)
        for what in learned.failed:
            print(f"{what} failed (the log says why); it is done again as they chat", file=sys.stderr, flush=True)
        print("embedding the imported texts for recall ...", file=sys.stderr, flush=True)
        done = await asyncio.to_thread(embed_pending, app.engine, app.embedder, user_id=user_id, progress=progress_bar)
        print(f"\nembedded {done} messages", file=sys.stderr, flush=True)
        if settings.offline:
            print("profile: no language model is configured, so none is inferred yet", flush=True)
            return
        if learned.job_id is None:
            print("profile: nothing new to learn from (or a job of theirs is already running)", flush=True)
            return
        if not settings.web_runs_jobs:
            print(f"profile: job {learned.job_id} queued for the workers", flush=True)
            return
        print("inferring the first profile from a sample of the imported texts ...", file=sys.stderr, flush=True)
        await app.jobs.settle()
        job = await asyncio.to_thread(read, app.engine, lambda s: s.get(HypothesisJob, learned.job_id))
        if job is not None and job.status is JobStatus.DONE:
            print(f"profile: {counted(job.changes, 'entry', 'entries')} from {job.samples} of the texts", flush=True)
        else:
            print(f"profile: the model's answer could not be used ({job.reason if job else 'job lost'}); "
                  "the next chat tries again", flush=True)
    finally:
        await app.aclose()


def _list(settings: Settings, name: str) -> int:
    from memory.db import read
    from memory.importing import batches, counted

    with opened_engine(settings) as engine:
        user_id = user_id_of(engine, name)
        rows = read(engine, lambda s: batches(s, user_id=user_id))
    for b in rows:
        added = (f"{counted(b.conversations, 'conversation')} ({counted(b.messages, 'message')})"
                 if b.conversations else counted(b.texts, "text"))
        print(f"{b.id:>5}  {b.created_at:%Y-%m-%d %H:%M}  {b.status!s:<7} {b.source:<8} {b.file_name}: {added}"
              + (f" ({b.reason})" if b.reason else ""))
    if not rows:
        print(f"{name} has imported nothing")
    return 0


def _undo(settings: Settings, name: str, batch_id: int) -> int:
    from assistant.imports import undo_import
    from assistant.wiring import build_memory
    from memory.importing import StillImporting

    with opened_engine(settings) as engine:
        user_id = user_id_of(engine, name)
        _, indexes = build_memory(settings, engine)
        try:
            done = undo_import(engine, indexes, user_id=user_id, batch_id=batch_id)
        except (LookupError, StillImporting) as exc:
            raise CommandError(str(exc)) from None
    print(f"undid import {batch_id}: {done['messages']} messages removed; profile entries withdrawn: "
          f"{done['entries_withdrawn']}, weakened: {done['entries_weakened']}")
    return 0
