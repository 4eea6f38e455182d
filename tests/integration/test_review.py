"""The operators' queries over the audit, on SQLite and PostgreSQL: filters, paging, detail, labels,
metrics, the action log and streamed export."""

import json
import tracemalloc
from datetime import timedelta

import pytest
from sqlalchemy import insert, text

from assistant.safety import review
from assistant.safety.audit import pseudonym
from assistant.safety.spec import load_spec
from memory import store
from memory.db import read, write
from memory.models import AuditRecord, Author, utcnow

SPEC = load_spec()


@pytest.fixture
def records(engine):
    """Four records of two users over three days; the texts live in `message`, as the turn leaves them."""
    def seed(session):
        ids = []
        for name in ("kai", "lou"):
            user = store.create_user(session, identifier=name, password="password1")
            store.upsert_thread(session, thread_id=f"{name}-t", user_id=user.id)
            ids.append((user.id, pseudonym(session, user_id=user.id)))
        now = utcnow()
        rows = [("kai", 0, "refuse", ["IWP.R1"], "model-a"), ("kai", 1, "safe_complete", ["SSH.S1"], "model-a"),
                ("lou", 1, "refuse", ["VIO.R1"], "model-b"), ("lou", 2, "deliberation_failed", [], "model-b")]
        for i, (name, days_ago, decision, rules, model) in enumerate(rows):
            user_id, alias = ids[0] if name == "kai" else ids[1]
            for step, author, content in ((f"m{i}", Author.USER, f"request {i} of {name}"),
                                          (f"r{i}", Author.ASSISTANT, f"reply {i} to {name}")):
                store.save_message(session, step_id=step, thread_id=f"{name}-t", user_id=user_id, author=author,
                                   content=content)
            session.add(AuditRecord(pseudonym=alias, thread_id=f"{name}-t", message_id=f"m{i}", reply_id=f"r{i}",
                                    decision=decision, rule_ids_json=json.dumps(rules), rationale=f"why {i}",
                                    spec_version=SPEC.version, model=model, latency_ms=100 + i,
                                    created_at=now - timedelta(days=days_ago)))
        return {name: alias for name, (_, alias) in zip(("kai", "lou"), ids, strict=True)}

    return write(engine, seed)


def listed(engine, **values):
    known = lambda rule: read(engine, lambda s: review.rule_is_cited(s, rule))  # noqa: E731
    f = review.parse_filter(values, SPEC, known)
    return [r["decision"] for r in read(engine, lambda s: review.list_records(s, f, page=1, page_size=50))["records"]]


def test_each_filter_narrows_the_list_and_lists_carry_no_message_text(engine, records):
    today = utcnow().date()
    assert listed(engine) == ["deliberation_failed", "refuse", "safe_complete", "refuse"]  # newest record first
    assert listed(engine, decision="refuse") == ["refuse", "refuse"]
    assert listed(engine, rule_id="SSH.S1") == ["safe_complete"]
    assert listed(engine, pseudonym=records["lou"]) == ["deliberation_failed", "refuse"]
    assert listed(engine, model="model-a", date_from=str(today)) == ["refuse"]
    assert listed(engine, date_to=str(today - timedelta(days=2))) == ["deliberation_failed"]
    assert listed(engine, spec_version="other") == [] and listed(engine, label="unlabelled") == listed(engine)
    page = read(engine, lambda s: review.list_records(s, review.AuditFilter(), page=1, page_size=50))
    assert "request 0" not in json.dumps(page) and "why 0" not in json.dumps(page)


@pytest.mark.parametrize("values, says", [
    ({"date_from": "2026-12-01", "date_to": "2026-11-01"}, "date range is empty"),
    ({"date_from": "2026-02-30"}, "must be a date like"),
    ({"rule_id": "NOPE.R9"}, "Unknown rule id 'NOPE.R9'"),
    ({"decision": "maybe"}, "Unknown decision"),
    ({"label": "wrong"}, "Unknown label"),
])
def test_impossible_filters_are_explained(engine, records, values, says):
    with pytest.raises(review.ReviewError, match=says):
        listed(engine, **values)


