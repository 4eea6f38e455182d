"""One person in the browser, and what the tests read beside the page."""

from __future__ import annotations

import time
from pathlib import Path

from tests.appserver import AppServer

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "e2e"
LAST_REPLY = '.step[data-step-type="assistant_message"] .message-content'
DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}


class Person:
    """One browser context: one person with their own cookies."""

    def __init__(self, browser, server: AppServer, name: str, viewport: dict | None = None) -> None:
        self.server, self.name = server, name
        self.blocked: list[str] = []
        self.context = browser.new_context(viewport=viewport or DESKTOP)
        self.context.route("**/*", self._only_our_origin)
        self.page = self.context.new_page()

    def _only_our_origin(self, route) -> None:
        if route.request.url.startswith(self.server.base_url):
            route.continue_()
        else:
            self.blocked.append(route.request.url)
            route.abort()

    def sign_in(self, password: str = "a-good-password") -> None:
        from playwright.sync_api import expect

        self.page.goto(self.server.base_url + "/login")
        self.page.locator("#email").fill(self.name)
        self.page.locator("#password").fill(password)
        self.page.locator("button[type=submit]").click()
        expect(self.page.locator("#chat-input")).to_be_visible(timeout=30_000)

    def send(self, text: str) -> None:
        """Type `text` and send it.

        After a new chat's first message Chainlit re-fetches the thread list and only then moves the page
        from "/" to "/thread/<id>"; that move builds a new composer and drops what was typed into the old
        one (seen in CI under load, after the first reply was already shown). So when the text is gone
        before it could be sent, it is typed again; text still there with the button disabled is a real
        fault and fails."""
        from playwright.sync_api import TimeoutError as Timeout
        from playwright.sync_api import expect

        composer, submit = self.page.locator("#chat-input"), self.page.locator("#chat-submit")
        for _ in range(3):
            composer.click()
            self.page.keyboard.insert_text(text)  # one input event, as a paste would be, not a key per letter
            try:
                expect(submit).to_be_enabled(timeout=15_000)  # socket ready
                submit.click(timeout=5_000)
            except (Timeout, AssertionError):
                if composer.inner_text().strip():
                    raise
                continue
            expect(composer).to_have_text("", timeout=5_000)
            return
        raise AssertionError(f"{self.name}: the composer lost the typed message three times")

    def new_chat(self) -> None:
        """Start a new chat (the button, then the dialog's confirm).

        Like the composer (`send`), the dialog is lost when Chainlit moves a new chat's page from "/" to
        "/thread/<id>" while it is open (seen in CI under load): the button is pressed again then."""
        from playwright.sync_api import TimeoutError as Timeout

        for _ in range(3):
            self.page.locator("#new-chat-button").click()
            try:
                self.page.locator("#confirm").click(timeout=5_000)
                return
            except Timeout:
                continue
        raise AssertionError(f"{self.name}: the new-chat dialog never stayed open")

    def shot(self, name: str) -> None:
        # Chainlit's fade-ins are CSS animations: Playwright finishes them for the picture instead of
        # the test waiting them out.
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True, animations="disabled")

    def close(self) -> None:
        self.context.close()


def app_engine(server: AppServer):
    """An engine onto the running app's own SQLite database, to read or seed it beside the app."""
    from memory.db import make_engine

    return make_engine(f"sqlite:///{server.workdir / 'data' / 'hyperalign.db'}")


def add_operator(server: AppServer, name: str, password: str = "a-good-password") -> str:
    """An operator account written into the running app's database: the browser modules share one app,
    so no test can count on being its first account (the one sign-up makes operator)."""
    from memory import store
    from memory.db import write
    from memory.models import Role

    engine = app_engine(server)
    try:
        write(engine, lambda s: store.create_user(s, identifier=name, password=password, role=Role.OPERATOR))
    finally:
        engine.dispose()
    return name


def app_rows(server: AppServer, sql: str) -> list[tuple]:
    """Rows of the running app's own SQLite database (what it stored, read beside it)."""
    from sqlalchemy import text

    engine = app_engine(server)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(text(sql))]
    finally:
        engine.dispose()


def watch_text(locator, until: str, timeout: float = 20.0) -> list[str]:
    """Every distinct text the locator showed until it contained `until`."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = locator.inner_text() if locator.count() else ""
        if text and (not seen or seen[-1] != text):
            seen.append(text)
        if until in text:
            return seen
        time.sleep(0.05)
    raise AssertionError(f"never showed {until!r}; saw {seen}")
