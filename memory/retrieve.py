"""Hybrid recall of one user's past messages: dense (FAISS) + lexical (FTS5 / PostgreSQL), fused.

Every query is scoped to one user twice over: the dense side searches only that user's index, and
the lexical side and the final row load both filter on the user id. Threads marked "don't
remember", excluded ids (the live window) and incomplete replies are never returned.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
from sqlalchemy import bindparam, text
from sqlmodel import Session, col, select

from memory.index import UserIndexes
from memory.models import Author, Message, MessageStatus, Thread, aware

# Fusion: lexical scores scaled to [0, 1] by the best hit, plus DENSE_WEIGHT x cosine. On LoCoMo this
# beat reciprocal rank fusion by several points of recall@5, because the two sides are far from
# equally good there (lexical 0.60, dense 0.35); rank fusion treats them as equals. Both weights
# were chosen on the first four LoCoMo conversations (README, "Recall").
DENSE_WEIGHT = 0.5
# Scaling by the best hit makes any best hit a full-confidence 1.0, even one that shares a single
# everyday word ("Friday") with a longer question asked in other words than the memory it needs.
# So the lexical side counts fully only when one of its first SUPPORT_HITS hits contains at least
# two of the question's distinct terms (or all of a one-term question); otherwise it counts
# NARROW_MATCH_WEIGHT: enough to order ties, not to outvote the dense side. On LoCoMo, 95% of
# questions pass (their best hit shares 2+ terms) and recall is unchanged; on the preferences set,
# whose best hits share one word, hybrid recall@5 rose from 0.14 to 0.22 (README, "Recall").
SUPPORT_HITS = 3
NARROW_MATCH_WEIGHT = 0.05
CONTEXT_WEIGHT = 0.4  # BM25 weight of the previous message's words against the message's own (1.0)
MAX_QUERY_TERMS = 48  # a 100,000-character query is cut to its first distinct terms

# Words that carry no topic; dropping them keeps lexical matches meaningful and fast. They include all
# of PostgreSQL's English stop words, so that both backends see the same terms of a question.
STOPWORDS = frozenset("""
a about above after again against all am an and any are as at be because been before being below between both but by can
could did do does doing down during each few for from further had has have having he her here hers herself
him himself his how i if in into is it its itself just me more most my myself no nor not now of off on once
only or other our ours ourselves out over own same she should so some such than that the their theirs them
themselves then there these they this those through to too under until up very was we were what when where
which while who whom why will with would you your yours yourself yourselves i'm it's don't didn't don
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
    # Dense search always returns *something*; below this cosine it is noise, not memory. A stated
    # preference that a later question needs has a median cosine of 0.14 with it: at 0.2 / 0.15 / 0.1,
    # hybrid recall@10 on the preferences set is 0.27 / 0.34 / 0.39, LoCoMo unchanged, while small talk
    # ("thanks", "ok") recalls 3.5 / 5.7 / 5.9 of 6 items, mostly through its words (README, "Recall").
    min_similarity: float = 0.1


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


def fuse(
    dense: Scored, lexical: Scored, *, lexical_weight: float = 1.0, dense_weight: float | None = None,
) -> dict[int, float]:
    """Score fusion: lexical_weight x lexical score / best lexical score + dense_weight x cosine
    (negative cosines count 0)."""
    dense_weight = DENSE_WEIGHT if dense_weight is None else dense_weight
    best = max((score for _, score in lexical), default=0.0)
    fused: dict[int, float] = {}
    if best > 0:
        for item, score in lexical:
            fused[item] = lexical_weight * max(score, 0.0) / best
    for item, cosine in dense:
        fused[item] = fused.get(item, 0.0) + dense_weight * max(cosine, 0.0)
    return fused


def lexical_weight(terms: int, support: Sequence[int]) -> float:
    """How much the lexical side counts, from how many distinct query terms (of `terms`) each of its
    first hits contains: fully when one contains two, or all of a one-term query."""
    needed = min(2, terms)
    return 1.0 if needed and max(support, default=0) >= needed else NARROW_MATCH_WEIGHT


def questions_first(fused: dict[int, float], answers: dict[int, int]) -> dict[int, float]:
    """Each reply (a key of `answers`) whose question (its value) is also a candidate lifts that
    question to the reply's score. Order the result with `best_first(..., answers)`: ties go to the question.

    A reply often restates the message it answers ("Noted: no dairy"), and the bundled model tends to
    rank the terse restatement above the person's own words, which are the better evidence about them.
    Measured against leaving replies alone, capping them at half, replacing them, and lifting only
    near-equal questions (README, "Recall")."""
    lifted = dict(fused)
    for reply, question in answers.items():
        if reply in fused and question in fused:
            lifted[question] = max(lifted[question], fused[reply])
    return lifted


