"""Importing a person's history into the database: conversations as threads, texts as their own, the
same thing twice adds nothing, a file that breaks halfway leaves nothing, and all of a batch undoes."""

import json
import zipfile
from pathlib import Path

import pytest
from sqlmodel import select

from memory import store
from memory.db import read, write
from memory.history import UnreadableImport
from memory.importing import batch_message_ids, import_file, thread_id_for, undo_batch
from memory.models import ImportBatch, Message, Thread

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "imports"
LIMIT = 50 * 2**20


@pytest.fixture
def ada(engine):
    return write(engine, lambda s: store.create_user(s, identifier="ada", password="password1"))


@pytest.fixture
def bob(engine):
    return write(engine, lambda s: store.create_user(s, identifier="bob", password="password1"))


def threads_of(engine, user):
    return read(engine, lambda s: s.exec(select(Thread).where(Thread.user_id == user.id).order_by(Thread.name)).all())


def test_an_export_becomes_threads_with_titles_dates_and_origin(engine, ada):
    done = import_file(engine, user_id=ada.id, path=FIXTURES / "chatgpt-conversations.json", max_bytes=LIMIT)
    assert (done.source, done.conversations, done.messages, done.texts) == ("chatgpt", 1, 3, 0)
    assert done.skipped == {"conversations with nothing you wrote": 1}
    (thread,) = threads_of(engine, ada)
    assert (thread.name, thread.origin, thread.import_batch_id) == ("Sourdough starter help", "chatgpt", done.batch_id)
    assert thread.created_at.year == 2024
    messages = read(engine, lambda s: store.thread_messages(s, thread_id=thread.id))
    assert [str(m.author) for m in messages] == ["user", "assistant", "user"]
    assert messages[1].model == "imported from ChatGPT"
    assert [m.created_at for m in messages] == sorted(m.created_at for m in messages)


def test_writing_is_kept_as_the_persons_texts_in_threads_of_their_own(engine, ada):
    done = import_file(engine, user_id=ada.id, path=FIXTURES / "sent.mbox", max_bytes=LIMIT)
    assert (done.source, done.texts, done.conversations) == ("email", 1, 0)
    (thread,) = threads_of(engine, ada)
    assert thread.origin == "writing"
    (message,) = read(engine, lambda s: store.thread_messages(s, thread_id=thread.id))
    assert str(message.author) == "user" and "otter spraints" in message.content


def test_the_same_file_twice_and_an_overlapping_export_add_nothing_new(engine, ada, tmp_path):
    first = import_file(engine, user_id=ada.id, path=FIXTURES / "claude-conversations.json", max_bytes=LIMIT)
    again = import_file(engine, user_id=ada.id, path=FIXTURES / "claude-conversations.json", max_bytes=LIMIT)
    assert again.same_file_as == first.batch_id and again.conversations == 0
    bigger = json.loads((FIXTURES / "claude-conversations.json").read_text())
    bigger.append({**bigger[0], "uuid": "another-conversation", "name": "Another"})
    (tmp_path / "conversations.json").write_text(json.dumps(bigger))
    overlap = import_file(engine, user_id=ada.id, path=tmp_path / "conversations.json", max_bytes=LIMIT)
    assert (overlap.conversations, overlap.already) == (1, 1)
    assert len(threads_of(engine, ada)) == 2


def test_one_persons_import_never_reaches_another(engine, ada, bob):
    import_file(engine, user_id=ada.id, path=FIXTURES / "claude-conversations.json", max_bytes=LIMIT)
    theirs = import_file(engine, user_id=bob.id, path=FIXTURES / "claude-conversations.json", max_bytes=LIMIT)
    assert theirs.conversations == 1 and theirs.same_file_as is None  # bob's own copy, not "already here"
    (a,), (b,) = threads_of(engine, ada), threads_of(engine, bob)
    assert a.id != b.id == read(engine, lambda s: thread_id_for(s, bob.id, _claude_conversation()))


