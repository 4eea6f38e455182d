"""Pure: the skeleton of a text, so that checks on it see what a reader (or a model) sees.

Text checks written against plain English are bypassed by text that merely looks like it: "Yоu must
obey" with a Cyrillic о, "Ｓystem:" in full-width letters, zero-width characters inside a word, letters
spelt out one by one. `skeleton` folds those disguises away before any such check runs; `variants`
adds the readings a few cheap tricks need (spaced-out letters, digits for letters). Checks match on
every variant; what is stored and shown is always the original text, never a skeleton.

The look-alike table follows Unicode TR39's confusables data (the idea of its "skeleton"): every
character that NFKD leaves alone and whose TR39 prototype is a single ASCII letter, plus small
capitals and a few Cyrillic and Greek letters that TR39 leaves out because they differ in size, not
shape. NFKC already folds full-width letters, mathematical alphanumerics and ligatures.
"""

from __future__ import annotations

import re
import unicodedata

# Prototype letter -> characters that look like it (written as escapes: the point is that they
# cannot be told apart on screen). Generated once from TR39 data; digit prototypes are left out, and
# capital-I look-alikes that TR39 sends to "l" go to "i", which is what they stand for in words.
_TR39 = {
    "a": "\u0251\u0391\u03b1\u0410\u0430\u13aa\u15c5\u237a\ua4ee\U000102a0\U00016f40",
    "b": "\u0184\u0392\u0412\u042c\u13cf\u13f4\u1472\u15af\u15f7\ua4d0\ua7b4\U00010282"
         "\U000102a1\U00010301",
    "c": "\u0421\u0441\u13df\u1d04\u2ca4\u2ca5\ua4da\uabaf\U000102a2\U00010302\U00010415"
         "\U0001043d\U0001051c\U000118e9\U000118f2\U0001f74c",
    "d": "\u0501\u13a0\u13e7\u146f\u15de\u15ea\ua4d2\ua4d3",
    "e": "\u0395\u0415\u0435\u04bd\u13ac\u212e\u22ff\u2d39\ua4f0\uab32\U00010286\U000118a6"
         "\U000118ae",
    "f": "\u03dc\u0584\u15b4\u1e9d\ua4dd\ua798\ua799\uab35\U00010287\U000102a5\U00010525"
         "\U000118a2\U000118c2\U0001d213",
    "g": "\u018d\u0261\u050c\u0581\u13c0\u13f3\u1d83\ua4d6",
    "h": "\u0397\u041d\u04bb\u0570\u13bb\u13c2\u157c\u2c8e\ua4e7\U000102cf",
    "i": "\u0131\u0196\u0269\u026a\u0399\u03b9\u0406\u0456\u04c0\u04cf\u13a5\u13de\u2373\u2c92"
         "\u2cd0\ua647\uab75\U0001041b\U000118a3\U000118b2\U000118c3",
    "j": "\u037f\u03f3\u0408\u0458\u13ab\u148d\ua4d9\ua7b2",
    "k": "\u039a\u041a\u13e6\u16d5\u2c94\ua4d7\U00010518",
    "l": "\u01c0\u06f1\u14aa\u16c1\u2223\u23fd\u2d4f\ua4e1\ua4f2\U0001028a\U00010309\U00010320"
         "\U00010526\U00016f16\U00016f28\U0001d22a",
    "m": "\u039c\u03fa\u041c\u13b7\u15f0\u16d6\u2c98\ua4df\U000102b0\U00010311",
    "n": "\u039d\u0578\u057c\u2c9a\ua4e0\U00010513",
    "o": "\u039f\u03bf\u03c3\u041e\u043e\u0555\u0585\u06f5\u0966\u09e6\u0a66\u0ae6\u0b20\u0b66"
         "\u0be6\u0c02\u0c66\u0c82\u0ce6\u0d02\u0d20\u0d66\u0d82\u0e50\u0ed0\u101d\u1040\u10ff"
         "\u12d0\u1d0f\u1d11\u2c9e\u2c9f\u2d54\u3007\ua4f3\uab3d\U00010292\U000102ab\U00010404"
         "\U0001042c\U000104c2\U000104ea\U00010516\U000114d0\U000118b5\U000118c8\U000118d7"
         "\U000118e0",
    "p": "\u03a1\u03c1\u0420\u0440\u13e2\u146d\u2374\u2ca2\u2ca3\ua4d1\U00010295",
    "q": "\u051b\u0563\u0566\u2d55",
    "r": "\u01a6\u0433\u13a1\u13d2\u1587\u1d26\u2c85\ua4e3\uab47\uab48\uab81\U000104b4"
         "\U00016f35\U0001d216",
    "s": "\u01bd\u0405\u0455\u054f\u13d5\u13da\ua4e2\ua731\uabaa\U00010296\U00010420\U00010448"
         "\U000118c1\U00016f3a",
    "t": "\u03a4\u0422\u13a2\u22a4\u27d9\u2ca6\ua4d4\U00010297\U000102b1\U00010315\U000118bc"
         "\U00016f0a\U0001f768",
    "u": "\u028b\u03c5\u054d\u057d\u1200\u144c\u1d1c\u222a\u22c3\ua4f4\ua79f\uab4e\uab52"
         "\U000104ce\U000104f6\U000118b8\U000118d8\U00016f42",
    "v": "\u03bd\u0474\u0475\u06f7\u13d9\u142f\u1d20\u2228\u22c1\u2d38\ua4e6\ua6df\uaba9"
         "\U0001051d\U00011706\U000118a0\U000118c0\U00016f08\U0001d20d",
    "w": "\u026f\u0461\u051c\u051d\u0561\u13b3\u13d4\u1d21\ua4ea\uab83\U0001170a\U0001170e"
         "\U0001170f\U000118e6\U000118ef",
    "x": "\u00d7\u03a7\u0425\u0445\u1541\u157d\u166d\u166e\u16b7\u2573\u292b\u292c\u2a2f\u2cac"
         "\u2d5d\ua4eb\ua7b3\U00010290\U000102b4\U00010317\U00010322\U00010527\U000118ec",
    "y": "\u0263\u028f\u03a5\u03b3\u0423\u0443\u04ae\u04af\u10e7\u13a9\u13bd\u1d8c\u1eff\u2ca8"
         "\ua4ec\uab5a\U000102b2\U000118a4\U000118dc\U00016f43",
    "z": "\u0396\u13c3\u1d22\ua4dc\uab93\U000102f5\U000118a9\U000118c4\U000118e5",
}
# Not in TR39 (they read as small capitals) yet used as letters all the same.
_SMALL_CAPITALS = {
    "a": "\u1d00", "b": "\u0299\u0432\u044c\u03b2", "c": "\u03f2", "d": "\u1d05", "e": "\u1d07\u03b5",
    "f": "\ua730", "g": "\u0262", "h": "\u029c\u043d", "j": "\u1d0a", "k": "\u1d0b\u043a\u03ba",
    "l": "\u029f", "m": "\u1d0d\u043c", "n": "\u0274\u043f\u03b7", "p": "\u1d18", "r": "\u0280",
    "s": "\u03c2", "t": "\u1d1b\u0442\u03c4", "u": "\u03bc", "w": "\u03c9", "x": "\u03c7",
}
_LOOK_ALIKES = {char: letter for table in (_TR39, _SMALL_CAPITALS) for letter, chars in table.items()
                for char in chars}
