"""What every `hyperalign` command shares: the error it reports, the database, users by name, progress."""

from __future__ import annotations

import sys

from assistant.config import Settings


class CommandError(Exception):
    """A command could not do what was asked; the message says why."""


def open_engine(settings: Settings):
    from assistant.wiring import build_engine  # deferred: `--help` should not touch the database

    return build_engine(settings)


def user_id_of(engine, name: str) -> int:
    from memory import store
    from memory.db import read

    user = read(engine, lambda s: store.get_user(s, identifier=name))
    if user is None:
        raise CommandError(f"no user named {name!r}")
    return user.id


def progress_bar(done: int, total: int) -> None:
    width = 30
    filled = width * done // max(total, 1)
    print(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total}", end="", file=sys.stderr, flush=True)
