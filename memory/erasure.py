"""After rows are deleted for good ("forget me"): remove what the deletion leaves behind on disk.

Deleting a row does not delete its bytes. On SQLite the old pages stay in the write-ahead log until
it is checkpointed *and* truncated, and the full-text index keeps deleted words in its segments until
a merge happens to reach them; deleted rows themselves are zeroed in their pages because every
connection sets `secure_delete` (memory/db.py). On PostgreSQL a deleted row stays in its page until
VACUUM, and even then its bytes stay in the page's free space, and in the GIN index's, until
overwritten (measured: after a plain VACUUM, between a quarter and nearly all of the erased rows
could still be found in the table's file, and every one in the full-text index); only a rewrite
(VACUUM FULL) leaves none. The same holds for the statistics ANALYZE keeps in pg_statistic, which
quote column values. What the server keeps outside the database's files (its WAL, archives,
replicas, backups) is the operator's to age out (README, "Forget me").
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import OperationalError

logger = logging.getLogger(__name__)

# How long a rewrite may wait for other transactions on a table before giving up: while it waits,
# every later query on that table queues behind it.
LOCK_TIMEOUT_MS = 5000


def scrub(engine: Engine, tables: Sequence[str]) -> bool:
    """Leave no bytes of rows deleted from `tables` in the database's files; True when none are left.

    False means a concurrent reader or lock got in the way; the caller reports it (the rows
    themselves are gone, and the next scrub or checkpoint removes the rest).
    """
    started = time.perf_counter()
    done = _scrub_postgres(engine, tables) if engine.dialect.name == "postgresql" else _scrub_sqlite(engine)
    logger.info("scrubbed %d tables: complete=%s in %.0f ms", len(tables), done,
                (time.perf_counter() - started) * 1000)
    return done


def _scrub_sqlite(engine: Engine) -> bool:
    try:
        with engine.begin() as conn:
            # 'optimize' merges every segment into one, dropping deleted entries and the words only
            # they held. (FTS5's 'secure-delete' option would do this per row, but needs SQLite 3.42.)
            conn.execute(text("INSERT INTO message_fts(message_fts) VALUES ('optimize')"))
    except OperationalError:  # another writer held the database past busy_timeout
        logger.warning("the full-text index could not be merged after an erasure: the database was busy")
        return False
    with engine.connect() as conn:
        # TRUNCATE waits (busy_timeout) for readers to move past the old pages, copies the WAL into
        # the database and empties the WAL file.
        busy, _, _ = conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)")).one()
    if busy:
        logger.warning("the WAL could not be truncated after an erasure: a reader held it")
    return not busy


def _scrub_postgres(engine: Engine, tables: Sequence[str]) -> bool:
    # VACUUM cannot run inside a transaction.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f"SET lock_timeout = {LOCK_TIMEOUT_MS}"))
        try:
            # One table at a time: each is locked only while it is rewritten. ANALYZE replaces the
            # statistics at once, because their most-common values and histograms quote column values;
            # the replaced statistics are then dead rows of pg_statistic, rewritten last.
            rewritten = [_rewrite(conn, table, analyze=True) for table in tables]
            rewritten.append(_rewrite(conn, "pg_statistic", analyze=False))
        finally:
            conn.execute(text("RESET lock_timeout"))  # the connection goes back to the pool
    return all(rewritten)


def _rewrite(conn: Connection, table: str, *, analyze: bool) -> bool:
    # The server skips, with a mere notice, a table the role may not vacuum: ask first.
    if not _may_vacuum(conn, table):
        logger.warning("table %s not rewritten after an erasure: the app's role owns neither it nor the database",
                       table)
        return False
    try:
        conn.execute(text(f'VACUUM (FULL{", ANALYZE" if analyze else ""}) "{table}"'))
    except OperationalError:  # lock_timeout: busy; the dead rows wait for the next scrub
        logger.warning("table %s was busy and not rewritten after an erasure", table)
        return False
    return True


def _may_vacuum(conn: Connection, table: str) -> bool:
    """PostgreSQL's rule: a superuser, the table's owner, or (but for shared catalogs) the database's owner."""
    return bool(conn.execute(text(
        "SELECT r.rolsuper OR pg_has_role(c.relowner, 'USAGE') OR (NOT c.relisshared AND pg_has_role(d.datdba, 'USAGE')) "
        "FROM pg_class c, pg_roles r, pg_database d "
        "WHERE c.oid = to_regclass(:table) AND r.rolname = current_user AND d.datname = current_database()"
    ), {"table": f'"{table}"'}).scalar())