def test_a_rule_of_an_older_spec_is_known_when_a_record_cites_it(engine, records):
    write(engine, lambda s: s.add(AuditRecord(pseudonym="u-x", thread_id="", message_id="", reply_id="",
                                              decision="refuse", rule_ids_json='["OLD.R1"]', spec_version="old")))
    assert listed(engine, rule_id="OLD.R1") == ["refuse"]


def test_pages_and_a_huge_page_number(engine, records):
    first = read(engine, lambda s: review.list_records(s, review.AuditFilter(), page=2, page_size=3))
    assert (len(first["records"]), first["pages"], first["note"]) == (1, 2, None)
    huge = read(engine, lambda s: review.list_records(s, review.AuditFilter(), page=10**15, page_size=3))
    assert huge["records"] == [] and huge["note"] == "There are only 2 page(s) of 4 records."
    for page, size in [(0, 10), (1, 0), (1, 1000), ("x", 1)]:
        with pytest.raises(review.ReviewError):
            review.parse_page(page, size)


def test_detail_label_and_metrics_and_every_read_of_text_is_logged(engine, records):
    refuse_id = read(engine, lambda s: s.exec(review.select(AuditRecord.id).where(
        AuditRecord.message_id == "m0")).one())
    record = write(engine, lambda s: review.detail(s, record_id=refuse_id, spec=SPEC, operator="olga"))
    assert (record["request"], record["reply"], record["rationale"]) == ("request 0 of kai", "reply 0 to kai", "why 0")
    assert record["cited"][0]["category"] == "indiscriminate_weapons" and record["cited"][0]["text"]
    before = read(engine, lambda s: review.metrics(s, review.AuditFilter(), SPEC))
    assert before["over_refusal_share"] is None and before["reviewed_refusals"] == 0
    assert (before["audited"], before["deliberation_failed"], before["deliberation_failed_share"]) == (4, 1, 0.25)
    write(engine, lambda s: review.label(s, record_id=refuse_id, value="over_refusal", note="benign chemistry",
                                         operator="olga"))
    after = read(engine, lambda s: review.metrics(s, review.AuditFilter(), SPEC))
    assert (after["reviewed_refusals"], after["over_refusal_share"]) == (1, 1.0)
    assert sum(n for day in after["per_day"].values() for k, n in day.items() if k == "refuse:indiscriminate_weapons") == 1
    assert listed(engine, label="over_refusal") == ["refuse"]
    with pytest.raises(review.RecordNotFound, match="no audit record 999999"):
        write(engine, lambda s: review.label(s, record_id=999_999, value="correct", note=None, operator="olga"))
    with pytest.raises(review.ReviewError, match="A label is one of"):
        write(engine, lambda s: review.label(s, record_id=refuse_id, value="wrongish", note=None, operator="olga"))
    with engine.connect() as conn:
        actions = conn.execute(text("SELECT operator, action, record_id, detail FROM operator_action ORDER BY id")).all()
    assert [tuple(a) for a in actions] == [("olga", "view", refuse_id, None), ("olga", "label", refuse_id, "over_refusal")]


def test_export_has_the_texts_of_exactly_the_filtered_records_and_is_logged(engine, records):
    f = review.parse_filter({"decision": "refuse"}, SPEC)
    rows = list(review.export_rows(engine, f, operator="olga"))
    assert [(r["decision"], r["request"]) for r in rows] == [("refuse", "request 0 of kai"), ("refuse", "request 2 of lou")]
    csv_text = "".join(review.as_csv(iter(rows)))
    assert csv_text.splitlines()[0].startswith("id,created_at,pseudonym,decision") and len(csv_text.splitlines()) == 3
    with engine.connect() as conn:
        assert conn.execute(text("SELECT action, detail FROM operator_action")).one() == ("export", '{"decision": "refuse"}')