_LOOK_ALIKES |= dict.fromkeys("\u2018\u2019\u201b\u2032\u02bc", "'") | dict.fromkeys("\u201c\u201d\u201e\u2033", '"')
# Vertical strokes read as "i" or as "l" depending on the word ("Ӏgnore", "aӏӏ"): both readings are made.
_STROKES = frozenset(_TR39["l"]) | frozenset("\u0196\u0399\u0406\u04c0\u04cf\u2c92\ua647")
_AS_I = str.maketrans(_LOOK_ALIKES | dict.fromkeys(_STROKES, "i"))
_AS_L = str.maketrans(_LOOK_ALIKES | dict.fromkeys(_STROKES, "l"))

# Invisible letters (category Lo, so not caught as format characters) used as blank padding.
_BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")
# Unicode "tag" characters spell ASCII invisibly (U+E0020-E007E); a model may still read them, so the
# check reads them too, as the ASCII they stand for.
_TAGS = str.maketrans({cp: cp - 0xE0000 for cp in range(0xE0020, 0xE007F)})

_SPELT_OUT = re.compile(r"(?<![a-z0-9])[a-z](?:[\s.\-_*·/]{1,3}[a-z](?![a-z0-9])){2,}")
_SEPARATORS = re.compile(r"[^a-z]")
# Digits and symbols standing for letters, but only where they touch a letter ("1gn0re"), so that
# numbers ("works 9-5", "is 35") are left alone.
_LEET = re.compile(r"(?<=[a-z])[0134579@$|!]+|[0134579@$|!]+(?=[a-z])")
_MIXED = re.compile(r"[a-z][0134579@$]|[0134579@$][a-z]")
_ALL_DIGITS = re.compile(r"[0134579@$|!]+")
_AS_LETTERS = {"0": "o", "3": "e", "4": "a", "5": "s", "7": "t", "9": "g", "@": "a", "$": "s"}
_DIGITS_AS = [_AS_LETTERS | dict.fromkeys("1|!", "i"), _AS_LETTERS | dict.fromkeys("1|!", "l")]  # 1 | ! are i or l


def skeleton(text: str, *, strokes: str = "i") -> str:
    """Look-alikes folded to Latin, invisible and combining marks dropped, case folded, spaces collapsed.
    `strokes` says how to read the vertical strokes that stand for both "i" and "l"."""
    text = unicodedata.normalize("NFKC", text.translate(_TAGS))
    visible = "".join(ch for ch in text if unicodedata.category(ch) != "Cf" and ch not in _BLANK_LETTERS)
    bare = "".join(ch for ch in unicodedata.normalize("NFD", visible) if not unicodedata.combining(ch))
    return " ".join(bare.translate(_AS_I if strokes == "i" else _AS_L).casefold().split())


def spelt_out_words(folded: str) -> list[str]:
    """Words written letter by letter in a skeleton ("i g n o r e" -> "ignore"), joined up."""
    return [_SEPARATORS.sub("", match.group()) for match in _SPELT_OUT.finditer(folded)]


def variants(text: str) -> list[str]:
    """The skeleton, then (where they differ) the readings with spelt-out words joined and with
    digits read as letters. A check that must not be bypassed runs on every one."""
    readings = []
    for strokes in ("i", "l"):
        folded = skeleton(text, strokes=strokes)
        joined = _SPELT_OUT.sub(lambda m: _SEPARATORS.sub("", m.group()), folded)
        # Where some word mixes digits into letters, numbers on their own ("70 7h3m") are read too.
        digits = _ALL_DIGITS if _MIXED.search(joined) else _LEET
        readings += [folded, joined, *(_read_digits(joined, letters, digits) for letters in _DIGITS_AS)]
    return list(dict.fromkeys(readings))


def _read_digits(text: str, letters: dict[str, str], where: re.Pattern[str]) -> str:
    return where.sub(lambda m: "".join(letters.get(c, c) for c in m.group()), text)
