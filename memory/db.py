"""Engines for SQLite (the embedded default) and PostgreSQL, and ordered, recorded migrations.

Migrations are named functions applied in list order; each name is recorded in `_migrations`
so a database is only ever moved forward. Append new migrations; never edit or reorder old ones.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from sqlalchemy import Connection, Engine, MetaData, create_engine, event, insert, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.schema import CreateTable
from sqlmodel import Session, SQLModel

from memory import models
from memory.files import create_dirs, private_file, tighten
from memory.names import normal_username

logger = logging.getLogger(__name__)
T = TypeVar("T")


def make_engine(url: str) -> Engine:
    """An engine with the settings each backend needs to be safe under concurrent use.

    hide_parameters: SQL errors are logged with their statement; without it they would also carry
    the bound values, i.e. users' message text.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            _private_database_file(Path(parsed.database))
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 5}, hide_parameters=True
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10, hide_parameters=True)


def _private_database_file(path: Path) -> None:
    """Owner-only before SQLite first opens it: SQLite would create it 0644, and it gives the -wal and
    -shm files the database file's mode. An existing install's files are tightened."""
    create_dirs(path.parent)
    private_file(path)
    for suffix in ("-wal", "-shm", "-journal"):
        tighten(path.with_name(path.name + suffix))


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the app and a `hyperalign` command read while the other writes.
    cursor.execute("PRAGMA journal_mode=WAL")
    # Deleted and overwritten text is zeroed in the page, not left in free space until reused: a
    # forgotten user's words must not stay readable in the file (memory/erasure.py).
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


# --- migrations -------------------------------------------------------------------------------

def m001_initial(conn: Connection) -> None:
    tables: list[type[SQLModel]] = [
        models.User, models.Thread, models.Message, models.Step, models.Feedback, models.Element,
    ]
    SQLModel.metadata.create_all(conn, tables=[models.table_of(t) for t in tables])


# The lexical index holds each message together with the message before it in its thread: a reply
# is found by the words of the question it answers, and a short "yes, in May" by its context. This
# raised LoCoMo lexical recall@5 from 0.53 to 0.60 (README, "Recall"). Only ranking uses it; what is
# recalled and shown is always the message's own text.
_PREVIOUS = (
    "(SELECT p.content FROM message p WHERE p.thread_id = {row}.thread_id AND p.id < {row}.id "
    "ORDER BY p.id DESC LIMIT 1)"
)


def m002_recall(conn: Connection) -> None:
    """Vectors, the "don't remember" flag, and the lexical index of each backend."""
    models.table_of(models.Embedding).create(conn, checkfirst=True)
    conn.execute(text("CREATE INDEX IF NOT EXISTS ix_message_thread_id ON message (thread_id, id)"))
    if "remember" not in {c["name"] for c in inspect(conn).get_columns("thread")}:
        default = "TRUE" if conn.dialect.name == "postgresql" else "1"
        conn.execute(text(f"ALTER TABLE thread ADD COLUMN remember BOOLEAN NOT NULL DEFAULT {default}"))
    if conn.dialect.name == "postgresql":
        _postgres_lexical_index(conn)
    else:
        _sqlite_lexical_index(conn)


def _postgres_lexical_index(conn: Connection) -> None:
    conn.execute(text("ALTER TABLE message ADD COLUMN IF NOT EXISTS tsv tsvector"))
    conn.execute(text(f"""
        CREATE OR REPLACE FUNCTION message_tsv() RETURNS trigger AS $$
        BEGIN
            NEW.tsv := setweight(to_tsvector('english', NEW.content), 'A')
                || setweight(to_tsvector('english', coalesce({_PREVIOUS.format(row="NEW")}, '')), 'B');
            RETURN NEW;
        END $$ LANGUAGE plpgsql"""))
    conn.execute(text("DROP TRIGGER IF EXISTS message_tsv ON message"))
    conn.execute(text(
        "CREATE TRIGGER message_tsv BEFORE INSERT OR UPDATE OF content ON message "
        "FOR EACH ROW EXECUTE FUNCTION message_tsv()"
    ))
    conn.execute(text("UPDATE message SET content = content"))  # fill rows that predate the trigger
    conn.execute(text("CREATE INDEX IF NOT EXISTS ix_message_tsv ON message USING GIN (tsv)"))


