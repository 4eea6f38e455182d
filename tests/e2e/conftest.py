"""The browser tests' shared parts: Debian's Chromium, the fake model, the app on it and the app offline.

The model and the apps last the whole session: the browser modules run one after another on one worker
(tests/conftest.py), and starting an app costs about 8 s of both cores. Tests use names of their own
(`tests.appserver.fresh` where a name recurs), count on no empty database, and make the operators they
need (`people.add_operator`): the first account, which sign-up would make operator, is taken at start."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from tests.appserver import AppServer
from tests.conftest import unavailable
from tests.e2e.people import ARGS, ARTIFACTS, CHROMIUM, add_operator
from tests.fakellm import FakeLLM, comply


# Per module, not per session: while Playwright's sync API is running, the main thread counts as
# inside an event loop, and the worker goes on to other modules' async tests after the browser ones.
@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        unavailable(f"{CHROMIUM} not found (apt-get install chromium)")
    try:
        from playwright import sync_api
    except ImportError:
        unavailable("playwright is not installed (pip install -e '.[test]')")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    # Under a loaded 2-core machine (the app's model warm-up, PostgreSQL, the browser) Chainlit can
    # take longer than Playwright's 5 s default to render a restored thread.
    sync_api.expect.set_options(timeout=15_000)
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield launched
        launched.close()


@pytest.fixture(scope="session")
def fake():
    llm = FakeLLM()
    llm.respond("safety", comply)
    try:
        yield llm
        assert not (left := llm.pending()), f"scripted replies never used, per purpose: {left}"
    finally:
        llm.close()


@pytest.fixture(autouse=True)
def script_used_up(request):
    """A test that shares the module's fake uses every reply it scripted; what it left is cleared either
    way, so that the next test does not receive it. Unscripted calls are not counted against a test here:
    the app's background hypothesis jobs call the model when they like, and are answered HTTP 500."""
    yield
    if "fake" in request.fixturenames:
        fake = request.getfixturevalue("fake")
        left = fake.pending()
        fake.clear()
        assert not left, f"scripted replies never used, per purpose: {left}"


def _started(server: AppServer) -> AppServer:
    server.start()
    # The embedding model loads in the background (several seconds of both cores): let it finish so
    # the browser tests are not timed against it and recall has its dense side.
    server.wait_for_log("embedding model")
    add_operator(server, "first-operator")
    return server


@pytest.fixture(scope="session")
def app(fake):
    workdir = Path(tempfile.mkdtemp(prefix="hyperalign-e2e-"))
    server = _started(AppServer(workdir, llm_base_url=fake.base_url))
    yield server
    server.stop()
    shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def offline_app():
    workdir = Path(tempfile.mkdtemp(prefix="hyperalign-e2e-offline-"))
    server = _started(AppServer(workdir))
    yield server
    server.stop()
    shutil.rmtree(workdir, ignore_errors=True)
