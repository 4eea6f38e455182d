"""`hyperalign reindex`: embed every message that lacks a vector of the current model."""

from __future__ import annotations

import argparse
import sys

from assistant.cli.base import CommandError, opened_engine, progress_bar
from assistant.config import Settings


def add_commands(commands) -> None:
    reindex_cmd = commands.add_parser("reindex", help="embed every message that lacks a vector of the current model")
    reindex_cmd.add_argument("--user", help="only this user's messages")
    reindex_cmd.set_defaults(run=reindex)


def reindex(settings: Settings, args: argparse.Namespace) -> int:
    from assistant.wiring import build_memory
    from memory import store
    from memory.db import read
    from memory.vectors import embed_pending

    with opened_engine(settings) as engine:
        user_id = None
        if args.user:
            user = read(engine, lambda s: store.get_user(s, identifier=args.user))
            if user is None:
                raise CommandError(f"no user named {args.user!r}")
            user_id = user.id
        embedder, indexes = build_memory(settings, engine)
        print(f"embedding with {embedder.model_name} ...", file=sys.stderr, flush=True)
        done = embed_pending(engine, embedder, user_id=user_id, progress=progress_bar, check_hashes=True)
    print(f"\nre-embedded {done} messages", flush=True)
    return 0
