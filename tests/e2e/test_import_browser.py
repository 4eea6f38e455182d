"""Bringing a history from the profile panel, in a real browser against the app with the fake model:
upload, the summary, the first profile appearing, the imported conversation in the chat list, undo.

Screenshots land in artifacts/e2e/import-*.png.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.people import Person

pytestmark = pytest.mark.e2e
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "imports"
LEARNED = "Writes casually, in lower case, and laughs at their own trouble."


def test_a_history_brought_in_the_panel_becomes_a_profile_and_goes_away_on_undo(browser, app, fake):
    from playwright.sync_api import expect

    ivy = Person(browser, app, "ivy")
    try:
        ivy.sign_in()
        ivy.send("/profile")
        panel = ivy.page.locator("#side-view-content #profile-panel")
        expect(panel.locator("#imports")).to_be_visible(timeout=15_000)
        expect(panel).to_contain_text("Nothing is held about you yet")
        fake.script("hypotheses", json.dumps({"hypotheses": [
            {"action": "add", "facet": "communication", "text": LEARNED, "evidence": [1], "confidence": 0.7,
             "entry": None, "stated": False}]}))

        panel.locator("#import-file").set_input_files(str(FIXTURES / "chatgpt-conversations.json"))
        summary = panel.locator("#import-summary")
        expect(summary).to_contain_text("chatgpt-conversations.json: 1 conversation (3 messages)", timeout=30_000)
        expect(summary).to_contain_text("skipped: conversations with nothing you wrote (1)")
        # The first profile appears in the panel when its job is done, without reopening it.
        expect(panel.locator("#import-profile")).to_contain_text("1 profile entry learned", timeout=30_000)
        expect(panel.locator("#facet-communication")).to_contain_text(LEARNED, timeout=15_000)
        expect(panel.locator("#import-list li")).to_have_count(1)
        expect(panel.locator("#import-list li")).to_contain_text("· done")
        panel.locator("#imports").scroll_into_view_if_needed()
        ivy.shot("import-01-summary-and-profile")

        # The entry says why: the imported message it rests on is the person's own.
        entry = panel.locator("#facet-communication li").first
        entry.locator("[id^=why-]").click()
        expect(entry.locator("[id^=evidence-message-]")).to_contain_text("my starter smells like nail polish")
        ivy.shot("import-02-why")

        # The conversation is in the chat list (reloaded by the link) and opens like any other.
        panel.locator("#import-open-list").click()
        conversation = ivy.page.locator("#thread-history a").filter(has_text="Sourdough starter help")
        expect(conversation).to_be_visible(timeout=15_000)
        conversation.click()
        expect(ivy.page.locator('.step[data-step-type="user_message"]').first).to_contain_text(
            "my starter smells like nail polish", timeout=15_000)
        expect(ivy.page.locator(".step").filter(has_text="That acetone smell means it is hungry")).to_be_visible()
        # The other assistant's reply wears an "imported" avatar, never hyperalign's.
        expect(ivy.page.locator('img[src*="/avatars/ChatGPT"]')).to_have_count(1)
        assert "Imported from ChatGPT" in ivy.page.request.get(app.base_url + "/avatars/ChatGPT").text()
        # Chainlit scrolls the newest question to the top; bring the first back for the picture.
        ivy.page.locator('.step[data-step-type="user_message"]').first.scroll_into_view_if_needed()
        ivy.shot("import-03-resumed")
        ivy.send("/profile")
        expect(panel.locator("#import-list li")).to_have_count(1, timeout=15_000)

        panel.locator("[id^=import-undo-]").click()
        expect(panel.locator("#import-undone")).to_contain_text("3 messages removed, 1 profile entry withdrawn",
                                                                timeout=15_000)
        expect(panel.locator("#facet-communication")).to_have_count(0)
        expect(panel.locator("#import-list li")).to_contain_text("· undone")
        expect(panel.locator("[id^=import-undo-]")).to_have_count(0)
        panel.locator("#imports").scroll_into_view_if_needed()
        ivy.shot("import-04-undone")
        # The conversation on screen was the import's: the link reloads the chat list without it.
        panel.locator("#import-open-list").click()
        expect(ivy.page.locator("#chat-input")).to_be_visible(timeout=15_000)
        expect(ivy.page.locator("#thread-history a").filter(has_text="Sourdough starter help")).to_have_count(0)
        ivy.send("/profile")

        # A file of another kind is refused at once, with what was expected.
        holiday = Path(app.workdir) / "holiday.jpg"
        holiday.write_bytes(b"\xff\xd8\xff")
        panel.locator("#import-file").set_input_files(str(holiday))
        expect(panel.locator("#import-error")).to_contain_text("expected a ChatGPT or Claude export", timeout=15_000)
        ivy.shot("import-05-refused")
    finally:
        ivy.close()
