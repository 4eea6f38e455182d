"""Pure: what the chat shows for our own steps."""

from __future__ import annotations

from collections.abc import Sequence

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
