"""The style card: measured, LLM-free facts about how a user writes, updated one message at a time.

`StyleStats` holds only counts, so adding a message is cheap and the card never needs the history
again. `describe` turns the counts into short statements that carry their numbers; they go into
the reply prompt as data about the user and work with no language model at all.
"""

from __future__ import annotations

import functools
import math
import re
import unicodedata
from dataclasses import asdict, dataclass, field, replace

MAX_TYPES = 5_000  # distinct words remembered for vocabulary richness (bounds the stored card)
MIN_MESSAGES = 3  # fewer than this: no statements, a style is not three words

WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)*", re.UNICODE)
_SENTENCE_END = re.compile(r"[.!?…]+(?:\s|$)|\n+")
_CONTRACTION = re.compile(r"\b\w+['’](?:s|t|re|ve|ll|d|m)\b", re.IGNORECASE)
_CODE = re.compile(r"```|^\s{4}\S", re.MULTILINE)
GREETINGS = ("hi", "hello", "hey", "hiya", "good morning", "good evening", "good afternoon", "dear", "yo",
             "greetings", "howdy", "bonjour", "hola", "hallo", "ciao")
SIGNOFFS = ("thanks", "thank you", "cheers", "regards", "best", "bye", "cya", "see you", "take care", "thx", "ty")
FORMAL = frozenset("""regards kindly furthermore however therefore moreover nevertheless sincerely
accordingly hence thus whereas additionally consequently respectfully""".split())
INFORMAL = frozenset("""lol lmao gonna wanna gotta yeah yep nope hey btw tbh imo idk omg ok okay cool
awesome haha hahaha kinda sorta dunno ya u ur pls thx""".split())
ENGLISH = frozenset("the and is are was to of in that it you i for with this have not be on what".split())
SCRIPTS = {"LATIN": "Latin", "CYRILLIC": "Cyrillic", "GREEK": "Greek", "ARABIC": "Arabic", "HEBREW": "Hebrew",
           "CJK": "Chinese/Japanese", "HIRAGANA": "Chinese/Japanese", "KATAKANA": "Chinese/Japanese",
           "HANGUL": "Korean", "DEVANAGARI": "Devanagari", "THAI": "Thai"}


@dataclass(frozen=True)
class StyleStats:
    messages: int = 0
    words: int = 0
    sentences: int = 0
    contractions: int = 0
    exclamations: int = 0
    questions: int = 0
    ellipses: int = 0
    emoji: int = 0
    caps_words: int = 0
    lowercase_starts: int = 0
    greetings: int = 0
    signoffs: int = 0
    formal: int = 0
    informal: int = 0
    english_words: int = 0
    scripts: dict[str, int] = field(default_factory=dict)
    types: frozenset[str] = frozenset()  # distinct lower-cased words, at most MAX_TYPES (sorted in JSON)
    typed_words: int = 0  # words seen while `types` still had room (the denominator of richness)

    def to_json(self) -> dict:
        return {**asdict(self), "types": sorted(self.types)}

    @classmethod
    def from_json(cls, data: dict) -> StyleStats:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        known["types"] = frozenset(known.get("types", ()))
        return cls(**known)


def is_pasted(text: str) -> bool:
    """Code blocks and very long messages are mostly someone else's writing."""
    return bool(_CODE.search(text)) or len(text) > 4_000


def observe(stats: StyleStats, text: str) -> StyleStats:
    """The card with one more message of the user's own writing (pasted material is ignored)."""
    text = text.strip()
    if not text or is_pasted(text):
        return stats
    words = WORD.findall(text)
    lowered = [w.lower() for w in words]
    opening = text.lower().lstrip("*_ ")
    closing = re.sub(r"[\W_]+$", "", text.lower()).rsplit("\n", 1)[-1]
    types, typed = stats.types, stats.typed_words
    if len(types) < MAX_TYPES:
        types = types.union(lowered[: MAX_TYPES - len(types)])
        typed += len(lowered)
    scripts = dict(stats.scripts)
    for script in _scripts(text):
        scripts[script] = scripts.get(script, 0) + 1
    first_letter = next((c for c in text if c.isalpha()), "")
    return replace(
        stats,
        messages=stats.messages + 1,
        words=stats.words + len(words),
        sentences=stats.sentences + max(1, len([s for s in _SENTENCE_END.split(text) if s.strip()])),
        contractions=stats.contractions + len(_CONTRACTION.findall(text)),
        exclamations=stats.exclamations + text.count("!"),
        questions=stats.questions + text.count("?"),
        ellipses=stats.ellipses + text.count("...") + text.count("…"),
        emoji=stats.emoji + sum(text.count(c) for c in set(text) if _is_emoji(c)),
        caps_words=stats.caps_words + sum(1 for w in words if len(w) >= 2 and w.isupper()),
        lowercase_starts=stats.lowercase_starts + int(first_letter.islower()),
        greetings=stats.greetings + int(any(re.match(rf"{g}\b", opening) for g in GREETINGS)),
        signoffs=stats.signoffs + int(any(closing.endswith(s) for s in SIGNOFFS)),
        formal=stats.formal + sum(1 for w in lowered if w in FORMAL),
        informal=stats.informal + sum(1 for w in lowered if w in INFORMAL),
        english_words=stats.english_words + sum(1 for w in lowered if w in ENGLISH),
        scripts=scripts,
        types=types,
        typed_words=typed,
    )


