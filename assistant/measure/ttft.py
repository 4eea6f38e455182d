"""Time to first token with and without the safety deliberation (part of `hyperalign bench turn`).

The model is a stand-in with a fixed latency per call (the deliberation's `complete` and the answer's
first streamed token both take `latency_ms`), so what is measured is our own overhead around it:
storing, embedding, routing, recall, prompt building, and how much of the deliberation the turn
manages to overlap with recall. The target: deliberation adds no more than one deliberation call.
"""

from __future__ import annotations

import asyncio
import random
import tempfile
import time
from collections.abc import Callable, Sequence
from functools import partial

from assistant.measure.stand_ins import FixedLatencyModel
from assistant.measure.stats import percentile
from assistant.measure.synthetic import account, bulk_history, sentence


def run_ttft_bench(*, latency_ms: float = 300.0, history: int = 1_000, turns: int = 30,
                   say: Callable[[str], None] = print) -> dict:
    from assistant.safety.gate import SafetyGate
    from assistant.safety.router import Router
    from assistant.safety.spec import load_spec
    from assistant.turn import TurnLimits, Turns
    from memory.db import make_engine, migrate, write
    from memory.embed import Embedder
    from memory.index import UserIndexes

    rng = random.Random(11)
    embedder = Embedder()
    embedder.load()
    spec = load_spec()
    router = Router(spec, embedder.encode)
    router.prepare()
    model = FixedLatencyModel(latency_ms)
    queries = [sentence(rng) for _ in range(turns)]
    result: dict[str, object] = {"latency_ms": latency_ms, "history": history, "turns": turns}
    rows: dict[str, dict[str, float]] = {}  # without / with deliberation
    with tempfile.TemporaryDirectory(prefix="hyperalign-ttft-") as folder:
        engine = make_engine(f"sqlite:///{folder}/bench.db")
        migrate(engine)
        indexes = UserIndexes(engine, model=embedder.model_name, dimension=lambda: embedder.dimension,
                              folder=None)
        for label, safety in (("without", None),
                              ("with", SafetyGate(spec=spec, router=router, gateway=model, timeout=30))):
            user = write(engine, partial(account, name=f"ttft-{label}"))
            bulk_history(engine, user_id=user.id, count=history, dimension=embedder.dimension,
                          model=embedder.model_name, rng=rng)
            service = Turns(engine=engine, gateway=model, embedder=embedder, indexes=indexes, limits=TurnLimits(),
                            safety=safety)
            timings = asyncio.run(_first_tokens(service, user.id, queries))
            rows[label] = {"p50_ms": round(percentile(timings, 50), 1), "p95_ms": round(percentile(timings, 95), 1)}
            result[f"{label}_deliberation"] = rows[label]
        engine.dispose()
    added = rows["with"]["p50_ms"] - rows["without"]["p50_ms"]
    added_ms, calls = round(added, 1), round(added / latency_ms, 2)
    result["added_p50_ms"], result["added_in_deliberation_calls"] = added_ms, calls
    say(f"time to first token, model latency {latency_ms:.0f} ms per call, user with {history:,} messages:")
    for label in ("without", "with"):
        row = rows[label]
        say(f"  {label} deliberation: p50 {row['p50_ms']} ms, p95 {row['p95_ms']} ms")
    say(f"  added by deliberation: {added_ms} ms at p50 = {calls} deliberation calls (target: at most 1)")
    return result


async def _first_tokens(service, user_id: int, queries: Sequence[str]) -> list[float]:
    from assistant.turn import TurnRequest

    timings = []
    for i, query in enumerate(queries):
        first: list[float] = []
        started = time.perf_counter()

        async def on_token(_token: str, first: list[float] = first, started: float = started) -> None:
            if not first:
                first.append((time.perf_counter() - started) * 1000)

        request = TurnRequest(user_id=user_id, thread_id=f"ttft-{user_id}", message_id=f"t-{user_id}-{i}",
                              reply_id=f"tr-{user_id}-{i}", text=query)
        await service.run(request, on_token)
        timings.append(first[0])
        await service.settle()
    return timings
