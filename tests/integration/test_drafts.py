""""Write as me" through the real turn, on SQLite and PostgreSQL, against the fake model: a draft is
written in the person's voice from their most representative texts, decided by the safety deliberation
like any reply, shown with the verifier's verdict, and refused with the reason before any model call
while too little of their writing exists."""

import json
import random
import re
from dataclasses import replace

import pytest
from sqlmodel import select

from assistant.drafts import HOW_TO, draft_request, own_texts, other_texts
from assistant.prompt import DRAFT_PROMPT, EXEMPLAR_HEADER
from memory import store
from memory.db import read, write
from memory.models import Author, Message
from tests.fakellm import verdict
from tests.integration.test_turn import Screen, alice, fake_gateway, request, turns_for  # noqa: F401 (fixtures)
from tests.voices import TOPICS, WRITERS

pytestmark = pytest.mark.anyio
ADA, BO = WRITERS[0], WRITERS[1]


def history(engine, user, *, own: int, replies: int, seed: int = 1):
    """`own` texts in Ada's manner, answered by replies in Bo's (an assistant that writes formally)."""
    rng = random.Random(seed)

    def chat(session):
        store.upsert_thread(session, thread_id="old", user_id=user.id)
        for i in range(max(own, replies)):
            if i < own:
                store.save_message(session, step_id=f"old-u{i}", thread_id="old", user_id=user.id, author=Author.USER,
                                   content=ADA.text(rng))
            if i < replies:
                store.save_message(session, step_id=f"old-r{i}", thread_id="old", user_id=user.id,
                                   author=Author.ASSISTANT, content=BO.text(rng))

    write(engine, chat)


def test_draft_requests_are_read_from_the_command_or_the_typed_prefix():
    assert draft_request("/write a note to Sam") == "a note to Sam"
    assert draft_request("  /WRITE   a note") == "a note"
    assert draft_request("/write") == "" and draft_request("/write   ") == ""
    assert draft_request("a note to Sam", "Write") == "a note to Sam"
    assert draft_request("/writer of songs") is None and draft_request("please /write this") is None
    assert draft_request("a note", "Profile") is None and "/write" in HOW_TO


async def test_a_draft_is_written_in_the_persons_voice_and_shown_with_its_verdict(engine, alice, fake_llm, turns_for):
    history(engine, alice, own=8, replies=8)
    turns = turns_for(fake_gateway(fake_llm))
    fake_llm.script("safety", verdict("comply", "GEN.A1"))
    draft = ADA.text(random.Random(9), TOPICS[2])  # a model that writes like her
    fake_llm.script("chat", draft)
    result = await turns.run(_draft(alice, "a note to Sam about the match on Saturday"), Screen())
    assert result.complete and result.reply == draft
    score, low, high = map(float, re.fullmatch(
        r"sounds like you: (\d\.\d\d); your own texts score (\d\.\d\d)–(\d\.\d\d)", result.voice).groups())
    assert score > 0.5 and low <= high

    (asked,) = fake_llm.requests_for("chat")
    system = asked.body["messages"][0]["content"]
    assert DRAFT_PROMPT in system and EXEMPLAR_HEADER in system
    shown = re.findall(r"«(.+?)»", system.split(EXEMPLAR_HEADER, 1)[1])
    mine = read(engine, lambda s: own_texts(s, user_id=alice.id))
    assert len(shown) == 3 and all(any(t.startswith(s[:60]) for t in mine) for s in shown)  # her texts, none of Bo's
    # The deliberation decided the request, as for any reply.
    assert "a note to Sam about the match" in json.dumps(fake_llm.requests_for("safety")[0].body)
    # The draft is kept, marked: it is never an assistant's voice to tell hers from.
    saved = read(engine, lambda s: s.exec(select(Message).where(Message.content == draft)).one())
    assert saved.draft and saved.author == Author.ASSISTANT
    assert draft not in read(engine, lambda s: other_texts(s, user_id=alice.id))


async def test_a_bland_draft_is_not_said_to_sound_like_them(engine, alice, fake_llm, turns_for):
    history(engine, alice, own=8, replies=8)
    turns = turns_for(fake_gateway(fake_llm))
    fake_llm.script("safety", verdict("comply", "GEN.A1"))
    fake_llm.script("chat", BO.text(random.Random(3)))  # the assistant's own manner
    result = await turns.run(_draft(alice, "a note to Sam"), Screen())
    assert result.complete and float(result.voice.split(": ")[1][:4]) < 0.5


async def test_too_little_writing_is_explained_before_any_model_call(engine, alice, fake_llm, turns_for):
    history(engine, alice, own=2, replies=4)
    turns = turns_for(fake_gateway(fake_llm))
    result = await turns.run(_draft(alice, "a note to Sam"), Screen())
    assert not result.complete and result.reply == ""
    assert "needs at least 3 texts of yours of 30 words or more" in result.notice and "I have 2 so far" in result.notice
    assert fake_llm.requests == []  # no deliberation, no draft
    stored = read(engine, lambda s: s.exec(select(Message).where(Message.content == "a note to Sam")).one())
    assert stored.author == Author.USER  # what they asked is kept, as any message


async def test_a_refused_draft_is_no_draft_of_theirs(engine, alice, fake_llm, turns_for):
    history(engine, alice, own=6, replies=0)  # no replies: the shipped impostor texts stand in
    turns = turns_for(fake_gateway(fake_llm))
    fake_llm.script("safety", verdict("refuse", "IWP.R1", rationale="Weapons."))
    fake_llm.script("chat", "I can't help write that.")
    result = await turns.run(_draft(alice, "a threat to my neighbour"), Screen())
    assert result.voice is None
    saved = read(engine, lambda s: s.exec(select(Message).where(Message.author == Author.ASSISTANT,
                                                                Message.thread_id == "t1")).one())
    assert not saved.draft


def _draft(user, text):
    return replace(request(user, text), draft=True)