def _is_emoji(char: str) -> bool:
    return unicodedata.category(char) == "So" or 0x1F300 <= ord(char) <= 0x1FAFF


def _scripts(text: str) -> set[str]:
    found: set[str] = set()
    for char in set(text):  # each distinct letter once
        if char.isalpha():
            found.update(_script_of(char))
    return found


@functools.lru_cache(maxsize=4096)
def _script_of(char: str) -> tuple[str, ...]:
    name = unicodedata.name(char, "")
    return tuple(label for key, label in SCRIPTS.items() if name.startswith(key))


def describe(stats: StyleStats) -> list[str]:
    """Short statements about the user's writing, each with the number behind it."""
    return [measured for _, measured in statements(stats)]


def statements(stats: StyleStats) -> list[tuple[str, str]]:
    """Each statement twice: in plain words ("Uses a varied vocabulary"), and with the number behind it
    ("... (Guiraud index 12.8: ...)") for the prompt and for people who want the measure."""
    n = stats.messages
    if n < MIN_MESSAGES:
        return []
    per = lambda count: count / n  # noqa: E731 (a local unit)
    words_per_message = stats.words / n
    size = "short" if words_per_message < 12 else "long" if words_per_message > 40 else "medium-length"
    lines = [(f"Writes {size} messages",
              f"Writes {size} messages: {words_per_message:.0f} words on average over {n} messages, "
              f"{stats.words / max(stats.sentences, 1):.0f} words per sentence.")]
    if stats.typed_words >= 50:
        richness = len(stats.types) / math.sqrt(stats.typed_words)
        level = "a varied" if richness > 7 else "a plain" if richness < 4 else "an everyday"
        lines.append((f"Uses {level} vocabulary",
                      f"Uses {level} vocabulary (Guiraud index {richness:.1f}: different words divided by the "
                      "square root of all words written; above 7 is varied, below 4 plain)."))
    register = stats.formal - stats.informal
    if stats.formal or stats.informal:
        tone = "formal" if register > 0 else "casual"
        lines.append((f"Leans {tone}",
                      f"Leans {tone}: {stats.formal} formal and {stats.informal} casual markers."))
    often = _often(per(stats.contractions), 0.5, 0.1)
    lines.append((f"{often} uses contractions such as “don't”",
                  f"{often} uses contractions ({per(stats.contractions):.1f} per message)."))
    for label, count in (("exclamation marks", stats.exclamations), ("question marks", stats.questions),
                         ("ellipses", stats.ellipses), ("emoji", stats.emoji)):
        if count:
            often = _often(per(count), 0.8, 0.2)
            lines.append((f"{often} uses {label}", f"{often} uses {label} ({per(count):.1f} per message)."))
    if stats.caps_words:
        lines.append(("Writes some words in capitals",
                      f"Writes some words in capitals ({per(stats.caps_words):.1f} per message)."))
    for count, plain, measured in (
            (stats.lowercase_starts, "starts messages in lower case", "Starts {:.0%} of messages in lower case."),
            (stats.greetings, "opens with a greeting", "Opens {:.0%} of messages with a greeting."),
            (stats.signoffs, "ends with a thanks or sign-off", "Ends {:.0%} of messages with a thanks or sign-off.")):
        if count:
            lines.append((f"{_often(count / n, 0.5, 0.2)} {plain}", measured.format(count / n)))
    lines.append(_language(stats))
    return lines


def _often(rate: float, high: float, low: float) -> str:
    return "Often" if rate >= high else "Rarely" if rate < low else "Sometimes"


def _language(stats: StyleStats) -> tuple[str, str]:
    if not stats.scripts:
        return "Writes without letters", "Writes without letters (numbers or symbols only)."
    script = max(stats.scripts, key=stats.scripts.__getitem__)
    if script == "Latin" and stats.words and stats.english_words / stats.words > 0.1:
        return "Writes in English", f"Writes in English ({stats.english_words / stats.words:.0%} common English words)."
    return (f"Writes mostly in {script} script",
            f"Writes mostly in {script} script ({stats.scripts[script]} of {stats.messages} messages).")
