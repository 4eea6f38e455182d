"""The store on real SQLite and PostgreSQL."""

import pytest
from sqlalchemy import inspect, text

from memory import store
from memory.db import MIGRATIONS, make_engine, migrate, read, write
from memory.models import Author, Message, MessageStatus, Role, Thread


def applied_migrations(engine) -> list[str]:
    if not inspect(engine).has_table("_migrations"):
        return []
    with engine.connect() as conn:
        return list(conn.execute(text("SELECT name FROM _migrations ORDER BY applied_at, name")).scalars())


def make_user(engine, name="alice"):
    return write(engine, lambda s: store.create_user(s, identifier=name, password="password1"))


def make_thread(engine, user, thread_id="t1", name=None):
    return write(engine, lambda s: store.upsert_thread(s, thread_id=thread_id, user_id=user.id, name=name))


def say(engine, user, thread_id, step_id, content, author=Author.USER):
    return write(engine, lambda s: store.save_message(
        s, step_id=step_id, thread_id=thread_id, user_id=user.id, author=author, content=content))


def test_migrations_are_recorded_in_order_and_run_once(engine):
    assert applied_migrations(engine) == [name for name, _ in MIGRATIONS]
    assert migrate(engine) == []
    tables = set(inspect(engine).get_table_names())
    assert {"user", "thread", "message", "step", "feedback", "element", "_migrations"} <= tables


def test_sqlite_runs_in_wal_with_foreign_keys(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'nested' / 'app.db'}")  # creates missing folders
    migrate(engine)
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 5000


def test_first_account_is_the_operator_and_names_are_unique(engine):
    assert make_user(engine, "alice").role is Role.OPERATOR
    assert make_user(engine, "bob").role is Role.USER
    with pytest.raises(store.InvalidInput, match="taken"):
        make_user(engine, "alice")
    assert [u.identifier for u in read(engine, store.list_users)] == ["alice", "bob"]


def test_a_thread_cannot_be_taken_over_by_another_user(engine):
    alice, bob = make_user(engine, "alice"), make_user(engine, "bob")
    make_thread(engine, alice)
    with pytest.raises(store.NotOwner):
        make_thread(engine, bob)
    with pytest.raises(store.NotOwner):
        say(engine, bob, "t1", "s1", "mine now")
    assert read(engine, lambda s: s.get(Thread, "t1")).user_id == alice.id


def test_saving_a_message_twice_updates_it_in_place(engine):
    alice = make_user(engine)
    make_thread(engine, alice)
    first = say(engine, alice, "t1", "s1", "draft")
    second = write(engine, lambda s: store.save_message(
        s, step_id="s1", thread_id="t1", user_id=alice.id, author=Author.USER, content="final",
        status=MessageStatus.INCOMPLETE, status_reason="stopped"))
    assert first.id == second.id
    rows = read(engine, lambda s: store.thread_messages(s, thread_id="t1"))
    assert [(r.content, r.status) for r in rows] == [("final", MessageStatus.INCOMPLETE)]


def test_threads_page_newest_first_and_search_text_and_names(engine):
    alice, bob = make_user(engine, "alice"), make_user(engine, "bob")
    for i in range(5):
        make_thread(engine, alice, f"a{i}", name=f"chat {i}")
        say(engine, alice, f"a{i}", f"s{i}", f"message number {i}")
    make_thread(engine, bob, "b0", name="chat bob")
    page, more = read(engine, lambda s: store.list_threads(s, user_id=alice.id, first=2))
    assert [t.id for t, _ in page] == ["a4", "a3"] and more
    page2, more2 = read(engine, lambda s: store.list_threads(s, user_id=alice.id, first=10, cursor="a3"))
    assert [t.id for t, _ in page2] == ["a2", "a1", "a0"] and not more2
    found, _ = read(engine, lambda s: store.list_threads(s, user_id=alice.id, first=10, search="number 3"))
    assert [t.id for t, _ in found] == ["a3"]
    found, _ = read(engine, lambda s: store.list_threads(s, user_id=alice.id, first=10, search="chat"))
    assert "b0" not in {t.id for t, _ in found} and len(found) == 5
    found, _ = read(engine, lambda s: store.list_threads(s, user_id=alice.id, first=10, search="100%_"))
    assert found == []


def test_deleting_a_thread_removes_its_messages_and_feedback(engine):
    alice = make_user(engine)
    make_thread(engine, alice)
    message = say(engine, alice, "t1", "s1", "hello", Author.ASSISTANT)
    write(engine, lambda s: store.save_feedback(s, feedback_id="f1", message=message, value=1, comment="nice"))
    make_thread(engine, alice, "t2")
    say(engine, alice, "t2", "s2", "other thread")
    write(engine, lambda s: store.delete_thread(s, thread=store.get_thread(s, thread_id="t1")))
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM message")).scalar() == 1
        assert conn.execute(text("SELECT count(*) FROM feedback")).scalar() == 0
        assert conn.execute(text("SELECT count(*) FROM thread")).scalar() == 1


def test_recent_window_is_oldest_first_and_ends_before_the_anchor(engine):
    alice = make_user(engine)
    make_thread(engine, alice)
    for i in range(6):
        say(engine, alice, "t1", f"s{i}", f"m{i}", Author.USER if i % 2 == 0 else Author.ASSISTANT)
    window = read(engine, lambda s: store.recent_window(s, thread_id="t1", limit=3, before_step_id="s5"))
    assert [m.content for m in window] == ["m2", "m3", "m4"]


def test_text_is_cleaned_before_it_is_stored(engine):
    alice = make_user(engine)
    make_thread(engine, alice)
    say(engine, alice, "t1", "s1", "nul\x00 and \ud800 lone")
    stored = read(engine, lambda s: s.exec(store.select(Message)).one())
    assert stored.content == "nul and \ufffd lone"


def test_sql_errors_do_not_carry_message_text(engine):
    from sqlalchemy.exc import IntegrityError

    alice = make_user(engine)
    make_thread(engine, alice)
    say(engine, alice, "t1", "s1", "a private sentence")

    def duplicate(session):
        session.add(Message(step_id="s1", thread_id="t1", user_id=alice.id, author=Author.USER,
                            content="another private sentence"))
        session.flush()

    with pytest.raises(IntegrityError) as caught:
        write(engine, duplicate)
    assert "private sentence" not in str(caught.value)


def test_a_step_or_message_id_chosen_by_a_client_never_reaches_another_thread_or_author(engine):
    from memory.models import Step

    alice, bob = make_user(engine, "alice"), make_user(engine, "bob")
    make_thread(engine, alice, "ta")
    make_thread(engine, bob, "tb")
    write(engine, lambda s: store.save_step(s, step=Step(id="run-1", thread_id="ta", type="run", output="alice's")))
    with pytest.raises(store.NotOwner):  # bob reuses alice's step id in his own thread
        write(engine, lambda s: store.save_step(s, step=Step(id="run-1", thread_id="tb", type="run", output="bob")))
    assert read(engine, lambda s: s.get(Step, "run-1")).output == "alice's"
    reply = say(engine, alice, "ta", "r1", "I can't help with that.", author=Author.ASSISTANT)
    with pytest.raises(store.InvalidInput):  # the reply's id, sent as a user message, does not rewrite it
        say(engine, alice, "ta", "r1", "Sure, here is how.")
    assert read(engine, lambda s: s.get(Message, reply.id)).content == "I can't help with that."

