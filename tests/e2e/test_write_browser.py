""""Write as me" in the browser: the composer's Write button, the starter and "/write" typed; first for
someone with too little writing (told why, nothing drafted), then for someone with a history (a draft
in their voice, the verifier's verdict beside it), on a desktop and on a phone.

Screenshots land in artifacts/e2e/write-*.png.
"""

from __future__ import annotations

import random

import pytest

from tests.e2e.people import LAST_REPLY, PHONE, Person, app_engine
from tests.voices import TOPICS, WRITERS

pytestmark = pytest.mark.e2e
ADA, BO = WRITERS[0], WRITERS[1]
VERDICT = "sounds like you: "


def seed_history(server, name: str, *, own: int) -> None:
    """`own` texts of theirs in Ada's manner, each answered in the assistant's (Bo's) manner."""
    from memory import store
    from memory.db import write
    from memory.models import Author

    rng = random.Random(name)

    def chat(session):
        user = store.get_user(session, identifier=name)
        store.upsert_thread(session, thread_id=f"{name}-old", user_id=user.id, name="Earlier")
        for i in range(own):
            for author, text in ((Author.USER, ADA.text(rng)), (Author.ASSISTANT, BO.text(rng))):
                store.save_message(session, step_id=f"{name}-{author}-{i}", thread_id=f"{name}-old", user_id=user.id,
                                   author=author, content=text)

    engine = app_engine(server)
    try:
        write(engine, chat)
    finally:
        engine.dispose()


def test_write_as_me_explains_too_little_writing_then_drafts_in_the_persons_voice(browser, app, fake):
    from playwright.sync_api import expect

    wren = Person(browser, app, "wren-writes")
    wren.sign_in()
    expect(wren.page.locator("#command-Write")).to_be_visible()
    expect(wren.page.locator("#starters")).to_contain_text("Write something as me")
    # The button picks the command for the next message; too little of her writing exists yet.
    asked_before = len(fake.requests_for("chat"))  # the fake is shared with the other browser modules
    wren.page.locator("#command-Write").click()
    wren.send("a note to Sam saying I can't come on Friday")
    notice = wren.page.get_by_text("needs at least 3 texts of yours")
    expect(notice).to_be_visible(timeout=15_000)
    expect(notice).to_contain_text("bring your history")
    wren.shot("write-01-too-little")
    assert len(fake.requests_for("chat")) == asked_before  # nothing was drafted, and no model was asked

    seed_history(app, "wren-writes", own=8)
    wren.new_chat()
    draft = ADA.text(random.Random(4), TOPICS[3])
    fake.script("chat", draft)
    wren.page.locator("#starters").get_by_text("Write something as me").click()
    expect(wren.page.locator(LAST_REPLY).filter(has_text=draft[:40])).to_be_visible(timeout=20_000)
    verdict = wren.page.locator(LAST_REPLY).last  # beside the draft, after it
    expect(verdict).to_contain_text(VERDICT, timeout=15_000)
    expect(verdict).to_contain_text("your own texts score")
    wren.shot("write-02-draft-from-the-starter")
    asked = fake.requests_for("chat")[-1].body["messages"]
    assert "in their voice" in asked[0]["content"] and "Friday" in asked[-1]["content"]

    # Typed, on a phone: "/write" and what to draft.
    phone = Person(browser, app, "wren-writes", viewport=PHONE)
    phone.sign_in()
    fake.script("chat", ADA.text(random.Random(5), TOPICS[4]))
    phone.send("/write a reply to the book club about next month")
    expect(phone.page.get_by_text(VERDICT)).to_be_visible(timeout=20_000)
    phone.shot("write-03-typed-on-a-phone")
    assert fake.requests_for("chat")[-1].body["messages"][-1]["content"] == "a reply to the book club about next month"
    wren.close()
    phone.close()
