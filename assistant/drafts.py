""""Write as me": drafts in the person's own voice, and the verifier's word on whether they sound like them.

A person's voice (hypotheses.voice) is learned from their own writing (chats and imports, in
remembered threads, without pasted material) against the assistants' replies in their own history:
"does this sound like you, rather than like an assistant?", which is the question a draft raises,
and one that needs nobody else's data. A history with few replies is filled up with the shipped
impostor texts (hypotheses.voice_background). It is learned when a draft is asked for, in a thread:
300 texts and 300 replies take about 0.7 s on a 2-core machine.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from hypotheses import voice
from hypotheses.style import is_pasted
from hypotheses.voice_background import BACKGROUND
from memory.db import read
from memory.models import Author, Message, MessageStatus, Thread

COMMAND = "Write"  # the composer button's id; typed, "/write <what to draft>"
_TYPED = re.compile(r"^\s*/write(?:\s+|$)", re.IGNORECASE)
OWN_TEXTS = 300  # the newest of the person's usable texts a voice learns from
OTHER_TEXTS = 300  # and the newest replies it is told apart from
MIN_OTHERS = 20  # fewer replies than this: the shipped impostors fill in
EXAMPLES_FOR_STYLE = 2  # of the three exemplars, the ones that sound most like the person; the rest by topic

HOW_TO = ("Tell me what to draft after /write, for example: /write a short reply to Sam saying I can't make "
          "Friday but could do Monday.")


def draft_request(text: str, picked: str | None = None) -> str | None:
    """What the person asks to be drafted: the words after "/write", or a message sent with the Write
    button picked; None when the message is not a draft request. "" means the request is empty."""
    if typed := _TYPED.match(text):
        return text[typed.end():].strip()
    return text.strip() if picked == COMMAND else None


def too_little(found: int) -> str:
    return (f"“Write as me” needs at least {voice.MIN_TEXTS} texts of yours of {voice.MIN_WORDS} words or more, to "
            f"know how you write; I have {found} so far. Chat a little more, or bring your history from the "
            "profile panel (Bring your history), and ask again.")


def own_texts(session: Session, *, user_id: int, limit: int = OWN_TEXTS) -> list[str]:
    """The person's usable writing, newest first: complete, in remembered threads, not pasted."""
    query = (select(Message.content).join(Thread, col(Thread.id) == Message.thread_id)
             .where(Message.user_id == user_id, Message.author == Author.USER,
                    Message.status == MessageStatus.COMPLETE, Thread.remember == True)  # noqa: E712
             .order_by(col(Message.id).desc()))
    found: list[str] = []
    for chunk_start in range(0, 20 * limit, 500):  # short texts are many; read on until enough are usable
        rows = session.exec(query.offset(chunk_start).limit(500)).all()
        found += [t for t in voice.usable(rows) if not is_pasted(t)]
        if len(rows) < 500 or len(found) >= limit:
            break
    return found[:limit]


def other_texts(session: Session, *, user_id: int, limit: int = OTHER_TEXTS) -> list[str]:
    """The assistants' replies in the person's history (this one's and imported ones'), newest first; not
    the drafts written in their voice."""
    rows = session.exec(select(Message.content)
                        .where(Message.user_id == user_id, Message.author == Author.ASSISTANT,
                               Message.status == MessageStatus.COMPLETE, Message.draft == False)  # noqa: E712
                        .order_by(col(Message.id).desc()).limit(limit)).all()
    replies = [t for t in voice.usable(rows) if not is_pasted(t)]
    return replies if len(replies) >= MIN_OTHERS else replies + list(BACKGROUND)


def voice_of(engine: Engine, *, user_id: int) -> tuple[voice.Voice, list[str]]:
    """The person's voice and the texts it learned from (newest first); raises voice.TooLittle with what
    to tell them."""
    mine, others = read(engine, lambda s: (own_texts(s, user_id=user_id), other_texts(s, user_id=user_id)))
    mine = voice.usable(mine)  # once more over all of them: the voice's own scores follow this list
    if len(mine) < voice.MIN_TEXTS:
        raise voice.TooLittle(too_little(len(mine)))
    return voice.learn(mine, others), mine


def exemplars(learned: voice.Voice, texts: Sequence[str], recalled: Sequence[str], *, n: int) -> list[str]:
    """The texts that sound most like the person, then the recalled ones that resemble the request: the
    draft follows how they write, and how they write about this."""
    chosen = [texts[i] for i in learned.representative(EXAMPLES_FOR_STYLE)]
    for text in recalled:
        if len(chosen) >= n:
            break
        if text not in chosen:
            chosen.append(text)
    for i in learned.representative(n):
        if len(chosen) >= n:
            break
        if texts[i] not in chosen:
            chosen.append(texts[i])
    return chosen[:n]
