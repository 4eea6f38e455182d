"""Pure: the operator console's HTML pages (list with filters, metrics and chart; one record; errors).

Plain server-rendered HTML with no script, so the console works in any browser and is simple to test.
Every value is escaped; message text appears only on the record page.
"""

from __future__ import annotations

from html import escape
from urllib.parse import urlencode

from assistant.safety.review import DECISIONS, LABEL_FILTERS, AuditFilter

STYLE = """
body{font-family:system-ui,sans-serif;margin:24px;max-width:1200px;color:#222}
table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;padding:4px 6px;text-align:left;
font-size:14px}form.filters{display:flex;flex-wrap:wrap;gap:8px;align-items:end;margin:12px 0}
label{display:flex;flex-direction:column;font-size:12px}.error{color:#b00020}.muted{color:#666;font-size:13px}
.box{border:1px solid #ddd;border-radius:6px;padding:10px;margin:10px 0;white-space:pre-wrap}
"""
COLOURS = {"refuse": "#c8553d", "safe_complete": "#e3b23c", "deliberation_failed": "#777777"}


def page(title: str, body: str) -> str:
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)}</title>"
            f"<style>{STYLE}</style></head><body><p class='muted'><a href='/'>Back to the chat</a> · "
            f"<a href='/console'>Audit console</a></p>{body}</body></html>")


def message_page(title: str, text: str, link: tuple[str, str] | None = None) -> str:
    extra = f"<p><a href='{escape(link[0])}'>{escape(link[1])}</a></p>" if link else ""
    return page(title, f"<h1>{escape(title)}</h1><p id='message'>{escape(text)}</p>{extra}")


def _select(name: str, options: tuple[str, ...], chosen: str | None) -> str:
    items = "".join(f"<option value='{escape(o)}'{' selected' if o == chosen else ''}>{escape(o)}</option>"
                    for o in ("", *options))
    return f"<label>{escape(name)}<select id='f-{name}' name='{name}'>{items}</select></label>"


def _input(name: str, value: object, kind: str = "text") -> str:
    shown = "" if value is None else escape(str(value))
    return f"<label>{escape(name)}<input id='f-{name}' name='{name}' type='{kind}' value='{shown}'></label>"


def filters_form(f: AuditFilter) -> str:
    return ("<form class='filters' id='filters' method='get' action='/console'>"
            + _input("date_from", f.date_from, "date") + _input("date_to", f.date_to, "date")
            + _select("decision", DECISIONS, f.decision) + _input("rule_id", f.rule_id)
            + _input("pseudonym", f.pseudonym) + _select("label", LABEL_FILTERS, f.label)
            + _input("model", f.model) + _input("spec_version", f.spec_version)
            + "<button id='apply' type='submit'>Filter</button></form>")


def chart(per_day: dict[str, dict[str, int]]) -> str:
    """Stacked bars: one per day, a segment per decision and category (hover for the numbers)."""
    if not per_day:
        return "<p class='muted'>No records in this selection.</p>"
    top = max(sum(counts.values()) for counts in per_day.values())
    width, height, bar = 60 * len(per_day) + 40, 180, 40
    parts = []
    for i, (day, counts) in enumerate(per_day.items()):
        x, y = 20 + i * 60, height - 20
        for key, n in sorted(counts.items()):
            h = (height - 40) * n / top
            y -= h
            decision, category = key.split(":", 1)
            parts.append(f"<rect x='{x}' y='{y:.1f}' width='{bar}' height='{h:.1f}' fill='{COLOURS.get(decision, '#999')}'>"
                         f"<title>{escape(day)}: {n} {escape(decision)} in {escape(category)}</title></rect>")
        parts.append(f"<text x='{x}' y='{height - 5}' font-size='10'>{escape(day[5:])}</text>")
    legend = " ".join(f"<span style='color:{c}'>■</span> {d}" for d, c in COLOURS.items())
    return (f"<svg id='chart' width='{width}' height='{height}' role='img' aria-label='decisions per day'>"
            f"{''.join(parts)}</svg><p class='muted'>{legend}</p>")


def category_table(per_day: dict[str, dict[str, int]]) -> str:
    totals: dict[str, int] = {}
    for counts in per_day.values():
        for key, n in counts.items():
            totals[key] = totals.get(key, 0) + n
    rows = "".join(f"<tr><td>{escape(k.split(':', 1)[1])}</td><td>{escape(k.split(':', 1)[0])}</td><td>{n}</td></tr>"
                   for k, n in sorted(totals.items(), key=lambda item: -item[1]))
    return f"<table id='categories'><tr><th>category</th><th>decision</th><th>records</th></tr>{rows}</table>"


