"""Made-up writers for the voice tests: each has habits of their own (casing, contractions, fillers,
punctuation, openers, sentence length) and all of them write about the same topics, drawn at random,
so only the habits tell them apart. Nothing here comes from a real corpus."""

from __future__ import annotations

import random
from dataclasses import dataclass

TOPICS = ("garden tomatoes compost seedlings trellis", "budget invoices spreadsheet taxes pension",
          "football referee stadium league penalty", "holiday ferry luggage passport museum",
          "kitchen recipe oven pastry saucepan", "laptop keyboard battery charger update",
          "neighbours fence hedge parking council", "concert guitar drummer tickets festival")
FRAMES = ("{o}{i} {think} the {a} {was} {f} better than the {b}{p}",
          "{o}{we} {should} {f} look at the {a} before the {b} gets worse{p}",
          "{o}my {a} and the {b} {were} {f} the same thing all along{p}",
          "{o}{i} {dont} know why the {a} {was} left next to the {b}{p}",
          "{o}if the {a} {was} ready, {we} {would} {f} start on the {b}{p}")


@dataclass(frozen=True)
class Writer:
    name: str
    lower: bool  # writes without capitals
    contracted: bool  # "don't", "i'm" rather than "do not", "I am"
    fillers: tuple[str, ...]  # words they lean on
    openers: tuple[str, ...]
    ends: tuple[str, ...]  # how sentences end
    sentences: int

    def text(self, rng: random.Random, topic: str | None = None) -> str:
        words = (topic or rng.choice(TOPICS)).split()
        out = []
        for _ in range(self.sentences + rng.randint(0, 2)):
            a, b = rng.sample(words, 2)
            line = rng.choice(FRAMES).format(
                o=rng.choice(self.openers), i="i'm sure i" if self.contracted else "I am sure I",
                we="we", think="reckon" if self.lower else "believe",
                should="should", was="was", were="were", would="would", f=rng.choice(self.fillers),
                dont="don't" if self.contracted else "do not", a=a, b=b, p=rng.choice(self.ends))
            line = line.lower() if self.lower else line[0].upper() + line[1:]
            out.append(line)
        return " ".join(out)


WRITERS = (
    Writer("ada", lower=True, contracted=True, fillers=("totally", "basically", "just"), openers=("so ", "like ", ""),
           ends=("!!", " lol", "..."), sentences=6),
    Writer("bo", lower=False, contracted=False, fillers=("indeed", "therefore", "rather"),
           openers=("However, ", "In my view, ", "Frankly, "), ends=(".", ";", "."), sentences=7),
    Writer("cy", lower=False, contracted=True, fillers=("really", "quite", "actually"), openers=("Well, ", "Honestly, ", ""),
           ends=("?", ".", " - right?"), sentences=5),
    Writer("di", lower=True, contracted=False, fillers=("perhaps", "somehow", "maybe"), openers=("hmm, ", "and ", "but "),
           ends=(".", "...", ". ok."), sentences=8),
)


def texts_of(writer: Writer, n: int, *, seed: int) -> list[str]:
    rng = random.Random(f"{writer.name}-{seed}")
    return [writer.text(rng) for _ in range(n)]
