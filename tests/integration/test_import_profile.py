"""The first profile from an imported history, against the fake model on SQLite and PostgreSQL: one
bounded inference over a sample of the person's most substantive texts (never the other assistant's
replies), whose entries rest on the imported messages, and which an undo of the import takes back."""

import json

import pytest
from sqlmodel import select

from assistant.background import HypothesisJobs
from assistant.imports import undo_import
from assistant.llm import OfflineModel
from hypotheses.infer import CHARS_PER_TOKEN, IMPORT_BUDGET_TOKENS, PER_CONVERSATION
from hypotheses.job import count_new_substantive, last_seen_message
from memory import store
from memory.db import read, write
from memory.importing import import_file
from memory.models import Author, EntryStatus, HypothesisJob, ImportBatch, JobStatus, Message, ProfileEntry

pytestmark = pytest.mark.anyio
LIMIT = 50 * 2**20
REPLY_MARK = "ASSISTANT-REPLY-NEVER-EVIDENCE"




def chatgpt_export(path, conversations: int, *, asks_per_conversation: int = 4):
    """A ChatGPT conversations.json: each conversation has short questions, one long considered message of
    the person's three long considered messages (longer the later the conversation), and the assistant's long
    replies."""
    items = []
    for c in range(conversations):
        mapping, parent = {"root": {"id": "root", "message": None, "parent": None, "children": []}}, "root"
        said = [f"Quick question number {c}.{n} about the garden path?" for n in range(asks_per_conversation)]
        said += [" ".join([f"I think conversation {c} matters because, reason {k},"]
                          + ["the soil and the light and the water"] * (c + 2 + k)) for k in range(3)]
        for n, text in enumerate(said):
            for role, content in (("user", text), ("assistant", f"{REPLY_MARK} " + "a very long answer " * 60)):
                node = f"{c}-{n}-{role}"
                mapping[node] = {"id": node, "parent": parent, "children": [], "message": {
                    "id": node, "author": {"role": role}, "create_time": 1700000000 + c * 1000 + n * 10 + (role == "assistant"),
                    "content": {"content_type": "text", "parts": [content]}}}
                mapping[parent]["children"].append(node)
                parent = node
        items.append({"id": f"conv-{c}", "title": f"Garden {c}", "create_time": 1700000000 + c * 1000,
                      "current_node": parent, "mapping": mapping})
    path.write_text(json.dumps(items))
    return path


def answer_citing(sample: int) -> str:
    return json.dumps({"hypotheses": [{"action": "add", "facet": "communication", "text": "Explains why before what.",
                                       "evidence": [sample], "confidence": 0.7, "entry": None, "stated": False}]})


async def test_the_first_profile_reads_a_bounded_sample_of_the_persons_best_texts(engine, fake_llm, gateway,
                                                                                  embedder, tmp_path):
    ada = write(engine, lambda s: store.create_user(s, identifier="ada", password="password1"))
    done = import_file(engine, user_id=ada.id, path=chatgpt_export(tmp_path / "conversations.json", 40),
                       max_bytes=LIMIT)
    assert done.conversations == 40
    fake_llm.script("hypotheses", answer_citing(1))
    jobs = HypothesisJobs(engine=engine, gateway=gateway, embedder=embedder, every=6)
    job_id = await jobs.after_import(ada.id)
    await jobs.settle()

    job = read(engine, lambda s: s.get(HypothesisJob, job_id))
    assert (job.trigger, job.status) == ("import", JobStatus.DONE)
    (request,) = fake_llm.requests_for("hypotheses")  # one inference, however large the export
    prompt = json.dumps(request.body["messages"])
    assert REPLY_MARK not in prompt  # the other assistant's words are never read as the person's
    mine = read(engine, lambda s: s.exec(select(Message).where(Message.user_id == ada.id,
                                                               Message.author == Author.USER)).all())
    sampled = [m for m in mine if json.dumps(m.content)[1:-1] in prompt]
    # The longest of the person's texts come first, within the budget, and no conversation twice over its share.
    assert sampled and all("matters because" in m.content for m in sampled)
    assert sum(len(m.content) for m in sampled) <= IMPORT_BUDGET_TOKENS * CHARS_PER_TOKEN
    per_thread = [sum(1 for m in sampled if m.thread_id == t) for t in {m.thread_id for m in sampled}]
    assert max(per_thread) == PER_CONVERSATION < 3  # each conversation has three such texts: spread over them
    assert len(per_thread) > 1
    longest = max(mine, key=lambda m: len(m.content))
    assert longest in sampled or len(longest.content) > IMPORT_BUDGET_TOKENS * CHARS_PER_TOKEN // 3
    # All of the import was considered: a later chat starts a fresh count instead of re-reading it.
    assert last_seen_message(read(engine, lambda s: s), user_id=ada.id) == max(m.id for m in mine)
    assert read(engine, lambda s: count_new_substantive(s, user_id=ada.id)) == (0, True)

    (entry,) = read(engine, lambda s: s.exec(select(ProfileEntry).where(ProfileEntry.user_id == ada.id)).all())
    (evidence,) = json.loads(entry.evidence_json)
    assert evidence == sampled[0].id  # it rests on an imported message of the person's

    # Undoing the import takes the entry back with the texts it rested on.
    undone = undo_import(engine, None, user_id=ada.id, batch_id=done.batch_id)
    assert undone["entries_withdrawn"] == 1
    entry = read(engine, lambda s: s.get(ProfileEntry, entry.id))
    assert entry is None or entry.status is not EntryStatus.ACTIVE


