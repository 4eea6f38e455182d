"""`hyperalign bench recall`: recall quality on LoCoMo-format data.

`hyperalign bench recall FILE...` indexes each conversation as one user's history (all turns,
both speakers, one thread per sitting), asks every question, and scores turn-level evidence recall:
for one question, the share of its gold evidence turns found in the top k; averaged over questions.
Evidence ids are normalised as LoCoMo's SOURCE.md describes (several ids in one string, "D:11:26",
"D30:05"); ids that name no turn are dropped, and a question left without evidence is not scored
(counted in `unscored`). Category 5 (adversarial) is reported apart from the overall figure.

Noise: each person is also asked up to FOREIGN_QUESTIONS of the next person's questions, about a
life that is not theirs, and the SMALL_TALK messages, which ask about nothing; the bench counts what
the app's recall (its k, RECALL_K) brings back for each. None of it can be evidence. Small talk is
what the cosine floor is for: a question about somebody else still shares words with one's history,
and the lexical side finds them whatever the floor.
"""

from __future__ import annotations

import re
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from assistant.measure.stats import percentile

CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop", 5: "adversarial"}
KS = (1, 5, 10, 25)
SHARE_KS = (5, 10)
MODES = ("lexical", "dense", "hybrid")
RECALL_K = 6  # the app's default `recall_results`
FOREIGN_QUESTIONS = 50
SMALL_TALK = ("hi", "hello!", "thanks", "ok", "cool, thank you", "good morning", "lol", "yes please", "no",
              "bye for now", "hmm", "sounds good")


@dataclass(frozen=True)
class Turn:
    dia_id: str
    speaker: str
    text: str
    sitting: int
    when: str


@dataclass(frozen=True)
class Question:
    text: str
    category: int
    evidence: frozenset[str]


@dataclass
class Conversation:
    sample_id: str
    speakers: tuple[str, str]
    turns: list[Turn]
    questions: list[Question]
    unscored: int = 0


# --- pure: reading LoCoMo and scoring --------------------------------------------------------

def evidence_ids(raw: Iterable[str], known: set[str]) -> frozenset[str]:
    """Normalise LoCoMo evidence references and keep the ones that name a turn."""
    found = set()
    for entry in raw:
        for piece in re.split(r"[;\s]+", str(entry).strip()):
            match = re.fullmatch(r"D:?(\d+):0*(\d+)", piece)
            if match:
                dia_id = f"D{int(match.group(1))}:{int(match.group(2))}"
                if dia_id in known:
                    found.add(dia_id)
    return frozenset(found)


def turn_text(turn: dict, speaker: str) -> str:
    """What we store for a turn: the speaker's words, plus the caption of a shared photo."""
    text = f"{speaker}: {turn.get('text', '')}".strip()
    if turn.get("blip_caption"):
        text += f" (shares a photo: {turn['blip_caption']})"
    return text


def parse_locomo(data: list[dict]) -> list[Conversation]:
    conversations: list[Conversation] = []
    for sample in data:
        conv = sample["conversation"]
        turns = []
        sittings = sorted(
            (int(key.split("_")[1]), value) for key, value in conv.items()
            if re.fullmatch(r"session_\d+", key) and isinstance(value, list)
        )
        for number, sitting in sittings:
            when = str(conv.get(f"session_{number}_date_time", ""))
            turns += [Turn(t["dia_id"], t["speaker"], turn_text(t, t["speaker"]), number, when) for t in sitting]
        known = {t.dia_id for t in turns}
        item = Conversation(sample.get("sample_id", f"conv-{len(conversations)}"),
                            (conv.get("speaker_a", "A"), conv.get("speaker_b", "B")), turns, [])
        for qa in sample.get("qa", []):
            evidence = evidence_ids(qa.get("evidence") or [], known)
            if evidence:
                item.questions.append(Question(str(qa["question"]), int(qa["category"]), evidence))
            else:
                item.unscored += 1
        conversations.append(item)
    return conversations


def recall_at(ranked: Sequence[str], evidence: frozenset[str], k: int) -> float:
    return len(evidence & set(ranked[:k])) / len(evidence)


