"""Stand-in models for the benchmarks: the gateway's shape (`stream`, `complete`, `close`), no network.

Each one isolates what a benchmark measures: `InstantModel` takes the model out of the timing,
`FixedLatencyModel` gives every call the same latency, `ScriptedModel` counts calls and characters.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections import defaultdict

from assistant.measure.synthetic import WORDS


class InstantModel:
    """Answers at once with a fixed reply: the benchmark measures everything but the model."""

    offline, label = False, "instant"

    async def stream(self, messages, *, purpose, on_reasoning=None, user_id=None):
        from assistant.llm import resolve

        resolve(messages)  # built, as the gateway would
        yield "Noted."

    async def complete(self, messages, *, purpose, json_schema=None, user_id=None):
        raise NotImplementedError("the turn benchmark makes no whole-answer calls (no safety gate, no inference)")

    async def close(self) -> None:
        return None


class FixedLatencyModel:
    """Every call takes `latency_ms` before its first byte; deliberations comply under GEN.A1."""

    offline, label = False, "fixed-latency"

    def __init__(self, latency_ms: float) -> None:
        self._delay = latency_ms / 1000

    async def stream(self, messages, *, purpose, on_reasoning=None, user_id=None):
        from assistant.llm import resolve

        resolve(messages)  # built, as the gateway would
        await asyncio.sleep(self._delay)
        for word in ("Here", " is", " the", " answer."):
            yield word

    async def complete(self, messages, *, purpose, json_schema=None, user_id=None):
        from assistant.llm import Completion, resolve

        resolve(messages)
        await asyncio.sleep(self._delay)
        text = json.dumps({"decision": "comply", "rules": ["GEN.A1"], "rationale": "Benchmark request."})
        return Completion(text, "fixed-latency", 0, 0, self._delay * 1000, "json_schema")

    async def close(self) -> None:
        return None


class ScriptedModel:
    """Stands in for a model: counts every call and its characters by purpose, answers validly."""

    offline, label = False, "scripted"

    def __init__(self, rng: random.Random) -> None:
        self.calls: dict[str, int] = defaultdict(int)
        self.chars_in: dict[str, int] = defaultdict(int)
        self.chars_out: dict[str, int] = defaultdict(int)
        self.profile_chars: list[int] = []  # size of the profile block in each chat prompt
        self._rng = rng

    async def stream(self, messages, *, purpose, on_reasoning=None, user_id=None):
        self._count(str(purpose), messages, "Noted.")
        yield "Noted."

    async def complete(self, messages, *, purpose, json_schema=None, user_id=None):
        from assistant.llm import Completion, Purpose

        if purpose == Purpose.SAFETY:
            answer = json.dumps({"decision": "comply", "rules": ["GEN.A1"], "rationale": "An everyday request."})
            self._count(str(purpose), messages, answer)
            return Completion(answer, "scripted", 0, 0, 0.0, "json_schema")
        facet = self._rng.choice(["communication", "personality", "style", "preference"])
        text = f"Tends to mention {self._rng.choice(WORDS)} when explaining {self._rng.choice(WORDS)}."
        answer = json.dumps({"hypotheses": [{"action": "add", "facet": facet, "text": text, "evidence": [1],
                                             "confidence": 0.6, "entry": None, "stated": False}]})
        self._count(str(purpose), messages, answer)
        return Completion(answer, "scripted", 0, 0, 0.0, "json_schema")

    def _count(self, purpose: str, messages, answer: str) -> None:
        from assistant.llm import resolve
        from assistant.prompt import PROFILE_HEADER

        messages = resolve(messages)
        self.calls[purpose] += 1
        self.chars_in[purpose] += sum(len(m["content"]) for m in messages)
        self.chars_out[purpose] += len(answer)
        if purpose == "chat":
            block = messages[0]["content"].split(PROFILE_HEADER)
            self.profile_chars.append(len(block[1].split("\n\n")[0]) if len(block) > 1 else 0)

    async def close(self) -> None:
        return None
