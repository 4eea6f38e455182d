"""Pure: what the chat shows for our own steps."""

from __future__ import annotations

from collections.abc import Sequence

from assistant.safety.deliberate import Deliberation
from assistant.safety.spec import Spec
from memory.models import Author
from memory.retrieve import Recalled

SNIPPET = 160


def recalled_markdown(items: Sequence[Recalled]) -> str:
    """One line per recalled message: who, when, which conversation, and the start of the text."""
    lines = []
    for item in items:
        who = "You" if item.author == Author.USER else "Assistant"
        text = " ".join(item.content.split())
        text = text if len(text) <= SNIPPET else text[: SNIPPET - 1] + "…"
        thread = item.thread_name or "untitled conversation"
        lines.append(f"- **{who}**, {item.created_at:%d %b %Y} in [{thread}](/thread/{item.thread_id}): {text}")
    return "\n".join(lines)


DECISION_WORDS = {
    "comply": "Answer fully",
    "safe_complete": "Safe completion",
    "refuse": "Refuse",
    "deliberation_failed": "No decision reached; answered under the spec's summary",
}


def deliberation_markdown(deliberation: Deliberation, spec: Spec) -> str:
    """The decision, each cited rule with its category, the rationale, and the spec version (Markdown
    paragraphs: a single newline would run them together)."""
    blocks = [f"**Decision:** {DECISION_WORDS[deliberation.decision]} (`{deliberation.decision}`)"]
    verdict = deliberation.verdict
    if verdict is not None:
        rules = spec.rules
        cited = []
        for rule_id in verdict.rules:
            rule = rules[rule_id]
            where = spec.category(rule.category).title if rule.category else "General"
            cited.append(f"- `{rule_id}` ({where}): {rule.text}")
        blocks += ["**Rules cited:**\n" + "\n".join(cited), f"**Why:** {verdict.rationale}"]
    else:
        blocks.append(f"**Why:** the safety deliberation failed ({deliberation.failure}).")
    routed = ", ".join(deliberation.routed) or "none"
    blocks.append(f"_Spec {deliberation.spec_version}; categories read in full: {routed}; "
                  f"{deliberation.ms:.0f} ms._")
    return "\n\n".join(blocks)
