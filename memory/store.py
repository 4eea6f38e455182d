"""Users, threads and messages. Every function takes the session keyword-only; the caller commits.

Ownership is enforced here, not only in the UI: a thread belongs to exactly one user, and any
write that names a thread owned by someone else raises `NotOwner`.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, or_
from sqlalchemy import update as sql_update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, delete, select

from memory.models import (
    FIRST_OPERATOR_CLAIM,
    AppKey,
    Author,
    Element,
    Embedding,
    Feedback,
    HypothesisJob,
    ImportBatch,
    ImportHeld,
    Message,
    MessageStatus,
    ProfileEntry,
    ProfileHistory,
    Role,
    Step,
    StyleCard,
    Thread,
    User,
    aware,
    stored_id,
    utcnow,
)
from memory.names import normal_username
from memory.passwords import hash_password
from memory.text import clean_text, is_small_talk, short_title


class StoreError(Exception):
    """Base class for refusals of the store; the message is safe to show the user."""


class InvalidInput(StoreError):
    pass


class NotOwner(StoreError):
    """The object exists but belongs to another user. Callers answer as if it did not exist."""


USERNAME_RULE = "3 to 32 characters: letters, digits, '.', '_', '-' or '@', starting with a letter or digit"
_USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{2,31}")
MIN_PASSWORD = 8
MAX_PASSWORD = 1024
MAX_KEY = 64  # thread, step, message and feedback ids: String(64) columns
# Integer ids (users, messages, profile entries, audit records) are INTEGER columns: 32-bit in
# PostgreSQL, 64-bit in SQLite, so the narrower range is the one that holds for both. A bigger
# number fails in the driver (an overflow error), not as "not found".
MAX_ROW_ID = 2**31 - 1
# A thread search longer than this is a pasted passage. Its first 500 characters pick out the same
# threads, so it is clipped rather than refused (an error would empty the user's list for a reason
# they cannot see); 500 characters, escaped, stay far inside SQLite's 50,000-byte LIKE pattern limit.
MAX_SEARCH = 500


def possible_row_id(value: int) -> bool:
    """Whether an integer id could name a row; a lookup by one that cannot is "not found"."""
    return 1 <= value <= MAX_ROW_ID


def possible_key(key: object) -> bool:
    """Whether a client-supplied string id could name a row. A lookup by one that cannot answers
    "not found" without asking the database: PostgreSQL refuses NUL in text with an error."""
    return isinstance(key, str) and 0 < len(key) <= MAX_KEY and "\x00" not in key


# --- users ------------------------------------------------------------------------------------

def check_username(username: str) -> str:
    """The username in its normal form (memory.names), or InvalidInput saying what a valid one looks like."""
    typed = unicodedata.normalize("NFKC", username).strip()
    if not _USERNAME.fullmatch(typed):
        raise InvalidInput(f"A username is {USERNAME_RULE}.")
    return normal_username(typed)


def check_password(password: str) -> None:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise InvalidInput(f"A password needs {MIN_PASSWORD} to {MAX_PASSWORD} characters.")


def create_user(session: Session, *, identifier: str, password: str | None = None, password_hash: str | None = None,
                role: Role | None = None) -> User:
    """A new account, from a password or the hash of one made beforehand (so that no transaction waits on
    hashing). Without an explicit role the first account ever created becomes the operator."""
    name = check_username(identifier)
    if password_hash is None:
        check_password(password or "")
        password_hash = hash_password(password or "")
    if get_user(session, identifier=name):
        raise InvalidInput(f"The username {name!r} is taken.")
    first = _claim_first_account(session)
    user = User(identifier=name, display_name=unicodedata.normalize("NFKC", identifier).strip(),
                password_hash=password_hash, role=role or (Role.OPERATOR if first else Role.USER))
    session.add(user)
    session.flush()
    return user


def _claim_first_account(session: Session) -> bool:
    """True for exactly one account ever, however many sign-ups race (see FIRST_OPERATOR_CLAIM)."""
    if session.get(AppKey, FIRST_OPERATOR_CLAIM) is not None:
        return False
    try:
        with session.begin_nested():
            session.add(AppKey(name=FIRST_OPERATOR_CLAIM, value=utcnow().isoformat()))
    except IntegrityError:
        return False
    return True


def get_user(session: Session, *, identifier: str) -> User | None:
    """The account with this name: spelled exactly as stored, else in the name's normal form."""
    exact = session.exec(select(User).where(User.identifier == identifier)).first()
    if exact is not None:
        return exact
    normal = normal_username(identifier)
    return session.exec(select(User).where(User.identifier == normal)).first() if normal != identifier else None


