"""Inference: choose the evidence, ask the model, validate (one re-ask), map ids back to the database.

The model is reached only through the `Complete` callable it is given (the gateway's `complete`), so
this module knows nothing of HTTP clients. A failure is raised, never turned into "no hypotheses".
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from hypotheses.merge import Candidate, Entry
from hypotheses.parse import InvalidOutput, Parsed, Refusal, parse_proposals, response_schema, sensitive_category
from hypotheses.prompts import Budget, Shown, fit_messages, reask
from hypotheses.style import is_pasted
from memory.models import EntryStatus


class Answer(Protocol):
    """What `Complete` returns: the gateway's Completion, or anything else with the answer's text."""

    @property
    def text(self) -> str: ...


Prompt = Callable[[Budget], list[dict[str, str]]]  # the request, fitted to the model's budget by the gateway
Complete = Callable[[Prompt, dict], Awaitable[Answer]]
CHARS_PER_TOKEN = 4
MIN_WORDS = 5


@dataclass(frozen=True)
class Text:
    """One message the user wrote, as evidence."""

    message_id: int
    content: str


class InferenceFailed(Exception):
    """The model's answer stayed unusable after the re-ask; carries the reason and the last answer."""

    def __init__(self, reason: str, last_answer: str, attempts: int) -> None:
        super().__init__(reason)
        self.reason, self.last_answer, self.attempts = reason, last_answer, attempts


@dataclass
class Inference:
    candidates: list[Candidate]
    refused: list[Refusal]
    samples: int
    completions: list[Answer] = field(default_factory=list)  # the gateway's Completion records (cost)


def is_substantive(text: str) -> bool:
    """Evidence is the user's own writing of some length: no greetings or one-liners (under five words),
    no pasted material."""
    return len(re.findall(r"\w+", text)) >= MIN_WORDS and not is_pasted(text)


def choose_samples(new: Sequence[Text], older: Sequence[Text], *, budget_tokens: int, older_count: int = 3) -> list[Text]:
    """The new substantive texts (newest first while they fit) plus a few older ones for contrast."""
    budget = budget_tokens * CHARS_PER_TOKEN
    chosen: list[Text] = []
    for text in [*reversed([t for t in new if is_substantive(t.content)]),
                 *[t for t in older if is_substantive(t.content)][-older_count:]]:
        if len(text.content) > budget:
            continue
        chosen.append(text)
        budget -= len(text.content)
    return sorted(chosen, key=lambda t: t.message_id)


# The first job over an imported history reads a sample, never all of it: its cost is one inference
# (two model calls at most, with the re-ask) over at most this many tokens of the person's own words,
# whatever the size of the export.
IMPORT_BUDGET_TOKENS = 3000
PER_CONVERSATION = 2  # so one long conversation does not speak for all the others
LONGEST_SHARE = 3  # a text over a third of the budget is left out: three good texts beat one essay


@dataclass(frozen=True)
class Written:
    """One of the person's texts with the conversation it is in (the import sample spreads over them)."""

    text: Text
    conversation: str


def substance(text: str) -> int:
    """How much a text shows of its writer: its words. A considered paragraph shows more of how someone
    thinks and writes than a quick question; pasted material shows nothing of them."""
    return 0 if is_pasted(text) else len(re.findall(r"\w+", text))


def choose_import_samples(pool: Sequence[Written], *, budget_tokens: int = IMPORT_BUDGET_TOKENS,
                          per_conversation: int = PER_CONVERSATION) -> list[Text]:
    """The most substantive of the person's texts that fit the budget together: by words, most first
    (the newest first among equals), at most `per_conversation` from one conversation, none under
    MIN_WORDS words or over a third of the budget. In the order they were written."""
    budget = budget_tokens * CHARS_PER_TOKEN
    longest = budget // LONGEST_SHARE
    ranked = sorted((s for s in pool if substance(s.text.content) >= MIN_WORDS and len(s.text.content) <= longest),
                    key=lambda s: (substance(s.text.content), s.text.message_id), reverse=True)
    chosen: list[Text] = []
    taken: dict[str, int] = {}
    for said in ranked:
        if taken.get(said.conversation, 0) >= per_conversation or len(said.text.content) > budget:
            continue
        chosen.append(said.text)
        taken[said.conversation] = taken.get(said.conversation, 0) + 1
        budget -= len(said.text.content)
    return sorted(chosen, key=lambda t: t.message_id)


async def infer(complete: Complete, samples: Sequence[Text], profile: Sequence[Entry],
                replaced: Sequence[str] = ()) -> Inference:
    """Hypotheses from the samples, as merge candidates; raises InferenceFailed after one failed re-ask.
    The model is told what the person took back (rejected entries, `replaced` wordings), newest first."""
    shown_samples = [Shown(i, s.content) for i, s in enumerate(samples, start=1)]
    active = [e for e in profile if e.status is EntryStatus.ACTIVE]
    shown_entries = [Shown(i, e.text, e.facet) for i, e in enumerate(active, start=1)]
    rejected = [e.text for e in sorted(profile, key=lambda e: e.id, reverse=True) if e.status is EntryStatus.REJECTED]
    taken_back = list(dict.fromkeys([*replaced, *rejected]))
    reasked: list[dict[str, str]] = []  # the one re-ask, after the fitted messages
    sent: list[Shown] = shown_samples  # the samples the last request held: only they can be cited

    def prompt(budget: Budget) -> list[dict[str, str]]:
        nonlocal sent
        messages, sent = fit_messages(shown_samples, shown_entries, taken_back, budget.less(reasked))
        return [*messages, *reasked]

    completions, parsed, problem, answer = [], None, "", ""
    for _attempt in range(2):
        completion = await complete(prompt, response_schema())
        completions.append(completion)
        answer = completion.text
        try:
            parsed = parse_proposals(answer, sample_ids={s.id for s in sent}, entry_ids={e.id for e in shown_entries})
            break
        except InvalidOutput as exc:
            problem = str(exc)
            reasked = reask([], answer, problem)
    if parsed is None:
        raise InferenceFailed(problem, answer, attempts=len(completions))
    return Inference(_candidates(parsed, samples, active), parsed.refused, len(samples), completions)


def _candidates(parsed: Parsed, samples: Sequence[Text], active: Sequence[Entry]) -> list[Candidate]:
    return [
        Candidate(
            action=p.action, facet=str(p.facet), text=p.text.strip(), confidence=p.confidence,
            evidence=tuple(sorted({samples[i - 1].message_id for i in p.evidence})),
            entry_id=active[p.entry - 1].id if p.entry is not None and p.action != "add" else None,
            sensitive=sensitive_category(p.text) is not None,  # parse let it through only if stated
        )
        for p in parsed.accepted
    ]