def _claude_conversation():
    from memory.history import Skipped, read_conversations

    with (FIXTURES / "claude-conversations.json").open("rb") as stream:
        return next(read_conversations(stream, Skipped()))


def test_an_export_broken_halfway_leaves_nothing_behind(engine, ada, tmp_path, monkeypatch):
    import memory.importing

    monkeypatch.setattr(memory.importing, "WRITE_EVERY", 1)  # the first conversation is written before the break
    conversations = [json.loads((FIXTURES / "claude-conversations.json").read_text())[0] for _ in range(3)]
    for i, conversation in enumerate(conversations):
        conversation["uuid"] = f"conversation-{i}"
    text = json.dumps(conversations)
    broken = tmp_path / "export.zip"
    with zipfile.ZipFile(broken, "w") as archive:
        archive.writestr("conversations.json", text[: int(len(text) * 0.8)])
    with pytest.raises(UnreadableImport, match="JSON is broken.*Nothing of export.zip was kept"):
        import_file(engine, user_id=ada.id, path=broken, max_bytes=LIMIT)
    assert threads_of(engine, ada) == []
    (batch,) = read(engine, lambda s: s.exec(select(ImportBatch)).all())
    assert batch.status == "failed" and "JSON is broken" in batch.reason


def test_undo_removes_all_of_a_batch_and_nothing_else(engine, ada):
    keep = import_file(engine, user_id=ada.id, path=FIXTURES / "reply.eml", max_bytes=LIMIT)
    gone = import_file(engine, user_id=ada.id, path=FIXTURES / "chatgpt-conversations.json", max_bytes=LIMIT)
    ids = read(engine, lambda s: batch_message_ids(s, batch_id=gone.batch_id))
    assert len(ids) == 3
    assert undo_batch(engine, user_id=ada.id, batch_id=gone.batch_id) == 3
    assert [t.origin for t in threads_of(engine, ada)] == ["writing"]
    assert read(engine, lambda s: s.exec(select(Message).where(Message.id.in_(ids))).all()) == []
    assert read(engine, lambda s: s.get(ImportBatch, gone.batch_id)).status == "undone"
    assert read(engine, lambda s: s.get(ImportBatch, keep.batch_id)).status == "done"
    with pytest.raises(LookupError):
        undo_batch(engine, user_id=ada.id + 1, batch_id=keep.batch_id)  # only one's own


def test_a_dry_run_counts_and_stores_nothing(engine, ada):
    seen = import_file(engine, user_id=ada.id, path=FIXTURES / "chatgpt-conversations.json", max_bytes=LIMIT,
                       dry_run=True)
    assert (seen.conversations, seen.messages, seen.batch_id) == (1, 3, None)
    assert threads_of(engine, ada) == [] and read(engine, lambda s: s.exec(select(ImportBatch)).all()) == []


def test_imported_conversations_are_in_the_chat_list_and_writing_is_not(engine, ada):
    import_file(engine, user_id=ada.id, path=FIXTURES / "claude-conversations.json", max_bytes=LIMIT)
    import_file(engine, user_id=ada.id, path=FIXTURES / "why-i-walk.md", max_bytes=LIMIT)
    listed, _ = read(engine, lambda s: store.list_threads(s, user_id=ada.id, first=20))
    assert [t.name for t, _ in listed] == ["Trail running shoes"]


def test_forgetting_the_person_removes_their_imports_too(engine, ada, bob):
    import_file(engine, user_id=ada.id, path=FIXTURES / "claude-conversations.json", max_bytes=LIMIT)
    import_file(engine, user_id=bob.id, path=FIXTURES / "reply.eml", max_bytes=LIMIT)
    write(engine, lambda s: store.delete_user(s, user=s.get(type(ada), ada.id)))
    assert [b.user_id for b in read(engine, lambda s: s.exec(select(ImportBatch)).all())] == [bob.id]
    assert threads_of(engine, ada) == [] and len(threads_of(engine, bob)) == 1


