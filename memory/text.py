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


TITLE_CHARS = 48
# Words that open or close a conversation without saying what it is about.
_SMALL_TALK = frozenset("""hi hello hey hiya yo howdy morning evening afternoon good there thanks thank you
ty thx cheers ok okay yes no yep nope sure bye goodbye please again""".split())
_TITLE_WORD = re.compile(r"[\w']+")


def short_title(text: str, limit: int = TITLE_CHARS) -> str | None:
    """A conversation's title from a message: one line, cut at a word boundary with an ellipsis when
    longer than `limit`. None for blank text."""
    line = " ".join(clean_text(text).split())
    if not line:
        return None
    if len(line) <= limit:
        return line
    cut = line[: limit - 1]
    if line[limit - 1] != " " and " " in cut:  # the cut fell inside a word: drop that word
        cut = cut.rsplit(" ", 1)[0]
    return cut.rstrip(" ,;:.-–—") + "…"


def is_small_talk(text: str) -> bool:
    """Whether a message only greets, thanks or agrees ("hi", "thanks!", "ok"): it names no subject."""
    words = _TITLE_WORD.findall(text.casefold())
    return all(word in _SMALL_TALK for word in words)
