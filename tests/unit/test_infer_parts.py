from hypotheses.infer import Text, choose_samples, is_substantive
from hypotheses.prompts import SYSTEM, Shown, build_messages, reask


def test_only_substantive_writing_is_evidence():
    assert not is_substantive("hi!") and not is_substantive("thanks a lot")
    assert not is_substantive("```\nprint('a long pasted program here')\n```")
    assert is_substantive("I usually plan my week on Sunday evenings.")


def test_samples_are_the_new_texts_plus_a_few_older_inside_the_budget():
    older = [Text(i, f"older message number {i} with enough words") for i in range(1, 6)]
    new = [Text(10, "ok"), Text(11, "new message with plenty of words here"), Text(12, "x " * 400)]
    chosen = choose_samples(new, older, budget_tokens=40, older_count=2)
    assert [t.message_id for t in chosen] == [4, 5, 11]  # 12 is over the budget, 10 is not substantive


def test_the_prompt_shows_small_ids_and_the_reask_adds_the_problem():
    messages = build_messages([Shown(1, "I love maps.")], [Shown(1, "Writes tersely.", "style")])
    assert messages[0]["content"] == SYSTEM
    assert "[1] (style) Writes tersely." in messages[1]["content"]
    assert "<sample id=1>\nI love maps.\n</sample>" in messages[1]["content"]
    again = reask(messages, "oops", "no JSON.")
    assert len(messages) == 2 and [m["role"] for m in again] == ["system", "user", "assistant", "user"]
    assert "no JSON." in again[-1]["content"]