@dataclass
class Scores:
    """Per mode, per group ("overall", category names): one recall value per question and k."""

    values: dict[str, dict[str, dict[int, list[float]]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(lambda: defaultdict(list))))
    latency_ms: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    # Per mode and k: the share of the top k that are the second speaker's turns (the app's replies).
    replies: dict[str, dict[int, list[float]]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(list)))
    foreign: list[int] = field(default_factory=list)  # items recalled for each question about somebody else
    small_talk: list[int] = field(default_factory=list)  # items recalled for each small-talk message


    def add(self, mode: str, category: int, ranked: Sequence[str], evidence: frozenset[str],
            replies: frozenset[str] = frozenset()) -> None:
        groups = [CATEGORIES.get(category, str(category))]
        if category != 5:
            groups.append("overall")
        for group in groups:
            for k in KS:
                self.values[mode][group][k].append(recall_at(ranked, evidence, k))
        for k in SHARE_KS:
            if ranked[:k]:
                self.replies[mode][k].append(sum(dia in replies for dia in ranked[:k]) / len(ranked[:k]))

    def table(self) -> dict:
        result: dict[str, Any] = {}
        for mode, groups in self.values.items():
            result[mode] = {
                group: {"n": len(per_k[KS[0]]), **{f"R@{k}": round(statistics.fmean(v), 4) for k, v in per_k.items()}}
                for group, per_k in groups.items()
            }
        result["reply_share"] = {mode: {f"@{k}": round(statistics.fmean(v), 4) for k, v in per_k.items()}
                                 for mode, per_k in self.replies.items()}
        if self.foreign:
            result["foreign"] = {"questions": len(self.foreign), "k": RECALL_K,
                                 "mean_recalled": round(statistics.fmean(self.foreign), 3),
                                 "share_recalling_nothing": round(sum(n == 0 for n in self.foreign) / len(self.foreign), 4)}
        if self.small_talk:
            result["small_talk"] = {"messages": len(self.small_talk), "k": RECALL_K,
                                    "mean_recalled": round(statistics.fmean(self.small_talk), 3),
                                    "share_recalling_nothing": round(
                                        sum(n == 0 for n in self.small_talk) / len(self.small_talk), 4)}
        result["latency_ms"] = {
            name: {"p50": round(percentile(v, 50), 2), "p95": round(percentile(v, 95), 2), "n": len(v)}
            for name, v in self.latency_ms.items()
        }
        return result


def render_recall_table(result: dict) -> str:
    groups = ["overall"] + [CATEGORIES[c] for c in (1, 2, 3, 4)] + ["adversarial"]
    lines = [f"{'group':<13} {'n':>5}  " + "  ".join(f"{m + ' R@' + str(k):>13}" for k in KS for m in MODES)]
    for group in groups:
        row = result["hybrid"].get(group)
        if row is None:
            continue
        cells = "  ".join(f"{result[m][group][f'R@{k}']:>13.3f}" for k in KS for m in MODES)
        lines.append(f"{group:<13} {row['n']:>5}  {cells}")
    lines.append("(overall excludes adversarial, category 5)")
    if shares := result.get("reply_share"):
        lines.append("the second speaker's turns (the app's replies) among the top " + " / ".join(map(str, SHARE_KS)) + ": "
                     + ", ".join(f"{m} " + " / ".join(f"{shares[m][f'@{k}']:.0%}" for k in SHARE_KS)
                                 for m in MODES if m in shares))
    if foreign := result.get("foreign"):
        lines.append(f"questions about somebody else ({foreign['questions']}): {foreign['mean_recalled']:.2f} of "
                     f"{foreign['k']} recalled on average, none for {foreign['share_recalling_nothing']:.0%}")
    if small := result.get("small_talk"):
        lines.append(f"small talk ({small['messages']}): {small['mean_recalled']:.2f} of {small['k']} recalled on "
                     f"average, none for {small['share_recalling_nothing']:.0%}")
    for name, stats in result["latency_ms"].items():
        lines.append(f"latency {name:<22} p50 {stats['p50']:>7.2f} ms   p95 {stats['p95']:>7.2f} ms   (n={stats['n']})")
    return "\n".join(lines)


def render_recall_tables(results: dict[str, dict]) -> str:
    """The sets side by side (overall, each mode at 5, 10 and 25, and recall's own latency), then each in full."""
    lines = [f"{'set':<32} " + "  ".join(f"{m[:3] + ' R@' + str(k):>10}" for m in MODES for k in KS[1:])
             + f"  {'recall p95':>10}"]
    for name, result in results.items():
        cells = "  ".join(f"{result[m]['overall'][f'R@{k}']:>10.3f}" for m in MODES for k in KS[1:])
        lines.append(f"{name[:32]:<32} {cells}  {result['latency_ms']['recall only']['p95']:>7.2f} ms")
    for name, result in results.items():
        lines += ["", f"{name}: {result['conversations']} conversations", render_recall_table(result)]
    return "\n".join(lines)


