"""Pure: thread titles, the recalled step's link, the profile panel's history and style card in words."""

from datetime import UTC, datetime

import pytest

from assistant.profile_view import grouped_history
from assistant.ui.views import recalled_markdown
from hypotheses.style import StyleStats, describe, observe, statements
from memory.models import Author
from memory.retrieve import Recalled
from memory.text import TITLE_CHARS, is_small_talk, short_title

LONG = ("I always sketch the architecture on paper before I write any code, and then I build the "
        "smallest piece that runs end to end")


def test_a_long_message_gives_a_short_title_cut_at_a_word():
    title = short_title(LONG)
    assert title == "I always sketch the architecture on paper…"
    assert len(title) <= TITLE_CHARS and LONG.startswith(title.removesuffix("…"))


@pytest.mark.parametrize(("text", "title"), [
    ("Plan my week", "Plan my week"),
    ("  two\nlines  ", "two lines"),
    ("x" * 80, "x" * (TITLE_CHARS - 1) + "…"),  # one endless word is cut inside it
    ("", None), ("  \n ", None),
])
def test_short_titles(text, title):
    assert short_title(text) == title


@pytest.mark.parametrize(("text", "small"), [
    ("hi", True), ("Hello there!", True), ("thanks, ok", True), ("", True),
    ("hi, plan my trip to Lisbon", False), ("What colour are the carrots?", False),
])
def test_small_talk_names_no_subject(text, small):
    assert is_small_talk(text) is small


def test_the_recalled_link_is_a_short_title_with_the_date():
    item = Recalled(1, "t1", LONG, Author.USER, "the carrots are purple", datetime(2026, 11, 26, tzinfo=UTC), 1.0)
    shown = recalled_markdown([item])
    assert "26 Nov 2026" in shown and "architecture on paper before I write" not in shown
    assert "[I always sketch the architecture" in shown and "…](/thread/t1)" in shown


def event(number, by="the assistant", what="confirmed"):
    return {"id": number, "by": by, "what": what, "at": f"2026-11-26T10:0{number}:00+00:00",
            "before": None, "after": f"entry {number}"}


def test_repeated_consecutive_events_are_one_line_and_keep_their_events():
    events = [event(9, "you", "edited"), event(8), event(7), event(6), event(5), event(4, "you", "edited"), event(3)]
    groups = grouped_history(events)
    assert [(g["by"], g["what"], g["count"]) for g in groups] == [
        ("you", "edited", 1), ("the assistant", "confirmed", 4), ("you", "edited", 1), ("the assistant", "confirmed", 1)]
    assert [e["after"] for e in groups[1]["events"]] == ["entry 8", "entry 7", "entry 6", "entry 5"]
    assert groups[1]["at"] == events[1]["at"]  # the newest of the group


def test_the_style_card_speaks_plain_words_and_keeps_its_numbers():
    stats = StyleStats()
    for text in ("Honestly the committee approved the lighthouse budget yesterday while volunteers repainted railings",
                 "Catalogued lenses, interviewed keepers about storms, fog signals, shipwrecks and forgotten harbours",
                 "Tomorrow we photograph brass fittings, measure rusted bolts, sketch staircases and archive letters",
                 "Afterwards perhaps lunch beside quiet dunes, gulls circling overhead, kettles whistling inside cottages"):
        stats = observe(stats, text)
    lines = statements(stats)
    plain = [p for p, _ in lines]
    assert any(p.endswith(" vocabulary") for p in plain)
    assert not any(ch.isdigit() for p in plain for ch in p) and not any("Guiraud" in p for p in plain)
    assert any("Guiraud index" in measured for _, measured in lines)
    assert describe(stats) == [measured for _, measured in lines]  # the prompt keeps the numbers
