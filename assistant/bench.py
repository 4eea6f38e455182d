"""Benchmarks that print figures: recall quality on LoCoMo-format data, and the memory overhead of a turn.

`hyperalign bench recall --locomo PATH` indexes each conversation as one user's history (all turns,
both speakers, one thread per sitting), asks every question, and scores turn-level evidence recall:
for one question, the share of its gold evidence turns found in the top k; averaged over questions.
Evidence ids are normalised as LoCoMo's SOURCE.md describes (several ids in one string, "D:11:26",
"D30:05"); ids that name no turn are dropped, and a question left without evidence is not scored
(counted in `unscored`). Category 5 (adversarial) is reported apart from the overall figure.
"""

from __future__ import annotations

import json
import random
import re
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop", 5: "adversarial"}
KS = (1, 5, 10, 25)
MODES = ("lexical", "dense", "hybrid")


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
    conversations = []
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


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


@dataclass
class Scores:
    """Per mode, per group ("overall", category names): one recall value per question and k."""

    values: dict[str, dict[str, dict[int, list[float]]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(lambda: defaultdict(list))))
    latency_ms: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))

    def add(self, mode: str, category: int, ranked: Sequence[str], evidence: frozenset[str]) -> None:
        groups = [CATEGORIES.get(category, str(category))]
        if category != 5:
            groups.append("overall")
        for group in groups:
            for k in KS:
                self.values[mode][group][k].append(recall_at(ranked, evidence, k))

    def table(self) -> dict:
        result = {}
        for mode, groups in self.values.items():
            result[mode] = {
                group: {"n": len(per_k[KS[0]]), **{f"R@{k}": round(statistics.fmean(v), 4) for k, v in per_k.items()}}
                for group, per_k in groups.items()
            }
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
    for name, stats in result["latency_ms"].items():
        lines.append(f"latency {name:<22} p50 {stats['p50']:>7.2f} ms   p95 {stats['p95']:>7.2f} ms   (n={stats['n']})")
    return "\n".join(lines)


# --- I/O: running the benchmarks --------------------------------------------------------------

def run_recall_bench(path: Path, *, say: Callable[[str], None] = print) -> dict:
    from memory import store
    from memory.db import make_engine, migrate, read, write
    from memory.embed import Embedder
    from memory.index import UserIndexes
    from memory.models import Author
    from memory.retrieve import RecallQuery, dense_ranking, lexical_ranking, recall
    from memory.vectors import embed_pending

    conversations = parse_locomo(json.loads(Path(path).read_text()))
    embedder = Embedder()
    embedder.load()
    scores, unscored = Scores(), sum(c.unscored for c in conversations)
    with tempfile.TemporaryDirectory(prefix="hyperalign-bench-") as folder:
        engine = make_engine(f"sqlite:///{folder}/bench.db")
        migrate(engine)
        indexes = UserIndexes(engine, model=embedder.model_name, dimension=lambda: embedder.dimension)
        for number, conv in enumerate(conversations, start=1):
            user_id, dia_of = write(engine, lambda s, conv=conv: _store_conversation(s, store, Author, conv))
            started = time.perf_counter()
            embed_pending(engine, embedder, user_id=user_id, batch=64)
            say(f"[{number}/{len(conversations)}] {conv.sample_id}: {len(conv.turns)} turns embedded in "
                f"{time.perf_counter() - started:.1f} s, {len(conv.questions)} questions")
            for question in conv.questions:
                started = time.perf_counter()
                vector = embedder.encode_one(question.text)
                embedded = time.perf_counter()
                query = RecallQuery(user_id=user_id, text=question.text, vector=vector, k=max(KS),
                                    candidates=100, min_similarity=0.0)
                hybrid = read(engine, lambda s, q=query: recall(s, indexes, q))
                finished = time.perf_counter()
                scores.latency_ms["query (embed + recall)"].append((finished - started) * 1000)
                scores.latency_ms["recall only"].append((finished - embedded) * 1000)
                rankings = {
                    "hybrid": [dia_of[r.message_id] for r in hybrid],
                    "dense": [dia_of[m] for m, _ in dense_ranking(indexes, query)],
                    "lexical": [dia_of[m] for m, _ in read(engine, lambda s, q=query: lexical_ranking(s, q))],
                }
                for mode, ranked in rankings.items():
                    scores.add(mode, question.category, ranked, question.evidence)
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