# --- I/O: running the benchmark ---------------------------------------------------------------

def run_recall_bench(data: list[dict], *, floor: float | None = None, say: Callable[[str], None] = print) -> dict:
    """`floor`: a cosine floor to measure instead of the app's."""
    from memory import store
    from memory.db import make_engine, migrate, read, write
    from memory.embed import Embedder
    from memory.index import UserIndexes
    from memory.models import Author
    from memory.retrieve import RecallQuery, dense_ranking, lexical_ranking, recall
    from memory.vectors import embed_pending

    conversations = parse_locomo(data)
    embedder = Embedder()
    embedder.load()
    scores, unscored = Scores(), sum(c.unscored for c in conversations)
    floor = RecallQuery.min_similarity if floor is None else floor
    with tempfile.TemporaryDirectory(prefix="hyperalign-bench-") as folder:
        engine = make_engine(f"sqlite:///{folder}/bench.db")
        migrate(engine)
        indexes = UserIndexes(engine, model=embedder.model_name, dimension=lambda: embedder.dimension)
        for number, conv in enumerate(conversations, start=1):
            user_id, dia_of = write(engine, partial(_store_conversation, store=store, Author=Author, conv=conv))
            replies = frozenset(t.dia_id for t in conv.turns if t.speaker != conv.speakers[0])  # stored as the app's
            started = time.perf_counter()
            embed_pending(engine, embedder, user_id=user_id, batch=64)
            say(f"[{number}/{len(conversations)}] {conv.sample_id}: {len(conv.turns)} turns embedded in "
                f"{time.perf_counter() - started:.1f} s, {len(conv.questions)} questions")
            for question in conv.questions:
                started = time.perf_counter()
                vector = embedder.encode_one(question.text)
                embedded = time.perf_counter()
                # The app's own query (its candidates per side and its cosine floor), so that "hybrid"
                # is what a turn recalls; only k is raised, to score recall@25.
                query = RecallQuery(user_id=user_id, text=question.text, vector=vector, k=max(KS), min_similarity=floor)
                hybrid = read(engine, partial(recall, indexes=indexes, query=query))
                finished = time.perf_counter()
                scores.latency_ms["query (embed + recall)"].append((finished - started) * 1000)
                scores.latency_ms["recall only"].append((finished - embedded) * 1000)
                rankings = {
                    "hybrid": [dia_of[r.message_id] for r in hybrid],
                    "dense": [dia_of[m] for m, _ in dense_ranking(indexes, query)],
                    "lexical": [dia_of[m] for m, _ in read(engine, partial(lexical_ranking, query=query))],
                }
                for mode, ranked in rankings.items():
                    scores.add(mode, question.category, ranked, question.evidence, replies)
            stranger = conversations[number % len(conversations)]
            for question in stranger.questions[:FOREIGN_QUESTIONS] if stranger is not conv else []:
                query = RecallQuery(user_id=user_id, text=question.text, vector=embedder.encode_one(question.text),
                                    k=RECALL_K, min_similarity=floor)
                scores.foreign.append(len(read(engine, partial(recall, indexes=indexes, query=query))))
            for chat in SMALL_TALK:
                query = RecallQuery(user_id=user_id, text=chat, vector=embedder.encode_one(chat), k=RECALL_K,
                                    min_similarity=floor)
                scores.small_talk.append(len(read(engine, partial(recall, indexes=indexes, query=query))))
        engine.dispose()
    result = scores.table()
    result["unscored_questions"] = unscored
    result["conversations"] = len(conversations)
    return result


def _store_conversation(session, store, Author, conv: Conversation) -> tuple[int, dict[int, str]]:
    user = store.create_user(session, identifier=f"bench-{conv.sample_id}"[:32], password="benchmark-only")
    dia_of = {}
    for turn in conv.turns:
        thread_id = f"{conv.sample_id}-s{turn.sitting}"
        store.upsert_thread(session, thread_id=thread_id, user_id=user.id, name=f"sitting {turn.sitting}, {turn.when}")
        author = Author.USER if turn.speaker == conv.speakers[0] else Author.ASSISTANT
        message = store.save_message(session, step_id=f"{conv.sample_id}-{turn.dia_id}", thread_id=thread_id,
                                     user_id=user.id, author=author, content=turn.text)
        dia_of[message.id] = turn.dia_id
    return user.id, dia_of
