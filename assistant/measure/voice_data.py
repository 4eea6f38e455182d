"""The authorship sets `bench voice` and `eval style` read: CCAT50 (Reuters journalists) and CMCC (students'
e-mails and essays), as DITTO packages them. The files are read where they lie (never copied: neither
set may ship), and the gotchas their SOURCE.md lists are handled here, once:

- CCAT50's outputs repeat their prompt's first sentence: it is cut, or every candidate shares it.
- CCAT50's raw training articles hold the three validation items of each author, and re-filed wire
  stories (the same first 300 characters) that also appear as test items: both are kept out of the
  demonstrations, or fidelity would include copying.
- CCAT50's author ids are not the folders' sorted order: `ccat50_author_ids.csv` maps them.
- CMCC's author "2" starts outputs with the study's question header ("Subject 15- GENDER …: <question>"):
  it is cut, or the header alone would identify them.
"""

from __future__ import annotations

import csv
import json
import re
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

DATASETS = ("ccat50", "cmcc")
EMAIL, ESSAY, NEWS = "email", "essay", "news"
_SPACE = re.compile(r"\s+")
_CCAT_PROMPT = "Write an article that starts with the following: "
# "Subject Number 15: 2. GAY MARRIAGE: ", "1. LEGALIZATION OF MARIJUANA: "
_HEADER = re.compile(r"^\s*(?:Subject\b[^\n]{0,30}?)?(?:\d\.\s*)?[A-Z]{3}[A-Z .]{3,}:\s*")
_ASKED = re.compile(r"^(?:[^.?!]*\?|\([^)]*\))\s*")  # a question, or an "(ex. …)", left of the study's header
_DUPLICATE_PREFIX = 300
_SIGNED = re.compile(r"(?<=[.!?,])\s*-?\s*(?:ID\s*#?\s*:?\s*|#\s*)?\d{1,3}\s*$")  # "…time, ID # 20", "… 29"
_QUOTE_GAP = 160  # a quoted e-mail has a ">" at least this often


class DatasetError(Exception):
    """The folder does not hold the set it is named as; the message says what is missing."""


@dataclass(frozen=True)
class Sample:
    text: str
    genre: str
    prompt: str = ""  # what the text answers (CMCC's question, CCAT50's first sentence)
    opening: str = ""  # CCAT50: the first sentence the generated article must start with


@dataclass
class Author:
    key: str
    name: str
    demonstrations: list[Sample] = field(default_factory=list)  # the pool k texts are drawn from
    held_out: list[Sample] = field(default_factory=list)  # never seen while learning


def load(dataset: str, path: Path) -> list[Author]:
    if dataset not in DATASETS:
        raise DatasetError(f"unknown dataset {dataset!r}; use one of {', '.join(DATASETS)}")
    if not path.is_dir():
        raise DatasetError(f"{path}: not a folder (expected the {dataset} folder of ../shared/data)")
    authors = load_ccat50(path) if dataset == "ccat50" else load_cmcc(path)
    if not authors:
        raise DatasetError(f"{path}: no authors with texts found")
    return authors


def _items(path: Path) -> dict[str, list[dict]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DatasetError(f"{path} is missing") from None
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path}: not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: expected an object of author id -> items")
    return {str(k): [i for i in v if isinstance(i, dict) and isinstance(i.get("output"), str)]
            for k, v in data.items() if isinstance(v, list)}


def normalised(text: str) -> str:
    return _SPACE.sub(" ", text).strip()


def _without_opening(output: str, prompt: str) -> tuple[str, str]:
    opening = normalised(prompt.removeprefix(_CCAT_PROMPT)) if prompt.startswith(_CCAT_PROMPT) else ""
    text = normalised(output)
    if opening and text.startswith(opening):
        text = text[len(opening):].lstrip()
    return text, opening


