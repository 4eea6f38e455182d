"""A person's history from elsewhere, read: chat exports (ChatGPT, Claude) and their own writing (plain
text, Markdown, e-mail). Pure reading: what a file holds, as conversations and texts, and what was
skipped and why; storing it is memory.importing's business.

Exports can be large (a heavy ChatGPT user's conversations.json passes 1 GB), so JSON is parsed as a
stream (ijson): one conversation is in memory at a time. A ZIP is never extracted: its conversations.json
is read through the archive, and refused when its stated size or compression ratio is not believable.

Formats, from their public descriptions (no real export is in this repository; tests/fixtures/imports
holds small files written in these shapes):
- ChatGPT's conversations.json is a list of conversations, each a tree of message nodes (`mapping`, by
  id, with `parent` and `children`); `current_node` is the leaf of the branch the person last saw.
  Regenerated answers and edited questions are other branches: only the current one is read.
- Claude's conversations.json is a list of conversations with `chat_messages` in order, each with a
  `sender` ("human" or "assistant") and `text` (or `content` blocks of type "text").
- An e-mail (.eml, or each message of an mbox of sent mail) gives only the sender's own words: quoted
  replies, the signature and forwarded parts are cut.
"""

from __future__ import annotations

import email
import email.parser
import email.policy
import hashlib
import io
import re
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from pathlib import Path, PurePath
from typing import IO, Literal

import ijson

Role = Literal["user", "assistant"]
MAX_RATIO = 100  # a JSON export compresses about 5-10 to 1; a ZIP bomb by thousands
MAX_ENTRIES = 200_000  # an export's files (images, audio) number in the thousands
MAX_TEXT_CHARS = 200_000  # one message or one text; longer is cut (and counted)


class UnreadableImport(Exception):
    """A file this is not, or not whole; the message says what was expected."""


@dataclass(frozen=True)
class Said:
    role: Role
    text: str
    at: datetime | None = None


@dataclass(frozen=True)
class Conversation:
    source: Literal["chatgpt", "claude"]
    key: str  # the export's own id: importing it again adds nothing
    title: str
    created_at: datetime | None
    messages: tuple[Said, ...]


@dataclass(frozen=True)
class Writing:
    source: Literal["text", "email"]
    key: str  # a digest of the text: the same text twice is one
    title: str
    at: datetime | None
    text: str


@dataclass
class Skipped:
    """What was left out, by reason (shown to the person after an import)."""

    reasons: Counter[str] = field(default_factory=Counter)

    def add(self, reason: str, count: int = 1) -> None:
        self.reasons[reason] += count


# --- files -------------------------------------------------------------------------------------

def kind_of(path: Path) -> str:
    """"chats" (a ZIP or conversations.json), "email" (.eml, .mbox) or "text" (.txt, .md)."""
    suffix = path.suffix.lower()
    if suffix in {".zip", ".json"}:
        return "chats"
    if suffix in {".eml", ".mbox"} or path.name.lower() in {"sent", "sent mail", "mbox"}:
        return "email"
    if suffix in {".txt", ".md", ".markdown", ".text"}:
        return "text"
    raise UnreadableImport(f"{path.name}: expected a ChatGPT or Claude export (.zip or conversations.json), "
                           "text of your own (.txt, .md) or e-mail you sent (.eml, .mbox)")


def conversations_file(path: Path, *, max_bytes: int) -> IO[bytes]:
    """The conversations.json of an export: the file itself, or read through its ZIP (never extracted)."""
    if path.suffix.lower() != ".zip":
        if path.stat().st_size > max_bytes:
            raise UnreadableImport(f"{path.name} is {_size(path.stat().st_size)}; the limit is {_size(max_bytes)}")
        return path.open("rb")
    if path.stat().st_size > max_bytes:
        raise UnreadableImport(f"{path.name} is {_size(path.stat().st_size)}; the limit is {_size(max_bytes)}")
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise UnreadableImport(f"{path.name} is not a ZIP archive (expected the export ChatGPT or Claude "
                               "e-mailed you)") from None
    found = [i for i in archive.infolist() if PurePath(i.filename).name == "conversations.json"
             and len(PurePath(i.filename).parts) <= 2 and not i.is_dir()]
    if not found:
        archive.close()
        raise UnreadableImport(f"{path.name} holds no conversations.json (expected a ChatGPT or Claude export)")
    if len(archive.infolist()) > MAX_ENTRIES:
        archive.close()
        raise UnreadableImport(f"{path.name} holds over {MAX_ENTRIES:,} files; no export does")
    entry = min(found, key=lambda i: len(i.filename))  # the top-level one, if the archive repeats it
    if entry.file_size > max_bytes:
        archive.close()
        raise UnreadableImport(f"{path.name}: its conversations.json is {_size(entry.file_size)}; the limit "
                               f"is {_size(max_bytes)}")
    if entry.file_size / max(entry.compress_size, 1) > MAX_RATIO:
        archive.close()
        raise UnreadableImport(f"{path.name}: its conversations.json expands {entry.file_size // max(entry.compress_size, 1)}"
                               " times; no export does that (refused as a ZIP bomb)")
    # ZipExtFile stops at the stated size and checks the CRC at the end (a forged header raises BadZipFile,
    # which the reader turns into UnreadableImport).
    return _ArchiveMember(archive, entry)