def best_first(scores: dict[int, float], replies: Collection[int] = ()) -> list[int]:
    """Ids by score; among equals, a reply after the rest, then the newest first."""
    return sorted(scores, key=lambda mid: (-scores[mid], mid in replies, -mid))


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


def lexical_support(session: Session, query: RecallQuery, ids: Sequence[int]) -> list[int]:
    """For each of `ids` (this user's lexical hits), how many distinct query terms it contains, in its
    text or its context, as the backend's own lexical index matches them (stemming included)."""
    terms, ids = query_terms(query.text), [int(i) for i in ids]
    if not terms or not ids:
        return [0] * len(ids)
    if session.get_bind().dialect.name == "postgresql":
        safe = [t for t in terms if re.fullmatch(r"\w+", t)]
        count = " + ".join(f"(tsv @@ to_tsquery('english', :t{i}))::int" for i in range(len(safe))) or "0"
        rows = session.execute(
            text(f"SELECT id, {count} FROM message WHERE user_id = :user AND id IN :ids")
            .bindparams(bindparam("ids", expanding=True)),
            {"user": query.user_id, "ids": ids, **{f"t{i}": term for i, term in enumerate(safe)}},
        ).all()
        found = {row[0]: int(row[1]) for row in rows}
        return [found.get(mid, 0) for mid in ids]
    # One FTS5 lookup per (term, hit), each a seek to one rowid within this user's rows.
    params: dict[str, object] = {f"h{j}": mid for j, mid in enumerate(ids)}
    params |= {f"t{i}": fts5_match(query.user_id, [term]) for i, term in enumerate(terms)}
    parts = [f"SELECT {j} FROM message_fts WHERE message_fts MATCH :t{i} AND rowid = :h{j}"
             for i in range(len(terms)) for j in range(len(ids))]
    counts = [0] * len(ids)
    for (j,) in session.execute(text(" UNION ALL ".join(parts)), params):
        counts[j] += 1
    return counts


def lexical_confidence(session: Session, query: RecallQuery, lexical: Scored) -> float:
    """`lexical_weight` of the first hits, asked hit by hit: the first that holds enough settles it."""
    terms, support = len(query_terms(query.text)), []
    for mid, _ in lexical[:SUPPORT_HITS]:
        support += lexical_support(session, query, [mid])
        if lexical_weight(terms, support) == 1.0:
            break
    return lexical_weight(terms, support)


def answered_questions(session: Session, query: RecallQuery, candidates: Collection[int]) -> dict[int, int]:
    """{reply id: id of the user message it answers} for this user's replies among the candidates
    whose question, the message just before them in their thread, is a candidate too."""
    if not candidates:
        return {}
    rows = session.execute(
        text(
            "SELECT r.id, q.id FROM message r JOIN message q ON q.id = (SELECT p.id FROM message p "
            "WHERE p.thread_id = r.thread_id AND p.id < r.id ORDER BY p.id DESC LIMIT 1) "
            "WHERE r.user_id = :user AND r.author = :assistant AND q.user_id = :user AND q.author = :person "
            "AND r.id IN :ids"
        ).bindparams(bindparam("ids", expanding=True)),
        {"user": query.user_id, "assistant": str(Author.ASSISTANT), "person": str(Author.USER),
         "ids": [int(mid) for mid in candidates]},
    )
    return {reply: question for reply, question in rows if question in candidates}


def recall(session: Session, indexes: UserIndexes, query: RecallQuery) -> list[Recalled]:
    """The user's most relevant past messages, best first, at most `query.k`."""
    if not query.text.strip() or query.k <= 0:
        return []
    return assemble(session, query, dense_ranking(indexes, query), lexical_ranking(session, query))


def assemble(session: Session, query: RecallQuery, dense: Scored, lexical: Scored, *,
             confidence: float | None = None) -> list[Recalled]:
    """Fuse both sides and load the rows that pass every filter, best first.

    Split from `recall` so a caller can compute the lexical ranking and its `confidence` while the
    query is still being embedded, and the dense one afterwards. Without recency weighting the order is known before
    loading, so rows are loaded a few at a time, best first, until `k` survive the filters.
    """
    weight = 1.0  # alone, the lexical side's own order is all there is
    if dense and lexical:
        weight = lexical_confidence(session, query, lexical) if confidence is None else confidence
    fused = fuse(dense, lexical, lexical_weight=weight)
    answers = answered_questions(session, query, fused)
    fused = questions_first(fused, answers)
    ordered = best_first(fused, answers)
    step = len(ordered) if query.recency_half_life_days else max(3 * query.k, 10)
    found: list[Recalled] = []
    for start in range(0, len(ordered), step):
        found += _load(session, query, ordered[start:start + step], fused)
        found.sort(key=lambda item: (-item.score, item.message_id in answers, -item.message_id))
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
