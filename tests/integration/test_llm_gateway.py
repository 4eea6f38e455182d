"""The real openai client against the loopback fake: streaming, purposes, and error mapping."""

import pytest

from assistant.llm import (
    LLMError, ModelBadResponse, ModelMisconfigured, ModelRateLimited, ModelRefused, ModelTimeout, ModelUnavailable,
    OfflineModel, OpenAIGateway, Purpose, StreamBroken,
)
from tests.fakellm import WINDOWS, Reply

pytestmark = pytest.mark.anyio

MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture
async def gateways():
    """Builds gateways and closes them inside the test's event loop."""
    built = []

    def build(fake, *, timeout=5.0, retries=0):
        models = {Purpose.CHAT: "chat-m", Purpose.SAFETY: "safety-m", Purpose.HYPOTHESES: "hyp-m"}
        built.append(OpenAIGateway(
            api_key=None, base_url=fake.base_url, models=models, windows=WINDOWS, timeout=timeout,
            max_retries=retries))
        return built[-1]

    yield build
    for gw in built:
        await gw.close()


async def collect(gw, purpose=Purpose.CHAT, prompt=MESSAGES):
    return [token async for token in gw.stream(prompt, purpose=purpose)]


async def test_streams_tokens_with_the_purposes_model_and_header(fake_llm, gateways):
    fake_llm.script("safety", Reply(chunks=["Hel", "lo", " there"]))
    gw = gateways(fake_llm)
    assert await collect(gw, Purpose.SAFETY) == ["Hel", "lo", " there"]
    (request,) = fake_llm.requests
    assert request.body["model"] == "safety-m" and request.body["stream"] is True
    assert request.body["messages"] == MESSAGES
    assert request.headers["x-assistant-purpose"] == "safety"


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (Reply(status=429, headers={"retry-after-ms": "10"}), ModelRateLimited),
        (Reply(status=500), ModelUnavailable),
        (Reply(status=503), ModelUnavailable),
        (Reply(status=401), ModelMisconfigured),
        (Reply(status=404), ModelMisconfigured),
        (Reply(status=400), ModelBadResponse),
        (Reply(text=""), ModelBadResponse),
        (Reply(text="nope", finish_reason="content_filter", chunks=[]), ModelRefused),
    ],
)
async def test_provider_errors_become_our_errors_with_user_safe_text(fake_llm, reply, error, gateways):
    fake_llm.script("chat", reply)
    with pytest.raises(error) as caught:
        await collect(gateways(fake_llm))
    assert caught.value.user_message and "Traceback" not in caught.value.user_message


async def test_a_slow_model_times_out(fake_llm, gateways):
    fake_llm.script("chat", Reply(text="late", delay=1.5))
    with pytest.raises(ModelTimeout):
        await collect(gateways(fake_llm, timeout=0.3))


async def test_a_stream_broken_midway_keeps_the_partial_text(fake_llm, gateways):
    fake_llm.script("chat", Reply(text="one two three four", break_after=2))
    received = []
    with pytest.raises(StreamBroken) as caught:
        async for token in gateways(fake_llm).stream(MESSAGES, purpose=Purpose.CHAT):
            received.append(token)
    assert "".join(received) == "one two" == caught.value.partial


async def test_retries_come_from_the_settings(fake_llm, gateways):
    fake_llm.script("chat", Reply(status=500), Reply(status=500), "recovered")
    assert "".join(await collect(gateways(fake_llm, retries=2))) == "recovered"
    assert len(fake_llm.requests) == 3


async def test_an_unscripted_call_fails_loudly(fake_llm, gateways):
    with pytest.raises(ModelUnavailable):
        await collect(gateways(fake_llm))
    assert [r.purpose for r in fake_llm.unscripted] == ["chat"]
    fake_llm.unscripted.clear()  # seen: the fixture would fail the test otherwise


async def test_the_offline_model_says_what_it_is_and_how_to_connect_one():
    text = "".join([t async for t in OfflineModel().stream(MESSAGES, purpose=Purpose.CHAT)])
    assert "Offline mode" in text and "OPENAI_API_KEY" in text and "OPENAI_BASE_URL" in text
    assert "not from a language model" in text


async def test_the_offline_model_says_it_all_once_per_conversation_and_then_one_line():
    first = "".join([t async for t in OfflineModel().stream(MESSAGES, purpose=Purpose.CHAT)])
    later = [*MESSAGES, {"role": "assistant", "content": first}, {"role": "user", "content": "And now?"}]
    short = "".join([t async for t in OfflineModel().stream(later, purpose=Purpose.CHAT)])
    assert "Offline mode: no language model is connected" in short and "OPENAI_BASE_URL" in short
    assert "\n" not in short and len(short) < len(first) / 2
    # A conversation begun with a model connected gets the whole notice at its first offline reply.
    earlier = [*MESSAGES, {"role": "assistant", "content": "A real answer."}, {"role": "user", "content": "Hi?"}]
    assert "".join([t async for t in OfflineModel().stream(earlier, purpose=Purpose.CHAT)]) == first


