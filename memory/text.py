"""Pure text hygiene applied to everything we store, whichever path it arrives by."""

from __future__ import annotations

import re

# C0 controls and DEL, except tab and newline; NUL in particular is refused by PostgreSQL.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
# Lone surrogates cannot be encoded as UTF-8 and would fail the write (or the browser).
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def clean_text(text: str) -> str:
    """Normalise line ends, drop control characters and replace lone surrogates with U+FFFD."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub("", text)
    return _SURROGATE.sub("\ufffd", text)


def is_blank(text: str) -> bool:
    return not clean_text(text).strip()
