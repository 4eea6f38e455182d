"""Reading a person's history from elsewhere: each format, and each way a file can be wrong."""

import json
import zipfile
from pathlib import Path

import pytest

from memory.history import (
    Skipped,
    UnreadableImport,
    conversations_file,
    kind_of,
    own_words,
    read_conversations,
    read_email_file,
    read_text_file,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "imports"
MB = 2**20


def conversations(path: Path, **kw):
    skipped = Skipped()
    with conversations_file(path, max_bytes=kw.get("max_bytes", 50 * MB)) as stream:
        return list(read_conversations(stream, skipped)), skipped


def test_chatgpt_reads_the_branch_the_person_last_saw_and_only_words():
    (sourdough,), skipped = conversations(FIXTURES / "chatgpt-conversations.json")
    assert sourdough.source == "chatgpt" and sourdough.title == "Sourdough starter help"
    assert sourdough.key == "6630a1b2-0000-4000-8000-000000000001"
    assert [(m.role, m.text) for m in sourdough.messages] == [
        ("user", "my starter smells like nail polish?? is it dead lol"),
        ("assistant", "That acetone smell means it is hungry, not dead. Feed it twice a day."),  # not the regenerated one
        ("user", "ok feeding it now. photo attached, does the rise look right?"),  # the image part left out
    ]
    assert sourdough.created_at.year == 2024 and sourdough.messages[0].at is not None
    assert skipped.reasons["conversations with nothing you wrote"] == 1  # only a system prompt
    assert skipped.reasons["ChatGPT execution_output parts (not text)"] == 0  # tool output is nobody's words


def test_claude_reads_senders_in_order_with_text_from_blocks_when_the_text_field_is_empty():
    (shoes,), _ = conversations(FIXTURES / "claude-conversations.json")
    assert shoes.source == "claude" and shoes.title == "Trail running shoes"
    assert [m.role for m in shoes.messages] == ["user", "assistant", "user"]
    assert shoes.messages[1].text == "For wide feet in mud, look at aggressive lugs and a roomy toe box."


def test_a_zip_export_is_read_through_the_archive(tmp_path):
    export = tmp_path / "export.zip"
    with zipfile.ZipFile(export, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.write(FIXTURES / "claude-conversations.json", "data-2025/conversations.json")
        archive.writestr("data-2025/users.json", "[]")
    (shoes,), _ = conversations(export)
    assert shoes.title == "Trail running shoes"


def test_a_zip_bomb_an_oversized_file_and_a_zip_without_conversations_are_refused(tmp_path):
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("conversations.json", "[" + " " * (20 * MB) + "]")
    with pytest.raises(UnreadableImport, match="ZIP bomb"):
        conversations(bomb)
    with pytest.raises(UnreadableImport, match=r"is 2.98 KB; the limit is 1 KB"):
        conversations(FIXTURES / "chatgpt-conversations.json", max_bytes=1024)
    empty = tmp_path / "other.zip"
    with zipfile.ZipFile(empty, "w") as archive:
        archive.writestr("../../etc/conversations.json.txt", "x")
    with pytest.raises(UnreadableImport, match="holds no conversations.json"):
        conversations(empty)
    not_zip = tmp_path / "fake.zip"
    not_zip.write_text("hello")
    with pytest.raises(UnreadableImport, match="not a ZIP archive"):
        conversations(not_zip)


def test_broken_json_halfway_and_another_json_are_refused_with_what_was_expected(tmp_path):
    whole = (FIXTURES / "claude-conversations.json").read_text()
    broken = tmp_path / "conversations.json"
    broken.write_text(whole[: len(whole) // 2])
    with pytest.raises(UnreadableImport, match="JSON is broken"):
        conversations(broken)
    other = tmp_path / "settings.json"
    other.write_text(json.dumps([{"theme": "dark"}]))
    with pytest.raises(UnreadableImport, match="neither `mapping` \\(ChatGPT\\) nor `chat_messages` \\(Claude\\)"):
        conversations(other)


def test_an_email_gives_only_the_senders_own_words():
    skipped = Skipped()
    (reply,) = read_email_file(FIXTURES / "reply.eml", skipped, max_bytes=MB)
    assert reply.source == "email" and reply.title == "Re: Saturday plans"
    assert reply.text.startswith("Sounds grand.") and reply.text.endswith("Ada")
    assert "Field Ecologist" not in reply.text and "ridge walk" not in reply.text  # signature and quote gone


def test_a_sent_mbox_yields_each_mail_and_skips_a_bare_forward():
    skipped = Skipped()
    (notes,) = read_email_file(FIXTURES / "sent.mbox", skipped, max_bytes=MB)
    assert notes.title == "Notes from the survey" and "otter spraints" in notes.text
    assert skipped.reasons["e-mails with nothing of your own (only quoted or forwarded text)"] == 1


@pytest.mark.parametrize("body, kept", [
    ("Yes, Thursday works.\n\n> When are you free?\n", "Yes, Thursday works."),
    ("Agreed.\n-----Original Message-----\nFrom: x\nold", "Agreed."),
    ("See below.\nBegin forwarded message:\n\nhello", "See below."),
    ("Thanks!\nFrom: Sam <s@x>\nSent: Monday\nTo: Ada\nSubject: x\nold text", "Thanks!"),
    ("All mine.\n-- \nsig", "All mine."),
    # The person's own prose that only looks like a quote's start stays (found by review).
    ("On reflection, here is what my father wrote:\nBe kind.", "On reflection, here is what my father wrote:\nBe kind."),
    ("Notes\n--\nMore notes", "Notes\n--\nMore notes"),
    ("From: my diary\nDate: today\nIt rained.", "From: my diary\nDate: today\nIt rained."),
    # Inline answers between quoted lines are the person's words.
    ("My replies inline:\n\nOn Mon, Sam wrote:\n> Friday?\nYes, Friday.\n> Snacks?\nI'll bring them.",
     "My replies inline:\n\nYes, Friday.\nI'll bring them."),
])
def test_own_words_cuts_quotes_forwards_and_signatures(body, kept):
    assert own_words(body) == kept


def test_text_files_are_kept_whole_and_binary_ones_refused(tmp_path):
    skipped = Skipped()
    (essay,) = read_text_file(FIXTURES / "why-i-walk.md", skipped, max_bytes=MB)
    assert essay.title == "why-i-walk" and "hills make the week make sense" in essay.text
    binary = tmp_path / "photo.txt"
    binary.write_bytes(b"\x89PNG\x00\x00junk")
    with pytest.raises(UnreadableImport, match="not text"):
        list(read_text_file(binary, skipped, max_bytes=MB))


def test_an_unknown_kind_of_file_names_what_was_expected():
    assert kind_of(Path("export.ZIP")) == "chats" and kind_of(Path("a.eml")) == "email"
    with pytest.raises(UnreadableImport, match=r"expected a ChatGPT or Claude export .* \(\.eml, \.mbox\)"):
        kind_of(Path("photo.jpg"))


def test_the_same_text_has_the_same_key_so_a_second_import_adds_nothing():
    first = list(read_text_file(FIXTURES / "why-i-walk.md", Skipped(), max_bytes=MB))
    second = list(read_text_file(FIXTURES / "why-i-walk.md", Skipped(), max_bytes=MB))
    assert first[0].key == second[0].key


def test_deeply_nested_json_is_refused_before_it_costs_memory(tmp_path):
    import resource

    deep = tmp_path / "conversations.json"
    deep.write_text("[" * 20_000 + "]" * 20_000)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(UnreadableImport, match="nests more than 64 levels"):
        conversations(deep)
    grown_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kb < 50_000  # ijson.items took 958 MB on this input


def test_a_big_text_file_is_read_no_further_than_what_is_kept(tmp_path):
    import resource

    big = tmp_path / "novel.txt"
    big.write_bytes(b"word " * (4 * 2**20))  # 20 MB
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    skipped = Skipped()
    (kept,) = read_text_file(big, skipped, max_bytes=100 * MB)
    assert len(kept.text) <= 200_000 and any("cut" in reason for reason in skipped.reasons)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 15_000  # KB; it read 20 MB whole before


def test_an_mbox_is_read_message_by_message_and_an_oversized_one_is_skipped(tmp_path, monkeypatch):
    import memory.history

    monkeypatch.setattr(memory.history, "MAX_MAIL_BYTES", 2000)
    box = tmp_path / "sent.mbox"
    mail = "From ada@example.org Wed Mar  5 17:30:00 2025\nFrom: ada@example.org\nSubject: {s}\n\n{b}\n\n"
    box.write_text(mail.format(s="one", b="First words of mine.\n>From the hills, a line that mboxrd escaped.")
                   + mail.format(s="huge", b="x" * 5000) + mail.format(s="three", b="Third words."))
    skipped = Skipped()
    texts = list(read_email_file(box, skipped, max_bytes=MB))
    assert [t.title for t in texts] == ["one", "three"]
    assert "From the hills" in texts[0].text  # unescaped, and not taken for a new message
    assert skipped.reasons["e-mails over 1.95 KB"] == 1
