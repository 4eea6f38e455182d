"""The safety specification as data: load, validate, and render it for the deliberation.

`spec.yaml` beside this module is the default; operators point `HYPERALIGN_SAFETY_SPEC` at their own.
A spec that does not validate stops the app (and `hyperalign spec check`) with messages that name the
faulty entry, e.g. "categories[3] (hate): severity: must be hard or contextual". The version is the
hash of the file's content, so two processes with the same file agree on it and any edit changes it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from memory.models import Decision  # noqa: F401 (re-exported: the spec's rules say one of these)

DEFAULT_SPEC = Path(__file__).with_name("spec.yaml")


class SpecError(Exception):
    """The spec file is unusable; the message lists every problem, each naming its entry."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RuleModel(_Strict):
    id: str = Field(pattern=r"^[A-Z]{2,5}\.[ASR]\d+$")
    text: str = Field(min_length=10)


class ExamplesModel(_Strict):
    comply: list[str] = []
    safe_complete: list[str] = []
    refuse: list[str] = []


class CategoryModel(_Strict):
    id: str = Field(pattern=r"^[a-z][a-z0-9_]{1,40}$")
    title: str = Field(min_length=3)
    severity: Literal["hard", "contextual"]
    definition: str = Field(min_length=10)
    allowed: list[RuleModel]
    safe_completion: list[RuleModel]
    refused: list[RuleModel]
    examples: ExamplesModel
    cues: list[str] = []
    maps_to: dict[str, list[str]] = {}
    safe_completion_style: str | None = None

    @field_validator("refused")
    @classmethod
    def _something_refused(cls, rules: list[RuleModel]) -> list[RuleModel]:
        if not rules:
            raise ValueError("a category must say what is refused")
        return rules


class StyleModel(_Strict):
    refusal: str = Field(min_length=10)
    safe_completion: str = Field(min_length=10)
    comply: str = Field(min_length=10)


class SpecModel(_Strict):
    name: str
    principles: list[str]
    general: list[RuleModel]
    style: StyleModel
    categories: list[CategoryModel] = Field(min_length=1)


@dataclass(frozen=True)
class Rule:
    id: str
    decision: Decision
    text: str
    category: str | None  # None for the general rules


@dataclass(frozen=True)
class Category:
    id: str
    title: str
    severity: str
    definition: str
    rules: tuple[Rule, ...]
    examples: dict[str, tuple[str, ...]]
    cues: tuple[str, ...]
    safe_completion_style: str | None


@dataclass(frozen=True)
class Spec:
    name: str
    version: str  # sha256 of the file's content, first 12 hex digits
    principles: tuple[str, ...]
    general: tuple[Rule, ...]
    style: dict[Decision, str]
    categories: tuple[Category, ...]

    @property
    def rules(self) -> dict[str, Rule]:
        everything = [*self.general, *(rule for c in self.categories for rule in c.rules)]
        return {rule.id: rule for rule in everything}

    def category(self, category_id: str) -> Category:
        return next(c for c in self.categories if c.id == category_id)

    def summaries(self) -> str:
        """One line per category: what the deliberation always reads."""
        return "\n".join(f"- {c.id} ({c.severity}): {c.title}. {c.definition}" for c in self.categories)

    def full_text(self, category_ids: Iterable[str]) -> str:
        """The whole policy of the given categories: their rules and examples."""
        return "\n\n".join(_render_category(self.category(cid)) for cid in category_ids)

    def general_text(self) -> str:
        lines = ["Principles:", *(f"- {p}" for p in self.principles), "General rules:"]
        lines += [f"- {rule.id} ({rule.decision}): {rule.text}" for rule in self.general]
        return "\n".join(lines)

    def style_guide(self, decision: Decision, categories: Sequence[str] = ()) -> str:
        """How to write an answer of this decision; a category's own safe-completion style wins."""
        if decision is Decision.SAFE_COMPLETE:
            for cid in categories:
                own = self.category(cid).safe_completion_style if cid in self.category_ids else None
                if own:
                    return own
        return self.style[decision]

    @property
    def category_ids(self) -> tuple[str, ...]:
        return tuple(c.id for c in self.categories)


def _render_category(category: Category) -> str:
    lines = [f"## {category.id}: {category.title} ({category.severity})", category.definition]
    lines += [f"- {rule.id} ({rule.decision}): {rule.text}" for rule in category.rules]
    for decision, examples in category.examples.items():
        if examples:
            lines.append(f"Examples ({decision}): " + " | ".join(f"«{e}»" for e in examples))
    return "\n".join(lines)