def test_undo_takes_back_the_support_an_import_gave_the_profile(engine, ada):
    from hypotheses.edits import withdraw_evidence
    from memory.models import EntrySource, EntryStatus, ProfileEntry, ProfileHistory

    done = import_file(engine, user_id=ada.id, path=FIXTURES / "chatgpt-conversations.json", max_bytes=LIMIT)
    imported = read(engine, lambda s: batch_message_ids(s, batch_id=done.batch_id))
    own = write(engine, lambda s: store.save_message(
        s, step_id="here-1", thread_id=write_thread(s, ada), user_id=ada.id, author=store.Author.USER,
        content="I bake every Sunday")).id

    def entry(text, evidence, source=EntrySource.INFERRED):
        return write(engine, lambda s: _added(s, ProfileEntry(user_id=ada.id, facet="preference", text=text,
                                                               evidence_json=json.dumps(evidence), support=len(evidence),
                                                               source=source)))

    only = entry("Bakes sourdough", imported[:2])
    partly = entry("Bakes at weekends", [imported[0], own])
    untouched = entry("Likes hills", [own])
    theirs = entry("Is learning to bake", imported[:1], source=EntrySource.USER)
    assert write(engine, lambda s: withdraw_evidence(s, user_id=ada.id, message_ids=imported,
                                                     reason="import undone")) == (1, 1)
    rows = {r.id: r for r in read(engine, lambda s: s.exec(select(ProfileEntry)).all())}
    assert rows[only].status == EntryStatus.SUPERSEDED
    assert rows[partly].status == EntryStatus.ACTIVE and json.loads(rows[partly].evidence_json) == [own]
    assert rows[partly].support == 1
    assert rows[untouched].version == 1 and rows[theirs].status == EntryStatus.ACTIVE  # the person's word stays
    history = read(engine, lambda s: s.exec(select(ProfileHistory.kind, ProfileHistory.reason)).all())
    assert sorted(history) == [("weaken", "import undone"), ("withdraw", "import undone")]


def write_thread(session, user):
    return store.upsert_thread(session, thread_id="here", user_id=user.id).id


def _added(session, row):
    session.add(row)
    session.flush()
    return row.id


def test_the_style_card_learns_only_the_persons_imported_words_and_forgets_them_on_undo(engine, ada):
    from assistant.imports import recount_style, undo_import
    from memory import profile

    def card():
        return read(engine, lambda s: profile.load_style(s, user_id=ada.id))

    done = import_file(engine, user_id=ada.id, path=FIXTURES / "claude-conversations.json", max_bytes=LIMIT)
    assert recount_style(engine, user_id=ada.id) == 2  # the two questions; the assistant's reply is not hers
    assert card()["messages"] == 2
    undo_import(engine, None, user_id=ada.id, batch_id=done.batch_id)
    assert card()["messages"] == 0
    assert undo_import(engine, None, user_id=ada.id, batch_id=done.batch_id)["messages"] == 0  # again: nothing left
    with pytest.raises(LookupError):
        undo_import(engine, None, user_id=ada.id + 99, batch_id=done.batch_id)


def test_ids_another_account_could_plant_are_not_the_ones_an_import_uses(engine, ada, bob):
    """Chat clients choose thread and message ids; an id derived from public parts could be taken first."""
    import uuid

    conversation = _claude_conversation()
    # The id the first version derived from public parts (its namespace is in the repository's history):
    # Ada could start a chat under it before Bob imports, and his import then failed on her thread.
    first_version = uuid.UUID("3f1c2a9e-8d47-4b8e-9a51-6f0d1e2c7b34")
    public = str(uuid.uuid5(first_version, f"{bob.id}/claude/{conversation.key}"))
    write(engine, lambda s: store.upsert_thread(s, thread_id=public, user_id=ada.id))  # Ada plants it
    done = import_file(engine, user_id=bob.id, path=FIXTURES / "claude-conversations.json", max_bytes=LIMIT)
    assert (done.conversations, done.already) == (1, 0)
    keyed = read(engine, lambda s: thread_id_for(s, bob.id, conversation))
    assert keyed != public and read(engine, lambda s: s.get(Thread, keyed)).user_id == bob.id


