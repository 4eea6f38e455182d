"""A reasoning model's thinking kept apart from its answer, however the stream splits the tags."""

import json

import pytest

from assistant.reasoning import ThinkSplitter, estimate_tokens, strip_reasoning


def run(chunks):
    splitter = ThinkSplitter()
    parts = [splitter.feed(chunk) for chunk in chunks] + [splitter.finish()]
    return "".join(p.reply for p in parts), "".join(p.reasoning for p in parts), splitter


CASES = [
    ("<think>Plan: greet.</think>Hello there!", "Hello there!", "Plan: greet."),
    ("\n<think>\nfirst\n</think>\n\nHello", "Hello", "\nfirst\n"),
    ("<think>a</think><think>b</think>Answer", "Answer", "ab"),  # one block after another
    ('<think>JSON next</think>\n{"decision": "comply"}', '{"decision": "comply"}', "JSON next"),
    ("No thinking here. <think> later is text the answer is about.", "No thinking here. <think> later is text the answer is about.", ""),
    ("<b>bold</b> start", "<b>bold</b> start", ""),
    ("<thin", "<thin", ""),  # a tag that never completed is text
    ("", "", ""),
]


@pytest.mark.parametrize(("text", "reply", "reasoning"), CASES)
def test_every_way_of_splitting_the_stream_gives_the_same_reply_and_thinking(text, reply, reasoning):
    for cut in range(len(text) + 1):  # one cut anywhere, tags included
        assert run([text[:cut], text[cut:]])[:2] == (reply, reasoning), cut
    assert run(list(text))[:2] == (reply, reasoning)  # one character at a time
    assert strip_reasoning(text) == (reply, reasoning)


def test_an_unclosed_block_is_all_thinking_and_no_reply():
    reply, reasoning, _ = run(["<think>I keep thinking and", " thinking </thi"])
    assert reply == "" and reasoning == "I keep thinking and thinking </thi"


def test_thinking_is_streamed_as_it_comes_not_held_to_the_end():
    splitter = ThinkSplitter()
    assert splitter.feed("<think>step one, ").reasoning == "step one, "
    assert splitter.feed("step two</th").reasoning == "step two"  # the tag's beginning waits
    part = splitter.feed("ink>Done")
    assert (part.reasoning, part.reply) == ("", "Done")


def test_a_template_that_opened_the_block_leaves_only_its_closing_tag():
    assert strip_reasoning("The user wants JSON.\n</think>\n\n{\"a\": 1}") == ('{"a": 1}', "The user wants JSON.\n")
    answer, thinking = strip_reasoning("<think>x</think>" + json.dumps({"rules": ["</think> is a tag"]}))
    assert json.loads(answer) == {"rules": ["</think> is a tag"]} and thinking == "x"


def test_a_reply_that_mentions_the_closing_tag_loses_only_what_came_before_the_first():
    answer, thinking = strip_reasoning("Plan it.</think>In HTML-ish prompts, </think> ends a block.")
    assert answer == "In HTML-ish prompts, </think> ends a block." and thinking == "Plan it."


def test_a_template_that_opens_the_block_is_said_once_and_the_stream_starts_inside_it():
    splitter = ThinkSplitter(opened=True)
    assert splitter.feed("weighing it").reasoning == "weighing it"
    part = splitter.feed(" up</think>\n\nAnswer.")
    assert (part.reasoning, part.reply) == (" up", "Answer.")
    assert strip_reasoning("all thinking, cut off", opened=True) == ("", "all thinking, cut off")


def test_token_estimates_round_up():
    assert estimate_tokens("") == 0 and estimate_tokens("abcd") == 1 and estimate_tokens("abcde") == 2