def test_an_export_of_100000_records_is_streamed_not_built_in_memory(engine):
    when = utcnow()
    rationale = "x" * 400
    with engine.begin() as conn:
        for start in range(0, 100_000, 10_000):
            conn.execute(insert(AuditRecord), [
                {"pseudonym": "u-bulk", "thread_id": "", "message_id": "", "reply_id": "", "decision": "refuse",
                 "rule_ids_json": '["IWP.R1"]', "rationale": rationale, "spec_version": SPEC.version,
                 "routed_json": "[]", "latency_ms": 1.0, "created_at": when} for _ in range(10_000)])
    rows = review.as_jsonl(review.export_rows(engine, review.AuditFilter(), operator="olga"))
    tracemalloc.start()
    count = sum(1 for _ in rows)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert count == 100_000
    assert peak < 20 * 2**20, f"peak {peak / 2**20:.1f} MiB: the export is being held in memory"  # all rows: ~60 MiB


def test_over_refusal_is_a_label_for_refusals_only_and_the_metric_counts_every_one(engine, records):
    ids = dict(read(engine, lambda s: s.exec(review.select(AuditRecord.decision, AuditRecord.id)).all()))
    for decision in ("safe_complete", "deliberation_failed"):
        assert review.labels_for(decision) == ("correct", "under_refusal")
        with pytest.raises(review.ReviewError, match=f"for refusals only; record {ids[decision]} is {decision}"):
            write(engine, lambda s, d=decision: review.label(s, record_id=ids[d], value="over_refusal", note=None,
                                                            operator="olga"))
    assert review.labels_for("refuse") == ("correct", "over_refusal")
    write(engine, lambda s: review.label(s, record_id=ids["refuse"], value="over_refusal", note=None, operator="olga"))
    metrics = read(engine, lambda s: review.metrics(s, review.AuditFilter(), SPEC))
    assert (metrics["reviewed_refusals"], metrics["over_refusal_share"]) == (1, 1.0)
    assert listed(engine, label="over_refusal") == ["refuse"]  # every over_refusal is one the metric counts


def test_list_excerpts_are_short_and_each_one_shown_is_logged_as_a_read(engine, records):
    assert review.excerpt(None) is None and review.excerpt("  a\n b  ") == "a b"
    long = "word " * 60
    assert review.excerpt(long).endswith("word…") and len(review.excerpt(long)) <= review.EXCERPT_CHARS + 1
    write(engine, lambda s: s.add(AuditRecord(pseudonym="forgotten", thread_id="", message_id="", reply_id="",
                                              decision="refuse", rule_ids_json="[]", spec_version="v")))

    def page(session):
        listing = review.list_records(session, review.AuditFilter(), page=1, page_size=50)
        return review.with_excerpts(session, listing["records"], operator="olga")

    rows = write(engine, page)
    assert [r["excerpt"] for r in rows] == [None, "request 3 of lou", "request 2 of lou", "request 1 of kai",
                                            "request 0 of kai"]  # the forgotten user's record has none
    with engine.connect() as conn:
        logged = conn.execute(text("SELECT operator, action, record_id, detail FROM operator_action ORDER BY id")).all()
    assert [tuple(a) for a in logged] == [("olga", "view", r["id"], "excerpt") for r in rows[1:]]


def test_under_refusal_is_not_a_label_for_a_refusal(engine, records):
    """It says "it should have refused": a refusal did. Before, a refusal took it and the console offered it."""
    refusal = read(engine, lambda s: s.exec(review.select(AuditRecord.id).where(AuditRecord.decision == "refuse")).first())
    with pytest.raises(review.ReviewError, match=f"records that were answered.*record {refusal} is refuse"):
        write(engine, lambda s: review.label(s, record_id=refusal, value="under_refusal", note=None, operator="olga"))
    assert read(engine, lambda s: s.get(AuditRecord, refusal)).label is None
