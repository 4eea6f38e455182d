"""Accounts as an attacker meets them, on SQLite and PostgreSQL: ids never reused, one normal form of a
name, one first operator however many sign-ups race, limits on guessing, hashes upgraded, holds purged."""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlmodel import select

from assistant.accounts import SignInLimits, SignInRefused, sign_in
from assistant.config import Registration
from assistant.privacy import forget
from memory import store, throttle
from memory.db import make_engine, migrate, read, write
from memory.models import Author, ForgottenName, Role, User, utcnow

LIMITS = SignInLimits(per_account=throttle.Limit("signin-account", 5, 900),
                      per_client=throttle.Limit("signin-client", 12, 900),
                      signups=throttle.Limit("signup-client", 3, 900))


def attempt(engine, name, password, *, client="198.51.100.7", registration=Registration.OPEN):
    return sign_in(engine, registration=registration, username=name, password=password, client=client, limits=LIMITS)


def refusal(engine, name, password, **kwargs) -> SignInRefused:
    with pytest.raises(SignInRefused) as refused:
        attempt(engine, name, password, **kwargs)
    return refused.value


def test_an_erased_accounts_id_is_never_given_to_the_next_account(engine):
    attempt(engine, "alice", "password1")
    erased = attempt(engine, "bob", "password1")
    forget(engine, None, user_id=erased.id, token_lifetime_s=60)
    newcomer = attempt(engine, "carol", "password1", client="203.0.113.9")
    assert newcomer.id > erased.id  # before: SQLite handed carol bob's freed id


def test_no_integer_id_is_reused_after_its_row_is_deleted(engine):
    # Messages (FAISS ids, evidence), profile entries, jobs and audit records outlive their rows in
    # tokens, sessions, indexes and open panels as much as accounts do.
    user = attempt(engine, "alice", "password1")

    def add_message(session, step: str) -> int:
        store.upsert_thread(session, thread_id="t-" + step, user_id=user.id)
        return store.save_message(session, step_id=step, thread_id="t-" + step, user_id=user.id,
                                  author=Author.USER, content="hello there").id

    first = write(engine, lambda s: add_message(s, "m1"))
    write(engine, lambda s: store.delete_thread(s, thread=store.get_thread(s, thread_id="t-m1")))
    assert write(engine, lambda s: add_message(s, "m2")) > first


def test_a_name_has_one_normal_form_for_sign_up_and_sign_in(engine):
    alice = attempt(engine, "Alice", "password1")
    assert alice.identifier == "alice" and alice.display_name == "Alice"
    for spelling in ("alice", "ALICE", " Alice ", "Ａｌｉｃｅ"):  # the last is full-width
        assert attempt(engine, spelling, "password1").id == alice.id
    assert refusal(engine, "ALICE", "password2").code == "credentialssignin"  # not a second account
    assert read(engine, store.count_users) == 1


def test_twenty_simultaneous_first_sign_ups_make_exactly_one_operator(engine):
    def sign_up(i: int):
        return attempt(engine, f"racer{i:02d}", "password1", client=f"192.0.2.{i}")

    with ThreadPoolExecutor(max_workers=20) as pool:
        users = list(pool.map(sign_up, range(20)))
    assert len({u.id for u in users}) == 20
    roles = read(engine, lambda s: [u.role for u in s.exec(select(User)).all()])
    assert roles.count(Role.OPERATOR) == 1  # before: 6 of 20 became operators


def test_guessing_one_accounts_password_is_stopped_even_for_the_right_password(engine):
    attempt(engine, "alice", "password1")
    for i in range(LIMITS.per_account.most):
        assert refusal(engine, "alice", f"guess{i:04d}", client=f"10.0.0.{i}").code == "credentialssignin"
    blocked = refusal(engine, "Alice", "password1", client="10.9.9.9")  # another client, the right password
    assert blocked.code == "toomanyattempts" and 0 < blocked.retry_after <= 900


def test_one_client_guessing_many_accounts_is_stopped(engine):
    for i in range(LIMITS.per_client.most):
        refusal(engine, f"nobody{i}", "password1", client="10.1.1.1", registration=Registration.CLOSED)
    assert refusal(engine, "someone", "password1", client="10.1.1.1").code == "toomanyattempts"
    assert attempt(engine, "someone", "password1", client="10.2.2.2").identifier == "someone"