def get_user_by_id(session: Session, *, user_id: int) -> User | None:
    return session.get(User, user_id)


def revoke_tokens(session: Session, *, user: User) -> None:
    """Every sign-in token issued to the account stops working (they carry the old version)."""
    user.token_version += 1
    session.add(user)


def count_users(session: Session) -> int:
    return session.exec(select(func.count()).select_from(User)).one()


def list_users(session: Session) -> Sequence[User]:
    return session.exec(select(User).order_by(col(User.id))).all()


def delete_user(session: Session, *, user: User) -> None:
    """Everything about the user: threads with their messages, vectors, steps, feedback; then the account.

    The caller also drops the user's loaded index (memory.index.UserIndexes.drop).
    """
    for thread in session.exec(select(Thread).where(Thread.user_id == user.id)).all():
        delete_thread(session, thread=thread)
    session.exec(delete(Embedding).where(col(Embedding.user_id) == user.id))
    session.exec(delete(StyleCard).where(col(StyleCard.user_id) == user.id))
    session.exec(delete(ProfileHistory).where(col(ProfileHistory.user_id) == user.id))
    session.exec(delete(ProfileEntry).where(col(ProfileEntry.user_id) == user.id))
    session.exec(delete(HypothesisJob).where(col(HypothesisJob.user_id) == user.id))
    session.exec(delete(ImportBatch).where(col(ImportBatch.user_id) == user.id))  # file names of their imports
    session.delete(user)


def set_role(session: Session, *, user: User, role: Role) -> None:
    """A new role, and the tokens that carry the old one revoked: the next sign-in carries the new one."""
    user.role = role
    revoke_tokens(session, user=user)


# --- threads ----------------------------------------------------------------------------------

def upsert_thread(
    session: Session,
    *,
    thread_id: str,
    user_id: int | None,
    name: str | None = None,
    metadata: dict | None = None,
    tags: list[str] | None = None,
) -> Thread | None:
    """Create the thread for `user_id`, or update the fields given. None if unknown and ownerless."""
    thread = session.get(Thread, thread_id)
    if thread is None:
        if user_id is None:
            return None
        thread = Thread(id=thread_id, user_id=user_id)
    elif user_id is not None and thread.user_id != user_id:
        raise NotOwner("thread belongs to another user")
    if name is not None:
        thread.name = clean_text(name).strip()[:255] or None
    if metadata is not None:
        thread.metadata_json = json.dumps(metadata, default=str)
    if tags is not None:
        thread.tags_json = json.dumps(list(tags))
    thread.updated_at = utcnow()
    session.add(thread)
    session.flush()
    return thread


def title_from_message(session: Session, *, thread: Thread, text: str) -> None:
    """Title the thread after this message when it has no title yet, or only a greeting's ("hi").

    A thread's first message may be a command (never a title) or small talk; the first message that
    names a subject titles it. A name the user chose is kept: only small talk is ever replaced.
    """
    if thread.name and not is_small_talk(thread.name):
        return
    if thread.name and is_small_talk(text):
        return
    thread.name = short_title(text) or thread.name
    session.add(thread)


