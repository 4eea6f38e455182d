"""Every JSON body our routes accept, as a pydantic model, with what a person is told when theirs is wrong.

One policy for all of them (`Body`):

- **Strict types**: a number is not text, `1` is not `true` and `true` is not `1`, `1.0` is not a
  version. JSON says what it means; guessing would turn a client's bug into a wrong change.
- **Unknown fields are ignored**, not refused: a client a version ahead, or one that sends more than a
  route reads, is still understood. Nothing unknown goes further than the model: the code behind a
  route sees only the model's fields, so an extra field can neither be stored nor change anything.
- An optional field that is absent or `null` was not sent.
- A wrong body answers 400 with one sentence in `detail`: the field's sentence from `problems` (the
  first wrong field, in the model's order), else `problem`. Never pydantic's list of errors: it names
  types and echoes input, and it is written for programmers.

What a value may *be* (an entry's wording, a label's name, a note's length) is the domain's to say
(`hypotheses.edits`, `assistant.safety.review`), so the CLI and the HTML forms get the same answers;
a model checks the shape. Size is checked before any of this (`inputs.read_body`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from assistant.safety.audit import LABELS
from hypotheses.parse import Facet


class Body(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    problem: ClassVar[str] = "The request body does not have the fields this route takes."
    problems: ClassVar[Mapping[str, str]] = {}

    @classmethod
    def problem_with(cls, error: ValidationError) -> str:
        """The sentence for the first wrong field that has one, else the model's own."""
        for detail in error.errors():
            field = detail["loc"][0] if detail["loc"] else None
            if isinstance(field, str) and field in cls.problems:
                return cls.problems[field]
        return cls.problem


class NewEntry(Body):
    """`POST /api/me/profile/entries`: something the user says about themselves."""

    facet: str
    text: str

    problems = {"facet": f"The kind of entry must be one of: {', '.join(f.value for f in Facet)}.",
                "text": "An entry needs some text."}


class EntryChange(Body):
    """`PATCH /api/me/profile/entries/{id}`: one change (text, pinned or status) to the version the user saw."""

    version: int
    text: str | None = None
    pinned: bool | None = None
    status: str | None = None

    problems = {"version": "Say which version of the entry you changed (version).",
                "text": "An entry needs some text.",
                "pinned": "Send pinned: true or false.",
                "status": "An entry can be rejected or restored (active)."}

    def changes(self) -> list[str]:
        return [name for name in ("text", "pinned", "status") if getattr(self, name) is not None]


class RememberChoice(Body):
    """`PUT /api/me/threads/{id}/remember`."""

    remember: bool

    problem = "Send remember: true or false."
    problems = {"remember": problem}


class ForgetConfirmation(Body):
    """`POST /api/me/forget`: the username, typed again."""

    confirm: str

    problem = "To erase everything, type your username to confirm."
    problems = {"confirm": problem}


class AuditLabel(Body):
    """`POST /api/console/records/{id}/label`: an operator's label and an optional note."""

    label: str
    note: str | None = None

    problems = {"label": f"A label is one of {', '.join(LABELS)}.", "note": "A note is text (or left out)."}


class StickySession(Body):
    """`POST /set-session-cookie`: the chat session's id, for sticky sessions behind a proxy."""

    session_id: str

    problem = "Send session_id: the chat session's id."
    problems = {"session_id": problem}