def test_sign_ups_per_client_are_limited(engine):
    for i in range(LIMITS.signups.most):
        attempt(engine, f"bot{i}", "password1", client="10.3.3.3")
    refused = refusal(engine, "bot-next", "password1", client="10.3.3.3")
    assert refused.code == "toomanysignups" and refused.retry_after > 0
    assert read(engine, store.count_users) == LIMITS.signups.most


def test_limits_count_in_the_database_so_every_process_shares_them(engine, database_url):
    attempt(engine, "alice", "password1")
    other_process = make_engine(database_url)  # a second app process: its own engine and pool
    try:
        for i in range(LIMITS.per_account.most):
            refusal(other_process if i % 2 else engine, "alice", f"guess{i:04d}", client=f"10.4.0.{i}")
        assert refusal(engine, "alice", "password1").code == "toomanyattempts"
    finally:
        other_process.dispose()


def test_a_successful_sign_in_replaces_an_old_scrypt_hash(engine):
    salt = bytes(range(16))
    old = "scrypt$16384$8$1$" + salt.hex() + "$" + hashlib.scrypt(b"password1", salt=salt, n=2**14, r=8, p=1,
                                                                  dklen=32).hex()
    write(engine, lambda s: store.create_user(s, identifier="alice", password="password1"))
    write(engine, lambda s: s.exec(text("UPDATE \"user\" SET password_hash = :h"), params={"h": old}))
    attempt(engine, "alice", "password1")
    stored = read(engine, lambda s: store.get_user(s, identifier="alice").password_hash)
    assert stored.startswith("$argon2id$") and "m=19456,t=2,p=1" in stored


def test_an_expired_hold_and_its_password_hash_are_deleted(engine):
    user = attempt(engine, "alice", "password1")
    forget(engine, None, user_id=user.id, token_lifetime_s=3600)
    assert read(engine, lambda s: len(s.exec(select(ForgottenName)).all())) == 1

    def expire(session) -> None:
        for row in session.exec(select(ForgottenName)).all():
            row.until = utcnow() - timedelta(seconds=1)
            session.add(row)

    write(engine, expire)
    attempt(engine, "somebody", "password1", client="10.5.5.5")  # any sign-in purges what has expired
    assert read(engine, lambda s: s.exec(select(ForgottenName)).all()) == []


def test_a_role_change_revokes_the_accounts_tokens(engine):
    user = attempt(engine, "alice", "password1")
    before = user.token_version
    write(engine, lambda s: store.set_role(s, user=store.get_user_by_id(s, user_id=user.id), role=Role.USER))
    assert read(engine, lambda s: store.get_user_by_id(s, user_id=user.id).token_version) == before + 1