def test_an_export_with_fields_of_the_wrong_type_or_a_damaged_archive_leaves_nothing(engine, ada, tmp_path):
    import memory.importing

    good = json.loads((FIXTURES / "claude-conversations.json").read_text())[0]
    odd = {**good, "uuid": "odd", "chat_messages": [{"sender": "human", "text": 42}, "not a message",
                                                    {"sender": "human", "text": "A real question?"}]}
    (tmp_path / "conversations.json").write_text(json.dumps([good, odd]))
    done = import_file(engine, user_id=ada.id, path=tmp_path / "conversations.json", max_bytes=LIMIT)
    assert (done.conversations, done.messages) == (2, 4)  # the odd fields are passed over, not fatal
    damaged = tmp_path / "damaged.zip"
    with zipfile.ZipFile(damaged, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("conversations.json", json.dumps([{**good, "uuid": f"c{i}"} for i in range(400)]))
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2] ^= 0xFF  # a flipped byte in the compressed data
    damaged.write_bytes(bytes(data))
    before = len(threads_of(engine, ada))
    memory.importing.WRITE_EVERY = 50
    try:
        with pytest.raises(UnreadableImport, match="Nothing of damaged.zip was kept"):
            import_file(engine, user_id=ada.id, path=damaged, max_bytes=LIMIT)
    finally:
        memory.importing.WRITE_EVERY = 200
    assert len(threads_of(engine, ada)) == before


@pytest.mark.parametrize("content", ['{"conversations": []}', '"' + "x" * 1000 + '"', "42"])
def test_json_that_is_not_a_list_of_conversations_is_refused(engine, ada, tmp_path, content):
    (tmp_path / "conversations.json").write_text(content)
    with pytest.raises(UnreadableImport, match="not a list of conversations"):
        import_file(engine, user_id=ada.id, path=tmp_path / "conversations.json", max_bytes=LIMIT)
    assert read(engine, lambda s: s.exec(select(ImportBatch)).one()).status == "failed"


def test_a_longer_later_export_continues_a_conversation_and_undoing_either_keeps_what_the_other_holds(
        engine, ada, tmp_path):
    base = json.loads((FIXTURES / "claude-conversations.json").read_text())[0]
    short = {**base, "chat_messages": base["chat_messages"][:1]}
    other = {**base, "uuid": "another", "name": "Another"}
    (tmp_path / "first").mkdir()
    (tmp_path / "second").mkdir()
    (tmp_path / "first" / "conversations.json").write_text(json.dumps([short]))
    (tmp_path / "second" / "conversations.json").write_text(json.dumps([base, other]))
    first = import_file(engine, user_id=ada.id, path=tmp_path / "first" / "conversations.json", max_bytes=LIMIT)
    second = import_file(engine, user_id=ada.id, path=tmp_path / "second" / "conversations.json", max_bytes=LIMIT)
    assert (second.conversations, second.extended, second.messages) == (1, 1, 2 + 3)

    def messages_in(name):
        threads = [t for t in threads_of(engine, ada) if t.name == name]
        return [m.content for m in read(engine, lambda s: store.thread_messages(s, thread_id=threads[0].id))] \
            if threads else None

    assert len(messages_in("Trail running shoes")) == 3
    undo_batch(engine, user_id=ada.id, batch_id=first.batch_id)  # the second file holds all three still
    assert len(messages_in("Trail running shoes")) == 3
    undo_batch(engine, user_id=ada.id, batch_id=second.batch_id)
    assert messages_in("Trail running shoes") is None and messages_in("Another") is None