def _sqlite_lexical_index(conn: Connection) -> None:
    # FTS5 with an `owner` token column: a query names its user (owner:u42 AND ...), so FTS5
    # intersects with that user's rows instead of ranking everybody's. Triggers keep it in step.
    conn.execute(text(
        "CREATE VIRTUAL TABLE IF NOT EXISTS message_fts USING fts5("
        "content, context, owner, tokenize='porter unicode61 remove_diacritics 2')"
    ))
    previous = {row: f"coalesce({_PREVIOUS.format(row=row)}, '')" for row in ("new", "m")}
    for statement in (
        "CREATE TRIGGER IF NOT EXISTS message_fts_insert AFTER INSERT ON message BEGIN "
        "INSERT INTO message_fts(rowid, content, context, owner) "
        f"VALUES (new.id, new.content, {previous['new']}, 'u' || new.user_id); END",
        "CREATE TRIGGER IF NOT EXISTS message_fts_delete AFTER DELETE ON message BEGIN "
        "DELETE FROM message_fts WHERE rowid = old.id; END",
        "CREATE TRIGGER IF NOT EXISTS message_fts_update AFTER UPDATE OF content ON message BEGIN "
        f"UPDATE message_fts SET content = new.content, context = {previous['new']} WHERE rowid = new.id; END",
        "INSERT INTO message_fts(rowid, content, context, owner) "
        f"SELECT m.id, m.content, {previous['m']}, 'u' || m.user_id FROM message m",
    ):
        conn.execute(text(statement))


def m003_style_card(conn: Connection) -> None:
    models.table_of(models.StyleCard).create(conn, checkfirst=True)


def m004_profile(conn: Connection) -> None:
    models.table_of(models.ProfileEntry).create(conn, checkfirst=True)
    models.table_of(models.ProfileHistory).create(conn, checkfirst=True)
    models.table_of(models.HypothesisJob).create(conn, checkfirst=True)


def m005_audit(conn: Connection) -> None:
    models.table_of(models.AuditRecord).create(conn, checkfirst=True)
    models.table_of(models.AppKey).create(conn, checkfirst=True)
    if "safety_json" not in {c["name"] for c in inspect(conn).get_columns("message")}:
        conn.execute(text("ALTER TABLE message ADD COLUMN safety_json TEXT"))
    # Generated here, once, inside the migration's lock: every process gets the same key, so a user
    # keeps one pseudonym however many app processes write audit records.
    conn.execute(insert(models.AppKey).values(name="audit_pseudonym", value=secrets.token_hex(32)))


def m006_user_control(conn: Connection) -> None:
    """Undo of a user's profile changes, and erased usernames held back while their tokens live."""
    if "undoes" not in {c["name"] for c in inspect(conn).get_columns("profile_history")}:
        conn.execute(text("ALTER TABLE profile_history ADD COLUMN undoes INTEGER"))
    models.table_of(models.ForgottenName).create(conn, checkfirst=True)


def m007_operator_actions(conn: Connection) -> None:
    models.table_of(models.OperatorAction).create(conn, checkfirst=True)
    conn.execute(text("CREATE INDEX IF NOT EXISTS ix_audit_record_created ON audit_record (created_at)"))


def m008_accounts(conn: Connection) -> None:
    """Ids never reused, token versions, cross-process limits, and the first operator decided once."""
    if "token_version" not in {c["name"] for c in inspect(conn).get_columns("user")}:
        conn.execute(text('ALTER TABLE "user" ADD COLUMN token_version INTEGER NOT NULL DEFAULT 0'))
    models.table_of(models.ThrottleEvent).create(conn, checkfirst=True)
    if conn.execute(text('SELECT count(*) FROM "user"')).scalar():
        conn.execute(insert(models.AppKey).values(name=models.FIRST_OPERATOR_CLAIM, value="decided before m008"))
    if conn.dialect.name == "sqlite":
        for table in models.SQLModel.metadata.sorted_tables:
            if table.dialect_options["sqlite"]["autoincrement"]:
                _sqlite_rebuild_with_autoincrement(conn, table)
    _normalise_usernames(conn)


