"""The profile's long-run promises, through real jobs: the fake model reads each request (the profile
it is shown, with small ids) and answers like a model would; merge, the real embedding model and the
database do the rest. On SQLite and PostgreSQL."""

import json
import re

import pytest

from hypotheses import edits
from hypotheses.job import enqueue, run_job
from hypotheses.merge import normalise
from memory import profile, store
from memory.db import read, write
from memory.models import Author, ProfileEntry

pytestmark = pytest.mark.anyio

TEXTS = ["I always sketch a map before I write a single line of code, it keeps me calm.",
         "Give me the short version first, and the details only if I ask for them please.",
         "Honestly I learn best from concrete examples, not from abstract theory at all.",
         "I tend to ask a lot of follow-up questions until the picture is complete for me."]

# Five facts, each in three wordings. The first wording of a fact is added; later ones arrive in
# later jobs, by "support" of the entry the model was shown, or (a sloppy model) as a new "add" that
# differs from the entry only in case and punctuation.
FACTS = [("communication", ["Plans visually before writing code.", "Sketches a plan before starting to code.",
                            "plans VISUALLY before writing code!"]),
         ("preference", ["Wants the short version first.", "Prefers the brief version before details.",
                         "wants the short version first"]),
         ("communication", ["Learns best from concrete examples.", "Understands best through examples.",
                            "Learns best from concrete examples!!"]),
         ("communication", ["Asks many follow-up questions.", "Often asks follow-up questions.",
                            "asks many follow-up questions"]),
         ("style", ["Writes in full, careful sentences.", "Writes carefully in complete sentences.",
                    "Writes in full careful sentences."])]


@pytest.fixture
def grace(engine):
    user = write(engine, lambda s: store.create_user(s, identifier="grace", password="password1"))

    def chat(session):
        store.upsert_thread(session, thread_id="t", user_id=user.id)
        for i, content in enumerate(TEXTS):
            store.save_message(session, step_id=f"m{i}", thread_id="t", user_id=user.id, author=Author.USER,
                               content=content)

    write(engine, chat)
    return user


def shown_profile(body: dict) -> dict[str, int]:
    """The entries the request shows the model: normalised text -> small id."""
    prompt = body["messages"][1]["content"]
    listing = prompt.split("Current profile:\n", 1)[1].split("\n\nTexts the person wrote:", 1)[0]
    return {normalise(text): int(small) for small, text in re.findall(r"^\[(\d+)\] \(\w+\) (.+)$", listing, re.M)}


def hypothesis(action, facet, text, entry=None):
    return {"action": action, "facet": facet, "text": text, "evidence": [1], "confidence": 0.7, "entry": entry,
            "stated": False}


async def one_job(engine, user, complete, embedder):
    job = write(engine, lambda s: enqueue(s, user_id=user.id, trigger="messages"))
    outcome = await run_job(engine, job_id=job.id, complete=complete, worker="test", embed=embedder.encode,
                            vector_model=embedder.model_name)
    assert outcome.status == "done", outcome.reason
    return outcome


def active(engine, user):
    return read(engine, lambda s: profile.entries(s, user_id=user.id, statuses=["active"]))


async def test_paraphrases_of_n_facts_spread_over_jobs_end_with_at_most_1_2_n_entries(
        engine, grace, fake_llm, complete, embedder):
    def model(body):
        shown, answer = shown_profile(body), []
        wording = len(fake_llm.requests_for("hypotheses")) - 1  # job k brings wording k % 3 of every fact
        for facet, wordings in FACTS:
            known = next((shown[normalise(w)] for w in wordings if normalise(w) in shown), None)
            text = wordings[wording % 3]
            if known is not None and wording % 3 == 1:
                answer.append(hypothesis("support", facet, text, entry=known))
            else:
                answer.append(hypothesis("add", facet, text))
        return json.dumps({"hypotheses": answer})

    fake_llm.respond("hypotheses", model)
    for _ in range(6):
        await one_job(engine, grace, complete, embedder)
    entries = active(engine, grace)
    assert len(entries) <= 1.2 * len(FACTS), [e.text for e in entries]
    assert {e.support for e in entries} == {6}  # every wording of every job counted once, for its own fact


async def test_an_entry_the_user_rejected_is_not_re_added_over_fifty_jobs_in_new_words(
        engine, grace, fake_llm, complete, embedder):
    wordings = ["Uses a lot of emoji.", "Frequently uses emoji in messages.", "Often adds emoji to what they write.",
                "USES A LOT OF EMOJI!!", "Loves using emoji when writing."]
    fake_llm.script("hypotheses", json.dumps({"hypotheses": [hypothesis("add", "style", wordings[0])]}))
    await one_job(engine, grace, complete, embedder)
    (entry,) = active(engine, grace)
    write(engine, lambda s: _set(s, entry.id, status="rejected"))
    fake_llm.respond("hypotheses", lambda body: json.dumps({"hypotheses": [hypothesis(
        "add", "style", wordings[len(fake_llm.requests_for("hypotheses")) % len(wordings)])]}))
    for _ in range(50):
        await one_job(engine, grace, complete, embedder)
    assert active(engine, grace) == []
    kinds = read(engine, lambda s: [h.kind for h in profile.history(s, user_id=grace.id)])
    assert kinds == ["add"]  # fifty jobs, and not one change


