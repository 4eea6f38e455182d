"""SQLModel tables. SQL is the source of truth for everything the app remembers.

Chainlit's "steps" are split by what they are: the user's and the assistant's messages are rows of
`message` (the one copy of message text, later also the evidence for recall and hypotheses); any
other step (a "Recalled" or "Deliberation" panel) is a display-only row of `step`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import Boolean, Column, DateTime, ForeignKey, Index, Integer, LargeBinary, String, Table, Text, false, text, true
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


def aware(moment: datetime) -> datetime:
    """SQLite hands datetimes back without their zone; everything we store is UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def stored_id(value: int | None) -> int:
    """The id of a stored row: one read back from the database, or one added and flushed.

    Table models declare `id: int | None` only because a new row has no id until its INSERT runs.
    """
    if value is None:
        raise ValueError("a row without an id: it was never flushed")
    return value


def table_of(model: type[SQLModel]) -> Table:
    """The table behind a table model, for Core statements and DDL."""
    return model.__table__  # type: ignore[attr-defined]  # set on every table=True class; SQLModel does not declare it


def _when() -> Column[datetime]:
    return Column(DateTime(timezone=True), nullable=False)


class Role(StrEnum):
    USER = "user"
    OPERATOR = "operator"


class Author(StrEnum):
    USER = "user"
    ASSISTANT = "assistant"


class MessageStatus(StrEnum):
    COMPLETE = "complete"
    # The reply was cut off (model failed mid-stream, timed out, or the user pressed stop).
    # The partial text is kept, so the thread reads back exactly as the user saw it, and is
    # marked so that later recall and inference can leave it out.
    INCOMPLETE = "incomplete"


class EntryStatus(StrEnum):
    ACTIVE = "active"
    SUPERSEDED = "superseded"  # replaced by newer evidence, evicted over the cap, or an addition undone
    REJECTED = "rejected"  # by the user: never proposed again


class EntrySource(StrEnum):
    INFERRED = "inferred"
    USER = "user"  # written or edited by the user: inference never changes it


class Actor(StrEnum):
    """Who made a change to a profile entry."""

    INFERENCE = "inference"
    USER = "user"
    SYSTEM = "system"


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class Decision(StrEnum):
    """What the deliberation decided about a request."""

    COMPLY = "comply"
    SAFE_COMPLETE = "safe_complete"
    REFUSE = "refuse"


class AuditDecision(StrEnum):
    """What an audit record is about: every decision but a plain answer, and a deliberation that failed."""

    REFUSE = "refuse"
    SAFE_COMPLETE = "safe_complete"
    DELIBERATION_FAILED = "deliberation_failed"


class Label(StrEnum):
    """An operator's judgement of an audited decision."""

    CORRECT = "correct"
    OVER_REFUSAL = "over_refusal"
    UNDER_REFUSAL = "under_refusal"


class OperatorActionKind(StrEnum):
    VIEW = "view"
    LABEL = "label"
    EXPORT = "export"


class ImportStatus(StrEnum):
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"  # broke halfway: everything it had added was removed
    UNDONE = "undone"  # by the person


class Vocabulary(TypeDecorator):
    """A column holding one of the enums above: stored as its value (a plain string column, so the
    schema is the same on every database), read back as the member, and refused if it is not one."""

    impl = String
    cache_ok = True

    def __init__(self, vocabulary: type[StrEnum], length: int = 16) -> None:
        super().__init__(length)
        self.vocabulary = vocabulary

    def process_bind_param(self, value: str | None, dialect: object) -> str | None:
        return None if value is None else self.vocabulary(value).value

    def process_result_value(self, value: str | None, dialect: object) -> StrEnum | None:
        return None if value is None else self.vocabulary(value)


# SQLite reuses the largest freed rowid unless a table says AUTOINCREMENT. Every integer id here can
# outlive its row somewhere (a sign-in token, a live chat session, a vector index, an open panel, an
# audit link), so none may ever name a different row later. PostgreSQL's sequences never go back.
NEVER_REUSE_IDS = {"sqlite_autoincrement": True}


class User(SQLModel, table=True):
    __table_args__ = NEVER_REUSE_IDS

    id: int | None = Field(default=None, primary_key=True)
    identifier: str = Field(sa_column=Column(String(64), unique=True, nullable=False))
    display_name: str | None = Field(default=None, max_length=64)
    password_hash: str | None = Field(default=None, max_length=256)
    role: Role = Field(default=Role.USER, sa_column=Column(Vocabulary(Role), nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_when())
    # Signed into every sign-in token; bumping it (sign-out, a role change) revokes them all at once.
    token_version: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))


