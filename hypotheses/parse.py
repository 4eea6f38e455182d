"""Pure: from a model's raw answer to validated hypothesis proposals, or a clear reason why not.

Two kinds of failure, kept apart:
- the answer as a whole is unusable (no JSON, wrong shape): `InvalidOutput`, whose message is what
  the caller sends back for its one re-ask;
- one proposal is unacceptable (it instructs the assistant, cites evidence it was not shown, infers a
  sensitive attribute the user never stated): it is refused with a reason and the rest are kept.
Hypotheses describe the user; they never instruct. Memory is an injection channel, so this is
checked here, in code (`hypotheses.instructions`), not left to the model's good manners.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal, TypeVar

from pydantic import BaseModel, Field, ValidationError

from hypotheses.instructions import instruction_like
from hypotheses.skeleton import skeleton

MAX_PROPOSALS = 20
M = TypeVar("M", bound=BaseModel)


class Facet(StrEnum):
    COMMUNICATION = "communication"  # communication strategies: how they ask, explain, argue
    PERSONALITY = "personality"  # behavioural traits, never diagnoses
    STYLE = "style"  # writing style
    PREFERENCE = "preference"  # preferences and attributes the user stated


class Proposal(BaseModel):
    action: Literal["add", "support", "contradict"]
    facet: Facet
    text: str = Field(min_length=3, max_length=300, description="One sentence about the user, third person.")
    evidence: list[int] = Field(min_length=1, max_length=10, description="Ids of the samples that show it.")
    confidence: float = Field(ge=0.0, le=1.0)
    entry: int | None = Field(default=None, description="Id of the profile entry supported or contradicted.")
    stated: bool = Field(default=False, description="True only when the user said this about themselves.")


class Proposals(BaseModel):
    hypotheses: list[Proposal] = Field(max_length=MAX_PROPOSALS)


def response_schema() -> dict:
    """The JSON schema for structured output (`response_format={"type": "json_schema", ...}`)."""
    return {"name": "hypotheses", "schema": Proposals.model_json_schema(), "strict": False}


class InvalidOutput(Exception):
    """The model's answer cannot be used at all; the message says why, for the re-ask."""


@dataclass(frozen=True)
class Refusal:
    text: str
    reason: str


@dataclass(frozen=True)
class Parsed:
    accepted: list[Proposal]
    refused: list[Refusal]


def extract_json(raw: str) -> object:
    """JSON from an answer: the whole text, else a fenced block, else the outermost {...}."""
    text = raw.strip()
    candidates = [text]
    candidates += re.findall(r"```(?:json)?\s*(.*?)```", text, re.S)
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        candidates.append(text[start:end + 1])
    for candidate in candidates:
        try:
            return json.loads(candidate)
        except ValueError:
            continue
    raise InvalidOutput("The answer contained no JSON object. Answer with JSON only, in the requested shape.")


def validated(raw: str, schema: type[M], what: str = "The JSON", *, most: int = 8) -> M:
    """The answer's JSON validated into `schema`; InvalidOutput says what is wrong, for the re-ask."""
    data = extract_json(raw)
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:most])
        raise InvalidOutput(f"{what} does not match the schema: {problems}") from None


def parse_proposals(raw: str, *, sample_ids: set[int], entry_ids: set[int]) -> Parsed:
    """Validate a raw answer; raise InvalidOutput, or return the accepted and refused proposals."""
    batch = validated(raw, Proposals)
    accepted, refused = [], []
    for proposal in batch.hypotheses:
        reason = refusal_reason(proposal, sample_ids=sample_ids, entry_ids=entry_ids)
        if reason:
            refused.append(Refusal(proposal.text, reason))
        else:
            accepted.append(proposal)
    return Parsed(accepted, refused)


def refusal_reason(proposal: Proposal, *, sample_ids: set[int], entry_ids: set[int]) -> str | None:
    if instruction := instruction_like(proposal.text):
        return f"instructs instead of describing ({instruction})"
    unknown = [i for i in proposal.evidence if i not in sample_ids]
    if unknown:
        return f"cites evidence it was not shown: {unknown}"
    if proposal.action != "add" and proposal.entry not in entry_ids:
        return f"{proposal.action} names no existing entry"
    category = sensitive_category(proposal.text)
    if category and not proposal.stated:
        return f"infers a sensitive attribute ({category}) the user did not state"
    return None


SENSITIVE = {
    "health": r"\b(ill|illness|disease|diagnos\w*|depress\w*|anxiety|anxious|adhd|autis\w*|disorder|"
              r"disabilit\w*|pregnan\w*|cancer|diabet\w*|medication|therapy|mental health)\b",
    "religion": r"\b(religio\w*|christian|muslim|jewish|hindu|buddhist|atheist|church|mosque|synagogue|faith)\b",
    "sexuality": r"\b(gay|lesbian|bisexual|heterosexual|homosexual|queer|transgender|sexual\w*|asexual)\b",
    "politics": r"\b(politic\w*|conservative|liberal|democrat\w*|republican|socialis\w*|left-wing|right-wing|"
                r"vot\w* for)\b",
    "ethnicity": r"\b(ethnic\w*|race|racial|black|white|asian|hispanic|latino|arab)\b",
}
_SENSITIVE = {category: re.compile(pattern, re.I) for category, pattern in SENSITIVE.items()}


def sensitive_category(text: str) -> str | None:
    """The sensitive attribute a text speaks of, or None; read through the skeleton, so that a
    look-alike letter ("rеligious" with a Cyrillic е) does not hide it."""
    folded = skeleton(text)
    for category, pattern in _SENSITIVE.items():
        if pattern.search(folded):
            return category
    return None