def test_undo_keeps_what_the_person_wrote_here_in_an_imported_conversation(engine, ada):
    done = import_file(engine, user_id=ada.id, path=FIXTURES / "claude-conversations.json", max_bytes=LIMIT)
    (thread,) = threads_of(engine, ada)
    write(engine, lambda s: store.save_message(s, step_id="typed-here", thread_id=thread.id, user_id=ada.id,
                                               author=store.Author.USER, content="And waterproof ones?"))
    assert undo_batch(engine, user_id=ada.id, batch_id=done.batch_id) == 3
    (kept,) = threads_of(engine, ada)
    assert kept.id == thread.id and kept.import_batch_id is None
    assert [m.content for m in read(engine, lambda s: store.thread_messages(s, thread_id=thread.id))] == [
        "And waterproof ones?"]


def test_an_import_whose_process_died_halfway_is_undone_and_a_running_one_is_left_alone(engine, ada, bob):
    """A killed process leaves its batch running with what it had stored; once it has not been heard from
    for STALE it is undone entirely. One that stored a chunk lately is still at work."""
    from datetime import timedelta

    from assistant.imports import abandon_stale_imports
    from memory.models import ImportStatus, utcnow

    dead = import_file(engine, user_id=ada.id, path=FIXTURES / "claude-conversations.json", max_bytes=LIMIT)
    alive = import_file(engine, user_id=bob.id, path=FIXTURES / "claude-conversations.json", max_bytes=LIMIT)

    def as_if_running(batch_id, heard_ago):
        def change(session):
            batch = session.get(ImportBatch, batch_id)
            batch.status, batch.finished_at, batch.heard_at = ImportStatus.RUNNING, None, utcnow() - heard_ago
            session.add(batch)
        write(engine, change)

    as_if_running(dead.batch_id, timedelta(minutes=11))
    as_if_running(alive.batch_id, timedelta(seconds=5))
    assert abandon_stale_imports(engine, None) == 1
    batch = read(engine, lambda s: s.get(ImportBatch, dead.batch_id))
    assert batch.status is ImportStatus.FAILED and "interrupted" in batch.reason
    assert threads_of(engine, ada) == []
    assert len(threads_of(engine, bob)) == 1
    assert read(engine, lambda s: s.get(ImportBatch, alive.batch_id)).status is ImportStatus.RUNNING
    assert abandon_stale_imports(engine, None) == 0


def test_a_2_gb_file_is_refused_before_a_byte_of_it_is_read(engine, ada, tmp_path):
    huge = tmp_path / "conversations.json"
    with huge.open("wb") as out:
        out.truncate(2 * 2**30)  # sparse: 2 GB long, no disk used
    with pytest.raises(UnreadableImport, match="larger than the limit of 1024 MB"):
        import_file(engine, user_id=ada.id, path=huge, max_bytes=1024 * 2**20)
    assert read(engine, lambda s: s.exec(select(ImportBatch)).all()) == []  # not even a failed batch


def _many_conversations(path, count: int):
    """A Claude export of `count` short conversations: more than one chunk of WRITE_EVERY."""
    path.write_text(json.dumps([
        {"uuid": f"c-{n}", "name": f"Chat {n}", "created_at": "2025-01-01T10:00:00Z", "chat_messages": [
            {"uuid": f"m-{n}", "sender": "human", "text": f"My question number {n} is about the hedges.",
             "created_at": "2025-01-01T10:00:00Z"}]}
        for n in range(count)]))
    return path


def test_an_import_the_sweep_takes_for_dead_stops_at_its_next_write_and_leaves_nothing(engine, ada, tmp_path):
    """Review: the sweep could fail a live import, which then went on and finished as "done" with part
    of its file. Now the sweep's verdict stands: the import stops and removes what it had added."""
    from datetime import timedelta

    from assistant.imports import abandon_stale_imports
    from memory.importing import INTERRUPTED, WRITE_EVERY
    from memory.models import ImportStatus

    from memory import importing

    swept = []

    def sweep_after_the_first_chunk(counts):
        if not swept:
            assert abandon_stale_imports(engine, None, stale=timedelta(0)) == 0  # never this process's own
            importing.HERE.discard(counts.batch_id)  # as seen from another process, after a long silence
            swept.append(abandon_stale_imports(engine, None, stale=timedelta(0)))

    export = _many_conversations(tmp_path / "conversations.json", WRITE_EVERY * 2 + 50)
    with pytest.raises(UnreadableImport, match="stopped"):
        import_file(engine, user_id=ada.id, path=export, max_bytes=LIMIT, progress=sweep_after_the_first_chunk)
    assert swept == [1]
    (batch,) = read(engine, lambda s: s.exec(select(ImportBatch)).all())
    assert (batch.status, batch.reason) == (ImportStatus.FAILED, INTERRUPTED)
    assert threads_of(engine, ada) == []


