"""The gateway against each real server's behaviour (tests/fakellm.py modes): formats, streams, errors.

Every test goes through a real OpenAIGateway and the real openai client over HTTP; the fake answers as
the named server does, following its public documentation.
"""

import json
import logging
from dataclasses import replace

import pytest

from assistant.llm import (
    ModelBadResponse, ModelBusy, ModelMisconfigured, ModelNotFound, ModelRateLimited, OpenAIGateway, Purpose,
    QuotaExhausted,
)
from tests.fakellm import LLAMACPP, LMSTUDIO, MODES, OPENAI, WINDOWS, Reply

pytestmark = pytest.mark.anyio

MESSAGES = [{"role": "user", "content": "Decide, and answer in JSON."}]
SCHEMA = {"name": "verdict", "strict": True, "schema": {"type": "object", "properties": {"ok": {"type": "boolean"}}}}
MODEL = "qwen3:8b"


@pytest.fixture
async def gateway(fake_llm):
    """A gateway whose every purpose asks for MODEL, which the fake serves; no retries of its own."""
    fake_llm.models = [MODEL]
    built = OpenAIGateway(api_key=None, base_url=fake_llm.base_url, models=dict.fromkeys(Purpose, MODEL),
                          windows=WINDOWS, timeout=5, max_retries=0)
    yield built
    await built.close()


def formats_sent(fake):
    return [(r.body.get("response_format") or {}).get("type", "text") for r in fake.requests]


@pytest.mark.parametrize("mode", MODES)
async def test_a_schema_lands_on_structured_output_where_the_server_takes_it(fake_llm, gateway, mode):
    fake_llm.use(mode)
    fake_llm.script("hypotheses", '{"ok": true}')
    done = await gateway.complete(MESSAGES, purpose=Purpose.HYPOTHESES, json_schema=SCHEMA)
    assert (done.text, done.response_format) == ('{"ok": true}', "json_schema")
    assert formats_sent(fake_llm) == ["json_schema"]


@pytest.mark.parametrize(("server", "landed", "sent"), [
    # llama.cpp before json_schema support: refuses it, takes JSON mode.
    ("llamacpp-old", "json_object", ["json_schema", "json_object"]),
    # A server taking neither (older still): plain text, which the caller validates.
    (replace(LLAMACPP, name="llamacpp-text", formats=frozenset()), "text", ["json_schema", "json_object", "text"]),
    # An OpenAI model without structured outputs takes JSON mode, the prompt saying "JSON".
    (replace(OPENAI, formats=frozenset({"json_object"})), "json_object", ["json_schema", "json_object"]),
], ids=["llamacpp-old", "no-structured-output", "openai-json-mode-only"])
async def test_a_refused_format_falls_back_to_the_next_and_says_so(fake_llm, gateway, caplog, server, landed, sent):
    fake_llm.use(server)
    fake_llm.script("safety", '{"ok": true}')
    with caplog.at_level(logging.INFO, logger="assistant.llm"):
        done = await gateway.complete(MESSAGES, purpose=Purpose.SAFETY, json_schema=SCHEMA)
    assert (done.text, done.response_format) == ('{"ok": true}', landed)
    assert formats_sent(fake_llm) == sent
    fallbacks = [r.getMessage() for r in caplog.records if "falling back" in r.getMessage()]
    assert len(fallbacks) == len(sent) - 1 and all("json" in line for line in fallbacks)
    assert not any("Decide" in r.getMessage() for r in caplog.records)  # no prompt text in the log


async def test_openai_json_mode_refuses_a_prompt_that_never_says_json(fake_llm, gateway):
    """The trap of the json_object fallback on OpenAI: its JSON mode wants the word in the prompt."""
    fake_llm.use(replace(OPENAI, formats=frozenset({"json_object"})))
    fake_llm.script("safety", '{"ok": true}')
    done = await gateway.complete([{"role": "user", "content": "Decide."}], purpose=Purpose.SAFETY, json_schema=SCHEMA)
    assert done.response_format == "text" and formats_sent(fake_llm) == ["json_schema", "json_object", "text"]