def get_thread(session: Session, *, thread_id: str) -> Thread | None:
    return session.get(Thread, thread_id) if possible_key(thread_id) else None


def set_remember(session: Session, *, thread_id: str, user_id: int, remember: bool) -> Thread | None:
    """Switch "don't remember this chat" on or off; None when the thread is not this user's."""
    thread = owned_thread(session, thread_id=thread_id, user_id=user_id)
    if thread is not None:
        thread.remember = remember
        session.add(thread)
    return thread


def held_thread(session: Session, *, thread_id: str, user_id: int) -> Thread | None:
    """This user's thread with its row locked until the commit (PostgreSQL's FOR UPDATE; SQLite's write
    transaction locks the whole database anyway), without rewriting it. A save that adds to a thread
    locks its row first, as a turn's writes do, so two never lock in opposite orders and deadlock."""
    thread = session.get(Thread, thread_id, with_for_update=True) if possible_key(thread_id) else None
    return thread if thread and thread.user_id == user_id else None


def owned_thread(session: Session, *, thread_id: str, user_id: int) -> Thread | None:
    thread = get_thread(session, thread_id=thread_id)
    return thread if thread and thread.user_id == user_id else None


def list_threads(
    session: Session,
    *,
    user_id: int,
    first: int,
    cursor: str | None = None,
    search: str | None = None,
    feedback: int | None = None,
) -> tuple[list[tuple[Thread, datetime]], bool]:
    """One page of the user's threads with the time of each one's newest message, newest first, and
    whether more follow.

    Activity is the newest message, not the thread row's `updated_at`: opening, renaming or showing a
    panel in an old conversation touches the row, but only a message continues the conversation.
    The cursor is the id of the last thread of the previous page. The search is cleaned like stored
    text (stored text holds no control characters, so a search with them would find nothing) and
    clipped to MAX_SEARCH characters.
    """
    # Only conversations: a thread that never had a message (opened and left) has no activity row.
    activity = (
        select(col(Message.thread_id).label("thread_id"), func.max(Message.created_at).label("last_at"))
        .where(Message.user_id == user_id)
        .group_by(col(Message.thread_id))
        .subquery()
    )
    last_at = activity.c.last_at
    # Imported writing is the person's texts, not a conversation to resume: the Import section lists it.
    query = (select(Thread, last_at).join(activity, activity.c.thread_id == Thread.id)
             .where(Thread.user_id == user_id, or_(col(Thread.origin).is_(None), col(Thread.origin) != "writing")))
    search = clean_text(search or "").strip()[:MAX_SEARCH]
    if search:
        pattern = f"%{_escape_like(search)}%"
        in_messages = select(Message.thread_id).where(
            Message.user_id == user_id, col(Message.content).ilike(pattern, escape="\\")
        )
        query = query.where(or_(col(Thread.name).ilike(pattern, escape="\\"), col(Thread.id).in_(in_messages)))
    if feedback is not None:
        rated = (
            select(Message.thread_id)
            .join(Feedback, col(Feedback.message_id) == Message.id)
            .where(Message.user_id == user_id, Feedback.value == feedback)
        )
        query = query.where(col(Thread.id).in_(rated))
    if cursor and possible_key(cursor):
        after = session.exec(select(func.max(Message.created_at)).where(
            Message.thread_id == cursor, Message.user_id == user_id)).first()
        if after is not None:
            query = query.where(or_(last_at < after, (last_at == after) & (col(Thread.id) < cursor)))
    query = query.order_by(last_at.desc(), col(Thread.id).desc()).limit(first + 1)
    rows = [(thread, aware(when)) for thread, when in session.exec(query).all()]
    return rows[:first], len(rows) > first


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def delete_thread(session: Session, *, thread: Thread) -> None:
    # Explicit deletes, children first: SQLite only cascades when foreign keys are on, and we do
    # not want correctness to hang on a pragma.
    message_ids = select(Message.id).where(Message.thread_id == thread.id)
    session.exec(delete(Feedback).where(col(Feedback.message_id).in_(message_ids)))
    session.exec(delete(Embedding).where(col(Embedding.message_id).in_(message_ids)))
    for table in (Message, Step, Element, ImportHeld):
        session.exec(delete(table).where(col(table.thread_id) == thread.id))
    session.delete(thread)


