"""A newcomer's first minutes, on a desktop and on a phone: the sign-in page, the first screen of the
chat (with a model and offline), and leaving again with "Forget me".

Screenshots land in artifacts/e2e/first-run-*.png.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import httpx
import pytest

from assistant.llm import OFFLINE_NOTICE
from tests.appserver import AppServer, fresh
from tests.e2e.people import DESKTOP, LAST_REPLY, PHONE, Person, add_operator

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
ERRORS = json.loads((ROOT / ".chainlit" / "translations" / "en-US.json").read_text())["auth"]["login"]["errors"]
SCREENS = pytest.mark.parametrize("screen", ["desktop", "phone"])
VIEWPORTS = {"desktop": DESKTOP, "phone": PHONE}


@pytest.fixture(scope="module")
def closed_app():
    workdir = Path(tempfile.mkdtemp(prefix="hyperalign-e2e-closed-"))
    server = AppServer(workdir, extra_env={"HYPERALIGN_REGISTRATION": "closed"}).start()
    yield server
    server.stop()
    shutil.rmtree(workdir, ignore_errors=True)


def try_sign_in(person: Person, name: str, password: str) -> None:
    person.page.goto(person.server.base_url + "/login")
    person.page.locator("#email").fill(name)
    person.page.locator("#password").fill(password)
    person.page.locator("button[type=submit]").click()


def expect_refusal(person: Person, code: str) -> None:
    """The page says the code's one sentence in place, and nothing raw: no toast, no status text."""
    from playwright.sync_api import expect

    expect(person.page.get_by_role("alert")).to_have_text(ERRORS[code])
    person.page.wait_for_timeout(500)  # a toast would have appeared by now
    assert person.page.locator("[data-sonner-toast]").count() == 0
    body = person.page.locator("body").inner_text()
    assert "Unauthorized" not in body and code not in body and "Unable to sign in" not in body


@SCREENS
def test_the_sign_in_page_says_the_rules_first_and_each_refusal_in_one_sentence(browser, offline_app, screen):
    """Before: no rules on the page, every refusal read "Unable to sign in" beside a toast such as
    "Unauthorized: passwordinvalid"."""
    from playwright.sync_api import expect

    taken = f"taken-{screen}"
    with httpx.Client() as client:
        assert offline_app.login(client, taken, "a-good-password").status_code == 200
    newcomer = Person(browser, offline_app, f"new-{screen}", viewport=VIEWPORTS[screen])
    newcomer.page.goto(offline_app.base_url + "/login")
    rules = newcomer.page.locator("#signin-rules")
    expect(rules).to_contain_text("a username nobody has taken")
    expect(rules).to_contain_text("at least 8 characters")
    expect(rules).to_be_in_viewport()
    newcomer.shot(f"first-run-login-{screen}")

    try_sign_in(newcomer, newcomer.name, "short")
    expect_refusal(newcomer, "passwordinvalid")
    newcomer.shot(f"first-run-login-short-password-{screen}")
    try_sign_in(newcomer, "x", "a-good-password")
    expect_refusal(newcomer, "usernameinvalid")
    try_sign_in(newcomer, taken, "not-the-password")
    expect_refusal(newcomer, "credentialssignin")

    # Past the per-account limit (10 wrong passwords) even the right password waits: 429.
    with httpx.Client() as client:
        for attempt in range(10):
            offline_app.login(client, taken, f"wrong-guess-{attempt}")
    try_sign_in(newcomer, taken, "a-good-password")
    expect_refusal(newcomer, "toomanyattempts")
    newcomer.shot(f"first-run-login-throttled-{screen}")

    newcomer.sign_in()  # and the right way in still works
    newcomer.close()


@SCREENS
def test_with_closed_registration_the_sign_in_page_never_invites_a_new_name(browser, closed_app, screen):
    from playwright.sync_api import expect

    stranger = Person(browser, closed_app, f"stranger-{screen}", viewport=VIEWPORTS[screen])
    stranger.page.goto(closed_app.base_url + "/login")
    expect(stranger.page.locator("#signin-rules")).to_contain_text("created by the operator")
    try_sign_in(stranger, stranger.name, "a-good-password")
    expect_refusal(stranger, "credentialsclosed")
    body = stranger.page.locator("body").inner_text()
    assert "creates your account" not in body and "New here" not in body
    stranger.shot(f"first-run-login-closed-{screen}")
    stranger.close()