def _sqlite_rebuild_with_autoincrement(conn: Connection, table) -> None:
    """SQLite's documented rebuild (sqlite.org/lang_altertable.html, "other kinds of table schema
    changes"), since AUTOINCREMENT cannot be added in place. Runs with foreign keys off (`migrate`),
    else dropping the old table would cascade-delete every row that points at it."""
    name = table.name
    created = conn.exec_driver_sql("SELECT sql FROM sqlite_master WHERE type='table' AND name=?", (name,)).scalar()
    if created is None or "AUTOINCREMENT" in created.upper():
        return
    kept = conn.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE tbl_name=? AND type IN ('index', 'trigger') AND sql IS NOT NULL",
        (name,)).scalars().all()
    old_columns = {c["name"] for c in inspect(conn).get_columns(name)}
    scratch = MetaData()  # holds the tables the copy's foreign keys name
    for other in table.metadata.sorted_tables:
        other.to_metadata(scratch)
    rebuilt = table.to_metadata(scratch, name=f"{name}__rebuilt")
    lost = old_columns - set(rebuilt.columns.keys())
    if lost:
        raise RuntimeError(f"rebuilding {name} would drop columns {sorted(lost)}")
    columns = ", ".join(f'"{c}"' for c in rebuilt.columns.keys() if c in old_columns)
    conn.exec_driver_sql("SAVEPOINT rebuild")  # one step: a crash leaves the old table or the new one
    conn.execute(CreateTable(rebuilt))
    conn.exec_driver_sql(f'INSERT INTO "{rebuilt.name}" ({columns}) SELECT {columns} FROM "{name}"')
    conn.exec_driver_sql(f'DROP TABLE "{name}"')
    conn.exec_driver_sql(f'ALTER TABLE "{rebuilt.name}" RENAME TO "{name}"')
    for statement in kept:
        conn.exec_driver_sql(statement)
    conn.exec_driver_sql("RELEASE rebuild")


def _normalise_usernames(conn: Connection) -> None:
    """Usernames in their one normal form (memory.names); a name whose normal form is already taken
    by another account keeps its spelling (that account still signs in with it exactly)."""
    rows = conn.execute(text('SELECT id, identifier FROM "user" ORDER BY id')).all()
    taken = {identifier for _, identifier in rows}
    for user_id, identifier in rows:
        normal = normal_username(identifier)
        if normal != identifier and normal not in taken:
            conn.execute(text('UPDATE "user" SET identifier = :n, display_name = coalesce(display_name, :d) '
                              "WHERE id = :i"), {"n": normal, "d": identifier, "i": user_id})
            taken.add(normal)


def m009_job_leases(conn: Connection) -> None:
    """Hypothesis jobs hold their user's slot only for a lease. Jobs left queued or running by older
    versions get no lease (NULL), so they count as abandoned and stop blocking their users."""
    if "lease_until" not in {c["name"] for c in inspect(conn).get_columns("hypothesis_job")}:
        kind = "TIMESTAMP WITH TIME ZONE" if conn.dialect.name == "postgresql" else "DATETIME"
        conn.execute(text(f"ALTER TABLE hypothesis_job ADD COLUMN lease_until {kind}"))


def m010_one_active_job(conn: Connection) -> None:
    """The database holds "one queued or running job per user" (a partial unique index). Users that
    older versions left with several such jobs keep the newest; the others are failed first."""
    conn.execute(text(
        f"UPDATE hypothesis_job SET status = '{models.JobStatus.FAILED}', reason = 'Duplicate' "
        f"WHERE {models.ACTIVE_JOB} AND id NOT IN "
        f"(SELECT max(id) FROM hypothesis_job WHERE {models.ACTIVE_JOB} GROUP BY user_id)"))
    conn.execute(text(f"CREATE UNIQUE INDEX IF NOT EXISTS {models.ONE_ACTIVE_JOB} ON hypothesis_job (user_id) "
                      f"WHERE {models.ACTIVE_JOB}"))


def m011_usage(conn: Connection) -> None:
    models.table_of(models.UsageRecord).create(conn, checkfirst=True)
    conn.execute(text("CREATE INDEX IF NOT EXISTS ix_usage_record_at ON usage_record (at)"))


def m012_imports(conn: Connection) -> None:
    """Imports: a batch per file, and the threads it brought marked with it and their origin."""
    models.table_of(models.ImportBatch).create(conn, checkfirst=True)
    columns = {c["name"] for c in inspect(conn).get_columns("thread")}
    if "import_batch_id" not in columns:
        conn.execute(text("ALTER TABLE thread ADD COLUMN import_batch_id INTEGER"))
    if "origin" not in columns:
        conn.execute(text("ALTER TABLE thread ADD COLUMN origin VARCHAR(16)"))
    conn.execute(text("CREATE INDEX IF NOT EXISTS ix_thread_import_batch_id ON thread (import_batch_id)"))
    if "import_batch_id" not in {c["name"] for c in inspect(conn).get_columns("message")}:
        conn.execute(text("ALTER TABLE message ADD COLUMN import_batch_id INTEGER"))
    conn.execute(text("CREATE INDEX IF NOT EXISTS ix_message_import_batch_id ON message (import_batch_id)"))
    models.table_of(models.ImportHeld).create(conn, checkfirst=True)


