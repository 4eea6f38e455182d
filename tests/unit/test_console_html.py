"""The console's templates: hostile names and messages escaped exactly once."""

from html import escape

from assistant.safety.review import AuditFilter
from assistant.safety.spec import load_spec
from assistant.ui import console_html

SPEC = load_spec()

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
                                            labelled_at="2026-11-28", note=HOSTILE), error=HOSTILE,
                                   spec=SPEC)
    _assert_once(html, 5)
    assert f"<div class='box' id='request'>{ONCE}</div>" in html
    assert f"<p id='current-label'>Correct by {ONCE} at 2026-11-28: {ONCE}</p>" in html


def test_a_hostile_pseudonym_and_filter_are_escaped_exactly_once_on_the_list_page():
    f = AuditFilter(pseudonym=HOSTILE)
    listing = {"records": [_record(pseudonym=HOSTILE, excerpt=HOSTILE)], "total": 1, "page": 1, "pages": 1}
    stats = {"over_refusal_share": None, "reviewed_refusals": 0, "per_day": {"2026-11-27": {f"refuse:{HOSTILE}": 1}}}
    html = console_html.list_page(f, listing, stats, spec=SPEC)
    _assert_once(html, 5)  # the filter's value, the row's pseudonym and excerpt, the chart's title, the category table
    assert f"<td data-label='Request' class='excerpt'>{ONCE}</td>" in html
    assert f"value='{ONCE}'" in html and f"<td>{ONCE}</td><td>Refused</td>" in html
    assert f"<span class='pseudonym'>{ONCE}</span> · m · v1</td>" in html


def test_a_message_page_escapes_title_text_and_link_once():
    _assert_once(console_html.message_page(HOSTILE, HOSTILE, (HOSTILE, HOSTILE)), 5)  # <title>, <h1>, text, link


def test_nothing_is_printed_as_none():
    html = console_html.detail_page(_record(model=None, rationale=None), spec=SPEC)
    assert "None" not in html and "<dd> · 5 ms</dd>" in html


def test_the_console_stylesheet_has_the_chats_theme_colours_light_and_dark():
    import json
    import re
    from pathlib import Path

    public = Path(__file__).resolve().parents[2] / "public"
    theme = json.loads((public / "theme.json").read_text())["variables"]
    css = (public / "console.css").read_text()
    light = css[css.index(":root {"):css.index("}", css.index(":root {"))]
    dark = css[css.index("prefers-color-scheme: dark"):]
    dark = dark[:dark.index("}")]
    for scheme, block in (("light", light), ("dark", dark)):
        declared = dict(re.findall(r"(--[a-z-]+):\s*([^;]+);", block))
        assert {k: v for k, v in declared.items() if k != "--radius"} == theme[scheme], scheme
    assert "@import" not in css and "url(" not in css  # nothing from another host, no web fonts
