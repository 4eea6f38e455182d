"""Hybrid recall of one user's past messages: dense (FAISS) + lexical (FTS5 / PostgreSQL), fused.

Every query is scoped to one user twice over: the dense side searches only that user's index, and
the lexical side and the final row load both filter on the user id. Threads marked "don't
remember", excluded ids (the live window) and incomplete replies are never returned.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
from sqlalchemy import text
from sqlmodel import Session, col, select

from memory.index import UserIndexes
from memory.models import Author, Message, MessageStatus, Thread, aware

# Fusion: lexical scores scaled to [0, 1] by the best hit, plus DENSE_WEIGHT x cosine. On LoCoMo this
# beat reciprocal rank fusion by several points of recall@5, because the two sides are far from
# equally good there (lexical 0.60, dense 0.35); rank fusion treats them as equals. Both weights
# were chosen on the first four LoCoMo conversations (README, "Recall").
DENSE_WEIGHT = 0.5
CONTEXT_WEIGHT = 0.4  # BM25 weight of the previous message's words against the message's own (1.0)
MAX_QUERY_TERMS = 48  # a 100,000-character query is cut to its first distinct terms

# Words that carry no topic; dropping them keeps lexical matches meaningful and fast.
STOPWORDS = frozenset("""
a about above after again all am an and any are as at be been before being below between both but by can
could did do does doing down during each few for from further had has have having he her here hers herself
him himself his how i if in into is it its itself just me more most my myself no nor not now of off on once
only or other our ours ourselves out over own same she should so some such than that the their theirs them
themselves then there these they this those through to too under until up very was we were what when where
which while who whom why will with would you your yours yourself yourselves i'm it's don't didn't
""".split())
_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True)
class RecallQuery:
    user_id: int
    text: str
    vector: np.ndarray | None  # None: lexical only (e.g. the model is still loading)
    k: int = 8
    authors: frozenset[Author] = frozenset({Author.USER, Author.ASSISTANT})
    exclude_message_ids: frozenset[int] = frozenset()
    recency_half_life_days: float | None = None  # None: no recency weighting
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    candidates: int = 50  # taken from each side before fusion
    # Dense search always returns *something*; below this cosine it is noise, not memory.
    min_similarity: float = 0.2


@dataclass(frozen=True)
class Recalled:
    message_id: int
    thread_id: str
    thread_name: str | None
    author: Author
    content: str
    created_at: datetime
    score: float


# --- pure parts ------------------------------------------------------------------------------

def query_terms(query: str) -> list[str]:
    """Distinct, lower-cased content words of a query, in order, at most MAX_QUERY_TERMS."""
    seen: dict[str, None] = {}
    for word in _WORD.findall(query.lower()):
        if word in STOPWORDS or (len(word) == 1 and word.isascii()):
            continue
        seen.setdefault(word, None)
        if len(seen) >= MAX_QUERY_TERMS:
            break
    return list(seen)


def fts5_match(user_id: int, terms: Sequence[str]) -> str | None:
    """An FTS5 MATCH expression: this user's rows whose text or context contains any of the terms."""
    if not terms:
        return None
    quoted = " OR ".join('"' + term.replace('"', '""') + '"' for term in terms)
    return f"owner:u{int(user_id)} AND {{content context}}:({quoted})"


def tsquery(terms: Sequence[str]) -> str | None:
    """A PostgreSQL to_tsquery expression matching any of the terms (terms are \\w+ only)."""
    safe = [t for t in terms if re.fullmatch(r"\w+", t)]
    return " | ".join(safe) if safe else None


Scored = Sequence[tuple[int, float]]  # (message id, score), best first


def fuse(dense: Scored, lexical: Scored, *, dense_weight: float | None = None) -> dict[int, float]:
    """Score fusion: lexical score / best lexical score + dense_weight x cosine (negative cosines count 0)."""
    dense_weight = DENSE_WEIGHT if dense_weight is None else dense_weight
    best = max((score for _, score in lexical), default=0.0)
    fused: dict[int, float] = {}
    if best > 0:
        for item, score in lexical:
            fused[item] = max(score, 0.0) / best
    for item, cosine in dense:
        fused[item] = fused.get(item, 0.0) + dense_weight * max(cosine, 0.0)
    return fused


def recency_weight(created_at: datetime, now: datetime, half_life_days: float | None) -> float:
    if not half_life_days:
        return 1.0
    age_days = max(0.0, (now - aware(created_at)).total_seconds() / 86400)
    # Halves the score every half-life but never below a quarter: old facts still count.
    return 0.25 + 0.75 * math.pow(0.5, age_days / half_life_days)