# --- the turn benchmark ----------------------------------------------------------------------

def _vocabulary(size: int = 5_000, seed: int = 7) -> tuple[list[str], list[float]]:
    """Pseudo-words with Zipf-like frequencies, so a few words are everywhere and most are rare, as in chat."""
    rng = random.Random(seed)
    syllables = ["ka", "lo", "mi", "ne", "ru", "ta", "vo", "shi", "pe", "do", "an", "el", "or", "ix", "um"]
    words = sorted({"".join(rng.choice(syllables) for _ in range(rng.randint(2, 4))) for _ in range(size * 2)})[:size]
    rng.shuffle(words)
    return words, [1.0 / (rank + 1) for rank in range(len(words))]


WORDS, WEIGHTS = _vocabulary()


class InstantModel:
    """Answers at once with a fixed reply: the benchmark measures everything but the model."""

    offline, label = False, "instant"

    async def stream(self, messages, *, purpose):
        yield "Noted."

    async def close(self) -> None:
        return None


def _sentence(rng: random.Random) -> str:
    return " ".join(rng.choices(WORDS, WEIGHTS, k=rng.randint(8, 20))).capitalize() + "."


def _bulk_history(engine, *, user_id: int, count: int, dimension: int, model: str, rng: random.Random) -> None:
    """`count` messages with synthetic unit vectors (the stored side need not come from the model)."""
    from memory.models import Author, Embedding, Message, Thread

    batch = 5_000
    with engine.begin() as conn:
        conn.execute(Thread.__table__.insert(), [{"id": f"bulk-{user_id}", "user_id": user_id, "name": "history",
                                                  "remember": True, "metadata_json": "{}", "tags_json": "[]",
                                                  "created_at": _now(), "updated_at": _now()}])
    for start in range(0, count, batch):
        n = min(batch, count - start)
        with engine.begin() as conn:
            first = conn.execute(Message.__table__.insert().returning(Message.__table__.c.id), [
                {"step_id": f"bulk-{user_id}-{start + i}", "thread_id": f"bulk-{user_id}", "user_id": user_id,
                 "author": str(Author.USER if i % 2 == 0 else Author.ASSISTANT), "content": _sentence(rng),
                 "status": "complete", "created_at": _now()} for i in range(n)
            ]).scalars().all()
            vectors = _unit_vectors(n, dimension, rng)
            conn.execute(Embedding.__table__.insert(), [
                {"message_id": mid, "model": model, "user_id": user_id, "content_hash": "synthetic",
                 "vector": vectors[i].astype("<f4").tobytes()} for i, mid in enumerate(first)
            ])


def _account(session, name: str):
    from memory.models import User

    user = User(identifier=name)
    session.add(user)
    session.flush()
    return user