def test_a_batch_still_being_imported_cannot_be_undone(engine, ada):
    from assistant.imports import undo_import
    from memory.importing import StillImporting
    from memory.models import ImportStatus

    done = import_file(engine, user_id=ada.id, path=FIXTURES / "claude-conversations.json", max_bytes=LIMIT)

    def as_if_running(session):
        batch = session.get(ImportBatch, done.batch_id)
        batch.status = ImportStatus.RUNNING
        session.add(batch)

    write(engine, as_if_running)
    with pytest.raises(StillImporting):
        undo_import(engine, None, user_id=ada.id, batch_id=done.batch_id)
    assert len(threads_of(engine, ada)) == 1


def test_an_import_failed_just_before_its_finish_is_not_marked_done(engine, ada):
    """Second review: the finish read the status, then wrote "done" over a sweep's "failed"."""
    from datetime import timedelta

    from assistant.imports import abandon_stale_imports
    from memory import importing
    from memory.models import ImportStatus

    def sweep(counts):  # after the last chunk, before the finish
        importing.HERE.discard(counts.batch_id)
        abandon_stale_imports(engine, None, stale=timedelta(0))

    with pytest.raises(UnreadableImport, match="stopped"):
        import_file(engine, user_id=ada.id, path=FIXTURES / "claude-conversations.json", max_bytes=LIMIT,
                    progress=sweep)
    (batch,) = read(engine, lambda s: s.exec(select(ImportBatch)).all())
    assert batch.status is ImportStatus.FAILED and threads_of(engine, ada) == []


def test_a_failed_import_whose_clean_up_stopped_is_taken_back_by_the_sweep(engine, ada):
    """Second review: a batch marked failed with its rows still there was never looked at again."""
    from datetime import timedelta

    from assistant.imports import abandon_stale_imports
    from memory.models import ImportStatus, utcnow

    done = import_file(engine, user_id=ada.id, path=FIXTURES / "claude-conversations.json", max_bytes=LIMIT)

    def as_if_its_clean_up_died(session):
        batch = session.get(ImportBatch, done.batch_id)
        batch.status, batch.reason, batch.heard_at = ImportStatus.FAILED, "JSON broken", utcnow() - timedelta(minutes=11)
        session.add(batch)

    write(engine, as_if_its_clean_up_died)
    assert abandon_stale_imports(engine, None) == 1
    assert threads_of(engine, ada) == []
    batch = read(engine, lambda s: s.get(ImportBatch, done.batch_id))
    assert (batch.status, batch.reason) == (ImportStatus.FAILED, "JSON broken")  # its own reason kept
    assert abandon_stale_imports(engine, None) == 0  # nothing held any more: not taken again


def test_a_vector_for_a_message_deleted_meanwhile_is_not_saved(engine, ada, embedder):
    from memory.models import Embedding, Message
    from memory.vectors import save_vectors

    import_file(engine, user_id=ada.id, path=FIXTURES / "claude-conversations.json", max_bytes=LIMIT)
    messages = read(engine, lambda s: s.exec(select(Message).where(Message.user_id == ada.id)).all())
    vectors = embedder.encode([m.content for m in messages])
    write(engine, lambda s: store.delete_messages(s, thread_id=messages[0].thread_id, message_ids=[messages[0].id]))
    write(engine, lambda s: save_vectors(s, model=embedder.model_name, messages=messages, vectors=vectors))
    saved = read(engine, lambda s: {e.message_id for e in s.exec(select(Embedding)).all()})
    assert saved == {m.id for m in messages[1:]}
