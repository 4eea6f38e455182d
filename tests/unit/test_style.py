from hypotheses.style import MAX_TYPES, StyleStats, describe, is_pasted, observe


def card(*texts):
    stats = StyleStats()
    for text in texts:
        stats = observe(stats, text)
    return stats


def test_counts_follow_the_messages():
    stats = card("hey! I'm gonna try it, don't worry :) 🎉", "lol ok... what's next?", "Thanks!")
    assert stats.messages == 3 and stats.words == 12
    assert stats.contractions == 3 and stats.exclamations == 2 and stats.questions == 1
    assert stats.ellipses == 1 and stats.emoji == 1 and stats.greetings == 1 and stats.signoffs == 1
    assert stats.informal >= 3 and stats.lowercase_starts == 2


def test_observing_returns_a_new_card_and_keeps_the_old():
    first = card("Hello there, how are you?")
    second = observe(first, "Fine thanks")
    assert first.messages == 1 and second.messages == 2


def test_pasted_material_and_blank_text_are_not_the_users_style():
    assert is_pasted("look:\n```\nprint(1)\n```") and is_pasted("x" * 5000)
    assert card("```\ncode\n```", "   ") == StyleStats()


def test_the_card_survives_a_round_trip_through_json():
    stats = card("Kindly find the report attached. Regards, Ann", "Furthermore, the budget is final.")
    assert StyleStats.from_json(stats.to_json()) == stats


def test_no_statements_before_three_messages():
    assert describe(card("hi", "yo")) == []


def test_statements_carry_their_numbers():
    lines = describe(card("hey!! wanna grab food?? 😀", "lol yeah i'm in 😀", "ok cool see you"))
    text = "\n".join(lines)
    assert "Writes short messages:" in text and "over 3 messages" in text
    assert "Leans casual" in text and "emoji (0.7 per message)" in text
    assert "Starts 100% of messages in lower case." in text
    assert "Writes in English" in text


def test_formal_writing_reads_formal():
    lines = describe(card(
        "Dear Dr. Smith, I would kindly ask for the minutes of the meeting. Regards, Ann",
        "Furthermore, the budget for the next quarter is final; therefore we proceed. Regards, Ann",
        "However, the committee has not yet decided. Sincerely, Ann"))
    assert any(line.startswith("Leans formal") for line in lines)
    assert any("greeting" in line for line in lines)


def test_other_scripts_and_a_bounded_vocabulary():
    assert "Cyrillic" in describe(card("Привет, как дела?", "Всё хорошо, спасибо.", "До встречи!"))[-1]
    assert "Chinese/Japanese" in describe(card("今日は天気がいいですね", "そうですね", "また明日"))[-1]
    letters = "abcdefghij"
    words = [a + b + c + d for a in letters for b in letters for c in letters for d in letters]  # 10,000 distinct
    many = card(*[" ".join(words[i:i + 100]) for i in range(0, len(words), 100)])
    assert len(many.types) == MAX_TYPES
