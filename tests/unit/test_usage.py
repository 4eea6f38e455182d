"""Pure parts of usage: prices, the report's sums, the chart, the limit's notice."""

from datetime import UTC, datetime

import pytest

from assistant.turn import _limit_notice
from assistant.ui.console_html import cost_text, usage_chart
from assistant.usage import Group, Price, day_start, parse_prices, price_for, summarise, until_tomorrow


def test_prices_are_read_per_model_with_a_default_and_bad_ones_say_what_is_expected():
    prices = parse_prices(" gpt-4o-mini=0.15/0.60, org/model:7b=0/0 ,*=1/2")
    assert prices["gpt-4o-mini"] == Price(0.15, 0.60) and prices["org/model:7b"] == Price(0, 0)
    assert price_for(prices, "other") == Price(1, 2) and parse_prices("") == {}
    for bad in ("gpt-4o", "gpt=1", "=1/2", "m=a/b", "m=-1/2"):
        with pytest.raises(ValueError, match="MODEL=IN/OUT"):
            parse_prices(bad)
    assert Price(2, 8).of(1_000_000, 500_000) == pytest.approx(6.0)


def test_the_report_fills_every_day_and_never_prices_an_unpriced_model():
    rows = [("2026-12-01", "chat", "a", Group(2, 100, 50, 1, 0, 300.0)),
            ("2026-12-01", "safety", "b", Group(1, 10, 5, 0, 1, 100.0))]
    report = summarise(rows, [("u-1", "a", Group(2, 100, 50))], prices={"a": Price(1, 1)},
                       days=["2026-11-30", "2026-12-01"], heaviest=5, unusable={"safety": 0, "hypotheses": 1})
    assert [d["calls"] for d in report["days"]] == [0, 3]
    assert report["days"][0]["cost"] == 0 and report["total"]["cost"] is None  # b has no price
    assert report["total"]["mean_ms"] == round(400 / 3) and report["users"][0]["cost"] == pytest.approx(150 / 1e6)
    assert cost_text(None, True) == "unknown: a model has no price" and cost_text(1.5, False) == "no prices set"


def test_the_chart_stacks_answers_on_prompts_and_is_absent_without_calls():
    assert usage_chart([{"day": "2026-12-01", "tokens_in": 0, "tokens_out": 0}]) is None
    chart = usage_chart([{"day": "2026-11-30", "tokens_in": 100, "tokens_out": 100},
                         {"day": "2026-12-01", "tokens_in": 50, "tokens_out": 0}])
    first, second = chart["days"]
    assert float(first["in_h"]) + float(first["out_h"]) == pytest.approx(chart["height"])  # the highest day fills it
    assert chart["width"] == 2 and (chart["first"], chart["last"], chart["top"]) == ("2026-11-30", "2026-12-01", "200")
    assert float(second["in_h"]) == pytest.approx(float(first["in_h"]) / 2) and float(second["out_h"]) == 0


def test_the_limit_notice_says_what_happened_to_the_message_and_when_replies_resume():
    now = datetime(2026, 12, 1, 18, 47, tzinfo=UTC)
    assert day_start(now) == datetime(2026, 12, 1, tzinfo=UTC) and until_tomorrow(now).seconds == 5 * 3600 + 13 * 60
    notice = _limit_notice(20_000, now)
    assert "today's 20,000 tokens" in notice and "It is saved" in notice and "in 5 h 13 min" in notice


def test_a_price_that_is_not_a_finite_number_is_refused():
    for bad in ("m=nan/1", "m=1/inf"):
        with pytest.raises(ValueError, match="MODEL=IN/OUT"):
            parse_prices(bad)
