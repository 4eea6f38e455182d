"""The router: picks which categories' full policy the deliberation reads. It never decides.

Cheap screens over-flag benign look-alikes ("kill a Python process") and miss paraphrased harm, so
the router only widens what the deliberation sees: every category's summary is always shown, and a
routed category adds its full rules and contrast examples. Two signals, either is enough:
- a cue word of the category in the request (whole words, so "skill" is not "kill");
- embedding similarity to the category's definition, rules and examples (all three decisions, so a
  benign look-alike routes to the category whose examples say it is fine).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from assistant.safety.spec import Spec
from hypotheses.skeleton import variants

DENSE_THRESHOLD = 0.35  # cosine to a category's nearest text; measured in README "The router"
CUE_BONUS = 0.25
MAX_ROUTED = 3

Encode = Callable[[list[str]], np.ndarray]


@dataclass(frozen=True)
class Routed:
    category: str
    score: float
    cue: bool  # a cue word matched


def category_texts(spec: Spec) -> list[tuple[str, str]]:
    """(category id, text) pairs the dense side compares a request with."""
    pairs = []
    for category in spec.categories:
        pairs.append((category.id, f"{category.title}. {category.definition}"))
        pairs += [(category.id, rule.text) for rule in category.rules]
        pairs += [(category.id, example) for examples in category.examples.values() for example in examples]
    return pairs


def _words(text: str) -> str:
    return " " + " ".join(re.findall(r"\w+", text.casefold())) + " "


def cue_hits(spec: Spec, text: str) -> set[str]:
    """Categories with a cue in the text, matched as whole words ("skill" is not "kill"), in every
    reading of its skeleton: "kіll" with a Cyrillic і, "ｋｉｌｌ" or "k i l l" still route."""
    readings = [_words(reading) for reading in variants(text)]
    return {c.id for c in spec.categories if any(_words(cue) in words for cue in c.cues for words in readings)}


def route(spec: Spec, text: str, similarities: dict[str, float], *, limit: int = MAX_ROUTED) -> list[Routed]:
    """Pure: the categories to read in full, strongest first, from cue hits and per-category similarity."""
    cues = cue_hits(spec, text)
    scored = []
    for category in spec.categories:
        dense = similarities.get(category.id, 0.0)
        cue = category.id in cues
        if cue or dense >= DENSE_THRESHOLD:
            scored.append(Routed(category.id, round(dense + (CUE_BONUS if cue else 0.0), 3), cue))
    return sorted(scored, key=lambda r: -r.score)[:limit]


class Router:
    """Holds the spec's text vectors (computed once, when the embedding model is ready)."""

    def __init__(self, spec: Spec, encode: Encode | None = None) -> None:
        self.spec = spec
        self._encode = encode
        self._pairs = category_texts(spec)
        self._vectors: np.ndarray | None = None
        self._lock = threading.Lock()

    def prepare(self) -> None:
        """Embed the spec's texts (about 0.3 s); the app does it right after the model loads."""
        with self._lock:
            if self._vectors is None and self._encode is not None:
                self._vectors = np.asarray(self._encode([text for _, text in self._pairs]), dtype=np.float32)

    def similarities(self, vector: np.ndarray | None) -> dict[str, float]:
        """Per category, the cosine of the request to its nearest text (empty without a vector)."""
        if vector is None or self._encode is None:
            return {}
        self.prepare()
        assert self._vectors is not None, "prepare() embeds the texts whenever there is an encoder"
        scores = self._vectors @ np.asarray(vector, dtype=np.float32)
        best: dict[str, float] = {}
        for (category, _), score in zip(self._pairs, scores.tolist(), strict=True):
            best[category] = max(best.get(category, -1.0), score)
        return best

    def route(self, text: str, vector: np.ndarray | None) -> list[Routed]:
        """Blocking (may embed the spec once): call it from a worker thread."""
        return route(self.spec, text, self.similarities(vector))


def routed_ids(routed: Sequence[Routed]) -> list[str]:
    return [r.category for r in routed]