async def test_no_job_without_a_model_or_without_anything_substantive(engine, fake_llm, gateway, embedder, tmp_path):
    ada = write(engine, lambda s: store.create_user(s, identifier="ada", password="password1"))
    assert await HypothesisJobs(engine=engine, gateway=OfflineModel(), embedder=embedder, every=6).after_import(ada.id) is None
    short = tmp_path / "notes.txt"
    short.write_text("ok thanks\n")
    import_file(engine, user_id=ada.id, path=short, max_bytes=LIMIT)
    assert await HypothesisJobs(engine=engine, gateway=gateway, embedder=embedder, every=6).after_import(ada.id) is None
    assert fake_llm.requests_for("hypotheses") == []


def claude_export(path, conversations: dict[str, list[str]]):
    """A Claude export: conversation name -> the person's texts (each answered by the assistant)."""
    items = []
    for n, (name, texts) in enumerate(conversations.items()):
        said = []
        for k, text in enumerate(texts):
            said += [{"uuid": f"{n}-{k}-h", "sender": "human", "text": text, "created_at": "2025-03-01T10:00:00Z"},
                     {"uuid": f"{n}-{k}-a", "sender": "assistant", "text": f"{REPLY_MARK} noted.",
                      "created_at": "2025-03-01T10:00:01Z"}]
        items.append({"uuid": f"conv-{n}", "name": name, "created_at": "2025-03-01T10:00:00Z", "chat_messages": said})
    path.write_text(json.dumps(items))
    return path


async def test_one_wordy_conversation_does_not_crowd_out_the_rest_and_chat_comes_first(engine, fake_llm, gateway,
                                                                                      embedder, tmp_path):
    """Review: the pool kept the 400 wordiest texts with no limit per conversation, so one long wordy
    conversation filled it and the sample shrank to that conversation's two texts."""
    ada = write(engine, lambda s: store.create_user(s, identifier="ada", password="password1"))
    wordy = [f"Entry {k}: " + "the long and winding account of every single thing that happened " * 6
             for k in range(450)]
    others = {f"Topic {n}": [f"I think topic {n} matters because the hedges need a careful trim this year"]
              for n in range(30)}
    export = claude_export(tmp_path / "conversations.json", {"Diary": wordy, **others})
    write(engine, lambda s: (store.upsert_thread(s, thread_id="here", user_id=ada.id),
                             store.save_message(s, step_id="here-1", thread_id="here", user_id=ada.id,
                                                author=Author.USER, content="Written here before the import: I "
                                                "always plan my trips by train and never by plane.")))
    import_file(engine, user_id=ada.id, path=export, max_bytes=LIMIT)
    fake_llm.script("hypotheses", answer_citing(1))
    jobs = HypothesisJobs(engine=engine, gateway=gateway, embedder=embedder, every=6)
    job_id = await jobs.after_import(ada.id)
    await jobs.settle()
    prompt = json.dumps(fake_llm.requests_for("hypotheses")[0].body["messages"])
    assert "I always plan my trips by train" in prompt  # what was written here is never passed over
    assert sum(prompt.count(f"Entry {k}:") for k in range(450)) == PER_CONVERSATION
    assert prompt.count("matters because the hedges") > 2
    assert read(engine, lambda s: s.get(HypothesisJob, job_id)).samples > PER_CONVERSATION + 1


async def test_an_import_undone_while_its_profile_is_learned_leaves_no_entry_on_texts_that_are_gone(
        engine, fake_llm, gateway, embedder, tmp_path):
    """Review: an undo during the model's call left an active entry whose evidence no longer existed."""
    import asyncio

    from tests.fakellm import Reply

    ada = write(engine, lambda s: store.create_user(s, identifier="ada", password="password1"))
    done = import_file(engine, user_id=ada.id, path=chatgpt_export(tmp_path / "conversations.json", 3),
                       max_bytes=LIMIT)
    fake_llm.script("hypotheses", Reply(text=answer_citing(1), delay=1.5))
    jobs = HypothesisJobs(engine=engine, gateway=gateway, embedder=embedder, every=6)
    job_id = await jobs.after_import(ada.id)
    await asyncio.sleep(0.5)  # the job is waiting for the model
    undone = await asyncio.to_thread(undo_import, engine, None, user_id=ada.id, batch_id=done.batch_id)
    assert undone["messages"] > 0
    await jobs.settle()
    assert read(engine, lambda s: s.get(HypothesisJob, job_id)).status is JobStatus.DONE
    entries = read(engine, lambda s: s.exec(select(ProfileEntry).where(ProfileEntry.user_id == ada.id)).all())
    assert entries == []


