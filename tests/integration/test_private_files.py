"""The data directory is owner-only whatever the umask: folders 0700, files 0600.

It holds password hashes, every message, the pseudonym key and the sign-in secret. The tests set
the usual umask (022), under which anything the app does not protect comes out 0644/0755, run the
real start-up paths, write, embed, index and erase, and then look at every entry of the directory.
"""

import sqlite3
import stat
from contextlib import closing
from pathlib import Path

from assistant.config import load_or_create_auth_secret, load_settings
from assistant.privacy import forget
from assistant.wiring import build_engine, build_memory
from memory import store
from memory.db import make_engine, migrate, write
from memory.index import UserIndexes
from memory.models import Author
from memory.vectors import embed_pending


def loose(root: Path) -> list[str]:
    """`root` and everything in it that anyone but its owner may read, write or enter."""
    found = []
    for path in [root, *root.rglob("*")]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        if mode != (0o700 if path.is_dir() else 0o600):
            found.append(f"{path.relative_to(root.parent)} {mode:o}")
    return found


def chat(engine, name: str) -> int:
    user = write(engine, lambda s: store.create_user(s, identifier=name, password="password1"))

    def say(session):
        store.upsert_thread(session, thread_id=f"{name}-t", user_id=user.id, name="plans")
        for i in range(5):
            store.save_message(session, step_id=f"{name}-{i}", thread_id=f"{name}-t", user_id=user.id,
                               author=Author.USER, content=f"Note {i}: the garden needs a budget for spring.")

    write(engine, say)
    return user.id


def test_the_data_directory_is_owner_only_whatever_the_umask(umask_022, embedder):
    settings = load_settings()
    load_or_create_auth_secret(settings)
    engine = build_engine(settings)
    try:
        indexes = UserIndexes(engine, model=embedder.model_name, dimension=lambda: embedder.dimension,
                              folder=settings.data_dir / "indexes")
        ada, bob = chat(engine, "ada"), chat(engine, "bob")
        embed_pending(engine, embedder)
        indexes.refresh(bob)
        forget(engine, indexes, user_id=ada, token_lifetime_s=3600)
        write(engine, lambda s: store.save_message(s, step_id="bob-late", thread_id="bob-t", user_id=bob,
                                                   author=Author.USER, content="One more thing."))
        names = {p.name for p in settings.data_dir.rglob("*")}
        assert {"hyperalign.db", "hyperalign.db-wal", "hyperalign.db-shm", "auth_secret", "indexes"} <= names
        assert any(name.endswith(".faiss") for name in names)
        assert loose(settings.data_dir) == []
    finally:
        engine.dispose()


def test_an_existing_install_is_made_owner_only_on_start(umask_022):
    settings = load_settings()
    # An install made before files were private: everything readable by all.
    (settings.data_dir / "indexes" / "0123456789abcdef").mkdir(parents=True)
    (settings.data_dir / "indexes" / "0123456789abcdef" / "u1-1-1.faiss").write_bytes(b"index")
    (settings.data_dir / "auth_secret").write_text("an old secret\n")
    with closing(sqlite3.connect(settings.data_dir / "hyperalign.db")) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE t (x)")
        # the three folders, the index, the secret, the database and the -wal and -shm it has open
        assert len(loose(settings.data_dir)) == 8
        assert load_or_create_auth_secret(settings) == "an old secret"
        engine = build_engine(settings)
        try:
            build_memory(settings, engine)
            assert loose(settings.data_dir) == []
        finally:
            engine.dispose()


def test_a_database_in_a_shared_folder_is_private_and_the_folder_left_alone(tmp_path, umask_022):
    """Only folders the app creates are made 0700: a database path may sit in /srv or /tmp."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    engine = make_engine(f"sqlite:///{shared / 'new' / 'app.db'}")
    try:
        migrate(engine)
        assert stat.S_IMODE(shared.stat().st_mode) == 0o1777
        assert loose(shared / "new") == []
        assert {p.name for p in (shared / "new").iterdir()} >= {"app.db", "app.db-wal", "app.db-shm"}
    finally:
        engine.dispose()