REASONING_FIELD = {"ollama": "reasoning"}  # the others put thinking in reasoning_content


@pytest.mark.parametrize("mode", MODES)
async def test_a_stream_with_the_servers_extra_fields_and_usage_streams_the_text_exactly(fake_llm, gateway, mode):
    fake_llm.use(mode)
    pieces = ["Bon", "jour", ", Zoé", " — ça va ?", "\n\n", "Oui."]
    fake_llm.script("chat", Reply(chunks=pieces, reasoning="greet back",
                                  reasoning_field=REASONING_FIELD.get(mode, "reasoning_content"),
                                  usage={"prompt_tokens": 12, "completion_tokens": 9, "total_tokens": 21}))
    received = [token async for token in gateway.stream(MESSAGES, purpose=Purpose.CHAT)]
    assert "".join(received) == "".join(pieces)
    (request,) = fake_llm.requests
    assert request.body["stream"] is True


@pytest.mark.parametrize("mode", MODES)
async def test_the_fake_streams_usage_last_with_no_choices_only_when_asked(fake_llm, mode):
    """What the gateway's stream_options meet: the mode's own chunks, read raw."""
    import openai

    fake_llm.use(mode)
    fake_llm.script("chat", "one two", "one two")
    client = openai.AsyncOpenAI(api_key="x", base_url=fake_llm.base_url, max_retries=0)
    try:
        for asked in (True, False):
            stream = await client.chat.completions.create(
                model=MODEL, messages=MESSAGES, stream=True, extra_headers={"X-Assistant-Purpose": "chat"},
                **({"stream_options": {"include_usage": True}} if asked else {}))
            chunks = [chunk async for chunk in stream]
            usage = [c for c in chunks if not c.choices]
            assert [u.usage.total_tokens for u in usage] == ([2] if asked else [])
            assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "one two"
            if mode == "llamacpp":
                assert getattr(chunks[-1], "timings", None)  # on the last chunk, whichever it is
    finally:
        await client.close()


MISSING = {"openai": "model_not_found", "vllm": "NotFoundError", "ollama": "not_found_error",
           "lmstudio": "model_not_found"}


@pytest.mark.parametrize("mode", MODES)
async def test_a_model_the_server_does_not_have_is_named_as_such(fake_llm, gateway, mode):
    fake_llm.use(mode)
    fake_llm.models = ["llama3.1:8b"]
    if mode == "llamacpp":  # one model, served whatever name the request gives
        fake_llm.script("chat", "served")
        assert [t async for t in gateway.stream(MESSAGES, purpose=Purpose.CHAT)] == ["served"]
        return
    with pytest.raises(ModelNotFound) as caught:
        await gateway.complete(MESSAGES, purpose=Purpose.HYPOTHESES)
    said = caught.value.user_message
    assert "HYPERALIGN_CHAT_MODEL" in said and "hyperalign doctor" in said and "ollama pull" in said
    assert MODEL not in said and "Decide" not in said
    assert MISSING[mode] in str(caught.value)  # the log's detail: the server's code or type, not its words
    with pytest.raises(ModelNotFound):
        async for _ in gateway.stream(MESSAGES, purpose=Purpose.CHAT):
            pass


async def test_a_wrong_url_is_a_misconfiguration_not_a_missing_model(fake_llm, gateway):
    fake_llm.script("chat", Reply(status=404))
    with pytest.raises(ModelMisconfigured) as caught:
        async for _ in gateway.stream(MESSAGES, purpose=Purpose.CHAT):
            pass
    assert type(caught.value) is ModelMisconfigured


