""""Forget me" leaves no byte of the person's words on disk.

Each person writes a word found nowhere else, chosen so that Porter stemming keeps it whole (the
full-text index then stores it as written). After the same `forget` the route and the CLI call, the
test reads every byte the database keeps: on SQLite every file of the folder (database, WAL, shared
memory, index files) while another connection holds the database open, as the app does while the
CLI erases; on PostgreSQL the test database's files in the cluster after a CHECKPOINT (the server's
WAL is the server's, see README). The other person's word must still be found: the search can see.
"""

import json
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from sqlalchemy import text

from assistant.privacy import forget
from assistant.safety.audit import pseudonym
from hypotheses import job
from hypotheses.style import StyleStats, observe
from memory import profile, store
from memory.db import read, write
from memory.index import UserIndexes
from memory.models import AuditRecord, Author, Element, ProfileEntry, Step
from memory.retrieve import RecallQuery, lexical_ranking
from memory.vectors import embed_pending

MARK = "zqxjvmarker"  # the erased person's word
KEEP = "wqplorbkeep"  # the other person's word
MESSAGES = 30


def person(engine, name: str, word: str):
    """An account holding `word` in every place the app keeps a user's text."""
    user = write(engine, lambda s: store.create_user(s, identifier=name, password="password1"))
    thread = f"{name}-t"

    def chat(session):
        store.upsert_thread(session, thread_id=thread, user_id=user.id, name=f"{word} plans",
                            metadata={"topic": word})
        stats = StyleStats()
        for i in range(MESSAGES):
            said = f"Note {i}: the {word} project needs a budget for spring."
            stats = observe(stats, said)
            store.save_message(session, step_id=f"{name}-u{i}", thread_id=thread, user_id=user.id,
                               author=Author.USER, content=said)
            # A streamed reply is saved while it grows, then complete: the early version is rewritten.
            for reply in (f"About the {word}", f"About the {word} project: start small. ({i})"):
                store.save_message(session, step_id=f"{name}-a{i}", thread_id=thread, user_id=user.id,
                                   author=Author.ASSISTANT, content=reply,
                                   safety_json=json.dumps({"decision": "comply", "rationale": f"{word} is fine"}))
        reply = store.get_message(session, step_id=f"{name}-a0")
        store.save_feedback(session, feedback_id=f"{name}-f", message=reply, value=1, comment=f"{word} helped")
        store.save_step(session, step=Step(id=f"{name}-recalled", thread_id=thread, type="retrieval",
                                           name="Recalled", input=f"the {word} project",
                                           output=f"Note 1: the {word} project needs a budget"))
        store.save_element(session, element=Element(id=f"{name}-e", thread_id=thread, type="custom",
                                                    name="ProfilePanel", props_json=json.dumps({"quote": word})))
        entry = ProfileEntry(user_id=user.id, facet="preference", text=f"Cares about the {word} project.")
        session.add(entry)
        session.flush()
        profile.record_change(session, entry=entry, actor="inference", kind="add", before=None, reason=word)
        profile.save_style(session, user_id=user.id, stats=stats.to_json())
        queued = job.enqueue(session, user_id=user.id, trigger="messages")
        queued.reason = f"failed on {word}"
        session.add(AuditRecord(pseudonym=pseudonym(session, user_id=user.id), thread_id=thread,
                                message_id=f"{name}-u0", reply_id=f"{name}-a0", decision="refuse",
                                rationale=f"The {word} request asks for harm.", note=f"{word}: checked",
                                spec_version="test"))

    write(engine, chat)
    return user


def sqlite_files(engine) -> list[Path]:
    """Every file in the database's folder (the test's data directory), index files included."""
    return [p for p in Path(engine.url.database).parent.rglob("*") if p.is_file()]


def postgres_files(engine) -> list[Path]:
    """The test database's files in the cluster, written out first."""
    with engine.connect() as conn:
        conn.execute(text("CHECKPOINT"))
        folder = conn.execute(text("SELECT current_setting('data_directory') || '/base/' || oid FROM pg_database "
                                   "WHERE datname = current_database()")).scalar()
    return list(Path(folder).iterdir())


def files_holding(engine, word: str) -> list[str]:
    files = postgres_files(engine) if engine.dialect.name == "postgresql" else sqlite_files(engine)
    assert files, "no database files to search"
    return sorted(p.name for p in files if word.encode() in p.read_bytes())


def fts_terms(engine) -> set[str]:
    """The words the SQLite full-text index holds (a temporary table: the database file is not changed)."""
    with engine.connect() as conn:
        conn.execute(text("CREATE VIRTUAL TABLE IF NOT EXISTS temp.fts_terms USING fts5vocab(main, message_fts, row)"))
        return set(conn.execute(text("SELECT term FROM temp.fts_terms")).scalars())


