"""Pure: the model proposes, this code disposes. Proposals + the current profile -> a list of changes.

Rules, in the order they are applied to each proposal:
1. a proposal like wording the user took back (a rejected entry, or the text an edit of theirs replaced)
   is dropped: the same normalised text, cosine >= REJECTED_SIMILARITY, or the same key words
   (`same_claim`). What the user took back never comes back in new words, or under another facet;
2. "support" / "contradict" name an entry; an "add" that duplicates an active entry of its facet
   (same normalised text, or cosine >= DUPLICATE_SIMILARITY) counts as support for it;
3. a pinned or user-written entry is never changed, whatever the model says;
4. support raises the entry's support count, joins the evidence and refreshes its confidence;
5. contradiction supersedes the entry (kept, with its end date) and adds the proposal's text as new;
6. each facet keeps at most `cap` active entries; the weakest inferred ones are superseded first.
Nothing here touches a database: the job writes the returned changes as history rows in one commit.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from hypotheses.skeleton import skeleton
from memory.models import EntrySource, EntryStatus

DUPLICATE_SIMILARITY = 0.85
# Measured with all-MiniLM-L6-v2 on hypothesis sentences: 276 pairs of distinct facts reached at most
# 0.62 cosine (one pair; the next 0.56), paraphrases of one fact 0.62-0.87. Dropping a proposal that
# resembles a rejected entry costs little when wrong, so the bar for "like a rejected one" is low;
# the bar for "the same as an active one" stays high, because contradictions ("prefers short answers"
# vs "prefers long answers") score 0.78-0.82 too and must not be counted as support.
REJECTED_SIMILARITY = 0.65
# The embedding alone misses short rewordings ("writes short direct msgs" 0.61, "Is a direct writer who
# keeps it short" 0.63 against "Writes short, direct messages."), so a proposal that shares most of a
# withdrawn text's key words is taken back too (see `same_claim`).
KEY_WORD_OVERLAP = 0.6
CAP_PER_FACET = 8
HALF_LIFE_DAYS = 90.0

Vector = Sequence[float]
Similarity = Callable[[Vector, Vector], float]


@dataclass(frozen=True)
class Entry:
    id: int
    facet: str
    text: str
    confidence: float
    support: int
    evidence: tuple[int, ...]  # message ids
    status: EntryStatus
    source: EntrySource
    pinned: bool
    last_seen: datetime
    vector: Vector | None = None
    replaces: int | None = None  # the entry this one superseded, when it came from a contradiction
    sensitive: bool = False  # a sensitive attribute the user stated about themselves


@dataclass(frozen=True)
class Withdrawn:
    """Wording the user took back: a rejected entry's text, or the text one of their edits replaced."""

    text: str
    vector: Vector | None = None


@dataclass(frozen=True)
class Candidate:
    """A parsed proposal, its evidence already mapped to message ids, its text embedded."""

    action: str  # add | support | contradict
    facet: str
    text: str
    confidence: float
    evidence: tuple[int, ...]
    entry_id: int | None = None
    vector: Vector | None = None
    sensitive: bool = False


class Kind(StrEnum):
    ADD = "add"
    SUPPORT = "support"
    SUPERSEDE = "supersede"
    EVICT = "evict"
    SKIP = "skip"


@dataclass(frozen=True)
class Change:
    kind: Kind
    reason: str
    before: Entry | None = None  # None for an addition
    after: Entry | None = None  # None for a skip


def normalise(text: str) -> str:
    """Words of the text's skeleton: a rejected claim in look-alike letters is still the rejected claim."""
    return " ".join(re.findall(r"\w+", skeleton(text)))


