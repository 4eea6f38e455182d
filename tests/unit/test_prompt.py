from assistant.prompt import OMITTED, SYSTEM_PROMPT, WindowMessage, build_reply_messages


def test_window_then_new_message_in_order():
    window = [WindowMessage("user", "hello"), WindowMessage("assistant", "hi there")]
    messages = build_reply_messages(window, "how are you?", max_chars=100)
    assert messages == [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": "hello"},
        {"role": "assistant", "content": "hi there"},
        {"role": "user", "content": "how are you?"},
    ]


def test_overlong_and_empty_window_messages_are_not_sent():
    window = [WindowMessage("user", "x" * 101), WindowMessage("assistant", "  ")]
    messages = build_reply_messages(window, "next", max_chars=100)
    assert [m["content"] for m in messages[1:]] == [OMITTED, "next"]


def test_inputs_are_not_mutated():
    window = [WindowMessage("user", "a")]
    build_reply_messages(window, "b", max_chars=10)
    assert window == [WindowMessage("user", "a")]
