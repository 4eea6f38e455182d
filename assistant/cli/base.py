"""What every `hyperalign` command shares: the error it reports, the database, users by name, progress."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from assistant.config import Settings

if TYPE_CHECKING:
    from sqlalchemy import Engine


class CommandError(Exception):
    """A command could not do what was asked; the message says why."""


@contextmanager
def opened_engine(settings: Settings) -> Iterator[Engine]:
    """The app's database, migrated, for the length of a command; disposed however the command ends."""
    from assistant.wiring import build_engine  # deferred: `--help` should not touch the database

    engine = build_engine(settings)
    try:
        yield engine
    finally:
        engine.dispose()


def user_id_of(engine: Engine, name: str) -> int:
    from memory import store
    from memory.db import read
    from memory.models import stored_id

    user = read(engine, lambda s: store.get_user(s, identifier=name))
    if user is None:
        raise CommandError(f"no user named {name!r}")
    return stored_id(user.id)


def progress_bar(done: int, total: int) -> None:
    width = 30
    filled = width * done // max(total, 1)
    print(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total}", end="", file=sys.stderr, flush=True)
