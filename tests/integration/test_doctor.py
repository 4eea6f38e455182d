"""`hyperalign doctor` and serve's start-up check, against the fake model server in several modes and
real SQLite and PostgreSQL databases."""

import asyncio
import json
import socket

import pytest
from sqlalchemy import text

from assistant import doctor
from assistant.cli.serve import startup_check
from assistant.config import load_settings
from tests.fakellm import LLAMACPP, Reply
from tests.inprocess import hyperalign as run

MODEL = "qwen3:8b"
MISSING_EMBEDDER = "/nonexistent/embedding-model"  # fails fast; the bundled one is checked once below


def answer_json(_body):
    return '{"ok": true}'


@pytest.fixture
def server(fake_llm, monkeypatch):
    """The fake model server as the app's only one, serving MODEL; doctor's calls answered."""
    monkeypatch.setenv("OPENAI_BASE_URL", fake_llm.base_url)
    monkeypatch.setenv("HYPERALIGN_CHAT_MODEL", MODEL)
    monkeypatch.setenv("HYPERALIGN_REQUEST_TIMEOUT", "5")
    monkeypatch.setenv("HYPERALIGN_EMBEDDING_MODEL", MISSING_EMBEDDER)
    fake_llm.models = [MODEL]
    fake_llm.respond("doctor", answer_json)
    return fake_llm


def model_rows(quick=False):
    settings = load_settings()
    probes = asyncio.run(doctor.probe_models(settings, quick=quick))
    return doctor.model_server_rows(settings, probes, quick=quick), probes


def row(rows, start):
    (found,) = [r for r in rows if r.name.startswith(start)]
    return found


def closed_port_url():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/v1"


def test_a_ready_installation_prints_a_table_and_a_verdict_and_exits_0(server, monkeypatch):
    monkeypatch.delenv("HYPERALIGN_EMBEDDING_MODEL")  # the bundled model, loaded for real
    server.use("vllm").window = 8192
    result = run("doctor")
    assert result.returncode == 0, result.stdout
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["CHECK", "STATUS", "DETAIL"] and lines[-1] == "verdict: ready"
    for name, words in [("settings", "valid"), ("database", "none yet"), ("embedding model", "384 dimensions"),
                        ("safety spec", "categories"), (f"model {MODEL} (chat, safety, hypotheses)", "listed"),
                        (f"streaming {MODEL}", "ms"), (f"structured output {MODEL}", "json_schema"),
                        ("window chat, safety, hypotheses", "8,192 tokens, as the server says")]:
        assert any(line.startswith(name) and " ok " in line and words in line for line in lines), name
    # Its calls were tiny: a few tokens each, streamed first, then the structured one.
    calls = server.requests_for("doctor")
    assert [c.body.get("stream", False) for c in calls] == [True, False]
    assert all(c.body["max_tokens"] <= 16 for c in calls)  # a server of its own: max_tokens


def test_json_output_and_a_missing_model_exit_1_with_what_to_do(server):
    server.use("ollama").models = ["llama3.1:8b"]
    result = run("doctor", "--json")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["blocking"] is True and report["verdict"].startswith("not ready: 1 blocking problem")
    (missing,) = [c for c in report["checks"] if c["blocking"]]
    assert missing["name"] == f"model {MODEL} (chat, safety, hypotheses)" and missing["status"] == "fail"
    assert "llama3.1:8b" in missing["detail"] and f"ollama pull {MODEL}" in missing["detail"]
    window = next(c for c in report["checks"] if c["name"].startswith("window"))
    assert window["status"] == "warn" and "Ollama does not say" in window["detail"]


