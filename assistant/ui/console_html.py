"""Pure: the operator console's HTML pages (list with filters, metrics and chart; one record; errors).

Plain server-rendered HTML with no script, so the console works in any browser and is simple to test.
It is styled by `public/console.css` (served from this origin, the chat's theme colours, light and dark,
laid out for a phone as well), and says everything in words: field names, decisions, labels, and the
spec's own text for rules and categories. Message text appears as a short excerpt of the request in
the list (for triage; each one logged as a read) and in full on the record page.

The pages are Jinja2 templates (`templates/console/`, shipped as package data) with autoescaping on.
Every value is escaped exactly once, when a template prints it: the environment's `finalize` escapes
it with the standard library's `html.escape` (quotes included, as the pages always have) and marks it
done, so autoescaping leaves it alone. Values reach the templates raw, never escaped for Markdown or
CSV first, and anything shaped for display (joined lists, dates, percentages, chart geometry) is
shaped here, in plain functions, so the templates need no filters that escape on their own terms.
There is no inline style: the stylesheet is a file, as the Content-Security-Policy prefers (headers.py).
"""

from __future__ import annotations

from dataclasses import fields
from functools import cache
from html import escape
from urllib.parse import urlencode

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from assistant.safety.review import DECISIONS, LABEL_FILTERS, AuditFilter, category_of, labels_for
from assistant.safety.spec import Spec
from memory.models import AuditDecision, Label

COLOURS: dict[str, str] = {AuditDecision.REFUSE: "#c8553d", AuditDecision.SAFE_COMPLETE: "#e3b23c",
           AuditDecision.DELIBERATION_FAILED: "#777777"}
GONE = "(no longer kept: the user erased their data)"
FILTER_NAMES = tuple(f.name for f in fields(AuditFilter))
FILTER_WORDS = {"date_from": "From", "date_to": "To", "decision": "Decision", "rule_id": "Rule id",
                "pseudonym": "User (pseudonym)", "label": "Label", "model": "Model", "spec_version": "Spec version"}
DECISION_WORDS: dict[str, str] = {AuditDecision.REFUSE: "Refused", AuditDecision.SAFE_COMPLETE: "Safe completion",
                  AuditDecision.DELIBERATION_FAILED: "Deliberation failed"}
LABEL_WORDS: dict[str, str] = {Label.CORRECT: "Correct", Label.OVER_REFUSAL: "Over-refusal", Label.UNDER_REFUSAL: "Under-refusal",
               "unlabelled": "Not reviewed"}
# What each label means, in the record page's menu.
LABEL_CHOICES = {Label.CORRECT: "Correct: the decision was right",
                 Label.OVER_REFUSAL: "Over-refusal: it should have answered",
                 Label.UNDER_REFUSAL: "Under-refusal: it should have refused"}


def _escaped(value: object) -> Markup:
    """What `{{ value }}` prints: escaped once (None as nothing); a macro's or block's output as it is."""
    if isinstance(value, Markup):
        return value
    return Markup(escape("" if value is None else str(value)))