def _stem(word: str) -> str:
    """A crude suffix strip: enough that "uses", "using" and "use" meet, and "msgs" meets "msg"."""
    for suffix in ("ings", "ing", "ers", "er", "ies", "es", "ed", "ly", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 2:
            word = word[: -len(suffix)]
            break
    return word[:-1] if word.endswith("e") and len(word) > 2 else word


# Words that say nothing about which claim a hypothesis makes: grammar, hedges, and the words every
# style hypothesis shares ("writes", "messages").
_NOT_KEY = frozenset(_stem(word) for word in """
a about after all also always an and are as at be been before being but by can could do does for from
generally has have he her him his how i if in into is it its lot many more most much of often on one
only or our person quite rather really seems she so some sometimes such tends than that the their them
they this those to too typically up usually very was what when which who whom with would you your
writes writing writer message messages text texts sentence sentences word words
""".split())


def key_words(text: str) -> frozenset[str]:
    """Pure: the stems of a text's words that carry its claim."""
    stems = (_stem(word) for word in normalise(text).lower().split())
    return frozenset(stem for stem in stems if stem not in _NOT_KEY and not stem.isdigit())


def same_claim(a: str, b: str) -> bool:
    """Pure: the two texts share at least two key words, and most of the shorter one's.
    Deliberately loose, and only ever used to drop proposals: "Writes long messages" makes the same
    claim as a withdrawn "Writes short messages" to this test, which costs the profile an entry the user
    can add themselves, never a correction the user made."""
    ka, kb = key_words(a), key_words(b)
    shared = len(ka & kb)
    return shared >= 2 and shared >= KEY_WORD_OVERLAP * min(len(ka), len(kb))


def cosine(a: Vector, b: Vector) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norms = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norms if norms else 0.0


def confidence(support: int, last_seen: datetime, now: datetime, proposed: float) -> float:
    """Grows with independent support (1 - 0.5^support), fades with time since last seen, floor 0.1."""
    grown = max(proposed, 1.0 - 0.5 ** support)
    age_days = max(0.0, (now - last_seen).total_seconds() / 86400)
    return round(max(0.1, min(0.99, grown * (0.5 + 0.5 * 0.5 ** (age_days / HALF_LIFE_DAYS)))), 3)


def _alike(a_text: str, a_vec: Vector | None, b: Entry, threshold: float, similarity: Similarity) -> bool:
    if normalise(a_text) == normalise(b.text):
        return True
    return a_vec is not None and b.vector is not None and similarity(a_vec, b.vector) >= threshold


def _taken_back(candidate: Candidate, withdrawn: Withdrawn, similarity: Similarity) -> bool:
    if normalise(candidate.text) == normalise(withdrawn.text) or same_claim(candidate.text, withdrawn.text):
        return True
    return (candidate.vector is not None and withdrawn.vector is not None
            and similarity(candidate.vector, withdrawn.vector) >= REJECTED_SIMILARITY)


def _protected(entry: Entry) -> bool:
    return entry.pinned or entry.source is EntrySource.USER


def merge(
    profile: Sequence[Entry],
    candidates: Sequence[Candidate],
    *,
    now: datetime,
    next_id: int,
    withdrawn: Sequence[Withdrawn] = (),
    cap: int = CAP_PER_FACET,
    similarity: Similarity = cosine,
) -> list[Change]:
    """The changes that bring `profile` up to date with `candidates`. New entries get ids from next_id.
    `withdrawn`: wordings the user replaced by editing (rejected entries are read from `profile`)."""
    current = {entry.id: entry for entry in profile}
    changes: list[Change] = []

    def record(change: Change) -> None:
        changes.append(change)
        if change.after is not None:
            current[change.after.id] = change.after

    taken_back = [*withdrawn, *(Withdrawn(e.text, e.vector) for e in profile if e.status is EntryStatus.REJECTED)]
    for candidate in candidates:
        if any(_taken_back(candidate, w, similarity) for w in taken_back):
            record(Change(Kind.SKIP, "like wording the user rejected or replaced"))
            continue
        target = _target(candidate, current, similarity)
        if target is None and candidate.action != "add":
            record(Change(Kind.SKIP, f"{candidate.action} of an entry that is not active"))
            continue
        if target is not None and _protected(target):
            record(Change(Kind.SKIP, "pinned or written by the user", before=target))
            continue
        replaced = None
        if target is not None and candidate.action == "contradict":
            record(Change(Kind.SUPERSEDE, "contradicted by new evidence", target,
                          replace(target, status=EntryStatus.SUPERSEDED, last_seen=now)))
            replaced, target = target.id, None
        if target is not None:
            support = target.support + 1
            record(Change(Kind.SUPPORT, "supported by new evidence", target, replace(
                target, support=support, evidence=tuple(sorted(set(target.evidence) | set(candidate.evidence))),
                last_seen=now, confidence=confidence(support, now, now, candidate.confidence))))
            continue
        added = Entry(
            id=next_id, facet=candidate.facet, text=candidate.text, support=1, evidence=tuple(candidate.evidence),
            status=EntryStatus.ACTIVE, source=EntrySource.INFERRED, pinned=False, last_seen=now, vector=candidate.vector,
            confidence=confidence(1, now, now, candidate.confidence), replaces=replaced, sensitive=candidate.sensitive,
        )
        next_id += 1
        record(Change(Kind.ADD, "new hypothesis", None, added))
    for change in _evictions(current.values(), cap, now):
        record(change)
    return changes


def _target(candidate: Candidate, current: dict[int, Entry], similarity: Similarity) -> Entry | None:
    if candidate.entry_id is not None:
        entry = current.get(candidate.entry_id)
        return entry if entry is not None and entry.status is EntryStatus.ACTIVE else None
    if candidate.action != "add":
        return None
    for entry in current.values():
        if entry.status is EntryStatus.ACTIVE and entry.facet == candidate.facet and _alike(
                candidate.text, candidate.vector, entry, DUPLICATE_SIMILARITY, similarity):
            return entry
    return None


def strength(entry: Entry, now: datetime) -> float:
    return confidence(entry.support, entry.last_seen, now, entry.confidence)


def _evictions(entries: Iterable[Entry], cap: int, now: datetime) -> list[Change]:
    evicted = []
    by_facet: dict[str, list[Entry]] = {}
    for entry in entries:
        if entry.status is EntryStatus.ACTIVE:
            by_facet.setdefault(entry.facet, []).append(entry)
    for facet_entries in by_facet.values():
        excess = len(facet_entries) - cap
        weakest = sorted((e for e in facet_entries if not _protected(e)), key=lambda e: (strength(e, now), e.id))
        for entry in weakest[:max(0, excess)]:
            evicted.append(Change(Kind.EVICT, f"over the cap of {cap} for its facet", entry,
                                  replace(entry, status=EntryStatus.SUPERSEDED)))
    return evicted
