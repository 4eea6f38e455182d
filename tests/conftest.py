"""Shared fixtures: clean environment, databases (SQLite and PostgreSQL), the fake LLM server.

Under CI=true nothing is skipped for a missing database or browser: the test fails instead.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

# Chainlit writes .chainlit/ and .files/ into its app root when first imported; keep them out of
# the checkout. This must happen before any test module imports chainlit.
os.environ["CHAINLIT_APP_ROOT"] = tempfile.mkdtemp(prefix="hyperalign-chainlit-")
atexit.register(shutil.rmtree, os.environ["CHAINLIT_APP_ROOT"], True)
# The suite runs as two pytest workers, each with app servers beside it, on as few as two cores: one
# torch thread per process (inherited by the apps they start) instead of every process spinning one per
# core against the others. Before torch is imported anywhere.
os.environ.setdefault("OMP_NUM_THREADS", "1")

from tests.fakellm import WINDOWS, FakeLLM, comply  # noqa: E402
from tests.pgserver import TempCluster, create_database, drop_database, find_bindir  # noqa: E402

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}

# Variables that would point tests at real services or real data.
_SCRUBBED = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "DATABASE_URL", "CHAINLIT_AUTH_SECRET")


def unavailable(reason: str) -> None:
    """Skip locally; fail in CI, where every part must be present."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: missing parts fail the run instead of skipping)")
    pytest.skip(reason)


@pytest.hookimpl(optionalhook=True)  # pytest-xdist's hook: absent when the suite runs in one process
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """How README's test command (`pytest -n 2`) shares the tests between its two workers.

    A test module stays on one worker with its module fixtures, and the browser modules share one
    worker, so that one Chromium at a time competes for the cores (two at once made them miss their
    timeouts). Collected first, the browser group starts first; the other worker takes the rest module
    by module. (xdist's own `--dist loadgroup` cannot do this under pytest 9, whose test ids no longer
    carry the group suffix it relies on.)"""
    from xdist.scheduler import LoadScopeScheduling

    class BrowsersTogether(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return "browser" if module.startswith("tests/e2e/") else module

    return BrowsersTogether(config, log)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name in _SCRUBBED or name.startswith("HYPERALIGN_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HYPERALIGN_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)  # no stray .env from the checkout


@pytest.fixture
def umask_022() -> Iterator[None]:
    """The usual umask, whatever the runner's: files the app does not protect come out 0644, folders 0755.
    Commands the test starts inherit it."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str | None]:
    """Admin URL of a PostgreSQL server for this session, or None when there is none."""
    given = os.environ.get("HYPERALIGN_TEST_POSTGRES_URL")
    if given:
        yield given
        return
    bindir = find_bindir()
    if bindir is None:
        yield None
        return
    # Not under pytest's tmp_path: its parents are private to root, and the server runs as postgres.
    base = Path(tempfile.mkdtemp(prefix="hyperalign-pg-"))
    cluster = TempCluster(base, bindir)
    try:
        yield cluster.start()
    finally:
        cluster.stop()
        shutil.rmtree(base, ignore_errors=True)


DATABASES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=DATABASES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database of each kind."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
        return
    admin = request.getfixturevalue("postgres_admin_url")
    if admin is None:
        unavailable("PostgreSQL binaries not found (apt-get install postgresql)")
    url = create_database(admin)
    try:
        yield url
    finally:
        drop_database(admin, url)


def _shared_app_on(kind: str, admin_url: str | None) -> Iterator[tuple]:
    from memory import store
    from memory.db import write
    from tests.appserver import served_on

    with served_on(kind, admin_url, "hyperalign-shared-") as (server, engine):
        write(engine, lambda s: store.create_user(s, identifier="first-operator", password="password1"))
        yield server, engine


# One session fixture per database rather than one with the database as its parameter: pytest stops a
# parametrized fixture's app whenever the parameter changes, and a worker running module after module
# alternates SQLite and PostgreSQL, so every module paid two app starts.
@pytest.fixture(scope="session")
def shared_sqlite_app() -> Iterator[tuple]:
    yield from _shared_app_on("sqlite", None)


@pytest.fixture(scope="session")
def shared_postgres_app(postgres_admin_url: str | None) -> Iterator[tuple]:
    if postgres_admin_url is None:
        unavailable("PostgreSQL binaries not found (apt-get install postgresql)")
    yield from _shared_app_on("postgres", postgres_admin_url)


@pytest.fixture(scope="module", params=DATABASES)
def shared_app(request: pytest.FixtureRequest):
    """The running app on one database of each kind, shared by the HTTP test modules: (server, engine).

    Starting the app costs seconds, so every module that needs no special setting uses this one.
    Tests on it use fresh user names (`tests.appserver.fresh`) and never count on an empty database.
    The first account, which sign-up makes the operator, is taken at start, so no test becomes operator
    by running first; a test that needs one makes it (`tests.appserver.signed_in_operator`).
    """
    return request.getfixturevalue(f"shared_{request.param}_app")


@pytest.fixture
def engine(database_url: str):
    from memory.db import make_engine, migrate

    engine = make_engine(database_url)
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def fake_llm() -> Iterator[FakeLLM]:
    """The loopback model. Safety calls answer "comply" unless a test scripts them (scripts come first).

    The test fails at teardown for a call nothing was scripted for and for a scripted reply never used."""
    fake = FakeLLM()
    fake.respond("safety", comply)
    try:
        yield fake
        assert not (problems := fake.problems()), problems
    finally:
        fake.close()


@pytest.fixture
async def gateway(fake_llm):
    """The real gateway onto the loopback model, every purpose on "fake"; no retries of its own."""
    from assistant.llm import OpenAIGateway, Purpose
    from tests.fakellm import WINDOWS

    built = OpenAIGateway(api_key=None, base_url=fake_llm.base_url, models=dict.fromkeys(Purpose, "fake"),
                          windows=WINDOWS, timeout=5, max_retries=0)
    yield built
    await built.close()


@pytest.fixture(scope="session")
def embedder():
    """The real bundled model, loaded once for the whole session (about 8 s)."""
    from memory.embed import Embedder

    model = Embedder()
    model.load()
    return model


@pytest.fixture
def indexes(engine, embedder, tmp_path):
    from memory.index import UserIndexes

    return UserIndexes(engine, model=embedder.model_name, dimension=lambda: embedder.dimension, capacity=8,
                       folder=tmp_path / "indexes")


@pytest.fixture
async def complete(fake_llm):
    """The gateway's whole-answer call for the hypotheses purpose, against the fake model."""
    from assistant.llm import OpenAIGateway, Purpose

    gateway = OpenAIGateway(api_key=None, base_url=fake_llm.base_url, models=dict.fromkeys(Purpose, "fake"),
                            windows=WINDOWS, timeout=5, max_retries=0)

    async def call(messages, schema):
        return await gateway.complete(messages, purpose=Purpose.HYPOTHESES, json_schema=schema)

    yield call
    await gateway.close()