def m013_import_heartbeat(conn: Connection) -> None:
    """An import's batch says when it last stored a chunk, so one whose process died halfway can be told
    from one still running, and undone."""
    if "heard_at" not in {c["name"] for c in inspect(conn).get_columns("import_batch")}:
        kind = "TIMESTAMP WITH TIME ZONE" if conn.dialect.name == "postgresql" else "DATETIME"
        conn.execute(text(f"ALTER TABLE import_batch ADD COLUMN heard_at {kind}"))


def m014_draft_replies(conn: Connection) -> None:
    """Replies drafted in the person's own voice are marked, so the verifier never learns them as an
    assistant's (assistant.drafts)."""
    if "draft" not in {c["name"] for c in inspect(conn).get_columns("message")}:
        default = "FALSE" if conn.dialect.name == "postgresql" else "0"
        conn.execute(text(f"ALTER TABLE message ADD COLUMN draft BOOLEAN NOT NULL DEFAULT {default}"))


MIGRATIONS: list[tuple[str, Callable[[Connection], None]]] = [
    ("m001_initial", m001_initial),
    ("m002_recall", m002_recall),
    ("m003_style_card", m003_style_card),
    ("m004_profile", m004_profile),
    ("m005_audit", m005_audit),
    ("m006_user_control", m006_user_control),
    ("m007_operator_actions", m007_operator_actions),
    ("m008_accounts", m008_accounts),
    ("m009_job_leases", m009_job_leases),
    ("m010_one_active_job", m010_one_active_job),
    ("m011_usage", m011_usage),
    ("m012_imports", m012_imports),
    ("m013_import_heartbeat", m013_import_heartbeat),
    ("m014_draft_replies", m014_draft_replies),
]


def migrate(engine: Engine) -> list[str]:
    """Apply pending migrations in order; return the names applied. Safe to run concurrently."""
    started = time.perf_counter()
    with engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        if sqlite:
            # Outside any transaction (SQLite ignores it inside one): a table rebuild must not cascade.
            conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
            conn.commit()
        try:
            with conn.begin():
                applied = _apply_pending(conn)
                if sqlite and (orphans := len(conn.exec_driver_sql("PRAGMA foreign_key_check").all())):
                    logger.warning("%d rows point at rows that do not exist", orphans)
        finally:
            if sqlite:
                conn.exec_driver_sql("PRAGMA foreign_keys=ON")
                conn.commit()
    if applied:
        logger.info("applied %d migrations in %.0f ms", len(applied), (time.perf_counter() - started) * 1000)
    return applied


def _apply_pending(conn: Connection) -> list[str]:
    _lock_for_migration(conn)
    models.table_of(models.AppliedMigration).create(conn, checkfirst=True)
    done = set(conn.execute(text("SELECT name FROM _migrations")).scalars())
    applied = []
    for name, step in MIGRATIONS:
        if name in done:
            continue
        step(conn)
        conn.execute(models.table_of(models.AppliedMigration).insert().values(name=name, applied_at=models.utcnow()))
        applied.append(name)
    return applied


def _lock_for_migration(conn: Connection) -> None:
    """Two processes starting at once must not both migrate: PostgreSQL takes an advisory lock, SQLite
    the write lock (BEGIN IMMEDIATE; pysqlite then runs the DDL inside that one transaction too)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(7242317)"))
    else:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def open_session(engine: Engine) -> Session:
    # expire_on_commit=False: rows stay readable after the caller commits (we hand them to the UI).
    return Session(engine, expire_on_commit=False)


def write(engine: Engine, work: Callable[[Session], T]) -> T:
    """Run `work` in one transaction and commit it.

    Chainlit's data layer and the chat turn may insert the same row (a thread, the user's message)
    at the same moment; the loser of that race hits a unique key. Running the work once more then
    takes the update path, so both writers succeed and the row is written once.
    """
    for attempt in (1, 2):
        with open_session(engine) as session:
            try:
                result = work(session)
                session.commit()
                return result
            except IntegrityError:
                session.rollback()
                if attempt == 2:
                    raise
    raise AssertionError("unreachable")


def read(engine: Engine, work: Callable[[Session], T]) -> T:
    with open_session(engine) as session:
        return work(session)
