"""Merge's changes written to the profile tables with history, on SQLite and PostgreSQL."""

import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from hypotheses.job import apply_changes, load_profile
from hypotheses.merge import Candidate, Kind, merge
from memory.models import EntrySource, EntryStatus
from memory import profile, store
from memory.db import read, write
from memory.models import ProfileEntry

NOW = datetime(2026, 11, 26, tzinfo=UTC)


@pytest.fixture
def ada(engine):
    return write(engine, lambda s: store.create_user(s, identifier="ada", password="password1"))


def run_job(engine, user, *candidates):
    def job(session):
        current = load_profile(session, user_id=user.id)
        next_id = max((e.id for e in current), default=0) + 1000
        return apply_changes(session, user_id=user.id, changes=merge(current, list(candidates), now=NOW, next_id=next_id),
                             vector_model="m")

    return write(engine, job)


def propose(text_, action="add", entry_id=None, vector=(1.0, 0.0)):
    return Candidate(action, "style", text_, 0.6, (3, 4), entry_id, vector)


def test_changes_and_their_history_are_written_together(engine, ada):
    run_job(engine, ada, propose("Writes short messages."), propose("Asks many questions.", vector=(0.0, 1.0)))
    run_job(engine, ada, propose("writes SHORT messages"))
    (entry_id,) = [e.id for e in read(engine, lambda s: profile.entries(s, user_id=ada.id)) if e.text.startswith("Writes")]
    ids = run_job(engine, ada, propose("Writes long messages.", action="contradict", entry_id=entry_id, vector=(0.5, 0.5)))
    rows = {r.text: r for r in read(engine, lambda s: profile.entries(s, user_id=ada.id))}
    old, new = rows["Writes short messages."], rows["Writes long messages."]
    assert (old.status, old.support, old.superseded_by) == ("superseded", 2, new.id) and old.valid_to is not None
    assert new.status == "active" and list(ids.values()) == [new.id]
    kinds = [(h.entry_id, h.kind) for h in read(engine, lambda s: profile.history(s, user_id=ada.id))]
    assert kinds == [(old.id, "add"), (rows["Asks many questions."].id, "add"), (old.id, "support"),
                     (old.id, "supersede"), (new.id, "add")]
    support = read(engine, lambda s: profile.history(s, user_id=ada.id))[2]
    assert json.loads(support.before_json)["support"] == 1 and json.loads(support.after_json)["support"] == 2


def test_a_profile_round_trips_with_vectors_and_protects_pinned_entries(engine, ada):
    run_job(engine, ada, propose("Likes formal letters."))
    write(engine, lambda s: setattr(profile.entries(s, user_id=ada.id)[0], "pinned", True))
    (loaded,) = read(engine, lambda s: load_profile(s, user_id=ada.id))
    assert loaded.pinned and loaded.vector == (1.0, 0.0) and loaded.source is EntrySource.INFERRED
    run_job(engine, ada, propose("Hates formal letters.", action="contradict", entry_id=loaded.id))
    (row,) = read(engine, lambda s: profile.entries(s, user_id=ada.id))
    assert row.text == "Likes formal letters." and row.status == "active" and row.version == 1


def test_a_failing_job_leaves_the_profile_exactly_as_it_was(engine, ada):
    run_job(engine, ada, propose("Writes short messages."))
    before = read(engine, lambda s: [(r.id, r.text, r.support, r.version) for r in profile.entries(s, user_id=ada.id)])

    def broken(session):
        apply_changes(session, user_id=ada.id, changes=merge(load_profile(session, user_id=ada.id),
                      [propose("Writes short messages.")], now=NOW, next_id=99))
        raise RuntimeError("the model call failed after merging")

    with pytest.raises(RuntimeError):
        write(engine, broken)
    after = read(engine, lambda s: [(r.id, r.text, r.support, r.version) for r in profile.entries(s, user_id=ada.id)])
    assert after == before
    assert len(read(engine, lambda s: profile.history(s, user_id=ada.id))) == 1


def test_the_profile_goes_with_the_user(engine, ada):
    run_job(engine, ada, propose("Writes short messages."))
    write(engine, lambda s: store.delete_user(s, user=s.get(store.User, ada.id)))
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM profile_entry")).scalar() == 0
        assert conn.execute(text("SELECT count(*) FROM profile_history")).scalar() == 0


def test_another_users_entry_cannot_be_changed(engine, ada):
    bob = write(engine, lambda s: store.create_user(s, identifier="bob", password="password1"))
    run_job(engine, ada, propose("Writes short messages."))
    (theirs,) = read(engine, lambda s: load_profile(s, user_id=ada.id))
    changes = merge([theirs], [propose("Writes short messages.")], now=NOW, next_id=50)
    assert changes[0].kind is Kind.SUPPORT
    with pytest.raises(LookupError):
        write(engine, lambda s: apply_changes(s, user_id=bob.id, changes=changes))
    assert read(engine, lambda s: s.get(ProfileEntry, theirs.id)).support == 1
    assert theirs.status is EntryStatus.ACTIVE


def test_two_tabs_writing_at_once_both_count_in_the_style_card(engine):
    """Before: each transaction read the card, added its message and wrote it back; on PostgreSQL the
    second writer had read the counts before the first committed, and one message was lost."""
    import threading
    import time

    from hypotheses.style import StyleStats, observe
    from memory.db import open_session

    user = write(engine, lambda s: store.create_user(s, identifier="tab", password="password1"))
    write(engine, lambda s: profile.save_style(s, user_id=user.id, stats=StyleStats().to_json()))
    first_saved, second_reading = threading.Event(), threading.Event()

    def tab(text: str, before_commit=None, before_read=None) -> None:
        with open_session(engine) as session:
            if before_read:
                before_read()
            stats = observe(StyleStats.from_json(profile.load_style(session, user_id=user.id, for_update=True)), text)
            profile.save_style(session, user_id=user.id, stats=stats.to_json())
            session.flush()
            if before_commit:
                before_commit()
            session.commit()

    def first_waits() -> None:
        first_saved.set()
        second_reading.wait(10)
        time.sleep(0.5)  # the second tab reads now, unless the row is locked

    def second_starts() -> None:
        first_saved.wait(10)
        second_reading.set()

    one = threading.Thread(target=tab, args=("First message from the first tab.", first_waits))
    two = threading.Thread(target=tab, args=("Second message from another tab.", None, second_starts))
    one.start()
    two.start()
    one.join(20)
    two.join(20)
    assert StyleStats.from_json(read(engine, lambda s: profile.load_style(s, user_id=user.id))).messages == 2