@pytest.mark.parametrize("protection", [{"pinned": True}, {"source": "user", "text": "Writes long, careful letters."}])
async def test_a_pinned_or_user_edited_entry_survives_fifty_contradicting_jobs(
        engine, grace, fake_llm, complete, embedder, protection):
    fake_llm.script("hypotheses", json.dumps({"hypotheses": [hypothesis("add", "style", "Writes long letters.")]}))
    await one_job(engine, grace, complete, embedder)
    (entry,) = active(engine, grace)
    write(engine, lambda s: _set(s, entry.id, **protection))
    kept = read(engine, lambda s: s.get(ProfileEntry, entry.id))

    def contradict(body):
        (small,) = shown_profile(body).values()
        job = len(fake_llm.requests_for("hypotheses"))
        return json.dumps({"hypotheses": [
            hypothesis("contradict", "style", f"Writes only one-line messages (take {job}).", entry=small),
            hypothesis("add", "style", kept.text.lower())]})  # and a duplicate that would raise its support

    fake_llm.respond("hypotheses", contradict)
    for _ in range(50):
        await one_job(engine, grace, complete, embedder)
    (survivor,) = active(engine, grace)
    assert (survivor.id, survivor.text, survivor.support, survivor.version) == (kept.id, kept.text, kept.support,
                                                                                kept.version)


def _set(session, entry_id, **values):
    row = session.get(ProfileEntry, entry_id)
    for key, value in values.items():
        setattr(row, key, value)
    session.add(row)


# The sentence a user rewrote in their own words, in the wordings a model brings it back in: letter for
# letter, shouted, abbreviated, turned around, in synonyms, and filed under another facet.
REPLACED = "Writes short, direct messages."
COMEBACKS = [("style", "Writes short, direct messages."), ("style", "writes SHORT, direct messages!"),
             ("style", "writes short direct msgs"), ("style", "Their messages are short and direct."),
             ("style", "Sends brief, to-the-point messages."), ("communication", "Is a direct writer who keeps it short."),
             ("style", "Keeps messages concise and direct."), ("communication", "Writes short, direct messages.")]


async def test_text_the_user_replaced_is_not_proposed_again_over_fifty_jobs_in_any_wording(
        engine, grace, fake_llm, complete, embedder):
    fake_llm.script("hypotheses", json.dumps({"hypotheses": [hypothesis("add", "style", REPLACED)]}))
    await one_job(engine, grace, complete, embedder)
    (entry,) = active(engine, grace)
    own_words = "Writes long, careful messages about ideas; brief ones only when busy."
    vector = embedder.encode([own_words])[0].astype("<f4").tobytes()
    write(engine, lambda s: edits.edit_text(s, user_id=grace.id, entry_id=entry.id, text=own_words,
                                            version=entry.version, vector=vector, vector_model=embedder.model_name))

    def comeback(body):
        job = len(fake_llm.requests_for("hypotheses"))
        facet, text = COMEBACKS[job % len(COMEBACKS)]
        return json.dumps({"hypotheses": [hypothesis("add", facet, text)]})

    fake_llm.respond("hypotheses", comeback)
    for _ in range(50):
        await one_job(engine, grace, complete, embedder)
    (kept,) = active(engine, grace)
    assert (kept.id, kept.text, kept.source) == (entry.id, own_words, "user")
    kinds = read(engine, lambda s: [h.kind for h in profile.history(s, user_id=grace.id)])
    assert kinds == ["add", "edit"]  # fifty jobs, and not one change


async def test_the_model_is_told_what_the_user_took_back(engine, grace, fake_llm, complete, embedder):
    fake_llm.script("hypotheses", json.dumps({"hypotheses": [hypothesis("add", "style", REPLACED),
                                                              hypothesis("add", "style", "Uses a lot of emoji.")]}))
    await one_job(engine, grace, complete, embedder)
    short, emoji = active(engine, grace)
    write(engine, lambda s: edits.edit_text(s, user_id=grace.id, entry_id=short.id, text="Writes long letters.",
                                            version=short.version))
    write(engine, lambda s: edits.set_status(s, user_id=grace.id, entry_id=emoji.id, status="rejected",
                                             version=emoji.version))
    fake_llm.script("hypotheses", json.dumps({"hypotheses": []}))
    await one_job(engine, grace, complete, embedder)
    last = fake_llm.requests_for("hypotheses")[-1].body
    prompt = last["messages"][1]["content"]
    taken_back = prompt.split("The person said these are wrong", 1)[1].split("Texts the person wrote:", 1)[0]
    assert REPLACED in taken_back and "Uses a lot of emoji." in taken_back
    assert normalise("Writes long letters.") in shown_profile(last)
    assert "Writes long letters." not in taken_back
