"""`hyperalign bench inference`: model calls and tokens per user message, by purpose, from a simulated
history replayed through the real turn and job code."""

from __future__ import annotations

import random
import tempfile
from collections.abc import Callable

from assistant.measure.stand_ins import ScriptedModel
from assistant.measure.synthetic import account, sentence


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
            text = sentence(rng) if i % 5 else "ok thanks"  # one in five is not substantive
            request = TurnRequest(user_id=user_id, thread_id=f"t{i // 20}", message_id=f"m{i}", reply_id=f"r{i}",
                                  text=text)
            await turns.run(request, _ignore)
            await jobs.after_turn(user_id, chat_ended=i % 20 == 19)
            await jobs.settle()
            await turns.settle()

    with tempfile.TemporaryDirectory(prefix="hyperalign-bench-") as folder:
        engine = make_engine(f"sqlite:///{folder}/bench.db")
        migrate(engine)
        user = write(engine, lambda s: account(s, "simulated"))
        asyncio.run(replay(engine, user.id))
        engine.dispose()
    per_message = {p: round(n / messages, 3) for p, n in model.calls.items()}
    tokens = {p: {"in": round(model.chars_in[p] / CHARS_PER_TOKEN / messages, 1),
                  "out": round(model.chars_out[p] / CHARS_PER_TOKEN / messages, 1)} for p in model.calls}
    block = {"max": round(max(model.profile_chars, default=0) / CHARS_PER_TOKEN, 1),
             "last": round((model.profile_chars or [0])[-1] / CHARS_PER_TOKEN, 1),
             "budget": TurnLimits().profile_tokens}
    result = {
        "user_messages": messages,
        "calls_per_user_message": per_message,
        "approx_tokens_per_user_message": tokens,
        "profile_block_tokens": block,
    }
    say(f"{messages} user messages: calls per message {per_message}")
    say(f"approximate tokens per message (chars/4): {tokens}")
    say(f"profile block in the chat prompt: max {block['max']} tokens, last {block['last']}, budget {block['budget']}")
    return result


async def _ignore(_token: str) -> None:
    return None