def test_a_server_that_is_down_blocks_and_says_so(server, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", closed_port_url())
    result = run("doctor")
    assert result.returncode == 1
    (line,) = [ln for ln in result.stdout.splitlines() if ln.startswith(f"model {MODEL}")]
    assert " FAIL " in line and "no answer from the server" in line and "could not be reached" in line


def test_bad_settings_are_a_blocking_row_not_a_crash(monkeypatch):
    monkeypatch.setenv("HYPERALIGN_REQUEST_TIMEOUT", "soon")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-never-printed")
    result = run("doctor")
    assert result.returncode == 1 and result.stdout.startswith("CHECK")
    assert "HYPERALIGN_REQUEST_TIMEOUT" in result.stdout and "FAIL" in result.stdout
    assert "sk-secret" not in result.stdout + result.stderr


def test_offline_mode_is_a_warning_not_a_failure(monkeypatch):
    monkeypatch.setenv("HYPERALIGN_EMBEDDING_MODEL", MISSING_EMBEDDER)
    result = run("doctor")
    assert result.returncode == 0
    assert any(ln.startswith("model server") and " warn " in ln and "offline mode" in ln
               for ln in result.stdout.splitlines())
    # A broken embedding model is reported, but the app runs without it (lexical recall).
    assert any(ln.startswith("embedding model") and " fail " in ln for ln in result.stdout.splitlines())


@pytest.mark.parametrize(("mode", "structured", "status"), [
    ("vllm", "json_schema", "ok"), ("lmstudio", "json_schema", "ok"), ("llamacpp-old", "json_object only", "ok"),
    (None, "neither json_schema nor JSON mode", "warn"),
], ids=["vllm", "lmstudio", "llamacpp-old", "no-structured-output"])
def test_the_structured_output_mode_that_works_is_found(server, mode, structured, status):
    from dataclasses import replace

    server.use(mode or replace(LLAMACPP, name="no-structured-output", formats=frozenset()))
    rows, _ = model_rows()
    found = row(rows, "structured output")
    assert found.status == status and structured in found.detail


@pytest.mark.parametrize(("mode", "source"), [("vllm", "vLLM /v1/models max_model_len"),
                                              ("llamacpp", "llama.cpp /props n_ctx")])
def test_the_servers_window_is_read_and_passed_on_where_the_setting_is_unset(server, monkeypatch, mode, source):
    server.use(mode).window = 16_384
    rows, probes = model_rows(quick=True)
    assert probes[MODEL].window == 16_384 and probes[MODEL].window_source == source
    assert row(rows, "window").status == "ok" and source in row(rows, "window").detail
    assert doctor.stated_windows(load_settings(), probes) == {
        "HYPERALIGN_CHAT_CONTEXT_TOKENS": "16384", "HYPERALIGN_SAFETY_CONTEXT_TOKENS": "16384",
        "HYPERALIGN_HYPOTHESES_CONTEXT_TOKENS": "16384"}
    # Set larger than the server's: a warning naming both numbers and the fix; the setting is kept.
    monkeypatch.setenv("HYPERALIGN_CHAT_CONTEXT_TOKENS", "32768")
    rows, probes = model_rows(quick=True)
    window = row(rows, "window")
    assert window.status == "warn" and not window.blocking
    assert "32,768" in window.detail and "16,384" in window.detail and "HYPERALIGN_CHAT_CONTEXT_TOKENS=16384" in window.detail
    assert doctor.stated_windows(load_settings(), probes) == {}


def test_a_loading_server_is_busy_not_broken(server):
    server.use("llamacpp")
    server.respond("doctor", None)
    server.script("doctor", Reply(failure="busy"))
    rows, _ = model_rows()
    busy = row(rows, f"calls to {MODEL}")
    assert busy.status == "warn" and not busy.blocking and "busy or still loading" in busy.detail


def test_a_spent_quota_blocks_with_the_providers_reason(server):
    server.use("openai")
    server.respond("doctor", None)
    server.script("doctor", Reply(failure="quota"))
    rows, _ = model_rows()
    spent = row(rows, f"calls to {MODEL}")
    assert spent.blocking and "billing" in spent.detail and "insufficient_quota" in spent.detail


def test_pending_migrations_are_reported_and_not_applied(engine, database_url):
    """On SQLite and PostgreSQL (the engine fixture's two databases)."""
    from memory.db import MIGRATIONS

    last = MIGRATIONS[-1][0]
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM _migrations WHERE name = :name"), {"name": last})
    state = doctor.inspect_database(database_url)
    rows = doctor.database_rows(state)
    assert [(r.name, r.status) for r in rows] == [("database", "ok"), ("migrations", "warn")]
    assert state.pending == (last,) and last in rows[1].detail and not doctor.blocked(rows)
    with engine.connect() as conn:  # doctor applied nothing
        assert last not in set(conn.execute(text("SELECT name FROM _migrations")).scalars())


def test_a_refused_database_url_is_a_row_that_never_shows_its_password(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "mysql://app:hunter2@db.internal/app")  # refused by the settings
    result = run("doctor")
    assert result.returncode == 1 and "DATABASE_URL" in result.stdout
    assert "hunter2" not in result.stdout + result.stderr
    state = doctor.inspect_database("postgresql+psycopg://app:hunter2@db.internal:54x2/app")  # a port not a number
    (found,) = doctor.database_rows(state)
    assert found.blocking and "not a database URL" in found.detail and "hunter2" not in found.detail
    assert doctor.shown_url("https://proxy.example/v1?api-key=secret123") == "https://proxy.example/v1?***"


def test_an_unreachable_database_blocks_without_showing_its_password():
    port = closed_port_url().split(":")[2].split("/")[0]
    state = doctor.inspect_database(f"postgresql+psycopg://app:hunter2@127.0.0.1:{port}/appdb")
    (found,) = doctor.database_rows(state)
    assert found.blocking and "hunter2" not in found.detail and "***" in found.detail


def test_serve_prints_the_quick_check_and_passes_the_servers_window(server, monkeypatch, capsys):
    monkeypatch.setenv("HYPERALIGN_SAFETY_MODEL", "missing-model")
    server.use("vllm").window = 8192
    windows = startup_check(load_settings())
    printed = capsys.readouterr().out
    # The chat model's window goes to the app for chat and hypotheses (the same model); the safety
    # model is missing, which is known now rather than at the first message.
    assert windows == {"HYPERALIGN_CHAT_CONTEXT_TOKENS": "8192", "HYPERALIGN_HYPOTHESES_CONTEXT_TOKENS": "8192"}
    assert "hyperalign: FAIL model missing-model (safety)" in printed
    assert "start-up check: not ready: 1 blocking problem" in printed
    assert server.requests == []  # the quick check makes no model calls


def test_serve_starts_when_the_model_server_is_down(server, monkeypatch, capsys):
    monkeypatch.setenv("OPENAI_BASE_URL", closed_port_url())
    assert startup_check(load_settings()) == {}
    assert "no answer from the server" in capsys.readouterr().out


def test_serve_logs_the_check_and_the_app_starts_anyway(tmp_path, fake_llm):
    """The real `hyperalign serve`: the summary is in its log, and a missing model does not stop it."""
    from tests.appserver import AppServer

    fake_llm.use("llamacpp").window = 8192
    server = AppServer(tmp_path, llm_base_url=fake_llm.base_url,
                       extra_env={"HYPERALIGN_SAFETY_MODEL": "missing-model"}).start()
    try:
        log = server.log()
    finally:
        server.stop()
    assert "HYPERALIGN_CHAT_CONTEXT_TOKENS=8192, as the model server states" in log
    assert "start-up check:" in log and log.index("start-up check:") < log.index("hyperalign: http://")


def test_an_openai_model_is_probed_with_the_limit_its_newer_models_take(server, monkeypatch):
    monkeypatch.setenv("HYPERALIGN_CHAT_MODEL", "gpt-4o-mini")
    server.use("openai").models = ["gpt-4o-mini"]
    rows, _ = model_rows()
    assert row(rows, "structured output").status == "ok"
    assert all("max_tokens" not in c.body and c.body["max_completion_tokens"] <= 16 for c in server.requests_for("doctor"))
