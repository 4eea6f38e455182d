"""Pure checks of what arrives over HTTP: ids in URLs, JSON bodies, form fields, audit filters."""

from datetime import date

import pytest
from fastapi import HTTPException

from assistant.safety import review
from assistant.ui.inputs import form_fields, json_object, row_id
from memory.store import MAX_ROW_ID, possible_key


@pytest.mark.parametrize("raw, expected", [
    ("1", 1), ("42", 42), (str(MAX_ROW_ID), MAX_ROW_ID), ("007", 7),
    ("0", None), ("-1", None), (str(MAX_ROW_ID + 1), None), ("1" * 30, None), ("abc", None), ("1e3", None),
    ("²", None), ("١٢", None), (" 1", None), ("", None), ("\x00", None),
])
def test_a_row_id_is_a_whole_number_inside_the_databases_integer_range(raw, expected):
    assert row_id(raw) == expected


def test_a_json_body_is_an_object_with_its_strings_cleaned():
    assert json_object(b'{"text": "a\\u0000b\\ud800", "n": 10000000000000000000000, "l": ["\\u0000"]}') == {
        "text": "ab\ufffd", "n": 10**22, "l": [""]}
    assert json_object(b"") == {}


@pytest.mark.parametrize("raw", [b"[]", b"null", b"1", b"{oops", b"\xff", b'{"a":' * 5000])
def test_anything_else_is_a_400_that_says_so(raw):
    with pytest.raises(HTTPException) as refused:
        json_object(raw)
    assert refused.value.status_code == 400 and "JSON" in refused.value.detail


def test_form_fields_keep_blanks_and_take_the_first_value():
    assert form_fields(b"label=correct&note=&label=other&x=%00y") == {"label": "correct", "note": "", "x": "y"}


@pytest.mark.parametrize("key, possible", [("a" * 64, True), ("a" * 65, False), ("", False), ("a\x00", False),
                                           (None, False), (5, False)])
def test_a_key_that_cannot_be_stored_names_no_row(key, possible):
    assert possible_key(key) is possible


def test_the_calendars_last_day_bounds_nothing_and_other_days_end_at_midnight():
    assert review._end_of(date.max) is None
    assert review._end_of(date(2026, 12, 31)).isoformat() == "2027-01-01T00:00:00+00:00"


@pytest.mark.parametrize("values, says", [({"model": "m" * 129}, "at most 128"), ({"pseudonym": "u-\x00"}, "control"),
                                          ({"rule_id": "x" * 50_000}, "at most 128")])
def test_a_filter_value_too_long_or_with_control_characters_is_refused(values, says):
    with pytest.raises(review.ReviewError, match=says):
        review.parse_filter(values, spec=None)


@pytest.mark.parametrize("note", [5, ["a"], {"a": 1}, True])
def test_a_label_note_must_be_text(note):
    with pytest.raises(review.ReviewError, match="A note is text"):
        review.label(None, record_id=1, value="correct", note=note, operator="olga")


@pytest.mark.parametrize("value", [5, ["correct"], None])
def test_a_label_must_be_one_of_the_labels(value):
    with pytest.raises(review.ReviewError, match="A label is one of"):
        review.label(None, record_id=1, value=value, note=None, operator="olga")
