"""The console's templates: hostile names and messages escaped exactly once."""

from html import escape

from assistant.safety.review import AuditFilter
from assistant.ui import console_html

HOSTILE = "<script>alert('x')</script> & \"q\""
ONCE = escape(HOSTILE)  # &lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; &quot;q&quot;
TWICE = ("&amp;lt;", "&amp;amp;", "&amp;quot;", "&amp;#x27;")


def _record(**changes) -> dict:
    record = {"id": 3, "decision": "refuse", "created_at": "2026-11-27T10:00:00", "pseudonym": "u-1", "model": "m",
              "latency_ms": 5.0, "spec_version": "v1", "current_spec": True, "routed": ["IWP"], "request": "hi",
              "rationale": "r", "failure": None, "reply": "no", "cited": [], "label": None, "labelled_by": None,
              "labelled_at": None, "note": None, "rule_ids": ["IWP.R1"]}
    return {**record, **changes}


def _assert_once(html: str, times: int) -> None:
    assert html.count(ONCE) == times
    assert "<script" not in html and not any(twice in html for twice in TWICE)


def test_a_hostile_message_and_operator_name_are_escaped_exactly_once_on_the_record_page():
    html = console_html.detail_page(_record(request=HOSTILE, reply=HOSTILE, label="correct", labelled_by=HOSTILE,
                                            labelled_at="2026-11-28", note=HOSTILE), error=HOSTILE)
    _assert_once(html, 5)
    assert f"<div class='box' id='request'>{ONCE}</div>" in html
    assert f"<p id='current-label'>correct by {ONCE} at 2026-11-28: {ONCE}</p>" in html


def test_a_hostile_pseudonym_and_filter_are_escaped_exactly_once_on_the_list_page():
    f = AuditFilter(pseudonym=HOSTILE)
    listing = {"records": [_record(pseudonym=HOSTILE)], "total": 1, "page": 1, "pages": 1}
    stats = {"over_refusal_share": None, "reviewed_refusals": 0, "per_day": {"2026-11-27": {f"refuse:{HOSTILE}": 1}}}
    html = console_html.list_page(f, listing, stats)
    _assert_once(html, 4)  # the filter's value, the row, the chart's title and the category table
    assert f"value='{ONCE}'" in html and f"<td>{ONCE}</td><td>refuse</td>" in html


def test_a_message_page_escapes_title_text_and_link_once():
    _assert_once(console_html.message_page(HOSTILE, HOSTILE, (HOSTILE, HOSTILE)), 5)  # <title>, <h1>, text, link


def test_nothing_is_printed_as_none():
    html = console_html.detail_page(_record(model=None, rationale=None))
    assert "None" not in html and "model  ·" in html