def _unit_vectors(n: int, dimension: int, rng: random.Random) -> np.ndarray:
    generator = np.random.default_rng(rng.randrange(2**32))
    vectors = generator.standard_normal((n, dimension)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def _now():
    from memory.models import utcnow

    return utcnow()


def run_turn_bench(*, sizes: Sequence[int] = (1_000, 10_000, 100_000), others: int = 1_000,
                   others_messages: int = 20, turns: int = 60, say: Callable[[str], None] = print) -> dict:
    import asyncio

    from assistant.turn import TurnLimits, TurnRequest, Turns
    from memory.db import make_engine, migrate, write
    from memory.embed import Embedder
    from memory.index import UserIndexes

    rng = random.Random(2026)
    embedder = Embedder()
    embedder.load()
    queries = [_sentence(rng) for _ in range(turns)]
    embed_only = []
    for query in queries:
        started = time.perf_counter()
        embedder.encode_one(query)
        embed_only.append((time.perf_counter() - started) * 1000)
    result = {"embed_only_ms": {"p50": round(percentile(embed_only, 50), 2), "p95": round(percentile(embed_only, 95), 2)},
              "others": others, "sizes": {}}
    say(f"embed only (the floor): p50 {result['embed_only_ms']['p50']} ms, p95 {result['embed_only_ms']['p95']} ms")
    with tempfile.TemporaryDirectory(prefix="hyperalign-bench-") as folder:
        engine = make_engine(f"sqlite:///{folder}/bench.db")
        migrate(engine)
        dimension = embedder.dimension
        started = time.perf_counter()
        for i in range(others):
            # No password: hashing 1,000 of them would only time scrypt.
            other = write(engine, lambda s, i=i: _account(s, f"other{i:04d}"))
            _bulk_history(engine, user_id=other.id, count=others_messages, dimension=dimension,
                          model=embedder.model_name, rng=rng)
        say(f"{others} other users with {others_messages} messages each in {time.perf_counter() - started:.1f} s")
        files = Path(folder) / "indexes"
        indexes = UserIndexes(engine, model=embedder.model_name, dimension=lambda: dimension, folder=files)
        service = Turns(engine=engine, gateway=InstantModel(), embedder=embedder, indexes=indexes, limits=TurnLimits())
        for size in sizes:
            user = write(engine, lambda s, size=size: _account(s, f"user{size}"))
            started = time.perf_counter()
            _bulk_history(engine, user_id=user.id, count=size, dimension=dimension, model=embedder.model_name, rng=rng)
            say(f"user with {size:,} messages stored in {time.perf_counter() - started:.1f} s")
            indexes.drop(user.id)
            started = time.perf_counter()
            indexes.refresh(user.id)  # nothing cached: built from the vectors in SQL (and written to a file)
            cold_ms = (time.perf_counter() - started) * 1000
            restarted = UserIndexes(engine, model=embedder.model_name, dimension=lambda: dimension, folder=files)
            started = time.perf_counter()
            restarted.refresh(user.id)  # a restarted process: read from the index file
            file_ms = (time.perf_counter() - started) * 1000
            timings = asyncio.run(_time_turns(service, user.id, queries, TurnRequest))
            row = {"turn_p50_ms": round(percentile(timings, 50), 2), "turn_p95_ms": round(percentile(timings, 95), 2),
                   "cold_index_load_ms": round(cold_ms, 2), "cold_index_load_from_file_ms": round(file_ms, 2)}
            row["p50_vs_embed_only"] = round(row["turn_p50_ms"] / result["embed_only_ms"]["p50"], 2)
            result["sizes"][str(size)] = row
            say(f"{size:>7,} messages: turn p50 {row['turn_p50_ms']} ms, p95 {row['turn_p95_ms']} ms "
                f"({row['p50_vs_embed_only']} x embed-only), cold index load {row['cold_index_load_ms']} ms from SQL, "
                f"{row['cold_index_load_from_file_ms']} ms from its file")
        engine.dispose()
    return result


async def _time_turns(service, user_id: int, queries: Sequence[str], TurnRequest) -> list[float]:
    async def ignore(_token: str) -> None:
        return None

    timings = []
    for i, query in enumerate(queries):
        request = TurnRequest(user_id=user_id, thread_id=f"bench-{user_id}", message_id=f"q-{user_id}-{i}",
                              reply_id=f"r-{user_id}-{i}", text=query)
        started = time.perf_counter()
        await service.run(request, ignore)
        timings.append((time.perf_counter() - started) * 1000)
        await service.settle()  # background work (the reply's vector) is not on the user's path
    return timings


# --- the inference-cost benchmark ------------------------------------------------------------

class ScriptedModel:
    """Stands in for a model: counts every call and its characters by purpose, answers validly."""

    offline, label = False, "scripted"

    def __init__(self, rng: random.Random) -> None:
        self.calls: dict[str, int] = defaultdict(int)
        self.chars_in: dict[str, int] = defaultdict(int)
        self.chars_out: dict[str, int] = defaultdict(int)
        self.profile_chars: list[int] = []  # size of the profile block in each chat prompt
        self._rng = rng

    async def stream(self, messages, *, purpose):
        self._count(str(purpose), messages, "Noted.")
        yield "Noted."

    async def complete(self, messages, *, purpose, json_schema=None):
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
        from assistant.prompt import PROFILE_HEADER

        self.calls[purpose] += 1
        self.chars_in[purpose] += sum(len(m["content"]) for m in messages)
        self.chars_out[purpose] += len(answer)
        if purpose == "chat":
            block = messages[0]["content"].split(PROFILE_HEADER)
            self.profile_chars.append(len(block[1].split("\n\n")[0]) if len(block) > 1 else 0)

    async def close(self) -> None:
        return None


def run_inference_bench(*, messages: int = 200, say: Callable[[str], None] = print) -> dict:
    """Replay `messages` simulated user messages through the real turn and job code."""
    import asyncio

    from assistant.background import HypothesisJobs
    from assistant.prompt import CHARS_PER_TOKEN
    from assistant.safety.gate import SafetyGate
    from assistant.safety.router import Router
    from assistant.safety.spec import load_spec
    from assistant.turn import TurnLimits, TurnRequest, Turns
    from memory.db import make_engine, migrate, write
    from memory.embed import Embedder
    from memory.index import UserIndexes

    rng = random.Random(11)
    model = ScriptedModel(rng)
    embedder = Embedder()
    embedder.load()

    async def replay(engine, user_id: int) -> None:
        indexes = UserIndexes(engine, model=embedder.model_name, dimension=lambda: embedder.dimension)
        spec = load_spec()
        safety = SafetyGate(spec=spec, router=Router(spec, embedder.encode), gateway=model, timeout=30)
        turns = Turns(engine=engine, gateway=model, embedder=embedder, indexes=indexes, limits=TurnLimits(),
                      safety=safety)
        jobs = HypothesisJobs(engine=engine, gateway=model, embedder=embedder, every=6)
        for i in range(messages):
            text = _sentence(rng) if i % 5 else "ok thanks"  # one in five is not substantive
            request = TurnRequest(user_id=user_id, thread_id=f"t{i // 20}", message_id=f"m{i}", reply_id=f"r{i}",
                                  text=text)
            await turns.run(request, _ignore)
            await jobs.after_turn(user_id, chat_ended=i % 20 == 19)
            await jobs.settle()
            await turns.settle()

    with tempfile.TemporaryDirectory(prefix="hyperalign-bench-") as folder:
        engine = make_engine(f"sqlite:///{folder}/bench.db")
        migrate(engine)
        user = write(engine, lambda s: _account(s, "simulated"))
        asyncio.run(replay(engine, user.id))
        engine.dispose()
    per_message = {p: round(n / messages, 3) for p, n in model.calls.items()}
    result = {
        "user_messages": messages,
        "calls_per_user_message": per_message,
        "approx_tokens_per_user_message": {
            p: {"in": round(model.chars_in[p] / CHARS_PER_TOKEN / messages, 1),
                "out": round(model.chars_out[p] / CHARS_PER_TOKEN / messages, 1)} for p in model.calls},
        "profile_block_tokens": {"max": round(max(model.profile_chars, default=0) / CHARS_PER_TOKEN, 1),
                                 "last": round((model.profile_chars or [0])[-1] / CHARS_PER_TOKEN, 1),
                                 "budget": TurnLimits().profile_tokens},
    }
    say(f"{messages} user messages: calls per message {per_message}")
    say(f"approximate tokens per message (chars/4): {result['approx_tokens_per_user_message']}")
    say(f"profile block in the chat prompt: max {result['profile_block_tokens']['max']} tokens, "
        f"last {result['profile_block_tokens']['last']}, budget {result['profile_block_tokens']['budget']}")
    return result


async def _ignore(_token: str) -> None:
    return None