class _ArchiveMember(io.BufferedReader):
    """An archive's member that closes its archive with it."""

    def __init__(self, archive: zipfile.ZipFile, entry: zipfile.ZipInfo) -> None:
        super().__init__(archive.open(entry), buffer_size=1 << 16)  # type: ignore[arg-type]
        self._archive = archive

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._archive.close()


# --- chat exports ------------------------------------------------------------------------------

def read_conversations(stream: IO[bytes], skipped: Skipped) -> Iterator[Conversation]:
    """Each conversation of a ChatGPT or Claude conversations.json, whichever it is, one at a time."""
    _expect_a_list(stream)
    items = _conversation_objects(stream)
    try:
        for position, raw in enumerate(items):
            if not isinstance(raw, dict):
                raise UnreadableImport(f"conversation {position + 1} is not an object: expected the list of "
                                       "conversations of a ChatGPT or Claude export")
            if "mapping" in raw:
                conversation = _chatgpt(raw, skipped)
            elif "chat_messages" in raw:
                conversation = _claude(raw, skipped)
            else:
                raise UnreadableImport(f"conversation {position + 1} has neither `mapping` (ChatGPT) nor "
                                       "`chat_messages` (Claude): expected a ChatGPT or Claude export")
            if conversation is None:
                continue
            yield conversation
    except ijson.JSONError as exc:
        raise UnreadableImport(f"the export's JSON is broken ({_short(exc)}): expected a whole conversations.json "
                               "from a ChatGPT or Claude export") from None
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise UnreadableImport(f"the export's archive is damaged ({_short(exc)}): download it again") from None


MAX_DEPTH = 64  # no export nests deeper than about 12; ijson's own item builder slows quadratically with depth


def _conversation_objects(stream: IO[bytes]) -> Iterator[object]:
    """The elements of the top-level list, each built from ijson's basic events (which keep no path, unlike
    `ijson.items`, whose per-level prefixes made 40 KB of brackets cost 958 MB), refusing deep nesting."""
    stack: list[list | dict] = []
    keys: list[str | None] = []
    for event, value in ijson.basic_parse(stream, use_float=True):
        if event in ("start_map", "start_array"):
            if len(stack) >= MAX_DEPTH:
                raise UnreadableImport(f"the export nests more than {MAX_DEPTH} levels deep; no ChatGPT or Claude "
                                       "export does")
            stack.append({} if event == "start_map" else [])
            keys.append(None)
            continue
        if event == "map_key":
            keys[-1] = value
            continue
        if event in ("end_map", "end_array"):
            done = stack.pop()
            keys.pop()
            if not stack:
                return  # the end of the top-level list
        else:
            done = value
        if len(stack) == 1:
            yield done  # an element of the top-level list
            continue
        parent = stack[-1]
        if isinstance(parent, list):
            parent.append(done)
        else:
            parent[keys[-1] or ""] = done


def _expect_a_list(stream: IO[bytes]) -> None:
    """Both exports are a JSON list; an object or a bare string is another file (and a huge string would
    be read whole before anything could say so)."""
    head = stream.peek(64) if hasattr(stream, "peek") else b"["
    first = head.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    if first != b"[":
        raise UnreadableImport("this JSON is not a list of conversations: expected the conversations.json of a "
                               "ChatGPT or Claude export")


def _dict(value: object) -> dict:
    """An export's object, or an empty one where the file has something else (nothing is trusted)."""
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list:
    return value if isinstance(value, list) else []


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


