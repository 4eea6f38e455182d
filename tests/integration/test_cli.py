"""The `hyperalign` command, run as a user runs it, against the app's own data directory.

Commands run in this process (tests/inprocess.py); the entry points and `serve` run as real processes."""

import stat
import subprocess
import sys

import pytest

from assistant.accounts import sign_in
from assistant.config import Registration, load_settings
from assistant.wiring import build_engine
from tests.appserver import HYPERALIGN
from tests.inprocess import hyperalign as run


# The three ways to start the command; each must reach every command and report its exit code.
ENTRY_POINTS = {
    "console script": [str(HYPERALIGN)],
    "python -m assistant.cli": [sys.executable, "-m", "assistant.cli"],
    "python -m assistant": [sys.executable, "-m", "assistant"],
}


@pytest.mark.parametrize("command", ENTRY_POINTS.values(), ids=list(ENTRY_POINTS))
def test_each_entry_point_runs_the_command_and_reports_its_exit_code(command):
    engine = build_engine(load_settings())
    sign_in(engine, registration=Registration.OPEN, username="zoe", password="password1")
    engine.dispose()
    listed = subprocess.run([*command, "users", "list"], capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    assert "zoe" in listed.stdout
    refused = subprocess.run([*command, "users", "add", "erin"], capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "--password-stdin" in refused.stderr


def test_users_add_and_list_share_the_apps_database():
    engine = build_engine(load_settings())  # what the app opens with the same settings
    sign_in(engine, registration=Registration.OPEN, username="first", password="password1")
    added = run("users", "add", "carol", "--operator", "--password-stdin", stdin="a-long-password\n")
    assert added.returncode == 0, added.stderr
    assert "created carol (operator)" in added.stdout
    listing = run("users", "list").stdout
    assert "first" in listing and "carol" in listing and "operator" in listing
    # the account works for signing in, even with registration closed
    assert sign_in(engine, registration=Registration.CLOSED, username="carol", password="a-long-password")
    engine.dispose()


def test_bad_input_is_refused_with_a_message_and_exit_code_2():
    short = run("users", "add", "dave", "--password-stdin", stdin="short\n")
    assert short.returncode == 2 and "8 to 1024 characters" in short.stderr
    bad_name = run("users", "add", "x" * 500, "--password-stdin", stdin="password123\n")
    assert bad_name.returncode == 2 and "3 to 32 characters" in bad_name.stderr
    no_tty = run("users", "add", "erin")
    assert no_tty.returncode == 2 and "--password-stdin" in no_tty.stderr


def test_a_bad_setting_stops_every_command_with_the_variables_name(monkeypatch):
    monkeypatch.setenv("HYPERALIGN_REQUEST_TIMEOUT", "soon")
    result = run("users", "list")
    assert result.returncode == 2 and "HYPERALIGN_REQUEST_TIMEOUT" in result.stderr


def test_serve_ignores_chainlits_generic_flags_so_ci_true_stays_offline(tmp_path):
    """Chainlit reads CI/DEBUG as its own flags; in CI mode it would invent an OPENAI_API_KEY."""
    import httpx

    from tests.appserver import AppServer

    server = AppServer(tmp_path, extra_env={"CI": "true", "DEBUG": "1"}).start()
    try:
        with httpx.Client(base_url=server.base_url) as client:
            assert server.login(client, "offline-check", "password1").status_code == 200
            starters = client.get("/project/settings", params={"language": "en-US"}).json()["starters"]
        assert [s["label"] for s in starters][0].startswith("Offline mode")
        assert "model: offline mode" in server.log()
    finally:
        server.stop()


def test_bench_recall_prints_its_table_on_locomo_format_data(tmp_path):
    import json

    from tests.unit.test_bench_parts import sample

    path = tmp_path / "tiny-locomo.json"
    path.write_text(json.dumps(sample()))
    made = run("bench", "make-recall-set", str(tmp_path / "prefs.json"), "--people", "1", "--seed", "3")
    assert made.returncode == 0 and "1 conversations" in made.stdout, made.stderr
    result = run("bench", "recall", "--locomo", str(path), str(tmp_path / "prefs.json"), "--json")
    assert result.returncode == 0, result.stderr
    both = json.loads(result.stdout)
    assert set(both) == {"tiny-locomo.json", "prefs.json"}  # side by side, each under its file's name
    figures = both["tiny-locomo.json"]
    assert set(figures) >= {"lexical", "dense", "hybrid", "latency_ms", "unscored_questions"}
    assert figures["hybrid"]["single-hop"]["R@1"] == 1.0  # "What instrument?" -> the cello turn
    assert figures["hybrid"]["overall"]["n"] == 2 and figures["unscored_questions"] == 1
    assert both["prefs.json"]["hybrid"]["overall"]["n"] >= 10
    table = run("bench", "recall", str(path), "--floor", "0.9").stdout
    assert "overall" in table and "hybrid R@5" in table and "p95" in table and "tiny-locomo.json" in table
    missing = run("bench", "recall", "--locomo", str(tmp_path / "nope.json"))
    assert missing.returncode == 2 and "is not a file" in missing.stderr
    assert run("bench", "recall").returncode == 2  # nothing to measure is said, not run


def test_reindex_embeds_what_lacks_a_vector_with_a_progress_bar():
    from memory import store
    from memory.db import write
    from memory.models import Author

    engine = build_engine(load_settings())
    alice = sign_in(engine, registration=Registration.OPEN, username="alice", password="password1")

    def chat(session):
        store.upsert_thread(session, thread_id="t", user_id=alice.id)
        for i in range(5):
            store.save_message(session, step_id=f"s{i}", thread_id="t", user_id=alice.id, author=Author.USER,
                               content=f"message number {i}")

    write(engine, chat)
    engine.dispose()
    first = run("reindex", "--user", "alice")
    assert first.returncode == 0, first.stderr
    assert "re-embedded 5 messages" in first.stdout and "5/5" in first.stderr
    assert "re-embedded 0 messages" in run("reindex").stdout
    unknown = run("reindex", "--user", "nobody")
    assert unknown.returncode == 2 and "no user named 'nobody'" in unknown.stderr


def ada_with_three_texts(*, minutes_ago: float = 0, queued: bool = False) -> None:
    """Ada, in the settings' database, with three substantive messages written `minutes_ago` (and a queued job)."""
    from datetime import timedelta

    from hypotheses.job import enqueue
    from memory import store
    from memory.db import write
    from memory.models import Author, utcnow

    engine = build_engine(load_settings())
    ada = sign_in(engine, registration=Registration.OPEN, username="ada", password="password1")

    def chat(session):
        store.upsert_thread(session, thread_id="t", user_id=ada.id)
        for i, content in enumerate(["I always sketch a map before I write any code.",
                                     "Give me the short version first, please, then details.",
                                     "Concrete examples help me far more than theory does."]):
            store.save_message(session, step_id=f"s{i}", thread_id="t", user_id=ada.id, author=Author.USER,
                               content=content, created_at=utcnow() - timedelta(minutes=minutes_ago))
        if queued:
            enqueue(session, user_id=ada.id, trigger="messages")

    write(engine, chat)
    engine.dispose()


def test_profile_infer_then_show(monkeypatch, fake_llm):
    import json

    ada_with_three_texts()
    assert "needs a language model" in run("profile", "infer", "ada").stderr
    monkeypatch.setenv("OPENAI_BASE_URL", fake_llm.base_url)
    monkeypatch.setenv("HYPERALIGN_MAX_RETRIES", "0")
    fake_llm.script("hypotheses", json.dumps({"hypotheses": [
        {"action": "add", "facet": "communication", "text": "Plans visually before writing.", "evidence": [1],
         "confidence": 0.8, "entry": None, "stated": False}]}))
    inferred = run("profile", "infer", "ada")
    assert inferred.returncode == 0, inferred.stderr
    assert "1 changes" in inferred.stdout and "Plans visually before writing." in inferred.stdout
    shown = run("profile", "show", "ada").stdout
    assert "1 active" in shown and "communication" in shown and "Plans visually before writing." in shown
    assert "recent jobs" in shown and "done command: 3 samples, 1 changes, 1 calls" in shown
    assert run("profile", "show", "nobody").returncode == 2


def test_worker_once_runs_the_queued_jobs_and_needs_a_model(monkeypatch, fake_llm):
    import json

    ada_with_three_texts(minutes_ago=10, queued=True)  # settled: a worker's round embeds them
    assert "need a language model" in run("worker", "--once").stderr
    monkeypatch.setenv("OPENAI_BASE_URL", fake_llm.base_url)
    monkeypatch.setenv("HYPERALIGN_MAX_RETRIES", "0")
    fake_llm.script("hypotheses", json.dumps({"hypotheses": [
        {"action": "add", "facet": "communication", "text": "Plans visually before writing.", "evidence": [1],
         "confidence": 0.8, "entry": None, "stated": False}]}))
    ran = run("worker", "--once")
    assert ran.returncode == 0, ran.stderr
    assert "worker: 1 jobs run, 0 taken by others, 3 messages embedded" in ran.stdout
    assert "Plans visually before writing." in run("profile", "show", "ada").stdout


def test_bench_import_prints_speed_memory_and_the_time_to_a_first_profile():
    import json

    result = run("bench", "import", "--sizes", "300", "--latency-ms", "0", "--json")
    assert result.returncode == 0, result.stderr
    (figures,) = json.loads(result.stdout)["sizes"]
    assert (figures["messages"], figures["conversations"]) == (300, 15)
    assert figures["messages_per_s"] > 0 and figures["profile_entries"] == 1 and figures["profile_samples"] > 0
    assert figures["peak_rss_mb"] >= figures["peak_rss_storing_mb"] >= figures["rss_before_mb"] > 0
    assert figures["first_profile_s"] >= figures["read_and_store_s"] and figures["undo_s"] >= 0


def test_bench_inference_prints_calls_per_message_and_the_profile_budget():
    import json

    result = run("bench", "inference", "--messages", "30", "--json")
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert figures["calls_per_user_message"]["chat"] == figures["calls_per_user_message"]["safety"] == 1.0
    assert 0 < figures["calls_per_user_message"]["hypotheses"] <= 0.25
    assert figures["profile_block_tokens"]["max"] <= figures["profile_block_tokens"]["budget"]


def test_profile_export_and_forget_for_operators(tmp_path, umask_022):
    import json

    from memory import store
    from memory.db import read, write
    from memory.models import Author, ProfileEntry

    engine = build_engine(load_settings())
    ivy = sign_in(engine, registration=Registration.OPEN, username="ivy", password="password1")
    sign_in(engine, registration=Registration.OPEN, username="jon", password="password1")

    def chat(session):
        store.upsert_thread(session, thread_id="ivy-t", user_id=ivy.id, name="garden")
        store.save_message(session, step_id="ivy-m", thread_id="ivy-t", user_id=ivy.id, author=Author.USER,
                           content="My tomatoes finally ripened this week.")
        session.add(ProfileEntry(user_id=ivy.id, facet="preference", text="Grows tomatoes."))

    write(engine, chat)
    exported = run("profile", "export", "ivy", "--out", str(tmp_path / "ivy.json"))
    assert exported.returncode == 0 and "1 threads, 1 profile entries, 0 audit records" in exported.stdout
    data = json.loads((tmp_path / "ivy.json").read_text())
    assert stat.S_IMODE((tmp_path / "ivy.json").stat().st_mode) == 0o600  # all about ivy: nobody else reads it
    assert data["threads"][0]["messages"][0]["text"] == "My tomatoes finally ripened this week."
    assert json.loads(run("profile", "export", "ivy").stdout)["profile"]["entries"][0]["text"] == "Grows tomatoes."

    assert "add --yes" in run("forget", "ivy").stderr  # no terminal to confirm on, nothing erased
    assert read(engine, lambda s: store.get_user(s, identifier="ivy")) is not None
    forgotten = run("forget", "ivy", "--yes")
    assert forgotten.returncode == 0 and "forgot ivy: 1 threads and 1 profile entries erased" in forgotten.stdout
    assert read(engine, lambda s: store.get_user(s, identifier="ivy")) is None
    assert read(engine, lambda s: store.get_user(s, identifier="jon")) is not None
    assert run("forget", "nobody", "--yes").returncode == 2
    taken = run("users", "add", "ivy", "--password-stdin", stdin="another-password\n")
    assert taken.returncode == 2 and "erased less than 15 days ago" in taken.stderr
    assert run("users", "add", "ivy", "--password-stdin", stdin="password1\n").returncode == 0  # ivy herself
    engine.dispose()


def test_audit_commands_print_the_same_records_as_the_console_and_set_role_works(tmp_path, umask_022):
    import json

    from assistant.safety.audit import pseudonym
    from memory import store
    from memory.db import read, write
    from memory.models import AuditRecord, Author

    engine = build_engine(load_settings())
    kim = sign_in(engine, registration=Registration.OPEN, username="kim", password="password1")
    sign_in(engine, registration=Registration.OPEN, username="lee", password="password1")

    def seed(session):
        store.upsert_thread(session, thread_id="kim-t", user_id=kim.id)
        for i, decision in enumerate(["refuse", "safe_complete"]):
            store.save_message(session, step_id=f"k{i}", thread_id="kim-t", user_id=kim.id, author=Author.USER,
                               content=f"kim asks thing {i}")
            session.add(AuditRecord(pseudonym=pseudonym(session, user_id=kim.id), thread_id="kim-t",
                                    message_id=f"k{i}", reply_id="", decision=decision,
                                    rule_ids_json='["IWP.R1"]' if i == 0 else '["SSH.S1"]', spec_version="v1",
                                    rationale=f"because {i}", model="m"))

    write(engine, seed)
    listing = json.loads(run("audit", "list", "--decision", "refuse", "--json").stdout)
    (record,) = listing["records"]
    assert record["rule_ids"] == ["IWP.R1"] and "kim asks" not in json.dumps(listing)
    lines = run("audit", "list").stdout
    assert "refuse  IWP.R1" in lines and "safe_complete  SSH.S1" in lines and "2 records, page 1 of 1" in lines
    shown = run("audit", "show", str(record["id"]), "--as", "olga").stdout
    assert "request: kim asks thing 0" in shown and "rules: IWP.R1" in shown
    labelled = run("audit", "label", str(record["id"]), "over_refusal", "--note", "fine", "--as", "olga")
    assert labelled.returncode == 0 and "labelled over_refusal by olga" in labelled.stdout
    assert "over_refusal" in run("audit", "list", "--label", "over_refusal").stdout
    exported = run("audit", "export", "--format", "jsonl", "--rule", "IWP.R1").stdout.splitlines()
    assert [json.loads(line)["request"] for line in exported] == ["kim asks thing 0"]
    run("audit", "export", "--format", "csv", "--out", str(tmp_path / "a.csv"))
    assert (tmp_path / "a.csv").read_text().count("\n") == 3
    assert stat.S_IMODE((tmp_path / "a.csv").stat().st_mode) == 0o600  # users' messages: owner-only
    write(engine, lambda s: store.save_message(s, step_id="k1", thread_id="kim-t", user_id=kim.id, author=Author.USER,
                                               content='=HYPERLINK("https://evil.example/","x")'))
    csv_rows = run("audit", "export", "--format", "csv", "--decision", "safe_complete").stdout.splitlines()
    assert csv_rows[1].endswith(""","'=HYPERLINK(""https://evil.example/"",""x"")",""")  # text, not a formula
    (jsonl,) = run("audit", "export", "--format", "jsonl", "--decision", "safe_complete").stdout.splitlines()
    assert json.loads(jsonl)["request"] == '=HYPERLINK("https://evil.example/","x")'
    for bad, says in [(("audit", "list", "--from", "2026-11-30", "--to", "2026-11-01"), "date range is empty"),
                      (("audit", "list", "--rule", "ZZZ.R1"), "Unknown rule id"),
                      (("audit", "label", "424242", "correct"), "no audit record 424242"),
                      (("audit", "show", "1" * 30), "no audit record 1111"),
                      (("audit", "label", "9" * 20, "correct"), "no audit record 9999"),
                      (("audit", "label", str(record["id"]), "great"), "A label is one of")]:
        result = run(*bad)
        assert result.returncode == 2 and says in result.stderr, bad

    assert run("users", "set-role", "lee", "operator").returncode == 0
    assert read(engine, lambda s: str(store.get_user(s, identifier="lee").role)) == "operator"
    assert run("users", "set-role", "lee", "user").returncode == 0
    assert read(engine, lambda s: str(store.get_user(s, identifier="lee").role)) == "user"
    assert run("users", "set-role", "nobody", "user").returncode == 2
    engine.dispose()


def test_import_reads_stores_embeds_and_refuses_what_it_cannot_read(tmp_path):
    from pathlib import Path

    from sqlmodel import select

    from memory.db import read
    from memory.models import Embedding

    fixtures = Path(__file__).resolve().parents[1] / "fixtures" / "imports"
    assert run("users", "add", "ada", "--password-stdin", stdin="a-long-password\n").returncode == 0
    dry = run("import", "ada", str(fixtures / "claude-conversations.json"), "--dry-run")
    assert dry.returncode == 0 and "would import claude-conversations.json: 1 conversation (3 messages)" in dry.stdout
    (tmp_path / "photo.jpg").write_bytes(b"\xff\xd8")
    done = run("import", "ada", str(fixtures / "claude-conversations.json"), str(fixtures / "reply.eml"),
               str(tmp_path / "photo.jpg"))
    assert done.returncode == 1  # one file refused, the others imported
    assert "claude-conversations.json: 1 conversation (3 messages)" in done.stdout
    assert "reply.eml: 1 text" in done.stdout
    assert "photo.jpg: photo.jpg: expected a ChatGPT or Claude export" in done.stderr
    engine = build_engine(load_settings())
    assert read(engine, lambda s: len(s.exec(select(Embedding)).all())) == 4  # 3 messages and the e-mail
    again = run("import", "ada", str(fixtures / "reply.eml"))
    assert "imported before" in again.stdout and "nothing added" in again.stdout
    engine.dispose()
    assert run("import", "nobody", str(fixtures / "reply.eml")).returncode == 2


def test_import_with_a_model_leaves_the_person_with_a_first_profile(monkeypatch, fake_llm):
    import json
    from pathlib import Path

    fixtures = Path(__file__).resolve().parents[1] / "fixtures" / "imports"
    assert run("users", "add", "ada", "--password-stdin", stdin="a-long-password\n").returncode == 0
    offline = run("import", "ada", str(fixtures / "reply.eml"))
    assert offline.returncode == 0 and "profile: no language model is configured" in offline.stdout
    monkeypatch.setenv("OPENAI_BASE_URL", fake_llm.base_url)
    monkeypatch.setenv("HYPERALIGN_MAX_RETRIES", "0")
    fake_llm.script("hypotheses", json.dumps({"hypotheses": [
        {"action": "add", "facet": "communication", "text": "Answers point by point.", "evidence": [1],
         "confidence": 0.7, "entry": None, "stated": False}]}))
    done = run("import", "ada", str(fixtures / "claude-conversations.json"))
    assert done.returncode == 0, done.stderr
    assert "profile: 1 entry from" in done.stdout
    assert len(fake_llm.requests_for("hypotheses")) == 1
    shown = run("profile", "show", "ada").stdout
    assert "Answers point by point." in shown and "done import:" in shown


def test_import_list_and_undo_take_back_all_of_a_batch_and_nothing_else():
    from pathlib import Path

    from sqlmodel import select

    from memory.db import read
    from memory.models import Thread

    fixtures = Path(__file__).resolve().parents[1] / "fixtures" / "imports"
    assert run("users", "add", "ada", "--password-stdin", stdin="a-long-password\n").returncode == 0
    assert run("import", "ada", str(fixtures / "reply.eml")).returncode == 0
    assert run("import", "ada", str(fixtures / "claude-conversations.json")).returncode == 0
    listing = run("import", "ada", "--list").stdout.splitlines()
    assert len(listing) == 2 and "claude-conversations.json: 1 conversation (3 messages)" in listing[0]
    newest = int(listing[0].split()[0])
    undone = run("import", "ada", "--undo", str(newest))
    assert undone.returncode == 0 and "3 messages removed" in undone.stdout
    engine = build_engine(load_settings())
    assert read(engine, lambda s: [t.origin for t in s.exec(select(Thread)).all()]) == ["writing"]
    engine.dispose()
    assert "undone" in run("import", "ada", "--list").stdout.splitlines()[0]
    assert run("import", "ada", "--undo", "999").returncode == 2  # not theirs, or no such import
    assert run("import", "ada", "--undo", "1", "--list").returncode == 2  # one thing at a time