@pytest.mark.parametrize(
    ("reply", "error"),
    [(Reply(status=500), ModelUnavailable), (Reply(status=429), ModelRateLimited), (Reply(text=""), ModelBadResponse),
     (Reply(text="no", finish_reason="content_filter"), ModelRefused), (Reply(status=401), ModelMisconfigured)],
)
async def test_whole_answers_map_errors_the_same_way(fake_llm, gateways, reply, error):
    fake_llm.script("hypotheses", reply)
    with pytest.raises(error):
        await gateways(fake_llm).complete(MESSAGES, purpose=Purpose.HYPOTHESES)


async def test_a_whole_answer_reports_its_cost(fake_llm, gateways):
    fake_llm.script("hypotheses", "{}")
    completion = await gateways(fake_llm).complete(MESSAGES, purpose=Purpose.HYPOTHESES)
    assert (completion.text, completion.model, completion.tokens_in, completion.tokens_out) == ("{}", "hyp-m", 1, 1)
    assert not fake_llm.requests[0].body.get("stream")


@pytest.mark.parametrize("done", [True, False], ids=["with-DONE", "without-DONE"])
async def test_a_stream_that_ends_without_a_finish_reason_is_broken(fake_llm, gateways, done):
    """The server closed the stream cleanly after some tokens but never said the reply was finished."""
    fake_llm.script("chat", Reply(text="one two three", finish_reason=None, done=done))
    received = []
    with pytest.raises(StreamBroken) as caught:
        async for token in gateways(fake_llm).stream(MESSAGES, purpose=Purpose.CHAT):
            received.append(token)
    assert "".join(received) == "one two three" == caught.value.partial


@pytest.mark.parametrize(("finish", "error"), [("length", "ReplyTruncated"), ("content_filter", "ModelRefused")])
async def test_a_stream_stopped_by_a_limit_or_filter_is_not_complete(fake_llm, gateways, finish, error):
    fake_llm.script("chat", Reply(text="one two three", finish_reason=finish))
    with pytest.raises(LLMError) as caught:
        await collect(gateways(fake_llm))
    assert type(caught.value).__name__ == error and caught.value.partial == "one two three"


async def test_a_server_of_ones_own_given_only_a_chat_model_gets_it_for_every_purpose(fake_llm, monkeypatch):
    """README's Ollama example sets only HYPERALIGN_CHAT_MODEL; asking that server for gpt-4o-mini fails."""
    from assistant.config import load_settings
    from assistant.wiring import build_gateway

    monkeypatch.setenv("OPENAI_BASE_URL", fake_llm.base_url)
    monkeypatch.setenv("HYPERALIGN_CHAT_MODEL", "qwen3:8b")
    gw = build_gateway(load_settings())
    try:
        for purpose in Purpose:
            fake_llm.script(str(purpose), "{}")
            await gw.complete(MESSAGES, purpose=purpose)
    finally:
        await gw.close()
    assert [r.body["model"] for r in fake_llm.requests] == ["qwen3:8b"] * len(Purpose)


async def test_inline_thinking_split_across_chunks_never_reaches_the_reply(fake_llm, gateways):
    fake_llm.script("chat", Reply(chunks=["<thi", "nk>The user greets; ", "greet back.</th", "ink>\n\nHel", "lo!"]))
    thought = []

    async def on_reasoning(text):
        thought.append(text)

    gw = gateways(fake_llm)
    tokens = [t async for t in gw.stream(MESSAGES, purpose=Purpose.CHAT, on_reasoning=on_reasoning)]
    assert "".join(tokens) == "Hello!" and "".join(thought) == "The user greets; greet back."


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
async def test_thinking_in_its_own_field_goes_to_its_own_callback(fake_llm, gateways, field):
    fake_llm.script("chat", Reply(text="Four.", reasoning="two plus two", reasoning_field=field))
    thought = []

    async def on_reasoning(text):
        thought.append(text)

    gw = gateways(fake_llm)
    assert [t async for t in gw.stream(MESSAGES, purpose=Purpose.CHAT, on_reasoning=on_reasoning)] == ["Four."]
    assert "".join(thought).split() == ["two", "plus", "two"]
    fake_llm.script("chat", Reply(text="Four.", reasoning="x", reasoning_field=field))
    assert await collect(gw) == ["Four."]  # without a callback the thinking is simply dropped


@pytest.mark.parametrize("reply", [
    Reply(chunks=["<think>I will think", " forever"], finish_reason="length"),
    Reply(chunks=["<think>done thinking</think>", "  "]),
    Reply(text="", reasoning="only the field"),
])
async def test_an_answer_that_is_only_thinking_is_said_to_be_so(fake_llm, gateways, reply):
    from assistant.llm import ReasoningOnly

    fake_llm.script("chat", reply)
    with pytest.raises(ReasoningOnly) as caught:
        await collect(gateways(fake_llm))
    assert caught.value.partial == "" and "thinking" in caught.value.user_message


