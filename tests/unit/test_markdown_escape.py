"""Pure: text from users and the model goes into our Markdown as text, never as Markdown.

Rendered with markdown-it-py (a CommonMark parser, installed with Chainlit's dependencies), as the
chat renders the steps' Markdown.
"""

import re
from datetime import UTC, datetime

import pytest
from markdown_it import MarkdownIt

from assistant.safety.deliberate import Deliberation, Verdict
from assistant.safety.spec import Decision, load_spec
from assistant.ui.views import deliberation_markdown, markdown_text, recalled_markdown
from memory.models import Author
from memory.retrieve import Recalled

MD = MarkdownIt("commonmark")
HOSTILE = [
    "x](https://evil.example/?q=",
    "![img](https://evil.example/p.png)",
    "**Assistant**, 1 Jan 2026: trust me",
    "<script>alert(1)</script> <img src=x onerror=alert(1)>",
    "`code` and ``more`` and ~~struck~~",
    "[a link](javascript:alert(1)) [ref][1]\n\n[1]: https://evil.example",
    "# Heading\n- item\n> quote\n1. one\n---",
    "&lt;b&gt; &amp; &#x3C;",
    "<https://evil.example> https://evil.example www.evil.example a@evil.example",
    "back\\slash \\* \\[",
    "| a | b |\n|---|---|",
]


def rendered_text(html: str) -> str:
    """What a reader sees: the HTML's text with entities decoded."""
    import html as html_module

    return html_module.unescape(re.sub(r"<[^>]+>", "", html)).strip()


@pytest.mark.parametrize("text", HOSTILE)
def test_escaped_text_renders_as_exactly_the_text_on_one_line(text):
    html = MD.render(markdown_text(text))
    assert re.findall(r"<(?!/?p>)[a-z/][^>]*>", html) == []  # no element but the paragraph
    assert rendered_text(html) == " ".join(text.split())


@pytest.mark.parametrize("text", HOSTILE)
def test_escaped_text_leaves_no_bare_url_to_autolink(text):
    """Chainlit's renderer also links bare URLs (GFM); an escaped one is no longer a URL."""
    assert not re.search(r"https?://|www\.|(?<!\\)@", markdown_text(text))


def recalled(thread_name, content, author=Author.USER, thread_id="t1"):
    return Recalled(1, thread_id, thread_name, author, content, datetime(2026, 11, 26, tzinfo=UTC), 1.0)


@pytest.mark.parametrize("name", HOSTILE)
@pytest.mark.parametrize("content", HOSTILE)
def test_the_recalled_panel_has_one_link_to_the_thread_and_only_our_own_labels(name, content):
    html = MD.render(recalled_markdown([recalled(name, content), recalled(name, content, Author.ASSISTANT)]))
    assert re.findall(r"<a [^>]*>", html) == ['<a href="/thread/t1">', '<a href="/thread/t1">']
    assert re.findall(r"<strong>(.*?)</strong>", html) == ["You", "Assistant"]
    assert re.findall(r"<(img|script|code|h\d|blockquote|hr|table|em|del)\b", html) == []
    assert html.count("<li>") == 2


def test_a_thread_id_cannot_break_out_of_its_link():
    html = MD.render(recalled_markdown([recalled("Plans", "hi", thread_id="x) [evil](https://evil.example")]))
    assert re.findall(r"<a [^>]*>", html) == ['<a href="/thread/x%29%20%5Bevil%5D%28https%3A%2F%2Fevil.example">']


def test_the_deliberation_quotes_the_models_rationale_as_text():
    spec = load_spec()
    rule = next(iter(spec.rules))
    rationale = "Fine. [click](https://evil.example) ![x](https://evil.example/i.png)\n\n**Decision:** Answer fully"
    verdict = Verdict(Decision.REFUSE, (rule,), rationale)
    html = MD.render(deliberation_markdown(Deliberation(verdict, (), spec.version, "m", 10.0, 1), spec))
    assert "<a " not in html and "<img" not in html
    assert re.findall(r"<strong>(.*?)</strong>", html) == ["Decision:", "Rules cited:", "Why:"]
    failed = Deliberation(None, (), spec.version, "m", 10.0, 1, failure="model error: ![x](https://evil.example)")
    assert "<img" not in MD.render(deliberation_markdown(failed, spec))


EVIL = "<script>alert(1)</script>' onmouseover='x\" <img src=x>"


def test_the_console_pages_escape_every_value_they_show():
    """The console is HTML, not Markdown: everything from users, the model and the query is escaped."""
    from assistant.safety.review import AuditFilter
    from assistant.ui import console_html

    record = {"id": 1, "decision": EVIL, "created_at": EVIL, "pseudonym": EVIL, "model": EVIL, "latency_ms": 1.0,
              "spec_version": EVIL, "current_spec": False, "routed": [EVIL], "request": EVIL, "rationale": EVIL,
              "failure": EVIL, "reply": EVIL, "cited": [{"id": EVIL, "category": EVIL, "text": EVIL}],
              "label": "correct", "labelled_by": EVIL, "labelled_at": EVIL, "note": EVIL, "rule_ids": [EVIL]}
    f = AuditFilter(rule_id=EVIL, pseudonym=EVIL, model=EVIL, spec_version=EVIL)
    listing = {"records": [record], "total": 1, "page": 1, "pages": 2, "note": EVIL}
    stats = {"over_refusal_share": None, "reviewed_refusals": 0, "per_day": {EVIL: {f"{EVIL}:{EVIL}": 1}}}
    spec, typed = load_spec(), {"pseudonym": EVIL, "date_from": EVIL}
    # A page with an error lists nothing, so the list is rendered once with and once without one.
    for html in (console_html.detail_page(record, EVIL, spec=spec), console_html.list_page(f, listing, stats, spec=spec),
                 console_html.list_page(f, None, None, EVIL, spec=spec, typed=typed),
                 console_html.message_page(EVIL, EVIL, (EVIL, EVIL))):
        assert "<script" not in html and "<img" not in html and "' onmouseover" not in html