class ImportBatch(SQLModel, table=True):
    """One file a person brought (an export, their writing): what it added, so that all of it can be undone."""

    __tablename__ = "import_batch"
    __table_args__ = (Index("ix_import_batch_user", "user_id", "id"), NEVER_REUSE_IDS)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(sa_column=Column(Integer, ForeignKey("user.id", ondelete="CASCADE"), nullable=False))
    source: str = Field(max_length=16)  # chatgpt, claude, text, email
    file_name: str = Field(max_length=255)
    file_digest: str = Field(max_length=64)  # sha256 of the file: the same file twice is one import
    status: ImportStatus = Field(default=ImportStatus.RUNNING,
                                 sa_column=Column(Vocabulary(ImportStatus), nullable=False))
    conversations: int = 0
    messages: int = 0
    texts: int = 0
    skipped_json: str = Field(default="{}", sa_column=Column(Text, nullable=False))  # reason -> count
    reason: str | None = Field(default=None, max_length=255)  # why it failed
    created_at: datetime = Field(default_factory=utcnow, sa_column=_when())
    finished_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    # While running: when it last stored a chunk (a batch not heard from for long lost its process).
    heard_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))


class ImportHeld(SQLModel, table=True):
    """A conversation or text that an import's file held: several files may hold one (an export and a
    later, longer one), and undoing one of them leaves what another still holds."""

    __tablename__ = "import_held"

    batch_id: int = Field(sa_column=Column(Integer, primary_key=True))
    thread_id: str = Field(sa_column=Column(String(64), ForeignKey("thread.id", ondelete="CASCADE"), primary_key=True))
    messages: int = 0  # how many messages that file's copy had (positions 0 .. messages-1)