def failure_metric(stats: dict) -> str:
    """Pure: how often the deliberation failed (fallback) or stood with repaired ids, of the audited records."""
    share = stats.get("deliberation_failed_share")
    if share is None:
        return "no audited records"
    return (f"deliberation failed on {stats['deliberation_failed']} of {stats['audited']} audited records "
            f"({100 * share:.1f}%); rule ids repaired on {stats['ids_repaired']}")


def list_page(f: AuditFilter, listing: dict, stats: dict, error: str | None = None) -> str:
    query = f.query_string()
    share = stats["over_refusal_share"]
    metric = ("no refusals reviewed yet" if share is None
              else f"{100 * share:.1f}% of {stats['reviewed_refusals']} reviewed refusals labelled over_refusal")
    metric += "; " + failure_metric(stats)
    rows = "".join(
        f"<tr><td><a id='record-{r['id']}' href='/console/records/{r['id']}'>#{r['id']}</a></td>"
        f"<td>{escape(r['created_at'][:19].replace('T', ' '))}</td><td>{escape(r['pseudonym'])}</td>"
        f"<td>{escape(r['decision'])}</td><td>{escape(', '.join(r['rule_ids']))}</td><td>{escape(r['model'] or '')}</td>"
        f"<td>{escape(r['spec_version'])}</td><td>{escape(r['label'] or '')}</td></tr>" for r in listing["records"])
    nav = []
    if listing["page"] > 1:
        nav.append(f"<a id='prev' href='/console?{urlencode({**query, 'page': listing['page'] - 1})}'>previous</a>")
    if listing["page"] < listing["pages"]:
        nav.append(f"<a id='next' href='/console?{urlencode({**query, 'page': listing['page'] + 1})}'>next</a>")
    body = [
        "<h1>Refusals, safe completions and failed deliberations</h1>",
        f"<p class='error' id='error'>{escape(error)}</p>" if error else "",
        filters_form(f),
        f"<p id='over-refusal'>Over-refusal: {metric}.</p>",
        chart(stats["per_day"]), category_table(stats["per_day"]),
        f"<p id='count'>{listing['total']} records · page {listing['page']} of {listing['pages']} "
        + (f"· {escape(listing['note'])} " if listing.get("note") else "") + " ".join(nav) + "</p>",
        f"<p>Export this selection: <a id='export-csv' href='/console/export.csv?{urlencode(query)}'>CSV</a> · "
        f"<a id='export-jsonl' href='/console/export.jsonl?{urlencode(query)}'>JSONL</a></p>",
        "<table id='records'><tr><th>record</th><th>time (UTC)</th><th>user</th><th>decision</th><th>rules</th>"
        f"<th>model</th><th>spec</th><th>label</th></tr>{rows}</table>",
    ]
    return page("Audit console", "".join(body))


def detail_page(record: dict, error: str | None = None) -> str:
    cited = "".join(f"<li><b>{escape(c['id'])}</b> ({escape(c['category'] or 'general')}): "
                    f"{escape(c['text'] or 'not in the current spec')}</li>" for c in record["cited"])
    options = "".join(f"<option value='{v}'{' selected' if v == record['label'] else ''}>{v}</option>"
                      for v in LABEL_FILTERS[:-1])
    gone = "(no longer kept: the user erased their data)"
    body = [
        f"<h1>Audit record #{record['id']}: {escape(record['decision'])}</h1>",
        f"<p class='error' id='error'>{escape(error)}</p>" if error else "",
        f"<p class='muted'>{escape(record['created_at'])} · user {escape(record['pseudonym'])} · model "
        f"{escape(record['model'] or '')} · {record['latency_ms']:.0f} ms · spec {escape(record['spec_version'])}"
        f"{'' if record['current_spec'] else ' (not the current spec)'} · categories read: "
        f"{escape(', '.join(record['routed']) or 'none')}</p>",
        f"<h2>Request</h2><div class='box' id='request'>{escape(record['request'] or gone)}</div>",
        f"<h2>Rationale</h2><div class='box' id='rationale'>{escape(record['rationale'] or record['failure'] or '')}</div>",
        f"<h2>Rules cited</h2><ul id='cited'>{cited or '<li>none</li>'}</ul>",
        f"<h2>Reply</h2><div class='box' id='reply'>{escape(record['reply'] or gone)}</div>",
        f"<h2>Label</h2><p id='current-label'>{escape(record['label'] or 'not reviewed')}"
        + (f" by {escape(record['labelled_by'])} at {escape(record['labelled_at'] or '')}" if record["label"] else "")
        + (f": {escape(record['note'])}" if record.get("note") else "") + "</p>",
        f"<form id='label-form' method='post' action='/console/records/{record['id']}/label'>"
        f"<select id='label' name='label'>{options}</select> <input id='note' name='note' placeholder='note' "
        "maxlength='2000' size='60'> <button id='save-label' type='submit'>Save label</button></form>",
    ]
    return page(f"Audit record #{record['id']}", "".join(body))