def normalise(text_: str) -> str:
    folded = unicodedata.normalize("NFKC", text_).casefold()
    return " ".join(_WORD.findall(folded))


def collapse_duplicates(items: Sequence[Recalled]) -> list[Recalled]:
    """Keep the best-scored of messages whose normalised text is the same."""
    kept, seen = [], set()
    for item in items:
        key = normalise(item.content)
        if key in seen:
            continue
        seen.add(key)
        kept.append(item)
    return kept


# --- I/O --------------------------------------------------------------------------------------

def dense_ranking(indexes: UserIndexes, query: RecallQuery, *, fresh: bool = False) -> list[tuple[int, float]]:
    """(message id, cosine), best first. `fresh`: the index was just refreshed, skip the staleness check."""
    if query.vector is None:
        return []
    hits = indexes.search(query.user_id, query.vector, query.candidates, fresh=fresh)
    return [(mid, similarity) for mid, similarity in hits if similarity >= query.min_similarity]


def lexical_ranking(session: Session, query: RecallQuery) -> list[tuple[int, float]]:
    """(message id, relevance > 0), best first: BM25 on SQLite, ts_rank_cd on PostgreSQL."""
    terms = query_terms(query.text)
    if session.get_bind().dialect.name == "postgresql":
        expression = tsquery(terms)
        if expression is None:
            return []
        rows = session.execute(text(
            "SELECT id, ts_rank_cd(tsv, to_tsquery('english', :q)) AS rank FROM message "
            "WHERE user_id = :user AND tsv @@ to_tsquery('english', :q) ORDER BY rank DESC, id DESC LIMIT :n"
        ), {"user": query.user_id, "q": expression, "n": query.candidates})
        return [(row[0], float(row[1])) for row in rows]
    expression = fts5_match(query.user_id, terms)
    if expression is None:
        return []
    rows = session.execute(text(  # bm25() is lower for better matches
        f"SELECT rowid, -bm25(message_fts, 1.0, {CONTEXT_WEIGHT}, 0.0) AS score FROM message_fts WHERE message_fts MATCH :q "
        "ORDER BY score DESC, rowid DESC LIMIT :n"
    ), {"q": expression, "n": query.candidates})
    return [(row[0], float(row[1])) for row in rows]


def recall(session: Session, indexes: UserIndexes, query: RecallQuery) -> list[Recalled]:
    """The user's most relevant past messages, best first, at most `query.k`."""
    if not query.text.strip() or query.k <= 0:
        return []
    return assemble(session, query, dense_ranking(indexes, query), lexical_ranking(session, query))


def assemble(session: Session, query: RecallQuery, dense: Scored, lexical: Scored) -> list[Recalled]:
    """Fuse both sides and load the rows that pass every filter, best first.

    Split from `recall` so a caller can compute the lexical ranking while the query is still being
    embedded, and the dense one afterwards. Without recency weighting the order is known before
    loading, so rows are loaded a few at a time, best first, until `k` survive the filters.
    """
    fused = fuse(dense, lexical)
    ordered = sorted(fused, key=lambda mid: (-fused[mid], -mid))
    step = len(ordered) if query.recency_half_life_days else max(3 * query.k, 10)
    found: list[Recalled] = []
    for start in range(0, len(ordered), step):
        found += _load(session, query, ordered[start:start + step], fused)
        found.sort(key=lambda item: (-item.score, -item.message_id))
        kept = collapse_duplicates(found)
        if len(kept) >= query.k:
            break
    return collapse_duplicates(found)[: query.k]


def _load(session: Session, query: RecallQuery, ids: Sequence[int], fused: dict[int, float]) -> list[Recalled]:
    rows = session.execute(
        # sqlmodel's select() is typed for at most four columns; this one takes six
        select(Message.id, Message.thread_id, Thread.name, Message.author, Message.content,  # type: ignore[call-overload]
               Message.created_at)
        .join(Thread, col(Thread.id) == Message.thread_id)
        .where(
            col(Message.id).in_(list(ids)),
            Message.user_id == query.user_id,  # defence in depth: ids came from this user's index
            Thread.user_id == query.user_id,
            Thread.remember == True,  # noqa: E712 (SQL expression)
            Message.status == MessageStatus.COMPLETE,
            col(Message.author).in_([str(a) for a in query.authors]),
            col(Message.id).not_in(list(query.exclude_message_ids) or [-1]),
        )
    ).all()
    return [
        Recalled(
            message_id=mid, thread_id=thread_id, thread_name=name, author=Author(author), content=content,
            created_at=created, score=fused[mid] * recency_weight(created, query.now, query.recency_half_life_days),
        )
        for mid, thread_id, name, author, content, created in rows
    ]
