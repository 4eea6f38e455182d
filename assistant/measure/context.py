"""`hyperalign bench context`: what each purpose's prompt holds once fitted to 4k, 8k and 128k
windows, and what fitting costs a turn.

The measured turn is a heavy one: a thread of 20 long messages (about 250 words each), a full profile
(as much as HYPERALIGN_PROFILE_TOKENS lets in), six recalled messages, three style examples, the safety
decision, and a 200-word message; its deliberation routes two categories; its hypotheses job has
the default evidence budget, a profile of 40 entries and 30 wordings taken back. Counted as for a
model without its own tokenizer here (o200k_base plus the margin), the case fitting works hardest for.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime

from assistant.measure.synthetic import WORDS

WINDOWS = (4_096, 8_192, 128_000)
REPEATS = 30


def _words(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS[:800]) for _ in range(n)).capitalize() + "."


def run_context_bench(*, say: Callable[[str], None] = print) -> dict:
    from assistant.context import budget_for, clear_counts, counter_for
    from assistant.prompt import Memory, ReplyParts, WindowMessage, fit_profile, fit_reply
    from assistant.safety.deliberate import Deliberation, Verdict, fit_messages
    from assistant.safety.gate import answer_instructions
    from assistant.safety.spec import Decision, load_spec
    from hypotheses.infer import Text, choose_samples
    from hypotheses.prompts import Shown
    from hypotheses.prompts import fit_messages as fit_hypotheses

    rng = random.Random(2026)
    spec = load_spec()
    counter = counter_for("a-local-model")
    routed = [c.id for c in spec.categories[:2]]
    verdict = Verdict(Decision.COMPLY, ("GEN.A1",), "An everyday request.")
    deliberation = Deliberation(verdict, tuple(routed), spec.version, "m", 1.0, 1)
    window = [WindowMessage("user" if i % 2 == 0 else "assistant", _words(rng, 250)) for i in range(20)]
    now = datetime.now(UTC)
    reply = ReplyParts(
        window, _words(rng, 200), max_chars=20_000,
        memories=[Memory("user", _words(rng, 80), now, "an older chat") for _ in range(6)],
        style=["Writes short sentences.", "Uses British spelling.", "Rarely uses exclamation marks."],
        profile=fit_profile([f"Prefers {_words(rng, 12)}" for _ in range(60)], 500),
        exemplars=[_words(rng, 60) for _ in range(3)],
        safety=answer_instructions(deliberation, spec),
    )
    turns = [(m.author, m.content) for m in window]
    request = reply.user_text
    texts = [Text(i, _words(rng, rng.randint(20, 120))) for i in range(60)]
    samples = [Shown(i, t.content) for i, t in enumerate(choose_samples(texts[40:], texts[:40], budget_tokens=1500), 1)]
    entries = [Shown(i, f"Prefers {_words(rng, 10)}", "preference") for i in range(1, 41)]
    taken_back = [_words(rng, 8) for _ in range(30)]

    fits = {
        "chat": lambda budget: fit_reply(reply, budget),
        "safety": lambda budget: fit_messages(spec, routed, turns, request, budget),
        "hypotheses": lambda budget: fit_hypotheses(samples, entries, taken_back, budget)[0],
    }
    unfitted = {"chat": reply.messages(), "safety": fits["safety"](budget_for("safety", 10**7, counter)),
                "hypotheses": fits["hypotheses"](budget_for("hypotheses", 10**7, counter))}
    result: dict = {"unfitted_tokens": {p: counter.messages(m) for p, m in unfitted.items()}, "windows": {}}
    say("unfitted prompt tokens: " + ", ".join(f"{p} {n:,}" for p, n in result["unfitted_tokens"].items()))
    for size in WINDOWS:
        row = {}
        for purpose, fit in fits.items():
            budget = budget_for(purpose, size, counter)
            cold, warm = [], []
            for _ in range(REPEATS):
                clear_counts()  # the first turn of a thread: nothing counted yet
                started = time.perf_counter()
                fit(budget)
                cold.append((time.perf_counter() - started) * 1000)
                started = time.perf_counter()
                messages = fit(budget)  # a later turn: the thread's messages were counted before
                warm.append((time.perf_counter() - started) * 1000)
            row[purpose] = {"limit": budget.limit, "answer": budget.answer, "prompt_tokens": counter.messages(messages),
                            "messages": len(messages), "fit_ms_cold": round(statistics.median(cold), 2),
                            "fit_ms_warm": round(statistics.median(warm), 2)}
        result["windows"][str(size)] = row
        say(f"{size:>7,}-token window: " + "; ".join(
            f"{p} {r['prompt_tokens']:,} of {r['limit']:,} tokens ({r['messages']} messages), fitted in "
            f"{r['fit_ms_cold']} ms cold / {r['fit_ms_warm']} ms warm" for p, r in row.items()))
    return result


def render_context_table(result: dict) -> str:
    lines = [f"{'window':>8}  {'purpose':<11} {'prompt tokens':>13} {'of limit':>9} {'answer':>7} {'messages':>8}"
             f" {'fit ms (cold)':>13} {'fit ms (warm)':>13}"]
    for size, row in result["windows"].items():
        for purpose, r in row.items():
            lines.append(f"{int(size):>8,}  {purpose:<11} {r['prompt_tokens']:>13,} {r['limit']:>9,} {r['answer']:>7,}"
                         f" {r['messages']:>8} {r['fit_ms_cold']:>13} {r['fit_ms_warm']:>13}")
    lines.append("unfitted: " + ", ".join(f"{p} {n:,} tokens" for p, n in result["unfitted_tokens"].items()))
    return "\n".join(lines)