def _chatgpt(raw: dict, skipped: Skipped) -> Conversation | None:
    mapping = _dict(raw.get("mapping"))
    node_id = raw.get("current_node")
    branch: list[dict] = []
    seen: set[str] = set()
    while isinstance(node_id, str) and node_id in mapping and node_id not in seen:  # leaf up to the root
        seen.add(node_id)
        node = _dict(mapping[node_id])
        branch.append(node)
        node_id = node.get("parent")
    messages = []
    for node in reversed(branch):
        message = _dict(node.get("message"))
        role = _dict(message.get("author")).get("role")
        if role not in {"user", "assistant"}:
            continue  # system prompts and tool output are nobody's words
        if _dict(message.get("metadata")).get("is_visually_hidden_from_conversation"):
            continue
        content = _dict(message.get("content"))
        if content.get("content_type") not in {"text", "multimodal_text"}:
            skipped.add(f"ChatGPT {content.get('content_type') or 'unknown'} parts (not text)")
            continue
        text = "\n".join(p for p in _list(content.get("parts")) if isinstance(p, str)).strip()
        if text:
            messages.append(Said(role, _clip(text, skipped), _epoch(message.get("create_time"))))
    return _conversation("chatgpt", str(raw.get("conversation_id") or raw.get("id") or ""), raw.get("title"),
                         _epoch(raw.get("create_time")), messages, skipped)


def _claude(raw: dict, skipped: Skipped) -> Conversation | None:
    messages = []
    for item in _list(raw.get("chat_messages")):
        message = _dict(item)
        sender = message.get("sender")
        role: Role | None = "user" if sender == "human" else "assistant" if sender == "assistant" else None
        if role is None:
            continue
        text = _str(message.get("text")) or "\n".join(
            _str(block.get("text")) for block in map(_dict, _list(message.get("content"))) if block.get("type") == "text")
        if text.strip():
            messages.append(Said(role, _clip(text.strip(), skipped), _iso(message.get("created_at"))))
    return _conversation("claude", str(raw.get("uuid") or ""), raw.get("name"), _iso(raw.get("created_at")),
                         messages, skipped)


def _conversation(source, key: str, title, created_at, messages: list[Said], skipped: Skipped) -> Conversation | None:
    if not key:
        skipped.add("conversations without an id")
        return None
    if not any(m.role == "user" for m in messages):
        skipped.add("conversations with nothing you wrote")
        return None
    name = (title or "").strip() if isinstance(title, str) else ""
    return Conversation(source, key, name[:255] or "Imported conversation", created_at, tuple(messages))


# --- your own writing --------------------------------------------------------------------------

def read_text_file(path: Path, skipped: Skipped, *, max_bytes: int) -> Iterator[Writing]:
    _small_enough(path, max_bytes)
    with path.open("rb") as handle:  # no more than is kept (a character is at most 4 bytes)
        data = handle.read(MAX_TEXT_CHARS * 4 + 1)
    if b"\x00" in data[:8192]:
        raise UnreadableImport(f"{path.name} is not text (expected .txt or .md written by you, in UTF-8)")
    text = data.decode("utf-8", errors="replace").strip()
    if text:
        at = datetime.fromtimestamp(path.stat().st_mtime, UTC)
        yield _writing("text", path.stem, at, text, skipped)
    else:
        skipped.add("empty files")


MAX_MAIL_BYTES = 10 * 2**20  # one e-mail; larger ones are attachments, not words


def read_email_file(path: Path, skipped: Skipped, *, max_bytes: int) -> Iterator[Writing]:
    _small_enough(path, max_bytes)
    parser = email.parser.BytesParser(policy=email.policy.default)
    if path.suffix.lower() == ".eml":
        if path.stat().st_size > MAX_MAIL_BYTES:
            raise UnreadableImport(f"{path.name} is over {_size(MAX_MAIL_BYTES)}: an e-mail that large is "
                                   "attachments, not your words")
        with path.open("rb") as handle:
            yield from _mails(iter([parser.parse(handle)]), skipped)
        return
    yield from _mails((parser.parsebytes(raw) for raw in _mbox_messages(path, skipped)), skipped)


