"""A reasoning model's thinking, kept apart from its answer.

Qwen3, DeepSeek-R1 and their distills, served raw by Ollama, llama.cpp or vLLM without a reasoning
parser, write their thinking inline: `<think>…</think>` before the answer. Servers that do parse it
send it in a separate field instead (`reasoning_content`: vLLM, llama.cpp, DeepSeek; `reasoning`:
Ollama, OpenRouter), which the gateway reads apart. Either way the thinking never reaches the reply a
person reads, the stored message, or a parser of JSON.

Only a block at the very start of the answer counts (after blank space, and one block after another):
that is where these models put it, and a `<think>` later in an answer is text the answer is about.
When a chat template opens the block itself, the output holds only the closing tag; streaming cannot
know that until the tag arrives, so `strip_reasoning` removes it from the finished text.
"""

from __future__ import annotations

from dataclasses import dataclass

OPEN, CLOSE = "<think>", "</think>"


@dataclass
class Split:
    """One step of the splitter: text for the reply and text of the thinking."""

    reply: str = ""
    reasoning: str = ""


@dataclass
class ThinkSplitter:
    """Splits a streamed answer into reply and thinking, whatever way the tags fall across chunks.
    `opened`: the chat template opened the block, so the answer starts inside it."""

    opened: bool = False
    _pending: str = ""
    _state: str = "start"  # start: nothing visible yet | inside: in a block | reply: past the blocks
    blocks: int = 0  # thinking blocks opened

    def __post_init__(self) -> None:
        if self.opened:
            self._state, self.blocks = "inside", 1

    def feed(self, chunk: str) -> Split:
        text, self._pending = self._pending + chunk, ""
        out = Split()
        while text:
            if self._state == "reply":
                out.reply += text
                break
            if self._state == "start":
                stripped = text.lstrip()
                if stripped.startswith(OPEN):
                    text, self._state = stripped[len(OPEN):], "inside"
                    self.blocks += 1
                elif not stripped or OPEN.startswith(stripped):
                    self._pending = text  # blank so far, or a tag still arriving
                    break
                else:
                    self._state = "reply"
                    out.reply += stripped  # blank space before the answer is not part of it
                    break
            else:  # inside
                end = text.find(CLOSE)
                if end >= 0:
                    out.reasoning += text[:end]
                    text, self._state = text[end + len(CLOSE):], "start"
                else:
                    keep = _partial_suffix(text, CLOSE)
                    out.reasoning += text[:len(text) - keep]
                    self._pending = text[len(text) - keep:]
                    break
        return out

    def finish(self) -> Split:
        """What is still held back when the stream ends: a tag that never completed is text."""
        held, self._pending = self._pending, ""
        if self._state == "inside":
            return Split(reasoning=held)
        return Split(reply=held.strip() if self._state == "start" else held)


def _partial_suffix(text: str, tag: str) -> int:
    """Length of the longest end of `text` that is a beginning of `tag` (it may complete next chunk)."""
    for size in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:size]):
            return size
    return 0


def strip_reasoning(text: str, *, opened: bool = False) -> tuple[str, str]:
    """(answer, thinking) of a whole text: leading blocks or, when there are none, everything up to a
    closing tag that no opening tag matched (a template that opened the block itself)."""
    splitter = ThinkSplitter(opened=opened)
    first, last = splitter.feed(text), splitter.finish()
    answer, thinking = first.reply + last.reply, first.reasoning + last.reasoning
    if not splitter.blocks and OPEN not in answer and CLOSE in answer:
        # The first closing tag ends the thinking: an answer may mention the tag itself later on.
        before, _, after = answer.partition(CLOSE)
        answer, thinking = after.lstrip(), thinking + before
    return answer, thinking


def estimate_tokens(text: str) -> int:
    """About four characters a token in English (OpenAI's rule of thumb), for servers that report none."""
    return tokens_for_chars(len(text))


def tokens_for_chars(chars: int) -> int:
    return (chars + 3) // 4