async def test_a_whole_answer_loses_its_thinking_before_anyone_parses_it(fake_llm, gateways):
    import json

    from assistant.llm import ReasoningOnly

    gw = gateways(fake_llm)
    fake_llm.script("safety", '<think>Is this allowed? Yes.</think>\n{"decision": "comply"}')
    done = await gw.complete(MESSAGES, purpose=Purpose.SAFETY, json_schema={"name": "v", "schema": {}, "strict": True})
    assert json.loads(done.text) == {"decision": "comply"} and done.reasoning_tokens == len("Is this allowed? Yes.") // 4 + 1
    fake_llm.script("safety", Reply(text='{"decision": "comply"}', reasoning="weighing it up"))
    done = await gw.complete(MESSAGES, purpose=Purpose.SAFETY)
    assert done.text == '{"decision": "comply"}' and done.reasoning_tokens > 0
    fake_llm.script("hypotheses", "<think>never finished")
    with pytest.raises(ReasoningOnly):
        await gw.complete(MESSAGES, purpose=Purpose.HYPOTHESES)


def filling(marker="x"):
    """A prompt that fills whatever budget it is given, as the app's fitted prompts do at worst."""
    def fit(budget):
        words = ["word"] * int(budget.limit / 1.4)
        while True:
            messages = [{"role": "system", "content": f"system {marker}"}, {"role": "user", "content": " ".join(words)}]
            if budget.fits(messages):
                return messages
            words = words[: int(len(words) * 0.95)]
    return fit


@pytest.mark.parametrize("style", ["vllm", "llamacpp", "openai"])
async def test_a_server_that_says_the_prompt_is_too_long_gets_one_smaller_retry(fake_llm, style):
    windows = {**WINDOWS, "chat": 4096, "safety": 4096}
    gw = OpenAIGateway(api_key=None, base_url=fake_llm.base_url, models=dict.fromkeys(Purpose, "llama3"),
                       windows=windows, timeout=5, max_retries=0)
    # Its tokenizer is much denser than our estimate: the first, full prompt is over its window (llama.cpp
    # counts the prompt alone against it, the others the prompt and the answer's max_tokens).
    fake_llm.window, fake_llm.window_style, fake_llm.token_scale = 4096, style, 2.2 if style == "llamacpp" else 1.8
    fake_llm.script("chat", "streamed fine")
    fake_llm.script("safety", '{"decision": "comply"}')
    try:
        assert "".join([t async for t in gw.stream(filling(), purpose=Purpose.CHAT)]) == "streamed fine"
        done = await gw.complete(filling(), purpose=Purpose.SAFETY, json_schema={"name": "v", "schema": {}, "strict": True})
        assert done.text == '{"decision": "comply"}'
    finally:
        await gw.close()
    for purpose in ("chat", "safety"):
        first, second = fake_llm.requests_for(purpose)
        assert fake_llm.tokens(second.body) < fake_llm.tokens(first.body)
        assert first.body["max_tokens"] == second.body["max_tokens"] == 1024  # the answer keeps its room
        if purpose == "safety":
            assert second.body["response_format"]["type"] == "json_schema"  # not mistaken for a format refusal


async def test_a_prompt_that_cannot_shrink_and_is_still_too_long_is_said_to_be_so(fake_llm, gateways):
    from assistant.llm import PromptTooLong

    fake_llm.window, fake_llm.token_scale = 100, 1.0
    gw = gateways(fake_llm)
    with pytest.raises(PromptTooLong) as caught:
        await collect(gw)  # fixed messages: nothing to fit smaller
    assert "context window" in caught.value.user_message
    with pytest.raises(PromptTooLong):  # ours: the instructions alone exceed the budget, never sent
        await collect(gw, prompt=[{"role": "user", "content": "word " * 20_000}])
    assert len(fake_llm.requests) == 1


async def test_ollama_which_refuses_nothing_never_gets_more_than_its_window(fake_llm):
    """Ollama silently drops the start of a prompt longer than its window (the system prompt first);
    fitted with our estimate, nothing ever overflows it."""
    gw = OpenAIGateway(api_key=None, base_url=fake_llm.base_url, models=dict.fromkeys(Purpose, "qwen3:8b"),
                       windows=dict.fromkeys(Purpose, 4096), timeout=5, max_retries=0)
    fake_llm.window, fake_llm.window_style = 4096, "ollama"
    fake_llm.script("chat", *["ok"] * 3)
    try:
        for marker in "abc":
            assert [t async for t in gw.stream(filling(marker), purpose=Purpose.CHAT)] == ["ok"]
    finally:
        await gw.close()
    assert fake_llm.overflowed == []
    assert all(fake_llm.tokens(r.body) + r.body["max_tokens"] <= 4096 for r in fake_llm.requests)