def _mbox_messages(path: Path, skipped: Skipped) -> Iterator[bytes]:
    """Each message of an mbox, read line by line (the standard library's mailbox reads each whole and
    indexes the file first); one over MAX_MAIL_BYTES is skipped, and counted."""
    lines: list[bytes] = []
    size, too_big, previous_blank = 0, False, True
    with path.open("rb") as handle:
        for line in handle:
            if line.startswith(b"From ") and previous_blank:
                if lines or too_big:
                    if too_big:
                        skipped.add(f"e-mails over {_size(MAX_MAIL_BYTES)}")
                    else:
                        yield b"".join(lines)
                lines, size, too_big = [], 0, False
                previous_blank = False
                continue
            previous_blank = line.strip() == b""
            if too_big:
                continue
            size += len(line)
            if size > MAX_MAIL_BYTES:
                lines, too_big = [], True
                continue
            lines.append(line[1:] if line.startswith(b">From ") else line)  # mboxrd's escaping
    if too_big:
        skipped.add(f"e-mails over {_size(MAX_MAIL_BYTES)}")
    elif lines:
        yield b"".join(lines)


def _mails(messages: Iterator, skipped: Skipped) -> Iterator[Writing]:
    for message in messages:
        if not isinstance(message, EmailMessage) or not message.keys():
            skipped.add("parts that are not e-mail")
            continue
        body = message.get_body(preferencelist=("plain",))
        if body is None:
            skipped.add("e-mails without plain text")
            continue
        try:
            words = own_words(body.get_content())
        except (LookupError, UnicodeError):
            skipped.add("e-mails in an unknown encoding")
            continue
        if not words:
            skipped.add("e-mails with nothing of your own (only quoted or forwarded text)")
            continue
        try:
            at = parsedate_to_datetime(message["date"]) if message["date"] else None
        except (TypeError, ValueError):
            at = None
        yield _writing("email", str(message["subject"] or "E-mail"), at, words, skipped)


# Where the rest of a mail is someone else's: a forwarded part, or Outlook's quoted original (its header
# block, not a lone "From:" in the person's prose).
_FORWARD = re.compile(
    r"^(-{2,}\s*(Original Message|Forwarded message)\s*-{2,}"
    r"|Begin forwarded message:"
    r"|From: .+\n(Sent|Date): .+\n(To|Subject|Cc): )", re.I | re.M)
# "On <date>, <someone> wrote:" heads a quote only when quoted lines follow it.
_ATTRIBUTION = re.compile(r"^On .{0,200}(wrote|schrieb|a écrit|escribió)\s*:\s*\n(\s*\n)*>", re.I | re.M)
SIGNATURE_LINES = 12  # RFC 3676's "-- " starts a signature only this near the end


def own_words(body: str) -> str:
    """The sender's own words of an e-mail body: without quoted lines ("> ...") and the lines that
    attribute them, up to a forwarded part, and without a signature ("-- " near the end). Answers
    written between quoted lines stay."""
    text = body.replace("\r\n", "\n")
    if (cut := _FORWARD.search(text)) is not None:
        text = text[: cut.start()]
    lines = text.split("\n")
    for index in range(len(lines) - 1, max(-1, len(lines) - 1 - SIGNATURE_LINES), -1):
        if lines[index] == "-- ":
            lines = lines[:index]
            break
    text = _ATTRIBUTION.sub(">", "\n".join(lines))
    return "\n".join(line for line in text.split("\n") if not line.lstrip().startswith(">")).strip()


def _writing(source, title: str, at: datetime | None, text: str, skipped: Skipped) -> Writing:
    text = _clip(text, skipped)
    return Writing(source, hashlib.sha256(text.encode()).hexdigest(), title.strip()[:255] or "Untitled", at, text)


# --- small parts -------------------------------------------------------------------------------

def _small_enough(path: Path, max_bytes: int) -> Path:
    if path.stat().st_size > max_bytes:
        raise UnreadableImport(f"{path.name} is {_size(path.stat().st_size)}; the limit is {_size(max_bytes)}")
    return path


def _size(count: int) -> str:
    for unit, scale in (("GB", 2**30), ("MB", 2**20), ("KB", 2**10)):
        if count >= scale:
            return f"{count / scale:.3g} {unit}"
    return f"{count} bytes"


def _clip(text: str, skipped: Skipped) -> str:
    if len(text) > MAX_TEXT_CHARS:
        skipped.add(f"text beyond {MAX_TEXT_CHARS:,} characters in one message (cut)")
        return text[:MAX_TEXT_CHARS]
    return text


def _epoch(value) -> datetime | None:
    try:
        return datetime.fromtimestamp(float(value), UTC) if value is not None else None
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def _iso(value) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00")) if value else None
    except ValueError:
        return None
    return parsed.replace(tzinfo=parsed.tzinfo or UTC) if parsed else None


def _short(exc: Exception) -> str:
    return str(exc).splitlines()[0][:120]