async def test_a_chat_job_during_an_import_neither_cites_it_nor_hides_it_from_the_import_job(
        engine, fake_llm, gateway, embedder, tmp_path):
    """Second review: a chat job could sample texts of an import still storing (which may yet be taken
    back), and move the common mark past them, so the import's own job skipped most of the history."""
    from memory.models import ImportStatus

    ada = write(engine, lambda s: store.create_user(s, identifier="ada", password="password1"))
    done = import_file(engine, user_id=ada.id, path=chatgpt_export(tmp_path / "conversations.json", 5), max_bytes=LIMIT)

    def running(session):
        batch = session.get(ImportBatch, done.batch_id)
        batch.status = ImportStatus.RUNNING
        session.add(batch)

    write(engine, running)
    texts = ["I keep a notebook of every walk I take along the coast path.",
             "Honestly I prefer the long way round, through the woods and fields.",
             "My sister thinks I overplan, but a good map never hurt anybody."]
    write(engine, lambda s: [store.upsert_thread(s, thread_id="here", user_id=ada.id)] + [
        store.save_message(s, step_id=f"here-{i}", thread_id="here", user_id=ada.id, author=Author.USER, content=t)
        for i, t in enumerate(texts)])
    fake_llm.script("hypotheses", answer_citing(1))
    jobs = HypothesisJobs(engine=engine, gateway=gateway, embedder=embedder, every=6)
    await jobs.after_turn(ada.id)  # a chat job while the import is still storing
    await jobs.settle()
    assert "matters because" not in json.dumps(fake_llm.requests_for("hypotheses")[0].body["messages"])

    def finished(session):
        batch = session.get(ImportBatch, done.batch_id)
        batch.status = ImportStatus.DONE
        session.add(batch)

    write(engine, finished)
    fake_llm.script("hypotheses", answer_citing(1))
    assert await jobs.after_import(ada.id) is not None
    await jobs.settle()
    assert "matters because" in json.dumps(fake_llm.requests_for("hypotheses")[1].body["messages"])


async def test_an_import_brought_without_a_model_is_learned_from_at_the_next_chat(engine, fake_llm, gateway,
                                                                                   embedder, tmp_path):
    ada = write(engine, lambda s: store.create_user(s, identifier="ada", password="password1"))
    import_file(engine, user_id=ada.id, path=chatgpt_export(tmp_path / "conversations.json", 3), max_bytes=LIMIT)
    assert await HypothesisJobs(engine=engine, gateway=OfflineModel(), embedder=embedder,
                                every=6).after_import(ada.id) is None
    fake_llm.script("hypotheses", answer_citing(1))
    jobs = HypothesisJobs(engine=engine, gateway=gateway, embedder=embedder, every=6)
    await jobs.after_turn(ada.id)  # a model is connected now; the person chats
    await jobs.settle()
    (job,) = read(engine, lambda s: s.exec(select(HypothesisJob)).all())
    assert (job.trigger, job.status) == ("import", JobStatus.DONE)
    assert "matters because" in json.dumps(fake_llm.requests_for("hypotheses")[0].body["messages"])


async def test_learning_after_an_import_says_which_step_failed_and_raises_nothing(engine, fake_llm, gateway, embedder,
                                                                               tmp_path):
    """The person erased themselves while their import was learning: both steps fail on our side, and the
    panel and the CLI are told which (assistant.imports.learn_from_import), never an exception."""
    from assistant.imports import learn_from_import
    from assistant.privacy import forget

    ada = write(engine, lambda s: store.create_user(s, identifier="ada", password="password1"))
    import_file(engine, user_id=ada.id, path=chatgpt_export(tmp_path / "conversations.json", 3), max_bytes=LIMIT)
    jobs = HypothesisJobs(engine=engine, gateway=gateway, embedder=embedder, every=6)
    fake_llm.script("hypotheses", answer_citing(1))
    learned = await learn_from_import(engine, jobs, user_id=ada.id)
    await jobs.settle()
    assert learned.job_id is not None and learned.failed == ()

    forget(engine, None, user_id=ada.id, token_lifetime_s=60)
    gone = await learn_from_import(engine, jobs, user_id=ada.id)
    assert gone.job_id is None and "measuring your style" in gone.failed