def test_an_existing_sqlite_database_is_rebuilt_so_ids_are_never_reused(tmp_path):
    """A database made before m008: tables without AUTOINCREMENT, mixed-case names, FTS triggers."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = make_engine(url)
    migrate(engine)
    with engine.connect() as conn:  # turn it back into the schema m001-m007 made
        conn.exec_driver_sql("PRAGMA writable_schema=ON")
        conn.exec_driver_sql("UPDATE sqlite_master SET sql = replace(sql, ' AUTOINCREMENT', '') WHERE type='table'")
        conn.exec_driver_sql("DELETE FROM sqlite_sequence")
        conn.exec_driver_sql("DELETE FROM _migrations WHERE name = 'm008_accounts'")
        conn.exec_driver_sql("DELETE FROM app_key WHERE name = 'first_operator'")
        conn.commit()
    engine.dispose()
    engine = make_engine(url)
    with engine.connect() as conn:
        conn.exec_driver_sql("ALTER TABLE user DROP COLUMN token_version")
        conn.exec_driver_sql("DROP TABLE throttle_event")
        conn.commit()

    with engine.connect() as conn:  # rows written by the old code
        for name in ("Alice", "bob", "carol"):
            conn.execute(text("INSERT INTO user (identifier, role, created_at) VALUES (:n, 'user', '2026-01-01')"),
                         {"n": name})
        carol_id = conn.execute(text("SELECT id FROM user WHERE identifier = 'carol'")).scalar()
        conn.execute(text("INSERT INTO thread (id, user_id, remember, metadata_json, tags_json, created_at, updated_at) "
                          "VALUES ('t1', :u, 1, '{}', '[]', '2026-01-01', '2026-01-01')"), {"u": carol_id})
        conn.execute(text("INSERT INTO message (step_id, thread_id, user_id, author, content, status, created_at) "
                          "VALUES ('s1', 't1', :u, 'user', 'my zebra is called Ziggy', 'complete', '2026-01-01')"),
                     {"u": carol_id})
        conn.commit()
    assert "m008_accounts" in migrate(engine)

    with engine.connect() as conn:
        tables = dict(conn.exec_driver_sql("SELECT name, sql FROM sqlite_master WHERE type='table'").all())
        triggers = conn.exec_driver_sql("SELECT count(*) FROM sqlite_master WHERE type='trigger'").scalar()
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    for name in ("user", "message", "profile_entry", "profile_history", "hypothesis_job", "audit_record",
                 "operator_action"):
        assert "AUTOINCREMENT" in tables[name], name
    assert triggers == 3  # the full-text index's insert, delete and update triggers survived the rebuild
    names = read(engine, lambda s: sorted(u.identifier for u in s.exec(select(User)).all()))
    assert names == ["alice", "bob", "carol"]  # one normal form; nothing lost
    assert read(engine, lambda s: s.exec(text(
        "SELECT count(*) FROM message_fts WHERE message_fts MATCH 'zebra'")).one()[0]) == 1

    write(engine, lambda s: store.delete_user(s, user=store.get_user_by_id(s, user_id=carol_id)))
    assert read(engine, lambda s: s.exec(text("SELECT count(*) FROM thread")).one()[0]) == 0
    newcomer = write(engine, lambda s: store.create_user(s, identifier="dave", password="password1"))
    assert newcomer.id > carol_id and newcomer.role is Role.USER  # and the first operator stays decided
    engine.dispose()


def test_another_process_drops_an_erased_accounts_index_from_memory(engine, embedder, tmp_path):
    from assistant.privacy import drop_erased_indexes
    from memory.index import UserIndexes
    from memory.vectors import embed_pending

    def process(folder: str) -> UserIndexes:
        return UserIndexes(engine, model=embedder.model_name, dimension=lambda: embedder.dimension, capacity=8,
                           folder=tmp_path / folder)

    user = attempt(engine, "alice", "password1")
    write(engine, lambda s: store.upsert_thread(s, thread_id="t1", user_id=user.id))
    write(engine, lambda s: store.save_message(s, step_id="s1", thread_id="t1", user_id=user.id, author=Author.USER,
                                               content="My sister lives in Porto."))
    embed_pending(engine, embedder)
    app_process, command = process("a"), process("b")
    assert app_process.search(user.id, embedder.encode_one("Porto"), 1)  # loaded in the app's memory
    forget(engine, command, user_id=user.id, token_lifetime_s=60)  # `hyperalign forget`, elsewhere
    assert user.id in app_process.loaded()
    assert drop_erased_indexes(engine, app_process) == [user.id]
    assert user.id not in app_process.loaded()


def test_guessing_an_erased_accounts_password_through_its_held_name_is_limited(engine):
    # Before: each guess at a held name answered "usernameforgotten" (telling that an account was
    # erased) and was never counted, so the erased account's password could be guessed without limit.
    user = attempt(engine, "dave", "password1")
    forget(engine, None, user_id=user.id, token_lifetime_s=3600)
    for i in range(LIMITS.per_account.most):
        assert refusal(engine, "dave", f"guess{i:04d}", client=f"10.6.0.{i}").code == "credentialssignin"
    assert refusal(engine, "dave", "password1", client="10.6.1.1").code == "toomanyattempts"


@pytest.mark.parametrize(("address", "key"), [
    ("203.0.113.9", "203.0.113.9"), ("::ffff:203.0.113.9", "203.0.113.9"),
    ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"), ("2001:db8:1:2:bbbb::7", "2001:db8:1:2::/64"),
    ("not-an-address", "not-an-address")])
def test_clients_are_counted_by_address_and_ipv6_by_its_64(address, key):
    from assistant.accounts import client_key

    assert client_key(address) == key