def load_ccat50(path: Path) -> list[Author]:
    """Held out: ccat50_test.json (3 articles an author). Demonstrations: the author's raw training articles
    (C50train inside C50_raw_train_test.tar.gz) without the validation items and without any article
    sharing its opening with a held-out one; without the archive, the validation items themselves."""
    test, val = _items(path / "ccat50_test.json"), _items(path / "ccat50_val.json")
    names = _author_names(path / "ccat50_author_ids.csv")
    raw = _raw_training_articles(path / "C50_raw_train_test.tar.gz")
    authors = []
    for key in sorted(test, key=_numeric):
        author = Author(key, names.get(key, key))
        for item in test[key]:
            text, opening = _without_opening(item["output"], str(item.get("prompt", "")))
            author.held_out.append(Sample(text, NEWS, opening, opening))
        held = {normalised(i["output"])[:_DUPLICATE_PREFIX] for i in test[key]}
        validation = {normalised(i["output"]) for i in val.get(key, [])}
        if raw is not None:
            # A validation item and a re-filed copy of a held-out story are no demonstrations; nor is a
            # second copy of one (re-filed stories share their first 300 characters).
            left_out = held | {v[:_DUPLICATE_PREFIX] for v in validation}
            pool = list({a[:_DUPLICATE_PREFIX]: a for a in reversed([normalised(r) for r in raw.get(author.name, [])])
                         if a[:_DUPLICATE_PREFIX] not in left_out}.values())[::-1]
        else:
            pool = sorted(validation)
        for article in pool:
            opening = _first_sentence(article)
            author.demonstrations.append(Sample(article[len(opening):].lstrip() or article, NEWS, opening, opening))
        authors.append(author)
    _drop_shared_across_authors(authors)
    return authors


def _drop_shared_across_authors(authors: list[Author]) -> None:
    """A wire story filed under two names (one pair in C50) teaches nothing about either author."""
    seen: dict[str, set[str]] = {}
    for author in authors:
        for s in author.demonstrations + author.held_out:
            seen.setdefault(s.text[:_DUPLICATE_PREFIX], set()).add(author.key)
    shared = {prefix for prefix, keys in seen.items() if len(keys) > 1}
    for author in authors:
        author.demonstrations = [s for s in author.demonstrations if s.text[:_DUPLICATE_PREFIX] not in shared]


def _first_sentence(text: str) -> str:
    match = re.match(r".{20,}?[.!?](?=\s+[A-Z\"'(])", text)
    return match.group(0) if match else ""


def _numeric(key: str) -> tuple[int, str]:
    return (int(key), key) if key.isdigit() else (10**9, key)


def _author_names(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    with path.open(newline="", encoding="utf-8") as handle:
        return {row["author_id"]: row["c50_author_folder"] for row in csv.DictReader(handle)
                if row.get("author_id") and row.get("c50_author_folder")}


def _raw_training_articles(path: Path) -> dict[str, list[str]] | None:
    """Each C50train author's articles, in file-name order."""
    if not path.is_file():
        return None
    files: dict[str, list[tuple[str, str]]] = {}
    with tarfile.open(path, "r:gz") as archive:
        for member in archive:
            parts = member.name.split("/")
            if not member.isfile() or len(parts) != 3 or parts[0] != "C50train":
                continue
            handle = archive.extractfile(member)
            if handle is not None:
                files.setdefault(parts[1], []).append((parts[2], handle.read().decode("latin-1")))
    return {name: [text for _, text in sorted(named)] for name, named in files.items()}


def load_cmcc(path: Path) -> list[Author]:
    """Demonstrations: cmcc_train.json (7–8 an author); held out: cmcc_test.json and cmcc_val.json. The
    genre of each text is read from its prompt (an e-mail response or an essay)."""
    splits = {name: _items(path / f"cmcc_{name}.json") for name in ("train", "val", "test")}
    authors = []
    for key in sorted(splits["train"], key=_numeric):
        author = Author(key, f"cmcc-{key}")
        author.demonstrations = [_cmcc_sample(i) for i in splits["train"][key]]
        author.held_out = [_cmcc_sample(i) for i in splits["test"].get(key, []) + splits["val"].get(key, [])]
        authors.append(author)
    return authors


def _unquoted(text: str) -> str:
    """An e-mail that opens by quoting the study's invitation ("> Dear CMC Participant, > > Hello. …"):
    the quoted block is not the author's writing."""
    if not text.startswith(">"):
        return text
    end = 0
    while (following := text.find(">", end + 1)) != -1 and following - end <= _QUOTE_GAP:
        end = following
    return text[end + 1:].strip()


def _cmcc_sample(item: dict) -> Sample:
    prompt = str(item.get("prompt", ""))
    genre = EMAIL if "email" in prompt[:40].lower() else ESSAY
    question = prompt.split(": ", 1)[1] if ": " in prompt else prompt
    text = _unquoted(item["output"].strip())
    text = _SIGNED.sub("", text)  # a participant number signed at the end would name the author
    if header := _HEADER.match(text):
        # The header repeats the study's whole question, of which the prompt holds only the start.
        text = text[header.end():].removeprefix(question).lstrip()
        while asked := _ASKED.match(text):
            text = text[asked.end():]
    return Sample(text.strip(), genre, question)
