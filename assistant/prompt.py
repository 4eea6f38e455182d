"""Pure: the messages of one reply, built from the thread's recent window and the new message.

Later issues add the profile, recalled texts and the safety verdict here; each arrives as data
and is quoted as data. Builders return new lists and never mutate their inputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

SYSTEM_PROMPT = """\
You are hyperalign, a helpful assistant that remembers each user's conversations. Answer the \
user's latest message directly and clearly. Use Markdown where it helps readability."""

OMITTED = "[an earlier message too long to include]"


@dataclass(frozen=True)
class WindowMessage:
    author: str  # "user" or "assistant"
    content: str


def build_reply_messages(
    window: Sequence[WindowMessage], user_text: str, *, max_chars: int
) -> list[dict[str, str]]:
    """System prompt, the recent window (oldest first), then the user's new message."""
    messages = [{"role": "system", "content": SYSTEM_PROMPT}]
    for item in window:
        if not item.content.strip():
            continue
        content = item.content if len(item.content) <= max_chars else OMITTED
        messages.append({"role": item.author, "content": content})
    messages.append({"role": "user", "content": user_text})
    return messages