# --- messages ---------------------------------------------------------------------------------

def save_message(
    session: Session,
    *,
    step_id: str,
    thread_id: str,
    user_id: int,
    author: Author,
    content: str,
    status: MessageStatus | None = None,
    status_reason: str | None = None,
    model: str | None = None,
    name: str | None = None,
    parent_step_id: str | None = None,
    created_at: datetime | None = None,
    safety_json: str | None = None,
    draft: bool | None = None,
) -> Message:
    """Insert the message or update its text, and each other field given. Idempotent on step_id."""
    thread = session.get(Thread, thread_id)
    if thread is None or thread.user_id != user_id:
        raise NotOwner("thread belongs to another user") if thread else InvalidInput("unknown thread")
    message = session.exec(select(Message).where(Message.step_id == step_id)).first()
    if message is None:
        message = Message(
            step_id=step_id, thread_id=thread_id, user_id=user_id, author=author, created_at=created_at or utcnow()
        )
    elif message.user_id != user_id or message.thread_id != thread_id:
        raise NotOwner("message belongs to another user or thread")
    elif message.author != author:
        # A step id is chosen by the client: reusing a reply's id as a "user message" would rewrite the
        # reply (a refusal included) in the user's words while it still reads as the assistant's.
        raise InvalidInput("that message id belongs to a message of the other author")
    message.content = clean_text(content)
    if status is not None:
        message.status, message.status_reason = status, status_reason
    for field, value in (("model", model), ("name", name), ("parent_step_id", parent_step_id),
                         ("safety_json", safety_json), ("draft", draft)):
        if value is not None:
            setattr(message, field, value)
    thread.updated_at = utcnow()
    session.add_all([message, thread])
    session.flush()
    return message


def get_message(session: Session, *, step_id: str) -> Message | None:
    if not possible_key(step_id):
        return None
    return session.exec(select(Message).where(Message.step_id == step_id)).first()


def thread_messages(session: Session, *, thread_id: str) -> Sequence[Message]:
    return session.exec(
        select(Message).where(Message.thread_id == thread_id).order_by(col(Message.created_at), col(Message.id))
    ).all()


def recent_window(session: Session, *, thread_id: str, limit: int, before_step_id: str | None = None) -> list[Message]:
    """The last `limit` messages of the thread, oldest first, optionally ending before a message."""
    query = select(Message).where(Message.thread_id == thread_id)
    if before_step_id:
        anchor = get_message(session, step_id=before_step_id)
        if anchor is not None:
            query = query.where(col(Message.id) < anchor.id)
    rows = session.exec(query.order_by(col(Message.id).desc()).limit(limit)).all()
    return list(reversed(rows))


def delete_message(session: Session, *, message: Message) -> None:
    session.exec(delete(Feedback).where(col(Feedback.message_id) == message.id))
    session.exec(delete(Embedding).where(col(Embedding.message_id) == message.id))
    following = session.exec(
        select(Message).where(Message.thread_id == message.thread_id, col(Message.id) > message.id).order_by(col(Message.id))
    ).first()
    session.delete(message)
    session.flush()
    if following is not None:
        # The next message's lexical entry quotes the deleted one as context (memory/db.py): rewrite it.
        session.execute(sql_update(Message).where(col(Message.id) == following.id).values(content=following.content))


