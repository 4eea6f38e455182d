"""Prompts fitted to context windows, counted in tokens."""

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from assistant.context import (
    ESTIMATE_MARGIN, MESSAGE_OVERHEAD, REPLY_PRIMING, PromptTooLarge, budget_for, counter_for, shorten_middle,
)
from assistant.prompt import Memory, ReplyParts, WindowMessage, fit_reply

NOW = datetime(2026, 12, 1, tzinfo=UTC)
WORDS = "the quick brown fox jumps over a lazy dog while seven wizards quietly judge its form ".split()


def prose(n_words: int, seed: int = 0) -> str:
    return " ".join(WORDS[(i * 7 + seed) % len(WORDS)] for i in range(n_words))


def test_openais_models_are_counted_exactly_and_others_with_a_margin():
    assert counter_for("gpt-4o-mini") == counter_for("openai/gpt-4.1") and counter_for("gpt-4o-mini").exact
    assert counter_for("gpt-3.5-turbo").encoding == "cl100k_base"
    local = counter_for("qwen3:8b")
    assert not local.exact and local.encoding == "o200k_base"
    text = prose(300)
    exact = counter_for("gpt-4o").count(text)
    assert 250 < exact < 400 and local.count(text) == pytest.approx(exact * (1 + ESTIMATE_MARGIN), abs=1)
    messages = [{"role": "system", "content": "hi"}, {"role": "user", "content": "there"}]
    assert counter_for("gpt-4o").messages(messages) == 2 + 2 * MESSAGE_OVERHEAD + REPLY_PRIMING


def test_a_purpose_keeps_room_for_its_answer_and_a_retry_keeps_it_too():
    chat = budget_for("chat", 4096, counter_for("llama3"))
    assert (chat.limit, chat.answer) == (3072, 1024)  # a quarter of a small window
    assert budget_for("chat", 128_000, counter_for("gpt-4o")).answer == 4096
    smaller = chat.smaller()
    assert smaller.limit == 2304 and smaller.answer == 1024
    assert chat.smaller(window=2048).limit == 1536  # the server said its window is smaller than we thought
    roomy = budget_for("chat", 32_768, counter_for("llama3"))
    told = roomy.smaller(window=4096)  # configured 32k, served 4k: the answer's room shrinks too
    assert (told.window, told.limit, told.answer) == (4096, 3072, 1024)


def parts(**overrides):
    window = [WindowMessage("user" if i % 2 == 0 else "assistant", prose(180, i)) for i in range(20)]
    base = dict(
        window=window, user_text="What should I cook tonight?", max_chars=20_000,
        memories=[Memory("user", prose(60, 100 + i), NOW, f"old {i}") for i in range(6)],
        profile=[f"Prefers {prose(12, 200 + i)}" for i in range(30)],
        style=["Writes short sentences.", "Uses British spelling."],
        exemplars=[prose(40, 300 + i) for i in range(3)],
        safety="DECISION: comply. Answer helpfully.",
    )
    return ReplyParts(**{**base, **overrides})


def test_a_4k_model_with_a_long_conversation_and_a_full_profile_gets_a_prompt_that_fits():
    budget = budget_for("chat", 4096, counter_for("llama3"))
    full = parts()
    assert budget.count(full.messages()) > 2 * budget.limit  # far too long as it is
    fitted = fit_reply(full, budget)
    assert budget.fits(fitted)
    system = fitted[0]["content"]
    assert "DECISION: comply" in system and "hyperalign" in system  # never dropped
    assert fitted[-1] == {"role": "user", "content": "What should I cook tonight?"}  # the message, whole
    assert "old 0" not in system  # recalled memories went first
    assert "Prefers" in system  # the profile outlives the oldest turns
    assert [m["content"] for m in fitted[1:-1]] == [m.content for m in full.window[-(len(fitted) - 2):]]  # newest kept


def test_a_roomy_window_drops_nothing():
    full = parts()
    assert fit_reply(full, budget_for("chat", 128_000, counter_for("gpt-4o"))) == full.messages()


def test_the_drop_order_memories_exemplars_old_turns_style_profile_last_turns():
    """Squeezed ever smaller, the prompt loses its parts in the documented order."""
    budget = budget_for("chat", 4096, counter_for("llama3"))
    small = parts(window=parts().window[-4:], profile=[f"Likes {prose(8, i)}" for i in range(5)])
    gone: dict[str, int] = {}
    for limit in range(budget.count(small.messages()), 0, -10):
        try:
            system, *rest = fit_reply(small, replace(budget, limit=limit))
        except PromptTooLarge:
            break
        present = {"memories": "old 0" in system["content"], "exemplars": "«" in system["content"],
                   "old turns": len(rest) > 3, "style": "short sentences" in system["content"],
                   "profile": system["content"].count("Likes") == 5, "last turns": len(rest) > 1}
        for part, there in present.items():
            if not there:
                gone.setdefault(part, limit)
    order = sorted(gone, key=lambda part: -gone[part])
    assert order == ["memories", "exemplars", "old turns", "style", "profile", "last turns"]


def test_a_message_too_long_for_the_window_keeps_its_beginning_and_end():
    budget = budget_for("chat", 4096, counter_for("llama3"))
    huge = "BEGINNING " + prose(6000) + " THE END"
    fitted = fit_reply(parts(user_text=huge), budget)
    assert budget.fits(fitted) and len(fitted) == 2  # everything else had to go
    said = fitted[-1]["content"]
    assert said.startswith("BEGINNING") and said.endswith("THE END") and "left out" in said


def test_instructions_that_alone_exceed_the_window_are_refused_not_sent():
    budget = budget_for("chat", 256, counter_for("llama3"))
    with pytest.raises(PromptTooLarge):
        fit_reply(parts(safety=prose(400)), budget)


def test_shortening_lands_close_to_the_target():
    counter = counter_for("llama3")
    cut = shorten_middle(prose(2000), 500, counter)
    assert 400 <= counter.count(cut) <= 520
    assert shorten_middle("short", 500, counter) == "short"