class Thread(SQLModel, table=True):
    id: str = Field(primary_key=True, max_length=64)
    user_id: int = Field(
        sa_column=Column(Integer, ForeignKey("user.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    name: str | None = Field(default=None, max_length=255)
    # False: "don't remember this chat": its messages are never recalled or used as evidence.
    remember: bool = Field(default=True, sa_column=Column(Boolean, nullable=False, server_default=true()))
    metadata_json: str = Field(default="{}", sa_column=Column(Text, nullable=False))
    tags_json: str = Field(default="[]", sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_when())
    updated_at: datetime = Field(default_factory=utcnow, sa_column=_when())
    # Brought by an import (None: made here). Its conversations are chats like any other; its writing
    # samples are the person's texts, kept in threads of their own that the chat list does not show.
    # No foreign key: m001 creates this table from the current model, before import_batch exists; a batch
    # row goes only with its user, whose threads go with them.
    import_batch_id: int | None = Field(default=None, sa_column=Column(Integer, index=True))
    origin: str | None = Field(default=None, max_length=16)  # chatgpt, claude, writing


class Message(SQLModel, table=True):
    __table_args__ = (
        Index("ix_message_thread_created", "thread_id", "created_at"),
        # The lexical index looks up "the message before this one in its thread" on every write.
        Index("ix_message_thread_id", "thread_id", "id"),
        NEVER_REUSE_IDS,
    )

    # Integer ids: later the FAISS indexes use them as vector ids.
    id: int | None = Field(default=None, primary_key=True)
    step_id: str = Field(sa_column=Column(String(64), unique=True, nullable=False))
    thread_id: str = Field(
        sa_column=Column(String(64), ForeignKey("thread.id", ondelete="CASCADE"), nullable=False)
    )
    # Denormalised owner: every memory query is scoped by it without a join.
    user_id: int = Field(
        sa_column=Column(Integer, ForeignKey("user.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    author: Author = Field(sa_column=Column(Vocabulary(Author), nullable=False))
    content: str = Field(default="", sa_column=Column(Text, nullable=False))
    status: MessageStatus = Field(default=MessageStatus.COMPLETE, sa_column=Column(Vocabulary(MessageStatus), nullable=False))
    status_reason: str | None = Field(default=None, max_length=255)
    model: str | None = Field(default=None, max_length=128)  # who wrote a reply
    # A reply's safety decision as JSON (decision, rules, rationale, spec version): kept for every reply,
    # comply included, whether or not the user is shown the Deliberation step.
    safety_json: str | None = Field(default=None, sa_column=Column(Text))
    name: str | None = Field(default=None, max_length=64)  # the author name the UI shows
    parent_step_id: str | None = Field(default=None, max_length=64)
    # A reply written in the person's own voice ("write as me"): never an assistant's voice to tell theirs from.
    draft: bool = Field(default=False, sa_column=Column(Boolean, nullable=False, server_default=false()))
    # The import that brought it (None: written here); no foreign key, as for thread.import_batch_id.
    import_batch_id: int | None = Field(default=None, sa_column=Column(Integer, index=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_when())


class Embedding(SQLModel, table=True):
    """A message's vector. SQL is the truth; the FAISS indexes are caches rebuilt from these rows.

    The model name says which encoder made it (vectors of another model are never mixed in), and the
    content hash says which text (an edited message's old vector is recognised as stale).
    """

    __table_args__ = (Index("ix_embedding_user_model", "user_id", "model", "message_id"),)

    message_id: int = Field(
        sa_column=Column(Integer, ForeignKey("message.id", ondelete="CASCADE"), primary_key=True)
    )
    model: str = Field(sa_column=Column(String(128), primary_key=True))
    user_id: int = Field(sa_column=Column(Integer, ForeignKey("user.id", ondelete="CASCADE"), nullable=False))
    content_hash: str = Field(max_length=64)
    vector: bytes = Field(sa_column=Column(LargeBinary, nullable=False))  # float32, little-endian


class StyleCard(SQLModel, table=True):
    """The measured counts behind a user's style card (hypotheses.style.StyleStats, as JSON)."""

    __tablename__ = "style_card"

    user_id: int = Field(sa_column=Column(Integer, ForeignKey("user.id", ondelete="CASCADE"), primary_key=True))
    stats_json: str = Field(default="{}", sa_column=Column(Text, nullable=False))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=_when())


class ProfileEntry(SQLModel, table=True):
    """One hypothesis about a user: a record, not a sentence in a blob (see hypotheses/merge.py)."""

    __tablename__ = "profile_entry"
    __table_args__ = (Index("ix_profile_entry_user_status", "user_id", "status"), NEVER_REUSE_IDS)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(sa_column=Column(Integer, ForeignKey("user.id", ondelete="CASCADE"), nullable=False))
    facet: str = Field(max_length=32)
    text: str = Field(sa_column=Column(Text, nullable=False))
    confidence: float = 0.5
    support: int = 1
    evidence_json: str = Field(default="[]", sa_column=Column(Text, nullable=False))  # message ids
    status: EntryStatus = Field(default=EntryStatus.ACTIVE, sa_column=Column(Vocabulary(EntryStatus), nullable=False))
    source: EntrySource = Field(default=EntrySource.INFERRED,
                                sa_column=Column(Vocabulary(EntrySource), nullable=False))
    pinned: bool = Field(default=False, sa_column=Column(Boolean, nullable=False, server_default=false()))
    sensitive: bool = Field(default=False, sa_column=Column(Boolean, nullable=False, server_default=false()))
    superseded_by: int | None = None
    vector: bytes | None = Field(default=None, sa_column=Column(LargeBinary))
    vector_model: str | None = Field(default=None, max_length=128)
    valid_from: datetime = Field(default_factory=utcnow, sa_column=_when())
    valid_to: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    last_seen: datetime = Field(default_factory=utcnow, sa_column=_when())
    version: int = 1  # bumped on every change: an edit based on an older version is told it is stale


class ProfileHistory(SQLModel, table=True):
    """Every change to a profile entry: who, what, before, after, why."""

    __tablename__ = "profile_history"
    __table_args__ = NEVER_REUSE_IDS

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(sa_column=Column(Integer, ForeignKey("user.id", ondelete="CASCADE"), nullable=False, index=True))
    entry_id: int = Field(index=True)
    actor: Actor = Field(sa_column=Column(Vocabulary(Actor), nullable=False))
    kind: str = Field(max_length=16)  # add | support | supersede | evict | edit | pin | reject | ...
    before_json: str | None = Field(default=None, sa_column=Column(Text))
    after_json: str | None = Field(default=None, sa_column=Column(Text))
    reason: str = Field(default="", max_length=255)
    at: datetime = Field(default_factory=utcnow, sa_column=_when())
    undoes: int | None = None  # for kind "undo": the history row it reversed


# One queued or running job per user, held by the database itself: two processes that both read "no
# job" cannot both insert one (the second insert fails; `enqueue` answers None).
ONE_ACTIVE_JOB = "ux_hypothesis_job_one_active"
ACTIVE_JOB = "status IN ('queued', 'running')"  # JobStatus.QUEUED, JobStatus.RUNNING


class HypothesisJob(SQLModel, table=True):
    """One run of hypothesis inference for a user: claimed once, so two processes never both run it."""

    __tablename__ = "hypothesis_job"
    __table_args__ = (Index("ix_hypothesis_job_user_status", "user_id", "status"),
                      Index(ONE_ACTIVE_JOB, "user_id", unique=True, sqlite_where=text(ACTIVE_JOB),
                            postgresql_where=text(ACTIVE_JOB)),
                      NEVER_REUSE_IDS)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(sa_column=Column(Integer, ForeignKey("user.id", ondelete="CASCADE"), nullable=False))
    status: JobStatus = Field(default=JobStatus.QUEUED, sa_column=Column(Vocabulary(JobStatus), nullable=False))
    trigger: str = Field(default="messages", max_length=16)  # messages | chat_end | command | import
    reason: str | None = Field(default=None, max_length=500)  # why it failed
    claimed_by: str | None = Field(default=None, max_length=64)  # the claim's token: worker and a nonce
    # Until when the job holds its user's one slot. A queued or running job past it is abandoned (its
    # process died): a claim may take it over, and the user's next trigger fails it and queues anew.
    lease_until: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    up_to_message_id: int = 0  # evidence considered: the user's messages up to this id
    samples: int = 0
    changes: int = 0
    refused: int = 0
    model: str | None = Field(default=None, max_length=128)
    calls: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    ms: float = 0.0
    created_at: datetime = Field(default_factory=utcnow, sa_column=_when())
    finished_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))


class Step(SQLModel, table=True):
    """A display-only step (tool, retrieval, ...) shown in the thread; never evidence."""

    id: str = Field(primary_key=True, max_length=64)
    thread_id: str = Field(
        sa_column=Column(String(64), ForeignKey("thread.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    type: str = Field(max_length=32)
    name: str = Field(default="", max_length=255)
    parent_step_id: str | None = Field(default=None, max_length=64)
    input: str = Field(default="", sa_column=Column(Text, nullable=False))
    output: str = Field(default="", sa_column=Column(Text, nullable=False))
    extra_json: str = Field(default="{}", sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_when())


class Feedback(SQLModel, table=True):
    """A thumbs up (1) or down (0) on one message, with an optional comment."""

    id: str = Field(primary_key=True, max_length=64)
    message_id: int = Field(
        sa_column=Column(Integer, ForeignKey("message.id", ondelete="CASCADE"), nullable=False, unique=True)
    )
    value: int = Field(ge=0, le=1)
    comment: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_when())


class Element(SQLModel, table=True):
    """A Chainlit element attached to a thread; custom elements keep their props as JSON."""

    id: str = Field(primary_key=True, max_length=64)
    thread_id: str = Field(
        sa_column=Column(String(64), ForeignKey("thread.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    for_step_id: str | None = Field(default=None, max_length=64)
    type: str = Field(max_length=32)
    name: str = Field(default="", max_length=255)
    display: str = Field(default="inline", max_length=16)
    mime: str | None = Field(default=None, max_length=128)
    url: str | None = Field(default=None, sa_column=Column(Text))
    props_json: str = Field(default="{}", sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_when())


class AuditRecord(SQLModel, table=True):
    """One refusal, safe completion or failed deliberation, for operators.

    The user appears only as a pseudonym (a keyed hash of their id), so the audit survives the user's
    erasure as counts. Message text is not copied here: it is read from `message` by the ids, and goes
    when the user's messages go. The label fields are empty until an operator reviews the record.
    """

    __tablename__ = "audit_record"
    __table_args__ = (Index("ix_audit_record_decision_created", "decision", "created_at"), NEVER_REUSE_IDS)

    id: int | None = Field(default=None, primary_key=True)
    created_at: datetime = Field(default_factory=utcnow, sa_column=_when())
    pseudonym: str = Field(max_length=32, index=True)
    thread_id: str = Field(max_length=64)
    message_id: str = Field(max_length=64)  # the user's message (step id)
    reply_id: str = Field(max_length=64)  # the reply written under the verdict (step id)
    decision: AuditDecision = Field(sa_column=Column(Vocabulary(AuditDecision, 24), nullable=False))
    rule_ids_json: str = Field(default="[]", sa_column=Column(Text, nullable=False))
    rationale: str = Field(default="", sa_column=Column(Text, nullable=False))
    failure: str | None = Field(default=None, max_length=300)  # why the deliberation failed
    spec_version: str = Field(max_length=32)
    model: str | None = Field(default=None, max_length=128)
    latency_ms: float = 0.0
    routed_json: str = Field(default="[]", sa_column=Column(Text, nullable=False))
    label: Label | None = Field(default=None, sa_column=Column(Vocabulary(Label)))
    note: str | None = Field(default=None, sa_column=Column(Text))
    labelled_by: str | None = Field(default=None, max_length=64)
    labelled_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))


class OperatorAction(SQLModel, table=True):
    """What operators did with the audit: viewed a record's message text, labelled, exported."""

    __tablename__ = "operator_action"
    __table_args__ = NEVER_REUSE_IDS

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, sa_column=_when())
    operator: str = Field(max_length=64)
    action: OperatorActionKind = Field(sa_column=Column(Vocabulary(OperatorActionKind), nullable=False))
    record_id: int | None = None
    detail: str | None = Field(default=None, sa_column=Column(Text))  # the label, or the export's filter


# The app_key row whose insertion makes an account the first operator: a primary key is inserted once
# however many sign-ups race for it (a count of users is not: 20 racing sign-ups made 6 operators).
FIRST_OPERATOR_CLAIM = "first_operator"


class AppKey(SQLModel, table=True):
    """Secrets the app generates once and every process shares (e.g. the audit pseudonym key)."""

    __tablename__ = "app_key"

    name: str = Field(primary_key=True, max_length=64)
    value: str = Field(max_length=128)


class ForgottenName(SQLModel, table=True):
    """A username erased by "forget me", held back until the erased account's sign-in tokens expire:
    only the same person (the same password) may register it again meanwhile, so a token issued to
    the erased account can never reach somebody else's new account. Keyed hash and scrypt hash only."""

    __tablename__ = "forgotten_name"

    name_hash: str = Field(primary_key=True, max_length=64)
    password_hash: str | None = Field(default=None, max_length=256)
    until: datetime = Field(sa_column=_when())


class ThrottleEvent(SQLModel, table=True):
    """One counted attempt (a failed sign-in, a sign-up) for the limits that hold across processes.

    `key` is a keyed hash of what is limited (an account name, a client address), never the value.
    """

    __tablename__ = "throttle_event"
    __table_args__ = (Index("ix_throttle_event_bucket_key_at", "bucket", "key", "at"), NEVER_REUSE_IDS)

    id: int | None = Field(default=None, primary_key=True)
    bucket: str = Field(max_length=24)
    key: str = Field(max_length=64)
    at: datetime = Field(default_factory=utcnow, sa_column=_when())


class UsageRecord(SQLModel, table=True):
    """One request to a model server: what it used, for whom, how long it took and how it ended.

    The user appears only as a pseudonym (the audit's keyed hash of their id), so the operators' cost
    figures survive the user's erasure as counts, as the audit does; nothing of the request is kept.
    """

    __tablename__ = "usage_record"
    __table_args__ = (Index("ix_usage_record_pseudonym_at", "pseudonym", "at"), NEVER_REUSE_IDS)

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, sa_column=_when())
    pseudonym: str | None = Field(default=None, max_length=64)  # None: a call of no one's (doctor, benchmarks)
    purpose: str = Field(max_length=16)  # chat | safety | hypotheses
    model: str = Field(max_length=128)
    tokens_in: int = 0
    tokens_out: int = 0  # reasoning tokens included
    reasoning_tokens: int = 0
    estimated: bool = False  # the server reported no usage: our counts
    ms: float = 0.0
    outcome: str = Field(default="ok", max_length=32)  # ok, or the error the call failed with


class AppliedMigration(SQLModel, table=True):
    __tablename__ = "_migrations"

    name: str = Field(primary_key=True, max_length=128)
    applied_at: datetime = Field(default_factory=utcnow, sa_column=_when())
