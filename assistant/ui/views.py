"""Pure: what the chat shows for our own steps.

The steps are Markdown, and what they quote is not ours: thread names and messages come from users
(any user's past message can be recalled into their own panel), rationales and failures from the
model. Quoted text goes through `markdown_text`, so it shows as the characters it is and can never
add a link to another site, an image, a fake "**Assistant**" label, a heading or a new list item.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from urllib.parse import quote

from assistant.safety.deliberate import Deliberation
from assistant.safety.spec import Spec
from memory.models import AuditDecision, Author, Decision
from memory.retrieve import Recalled
from memory.text import short_title

SNIPPET = 160
# Every ASCII punctuation character may be backslash-escaped in CommonMark and then means itself.
# Escaping them all (not a hand-picked few) also breaks the bare URLs and addresses that GFM would
# turn into links ("https\:\/\/...", "www\.", "a\@b"), and entities ("\&lt;").
_PUNCTUATION = re.compile(r"""([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~])""")


def markdown_text(text: str) -> str:
    """Text for a Markdown line: whitespace (newlines too) collapsed, every punctuation mark escaped."""
    return _PUNCTUATION.sub(r"\\\1", " ".join(text.split()))


def recalled_markdown(items: Sequence[Recalled]) -> str:
    """One line per recalled message: who, when, which conversation, and the start of the text."""
    lines = []
    for item in items:
        who = "You" if item.author == Author.USER else "Assistant"
        text = " ".join(item.content.split())
        text = text if len(text) <= SNIPPET else text[: SNIPPET - 1] + "…"  # cut before escaping: no half escapes
        # Older threads are named after their whole first message: the link shows a short title.
        thread = short_title(item.thread_name or "") or "untitled conversation"
        link = f"/thread/{quote(item.thread_id, safe='')}"
        lines.append(f"- **{who}**, {item.created_at:%d %b %Y} in [{markdown_text(thread)}]({link}): "
                     f"{markdown_text(text)}")
    return "\n".join(lines)


DECISION_WORDS = {
    Decision.COMPLY: "Answer fully",
    Decision.SAFE_COMPLETE: "Safe completion",
    Decision.REFUSE: "Refuse",
    AuditDecision.DELIBERATION_FAILED: "No decision reached; answered under the spec's summary",
}


def deliberation_markdown(deliberation: Deliberation, spec: Spec, *, operator: bool = False) -> str:
    """The decision and each cited rule in words (with its category), and the rationale, as Markdown
    paragraphs (a single newline would run them together).

    Rule ids, the spec's hash, the categories read in full and the timing are for operators, who
    audit the decision; a user is shown what was decided and why, in words.
    """
    decision = DECISION_WORDS[deliberation.decision]
    blocks = [f"**Decision:** {decision} (`{deliberation.decision}`)" if operator else f"**Decision:** {decision}"]
    verdict = deliberation.verdict
    if verdict is not None:
        cited = [_cited(spec, rule_id, operator) for rule_id in verdict.rules]
        blocks += ["**Rules cited:**\n" + "\n".join(cited), f"**Why:** {markdown_text(verdict.rationale)}"]
    elif operator:
        blocks.append(f"**Why:** the safety deliberation failed ({markdown_text(deliberation.failure or 'unknown')}).")
    else:
        blocks.append("**Why:** the safety check did not complete, so the reply follows the general rules.")
    if operator:
        routed = ", ".join(deliberation.routed) or "none"
        blocks.append(f"_Spec {deliberation.spec_version}; categories read in full: {routed}; "
                      f"{deliberation.ms:.0f} ms._")
    return "\n\n".join(blocks)


def _cited(spec: Spec, rule_id: str, operator: bool) -> str:
    rule = spec.rules[rule_id]
    where = spec.category(rule.category).title if rule.category else "General"
    return f"- `{rule_id}` ({where}): {rule.text}" if operator else f"- {where}: {rule.text}"