@pytest.mark.parametrize("mode", ["openai", "llamacpp", "ollama"])
async def test_an_overloaded_or_loading_server_is_busy_and_says_try_again(fake_llm, gateway, mode):
    fake_llm.use(mode)
    fake_llm.script("chat", Reply(failure="busy"))
    with pytest.raises(ModelBusy) as caught:
        async for _ in gateway.stream(MESSAGES, purpose=Purpose.CHAT):
            pass
    assert "busy" in caught.value.user_message and "try again" in caught.value.user_message
    assert "503" in str(caught.value)


async def test_the_clients_own_retries_ride_out_a_busy_moment(fake_llm):
    fake_llm.use("ollama")
    gw = OpenAIGateway(api_key=None, base_url=fake_llm.base_url, models=dict.fromkeys(Purpose, MODEL),
                       windows=WINDOWS, timeout=5, max_retries=1)
    fake_llm.script("chat", Reply(failure="busy", headers={"retry-after-ms": "10"}), "fine")
    try:
        assert [t async for t in gw.stream(MESSAGES, purpose=Purpose.CHAT)] == ["fine"]
    finally:
        await gw.close()
    assert len(fake_llm.requests) == 2


@pytest.mark.parametrize(("failure", "error"), [("quota", QuotaExhausted), ("rate_limited", ModelRateLimited)])
async def test_a_spent_quota_is_not_a_rate_limit(fake_llm, gateway, failure, error):
    fake_llm.use("openai")
    fake_llm.script("hypotheses", Reply(failure=failure))
    with pytest.raises(error) as caught:
        await gateway.complete(MESSAGES, purpose=Purpose.HYPOTHESES)
    assert type(caught.value) is error
    said = caught.value.user_message
    if error is QuotaExhausted:
        assert isinstance(caught.value, ModelMisconfigured) and "billing" in said and "wait" not in said.replace(
            "waiting will not help", "")
    else:
        assert "wait a little" in said


async def test_credits_run_out_on_a_router_is_a_billing_problem_too(fake_llm, gateway):
    """OpenRouter and other routers answer 402 Payment Required when the account's credits are spent."""
    fake_llm.script("hypotheses", Reply(status=402))
    with pytest.raises(QuotaExhausted):
        await gateway.complete(MESSAGES, purpose=Purpose.HYPOTHESES)


async def test_lm_studio_refusing_json_mode_with_a_bare_string_error_is_still_understood(fake_llm, gateway):
    """LM Studio's refusal body is {"error": "<words>"}, not an object: the fallback still reads it."""
    fake_llm.use(replace(LMSTUDIO, name="lmstudio-no-structured-output", formats=frozenset()))
    fake_llm.script("hypotheses", json.dumps({"ok": True}))
    done = await gateway.complete(MESSAGES, purpose=Purpose.HYPOTHESES, json_schema=SCHEMA)
    assert done.response_format == "text" and formats_sent(fake_llm) == ["json_schema", "json_object", "text"]
    fake_llm.script("hypotheses", Reply(status=400))
    with pytest.raises(ModelBadResponse):
        await gateway.complete(MESSAGES, purpose=Purpose.HYPOTHESES)


def servers_table():
    """README's per-server table (Connecting a model), as {server: {column: cell}}."""
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    lines = readme.split("<!-- servers table -->", 1)[1].strip().splitlines()
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    rows = {}
    for line in lines[2:]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        rows[cells[0].strip("`")] = dict(zip(header, cells, strict=True))
    return rows


def test_readmes_server_table_says_what_the_modes_do():
    from tests.fakellm import SERVERS

    table = servers_table()
    assert sorted(table) == sorted(MODES)
    for name, row in table.items():
        mode = SERVERS[name]
        landing = next((kind for kind in ("json_schema", "json_object") if kind in mode.formats), "text")
        assert row["Structured output"].split()[0] == landing, name
        assert (row["Usage while streaming"] == "yes") == mode.streams_usage, name
        assert row["Context window"].startswith("read from the server") == (mode.window_field is not None), name
    assert "json_object" in table["llamacpp"]["Structured output"] and "json_object" in SERVERS["llamacpp-old"].formats