@SCREENS
def test_after_forget_me_the_sign_in_page_says_it_is_done_and_what_was_erased(browser, offline_app, screen):
    from playwright.sync_api import expect

    leaver = Person(browser, offline_app, f"leaver-{screen}", viewport=VIEWPORTS[screen])
    leaver.sign_in()
    leaver.send("/profile")
    panel = leaver.page.locator("#side-view-content #profile-panel")
    panel.locator("#forget-confirm").fill(leaver.name)
    panel.locator("#forget-submit").click()
    expect(leaver.page).to_have_url(offline_app.base_url + "/login?erased=1")
    notice = leaver.page.locator("#erased-notice")
    expect(notice).to_contain_text("erased")
    for erased in ("conversations", "profile", "vectors", "signed out"):
        expect(notice).to_contain_text(erased)
    expect(notice).to_be_in_viewport()
    leaver.shot(f"first-run-forgotten-{screen}")

    # The flag picks one fixed text; anything else in the address shows nothing.
    leaver.page.goto(offline_app.base_url + "/login?erased=%3Cb%3Eyour+bank%3C%2Fb%3E")
    expect(leaver.page.locator("#signin-rules")).to_be_visible()
    assert leaver.page.locator("#erased-notice").count() == 0
    leaver.close()


@SCREENS
def test_the_first_screen_has_the_buttons_and_starters_that_show_what_is_different(browser, app, fake, screen):
    """Before: with a model connected the first screen was a logo and a box; on a phone the buttons
    were bare icons."""
    from playwright.sync_api import expect

    operator = Person(browser, app, add_operator(app, fresh("opal")), viewport=VIEWPORTS[screen])
    operator.sign_in()
    for button in ("#command-Profile", "#command-Console"):
        expect(operator.page.locator(button)).to_be_visible()
    expect(operator.page.locator("#command-Profile")).to_have_text("Profile")  # its name, on a phone too
    starters = operator.page.locator("#starters")
    expect(starters).to_contain_text("What do you remember about me?")
    expect(starters).to_contain_text("Show what you have learned about me")
    assert operator.page.locator(".step").count() == 0  # all this before any message
    operator.shot(f"first-run-welcome-{screen}")

    user = Person(browser, app, f"uma-{screen}", viewport=VIEWPORTS[screen])
    user.sign_in()
    expect(user.page.locator("#command-Profile")).to_be_visible()
    user.page.wait_for_timeout(1_000)
    assert user.page.locator("#command-Console").count() == 0  # operators only
    user.page.locator("#starters").get_by_text("Show what you have learned about me").click()
    expect(user.page.locator("#side-view-content #profile-panel")).to_be_visible(timeout=15_000)
    assert user.page.locator(".step").count() == 0  # beside the chat: no message was sent for it
    user.shot(f"first-run-profile-starter-{screen}")

    fake.script("chat", "You told me nothing yet; tell me about yourself and I will remember it.")
    operator.page.locator("#starters").get_by_text("What do you remember about me?").click()
    expect(operator.page.locator(LAST_REPLY).last).to_contain_text("I will remember it", timeout=15_000)
    asked = fake.requests_for("chat")[-1].body["messages"][-1]["content"]
    assert asked == "What do you remember about me from our earlier conversations?"
    operator.close()
    user.close()


@SCREENS
def test_offline_mode_is_said_once_on_the_first_screen_and_later_replies_are_short(browser, offline_app, screen):
    """Before: every reply repeated the six-line notice, and on a phone the first screen's notice ran
    off both edges of the screen."""
    from playwright.sync_api import expect

    newcomer = Person(browser, offline_app, f"off-{screen}", viewport=VIEWPORTS[screen])
    newcomer.sign_in()
    starter = newcomer.page.locator("#starters").get_by_text(OFFLINE_NOTICE)
    expect(starter).to_be_visible(timeout=15_000)
    box, width = starter.bounding_box(), VIEWPORTS[screen]["width"]
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width, box  # readable whole
    newcomer.shot(f"first-run-offline-welcome-{screen}")

    newcomer.send("Hello, who are you?")
    first = newcomer.page.locator(LAST_REPLY).last
    expect(first).to_contain_text("What already works", timeout=15_000)
    expect(first).to_contain_text("OPENAI_BASE_URL")
    newcomer.send("Can you help me plan my week?")
    replies = newcomer.page.locator(LAST_REPLY)
    expect(replies).to_have_count(2, timeout=15_000)
    second = replies.nth(1)
    expect(second).to_contain_text(OFFLINE_NOTICE)
    expect(second).not_to_contain_text("What already works")
    assert len(second.inner_text()) < 200
    newcomer.shot(f"first-run-offline-replies-{screen}")
    newcomer.close()
