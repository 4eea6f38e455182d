"""`hyperalign bench turn`: the memory overhead of one chat turn, everything but the model, for users
with large histories among many others, beside the embedding-only floor; and the cold index load."""

from __future__ import annotations

import random
import tempfile
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

from assistant.measure.stand_ins import InstantModel
from assistant.measure.stats import percentile
from assistant.measure.synthetic import account, bulk_history, sentence


def run_turn_bench(*, sizes: Sequence[int] = (1_000, 10_000, 100_000), others: int = 1_000,
                   others_messages: int = 20, turns: int = 60, say: Callable[[str], None] = print) -> dict:
    import asyncio

    from assistant.turn import TurnLimits, TurnRequest, Turns
    from memory.db import make_engine, migrate, read, write
    from memory.embed import Embedder
    from memory.index import UserIndexes
    from memory.retrieve import RecallQuery, recall

    rng = random.Random(2026)
    embedder = Embedder()
    embedder.load()
    queries = [sentence(rng) for _ in range(turns)]
    vectors = [embedder.encode_one(query) for query in queries]
    embed_only = []
    for query in queries:
        started = time.perf_counter()
        embedder.encode_one(query)
        embed_only.append((time.perf_counter() - started) * 1000)
    floor = {"p50": round(percentile(embed_only, 50), 2), "p95": round(percentile(embed_only, 95), 2)}
    sizes_done: dict[str, dict[str, float]] = {}
    result = {"embed_only_ms": floor, "others": others, "sizes": sizes_done}
    say(f"embed only (the floor): p50 {floor['p50']} ms, p95 {floor['p95']} ms")
    with tempfile.TemporaryDirectory(prefix="hyperalign-bench-") as folder:
        engine = make_engine(f"sqlite:///{folder}/bench.db")
        migrate(engine)
        dimension = embedder.dimension
        started = time.perf_counter()
        for i in range(others):
            # No password: hashing 1,000 of them would only time scrypt.
            other = write(engine, partial(account, name=f"other{i:04d}"))
            bulk_history(engine, user_id=other.id, count=others_messages, dimension=dimension,
                          model=embedder.model_name, rng=rng)
        say(f"{others} other users with {others_messages} messages each in {time.perf_counter() - started:.1f} s")
        files = Path(folder) / "indexes"
        indexes = UserIndexes(engine, model=embedder.model_name, dimension=lambda: dimension, folder=files)
        limits = TurnLimits()
        service = Turns(engine=engine, gateway=InstantModel(), embedder=embedder, indexes=indexes, limits=limits)
        for size in sizes:
            user = write(engine, partial(account, name=f"user{size}"))
            started = time.perf_counter()
            bulk_history(engine, user_id=user.id, count=size, dimension=dimension, model=embedder.model_name, rng=rng)
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
            # Recall alone, as a turn asks it. The synthetic vectors are random, so few pass the
            # cosine floor; "every candidate" lifts the floor so that fusion and its checks see
            # 50 candidates from each side, the most a query can bring.
            recall_ms: dict[str, list[float]] = {"app": [], "every candidate": []}
            for floor_name, cosine_floor in (("app", RecallQuery.min_similarity), ("every candidate", -1.0)):
                for query, vector in zip(queries, vectors, strict=True):
                    asked = RecallQuery(user_id=user.id, text=query, vector=vector, k=limits.recall_results,
                                        min_similarity=cosine_floor)
                    started = time.perf_counter()
                    read(engine, partial(recall, indexes=indexes, query=asked))
                    recall_ms[floor_name].append((time.perf_counter() - started) * 1000)
            row = {"turn_p50_ms": round(percentile(timings, 50), 2), "turn_p95_ms": round(percentile(timings, 95), 2),
                   "recall_p50_ms": round(percentile(recall_ms["app"], 50), 2),
                   "recall_p95_ms": round(percentile(recall_ms["app"], 95), 2),
                   "recall_every_candidate_p95_ms": round(percentile(recall_ms["every candidate"], 95), 2),
                   "cold_index_load_ms": round(cold_ms, 2), "cold_index_load_from_file_ms": round(file_ms, 2)}
            row["p50_vs_embed_only"] = round(row["turn_p50_ms"] / floor["p50"], 2)
            sizes_done[str(size)] = row
            say(f"{size:>7,} messages: turn p50 {row['turn_p50_ms']} ms, p95 {row['turn_p95_ms']} ms "
                f"({row['p50_vs_embed_only']} x embed-only), recall alone p50 {row['recall_p50_ms']} ms, "
                f"p95 {row['recall_p95_ms']} ms ({row['recall_every_candidate_p95_ms']} ms with every candidate), "
                f"cold index load {row['cold_index_load_ms']} ms from SQL, "
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