def lexical(engine, user_id: int, word: str) -> int:
    query = RecallQuery(user_id=user_id, text=word, vector=None, candidates=500)
    return len(read(engine, lambda s: lexical_ranking(s, query)))


def test_forget_leaves_no_byte_of_the_persons_words_on_disk(engine, embedder, indexes, tmp_path):
    ada = person(engine, f"{MARK}-ada", MARK)
    bob = person(engine, "bob", KEEP)
    embed_pending(engine, embedder)
    indexes.refresh(ada.id)
    indexes.refresh(bob.id)
    # Index files a crash or an earlier embedding model left behind are the person's too.
    (held,) = (tmp_path / "indexes").rglob(f"u{ada.id}-*.faiss")
    (held.parent / f"u{ada.id}-3-7.partial").write_bytes(held.read_bytes())
    UserIndexes(engine, model="an-earlier-model", dimension=lambda: embedder.dimension,
                folder=tmp_path / "indexes").refresh(ada.id)
    assert len(list((tmp_path / "indexes").rglob(f"u{ada.id}-*"))) == 3
    assert files_holding(engine, MARK), "the search must see the words before the erasure"
    if engine.dialect.name == "postgresql":  # as autovacuum would have: statistics quote column values
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ANALYZE"))
    other = sqlite3.connect(engine.url.database) if engine.dialect.name == "sqlite" else None
    try:
        if other is not None:  # another process (the app) has the database open, idle
            other.execute("PRAGMA wal_checkpoint(PASSIVE)")  # the words are in the database file and the WAL
            assert files_holding(engine, MARK) == ["test.db", "test.db-wal"]
        assert forget(engine, indexes, user_id=ada.id, token_lifetime_s=3600)["disk_scrubbed"] is True
        assert files_holding(engine, MARK) == []
        assert files_holding(engine, KEEP)
        if other is not None:
            assert MARK not in fts_terms(engine) and KEEP in fts_terms(engine)
    finally:
        if other is not None:
            other.close()
    assert list((tmp_path / "indexes").rglob(f"u{ada.id}-*")) == []
    # The other person keeps everything: messages, lexical and dense recall, profile.
    assert lexical(engine, bob.id, KEEP) == 2 * MESSAGES
    assert len(indexes.search(bob.id, embedder.encode_one(f"the {KEEP} project"), k=100)) == 2 * MESSAGES
    assert [e.text for e in read(engine, lambda s: profile.entries(s, user_id=bob.id))] == [
        f"Cares about the {KEEP} project."]


@pytest.mark.postgres
def test_on_postgresql_a_role_that_may_not_rewrite_the_tables_says_so(postgres_admin_url):
    """The server skips such a table with a mere notice: the scrub must not report it done."""
    import psycopg

    from memory.db import make_engine, migrate
    from memory.erasure import scrub
    from tests.conftest import unavailable
    from tests.pgserver import create_database, drop_database

    if postgres_admin_url is None:
        unavailable("PostgreSQL binaries not found (apt-get install postgresql)")
    url = create_database(postgres_admin_url)
    owner, guest = make_engine(url), None
    try:
        migrate(owner)
        assert scrub(owner, ["message", "thread"]) is True
        with psycopg.connect(postgres_admin_url, autocommit=True) as conn:
            conn.execute("DROP ROLE IF EXISTS erasure_guest")
            conn.execute("CREATE ROLE erasure_guest LOGIN")
        guest = make_engine(url.replace("postgres@", "erasure_guest@", 1))
        assert scrub(guest, ["message", "thread"]) is False
    finally:
        for engine in (owner, guest):
            if engine is not None:
                engine.dispose()
        drop_database(postgres_admin_url, url)
        with psycopg.connect(postgres_admin_url, autocommit=True) as conn:
            conn.execute("DROP ROLE IF EXISTS erasure_guest")


def test_a_reader_that_keeps_the_wal_from_being_emptied_is_reported(tmp_path):
    """SQLite: a read transaction open elsewhere pins the old pages; forget says so instead of claiming success."""
    from memory.db import make_engine, migrate

    engine = make_engine(f"sqlite:///{tmp_path / 'app.db'}")
    try:
        migrate(engine)
        ada, bob = person(engine, "ada", MARK), person(engine, "bob", KEEP)
        with closing(sqlite3.connect(tmp_path / "app.db")) as reader:
            reader.execute("BEGIN")
            reader.execute("SELECT count(*) FROM message").fetchall()  # a snapshot from before the erasure
            assert forget(engine, None, user_id=ada.id, token_lifetime_s=3600)["disk_scrubbed"] is False
            reader.rollback()
        assert files_holding(engine, MARK)  # what was reported: the old pages are still there
        assert forget(engine, None, user_id=bob.id, token_lifetime_s=3600)["disk_scrubbed"] is True
        assert files_holding(engine, MARK) == files_holding(engine, KEEP) == []
    finally:
        engine.dispose()