def load_spec(path: Path | None = None) -> Spec:
    """Read and validate a spec file; raise SpecError naming every faulty entry."""
    path = path or DEFAULT_SPEC
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SpecError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise SpecError(f"{path}: expected a mapping with name, principles, general, style and categories")
    try:
        model = SpecModel.model_validate(data)
    except ValidationError as exc:
        raise SpecError(_explain(path, data, exc)) from None
    problems = _duplicates(model)
    if problems:
        raise SpecError("\n".join([f"{path}: the spec is invalid:", *problems]))
    return _build(model, hashlib.sha256(raw).hexdigest()[:12])


def _explain(path: Path, data: dict, exc: ValidationError) -> str:
    lines = [f"{path}: the spec is invalid:"]
    for error in exc.errors():
        given = error.get("input")
        shown = f" (got {given!r})" if isinstance(given, str | int | float) and error["type"] != "missing" else ""
        lines.append(f"  {_where(data, error['loc'])}: {error['msg']}{shown}")
    return "\n".join(lines)


def _where(data: dict, loc: tuple) -> str:
    """A readable path to the faulty entry, naming categories and rules by their ids."""
    parts: list[str] = []
    node: Any = data  # parsed YAML: any shape, walked as far as it goes
    for key in loc:
        label = f"[{key}]" if isinstance(key, int) else (f".{key}" if parts else str(key))
        if isinstance(key, int) and isinstance(node, list) and key < len(node) and isinstance(node[key], dict):
            ident = node[key].get("id")
            label += f" ({ident})" if ident else ""
        parts.append(label)
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            node = None
    return "".join(parts)


def _duplicates(model: SpecModel) -> list[str]:
    problems: list[str] = []
    seen_rules: dict[str, str] = {}
    seen_categories: dict[str, str] = {}
    for index, category in enumerate(model.categories):
        where = f"categories[{index}] ({category.id})"
        if category.id in seen_categories:
            problems.append(f"  {where}: duplicate category id {category.id!r} (also {seen_categories[category.id]})")
        seen_categories.setdefault(category.id, where)
    places = [("general", rule) for rule in model.general] + [
        (f"categories[{i}] ({c.id})", rule) for i, c in enumerate(model.categories)
        for rule in (*c.allowed, *c.safe_completion, *c.refused)]
    for where, rule in places:
        if rule.id in seen_rules:
            problems.append(f"  {where}: duplicate rule id {rule.id!r} (also in {seen_rules[rule.id]})")
        seen_rules.setdefault(rule.id, where)
    for index, category in enumerate(model.categories):
        for decision, rules in (("allowed", category.allowed), ("safe_completion", category.safe_completion),
                                ("refused", category.refused)):
            letter = {"allowed": "A", "safe_completion": "S", "refused": "R"}[decision]
            for rule in rules:
                if rule.id.split(".")[1][0] != letter:
                    problems.append(f"  categories[{index}] ({category.id}): rule {rule.id!r} is listed under "
                                    f"{decision}, so its id must end in .{letter}<n>")
    return problems


def _build(model: SpecModel, version: str) -> Spec:
    def rules(category: CategoryModel) -> tuple[Rule, ...]:
        return tuple(
            Rule(r.id, decision, " ".join(r.text.split()), category.id)
            for decision, group in ((Decision.COMPLY, category.allowed), (Decision.SAFE_COMPLETE, category.safe_completion),
                                    (Decision.REFUSE, category.refused))
            for r in group)

    categories = tuple(Category(
        id=c.id, title=c.title, severity=c.severity, definition=" ".join(c.definition.split()), rules=rules(c),
        examples={Decision.COMPLY: tuple(c.examples.comply), Decision.SAFE_COMPLETE: tuple(c.examples.safe_complete),
                  Decision.REFUSE: tuple(c.examples.refuse)},
        cues=tuple(cue.lower() for cue in c.cues), safe_completion_style=c.safe_completion_style,
    ) for c in model.categories)
    return Spec(
        name=model.name, version=version, principles=tuple(" ".join(p.split()) for p in model.principles),
        general=tuple(Rule(r.id, Decision.COMPLY, " ".join(r.text.split()), None) for r in model.general),
        style={Decision.REFUSE: model.style.refusal, Decision.SAFE_COMPLETE: model.style.safe_completion,
               Decision.COMPLY: model.style.comply},
        categories=categories,
    )
