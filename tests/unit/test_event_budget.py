"""The socket's event meter (assistant.ui.meter.EventBudget), on a clock the test moves."""

from __future__ import annotations

from assistant.ui.meter import EventBudget


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_passes_a_flood_is_dropped_and_the_pace_comes_back():
    clock = Clock()
    budget = EventBudget(burst=5, per_s=2.0, clock=clock)
    assert [budget.allow("a") for _ in range(7)] == [True] * 5 + [False] * 2
    assert budget.allow("b")  # each session has its own
    clock.now += 0.5  # one event's worth at 2 a second
    assert budget.allow("a") and not budget.allow("a")
    clock.now += 60  # it refills to the burst, no further
    assert sum(budget.allow("a") for _ in range(10)) == 5


def test_ended_sessions_are_forgotten():
    clock = Clock()
    budget = EventBudget(burst=1, per_s=0.001, clock=clock)
    assert budget.allow("gone") and not budget.allow("gone")
    assert budget.allow("kept") and not budget.allow("kept")
    budget.keep_only(["kept"])
    assert budget.allow("gone")  # a fresh bucket: the old one was dropped with its session
    assert not budget.allow("kept")  # a live session's bucket keeps its state