def delete_messages(session: Session, *, thread_id: str, message_ids: list[int]) -> None:
    """Many messages of one thread at once (an import undone): a few statements, not several each."""
    if not message_ids:
        return
    for chunk in (message_ids[i:i + 500] for i in range(0, len(message_ids), 500)):
        session.exec(delete(Feedback).where(col(Feedback.message_id).in_(chunk)))
        session.exec(delete(Embedding).where(col(Embedding.message_id).in_(chunk)))
        session.exec(delete(Message).where(col(Message.thread_id) == thread_id, col(Message.id).in_(chunk)))
    # The lexical entry of a message quotes the one before it (memory/db.py): those that stay after the
    # first deleted one are written again, so none quotes a message that is gone.
    session.execute(sql_update(Message).where(col(Message.thread_id) == thread_id, col(Message.id) > min(message_ids))
                    .values(content=Message.content))
    session.expire_all()


# --- display steps, feedback and elements ----------------------------------------------------

def save_step(session: Session, *, step: Step, replace: bool = True) -> Step:
    """Insert the display step, or update it in place when `replace` (a creation arriving after the
    step's update leaves it as updated). A step id is the client's, so only within its own thread."""
    existing = session.get(Step, step.id)
    if existing is not None and existing.thread_id != step.thread_id:
        raise NotOwner("step belongs to another thread")
    if existing is not None and not replace:
        return existing
    if existing is not None:
        for field in ("name", "input", "output", "extra_json", "parent_step_id"):
            setattr(existing, field, getattr(step, field))
        step = existing
    session.add(step)
    session.flush()
    return step


def thread_steps(session: Session, *, thread_id: str) -> Sequence[Step]:
    return session.exec(select(Step).where(Step.thread_id == thread_id).order_by(col(Step.created_at))).all()


def thread_feedback(session: Session, *, thread_id: str) -> dict[int, Feedback]:
    rows = session.exec(
        select(Feedback).join(Message, col(Message.id) == Feedback.message_id).where(Message.thread_id == thread_id)
    ).all()
    return {row.message_id: row for row in rows}


def save_feedback(session: Session, *, feedback_id: str, message: Message, value: int, comment: str | None) -> Feedback:
    """One feedback per message: a new vote replaces the previous one."""
    row = session.exec(select(Feedback).where(Feedback.message_id == message.id)).first()
    if row is None:
        row = Feedback(id=feedback_id, message_id=stored_id(message.id), value=value)
    row.value, row.comment = value, clean_text(comment) if comment else None
    session.add(row)
    session.flush()
    return row


def feedback_owner(session: Session, *, feedback_id: str) -> int | None:
    if not possible_key(feedback_id):
        return None
    return session.exec(
        select(Message.user_id).join(Feedback, col(Feedback.message_id) == Message.id).where(Feedback.id == feedback_id)
    ).first()


def delete_feedback(session: Session, *, feedback_id: str) -> bool:
    row = session.get(Feedback, feedback_id) if possible_key(feedback_id) else None
    if row is None:
        return False
    session.delete(row)
    return True


def save_element(session: Session, *, element: Element) -> Element:
    """Insert or replace by id, within one thread: an element of another thread (and so perhaps of
    another user) is never replaced, since Chainlit takes element ids from the client."""
    existing = session.get(Element, element.id)
    if existing is not None and existing.thread_id != element.thread_id:
        raise NotOwner("element belongs to another thread")
    if existing is not None:
        session.delete(existing)
        session.flush()
    session.add(element)
    session.flush()
    return element


def thread_elements(session: Session, *, thread_id: str) -> Sequence[Element]:
    return session.exec(select(Element).where(Element.thread_id == thread_id).order_by(col(Element.created_at))).all()


def delete_element(session: Session, *, element_id: str, user_id: int) -> None:
    """Delete the element if it is in one of the user's threads; anyone else's is left alone."""
    row = session.get(Element, element_id) if possible_key(element_id) else None
    if row is not None and owned_thread(session, thread_id=row.thread_id, user_id=user_id):
        session.delete(row)