@cache
def _templates() -> Environment:
    return Environment(loader=PackageLoader("assistant.ui", "templates"), autoescape=True, finalize=_escaped,
                       undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def _render(template: str, **values: object) -> str:
    return _templates().get_template(f"console/{template}").render(**values)


def message_page(title: str, text: str, link: tuple[str, str] | None = None) -> str:
    return _render("message.html", title=title, text=text, link=link)


def chart(per_day: dict[str, dict[str, int]]) -> dict | None:
    """Stacked bars: one per day, a segment per decision and category (hover for the numbers)."""
    if not per_day:
        return None
    top = max(sum(counts.values()) for counts in per_day.values())
    height, days = 180, []
    for i, (day, counts) in enumerate(per_day.items()):
        y: float = height - 20
        bars: list[dict] = []
        for key, n in sorted(counts.items()):
            h = (height - 40) * n / top
            y -= h
            decision, category = key.split(":", 1)
            bars.append({"y": f"{y:.1f}", "height": f"{h:.1f}", "fill": COLOURS.get(decision, "#999"), "n": n,
                         "decision": _words(DECISION_WORDS, decision).lower(), "category": category})
        days.append({"x": 20 + i * 60, "day": day, "label": day[5:], "bars": bars})
    return {"width": 60 * len(per_day) + 40, "height": height, "bar": 40, "days": days}


def category_totals(per_day: dict[str, dict[str, int]]) -> list[tuple[str, str, int]]:
    """(category, decision, records) over all days, the most frequent first."""
    totals: dict[str, int] = {}
    for counts in per_day.values():
        for key, n in counts.items():
            totals[key] = totals.get(key, 0) + n
    ranked = sorted(totals.items(), key=lambda item: -item[1])
    return [(key.split(":", 1)[1], key.split(":", 1)[0], n) for key, n in ranked]


def failure_metric(stats: dict) -> str:
    """Pure: how often the deliberation failed (fallback) or stood with repaired ids, of the audited records."""
    share = stats.get("deliberation_failed_share")
    if share is None:
        return "no audited records"
    return (f"deliberation failed on {stats['deliberation_failed']} of {stats['audited']} audited records "
            f"({100 * share:.1f}%); rule ids repaired on {stats['ids_repaired']}")


def review_metric(stats: dict) -> str:
    """Pure: the over-refusal share of the reviewed refusals, then the failure metric."""
    share = stats["over_refusal_share"]
    over = ("no refusals reviewed yet" if share is None
            else f"{100 * share:.1f}% of {stats['reviewed_refusals']} reviewed refusals labelled over_refusal")
    return f"{over}; {failure_metric(stats)}"


def _words(words: dict, value: str | None) -> str:
    """A stored value in words (an unknown one, e.g. from an older version, as it is)."""
    return "" if value is None else words.get(value, value)


def category_title(spec: Spec, category: str) -> str:
    """A category id as the spec titles it; "general" and "none" are not in the spec."""
    titled = {c.id: c.title for c in spec.categories}
    return titled.get(category, {"general": "General rules", "none": "No rule cited"}.get(category, category))


def rules_in_words(spec: Spec, rule_ids: list[str]) -> list[dict]:
    rules = spec.rules
    return [{"id": rid, "text": rules[rid].text if rid in rules else "(not in the current spec)"} for rid in rule_ids]


def _row(record: dict, spec: Spec) -> dict:
    return {"id": record["id"], "time": record["created_at"][:16].replace("T", " "), "pseudonym": record["pseudonym"],
            "decision": _words(DECISION_WORDS, record["decision"]),
            "category": category_title(spec, category_of(spec, record["rule_ids"])),
            "rules": rules_in_words(spec, record["rule_ids"]), "excerpt": record.get("excerpt"),
            "model": record["model"], "spec_version": record["spec_version"],
            "label": _words(LABEL_WORDS, record["label"] or "unlabelled")}


def list_page(f: AuditFilter, listing: dict | None, stats: dict | None, error: str | None = None, *, spec: Spec,
              typed: dict[str, str] | None = None) -> str:
    """The list; with `error` (a filter that cannot be met) there is no listing: nothing is shown as matching.

    `typed` is what the operator typed into the filters, shown back as it was (the filter's own values
    otherwise)."""
    values = typed if typed is not None else f.query_string()
    shared = {"title": "Audit console", "error": error, "values": {name: values.get(name, "") for name in FILTER_NAMES},
              "words": FILTER_WORDS, "decisions": [(d, DECISION_WORDS[d]) for d in DECISIONS],
              "label_filters": [(value, LABEL_WORDS[value]) for value in LABEL_FILTERS],
              "gone_short": "(no longer kept)"}
    if listing is None or stats is None:
        return _render("list.html", **shared)
    query, page = f.query_string(), listing["page"]
    return _render(
        "list.html", **shared, metric=review_metric(stats), chart=chart(stats["per_day"]),
        legend=[(decision.replace("_", "-"), DECISION_WORDS[decision]) for decision in COLOURS],
        categories=[(category_title(spec, c), _words(DECISION_WORDS, d), n) for c, d, n in category_totals(stats["per_day"])],
        rows=[_row(r, spec) for r in listing["records"]],
        total=listing["total"], page=page, pages=listing["pages"], note=listing.get("note"), query=urlencode(query),
        previous=urlencode({**query, "page": page - 1}) if page > 1 else None,
        next=urlencode({**query, "page": page + 1}) if page < listing["pages"] else None,
    )


def detail_page(record: dict, error: str | None = None, *, spec: Spec) -> str:
    cited = [{**rule, "category": category_title(spec, rule["category"] or "general") if rule["text"] else "unknown"}
             for rule in record["cited"]]
    return _render("detail.html", title=f"Audit record #{record['id']}", record=record, error=error, gone=GONE,
                   decision=_words(DECISION_WORDS, record["decision"]), cited=cited,
                   when=record["created_at"][:16].replace("T", " ") + " UTC",
                   label=_words(LABEL_WORDS, record["label"]) if record["label"] else None,
                   choices=[(value, LABEL_CHOICES[Label(value)]) for value in labels_for(record["decision"])],
                   latency=f"{record['latency_ms']:.0f}", routed=", ".join(record["routed"]) or "none")


USAGE_PERIODS = (7, 30, 90)


def usage_chart(days: list[dict]) -> dict | None:
    """Bars of tokens per day, the answer's (out) stacked on the prompt's (in); hover for the numbers.

    Drawn in a viewBox one unit a day wide and stretched to the page's width, so every day of the
    period shows on a phone as on a desktop; the dates are written below it, in the page's own text."""
    top = max((d["tokens_in"] + d["tokens_out"] for d in days), default=0)
    if not top:
        return None
    height, bars = 100, []
    for i, day in enumerate(days):
        low, high = height * day["tokens_in"] / top, height * day["tokens_out"] / top
        bars.append({"x": f"{i + 0.1:.1f}", "day": day["day"], "tokens_in": f"{day['tokens_in']:,}",
                     "tokens_out": f"{day['tokens_out']:,}", "in_y": f"{height - low:.2f}", "in_h": f"{low:.2f}",
                     "out_y": f"{height - low - high:.2f}", "out_h": f"{high:.2f}"})
    return {"width": len(days), "height": height, "bar": "0.8", "days": bars, "first": days[0]["day"],
            "last": days[-1]["day"], "top": f"{top:,}"}


def cost_text(cost: float | None, priced: bool) -> str:
    """A cost in dollars, or why there is none."""
    if not priced:
        return "no prices set"
    if cost is None:
        return "unknown: a model has no price"
    return f"${cost:,.2f}" if cost >= 0.01 or cost == 0 else f"${cost:.4f}"


def usage_page(report: dict, days: int) -> str:
    priced = report["priced"]

    def shaped(rows: list[dict]) -> list[dict]:
        return [{**row, **{name: f"{row[name]:,}" for name in ("calls", "tokens_in", "tokens_out")},
                 "cost_text": cost_text(row["cost"], priced)} for row in rows]

    (total,) = shaped([report["total"]])
    return _render("usage.html", title="Usage", days=days, periods=USAGE_PERIODS, total=total,
                   chart=usage_chart(report["days"]),
                   purposes=shaped(report["purposes"]), models=shaped(report["models"]), users=shaped(report["users"]),
                   unusable=report["unusable"], priced=priced)
