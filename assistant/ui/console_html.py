"""Pure: the operator console's HTML pages (list with filters, metrics and chart; one record; errors).

Plain server-rendered HTML with no script, so the console works in any browser and is simple to test.
Message text appears only on the record page.

The pages are Jinja2 templates (`templates/console/`, shipped as package data) with autoescaping on.
Every value is escaped exactly once, when a template prints it: the environment's `finalize` escapes
it with the standard library's `html.escape` (quotes included, as the pages always have) and marks it
done, so autoescaping leaves it alone. Values reach the templates raw, never escaped for Markdown or
CSV first, and anything shaped for display (joined lists, dates, percentages, chart geometry) is
shaped here, in plain functions, so the templates need no filters that escape on their own terms.
The only inline content is the stylesheet, which the Content-Security-Policy allows (headers.py).
"""

from __future__ import annotations

from functools import cache
from html import escape
from urllib.parse import urlencode

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from assistant.safety.review import DECISIONS, LABEL_FILTERS, AuditFilter
from memory.models import AuditDecision

COLOURS: dict[str, str] = {AuditDecision.REFUSE: "#c8553d", AuditDecision.SAFE_COMPLETE: "#e3b23c",
           AuditDecision.DELIBERATION_FAILED: "#777777"}
GONE = "(no longer kept: the user erased their data)"


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
                         "decision": decision, "category": category})
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


def _row(record: dict) -> dict:
    return {"id": record["id"], "time": record["created_at"][:19].replace("T", " "), "pseudonym": record["pseudonym"],
            "decision": record["decision"], "rules": ", ".join(record["rule_ids"]), "model": record["model"],
            "spec_version": record["spec_version"], "label": record["label"]}


def list_page(f: AuditFilter, listing: dict, stats: dict, error: str | None = None) -> str:
    query, page = f.query_string(), listing["page"]
    return _render(
        "list.html", title="Audit console", error=error, f=f, decisions=DECISIONS, label_filters=LABEL_FILTERS,
        metric=review_metric(stats), chart=chart(stats["per_day"]), colours=COLOURS,
        categories=category_totals(stats["per_day"]), rows=[_row(r) for r in listing["records"]],
        total=listing["total"], page=page, pages=listing["pages"], note=listing.get("note"), query=urlencode(query),
        previous=urlencode({**query, "page": page - 1}) if page > 1 else None,
        next=urlencode({**query, "page": page + 1}) if page < listing["pages"] else None,
    )


def detail_page(record: dict, error: str | None = None) -> str:
    return _render("detail.html", title=f"Audit record #{record['id']}", record=record, error=error, gone=GONE,
                   labels=LABEL_FILTERS[:-1], latency=f"{record['latency_ms']:.0f}",
                   routed=", ".join(record["routed"]) or "none")
