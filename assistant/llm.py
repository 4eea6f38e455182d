"""The one LLM gateway: the only importer of `openai`, and the built-in offline model.

Every call names its purpose (chat, safety, hypotheses): the purpose picks the model from the
settings and travels as the `X-Assistant-Purpose` header, so logs and test servers can tell
calls apart without reading prompts. Provider errors leave this module only as `LLMError`
subclasses whose `user_message` is safe to show in the chat.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Protocol, cast

import httpx2
import openai
from openai.types.chat import ChatCompletionMessageParam
from openai.types.chat.completion_create_params import ResponseFormat
from openai.types.shared_params.response_format_json_schema import JSONSchema

from assistant.context import Budget, Fit, PromptTooLarge, TokenCounter, budget_for, counter_for, is_openai_model
from assistant.reasoning import ThinkSplitter, strip_reasoning, tokens_for_chars

logger = logging.getLogger(__name__)

Messages = Sequence[dict[str, str]]
Prompt = Messages | Fit  # fixed messages, or a function that fits them to a budget
OnReasoning = Callable[[str], Awaitable[None]]


class Purpose(StrEnum):
    CHAT = "chat"
    SAFETY = "safety"
    HYPOTHESES = "hypotheses"


@dataclass(frozen=True)
class Spent:
    """Tokens one request used: the server's usage, or our counts when it reported none (`estimated`)."""

    tokens_in: int = 0
    tokens_out: int = 0  # the reasoning tokens included
    reasoning_tokens: int = 0
    estimated: bool = False


NOTHING_SPENT = Spent()


class LLMError(Exception):
    """A model call failed. `user_message` says what happened in words fit for the chat."""

    user_message = "The language model failed to answer."

    def __init__(self, detail: str = "", *, partial: str = "", spent: Spent = NOTHING_SPENT) -> None:
        super().__init__(detail or self.user_message)
        self.partial = partial  # text already streamed when the failure happened
        self.spent = spent  # what the failed request used, where it got that far (a cut-off answer)


class ModelUnavailable(LLMError):
    user_message = "The language model could not be reached or failed on its side. Please try again in a moment."


class ModelTimeout(LLMError):
    user_message = "The language model took too long to answer and the request was abandoned."


class ModelRateLimited(LLMError):
    user_message = "The language model is rate-limiting requests right now. Please wait a little and try again."


class ModelMisconfigured(LLMError):
    user_message = (
        "The language model rejected the app's credentials or model name. An administrator needs to check "
        "OPENAI_API_KEY, OPENAI_BASE_URL and the model settings."
    )


class ModelNotFound(ModelMisconfigured):
    user_message = (
        "The model server does not have the model the app asks it for. An administrator needs to compare "
        "HYPERALIGN_CHAT_MODEL (and the safety and hypotheses models) with the models the server lists, or "
        "fetch the model (Ollama: ollama pull NAME); `hyperalign doctor` shows both."
    )


class QuotaExhausted(ModelMisconfigured):
    user_message = (
        "The model provider refused the request because the account's quota or credit is used up; waiting "
        "will not help. An administrator needs to check the provider account's billing and limits."
    )


class ModelBusy(ModelUnavailable):
    user_message = "The model server is busy or still loading the model. Please try again in a minute."


class ModelRefused(LLMError):
    user_message = "The model provider's content filter stopped this reply."


class ModelBadResponse(LLMError):
    user_message = "The language model returned something that is not a usable reply."


class StreamBroken(LLMError):
    user_message = "The connection to the language model broke while the reply was being written."


class ReplyTruncated(LLMError):
    user_message = "The reply was cut off by the model's token limit."


class PromptTooLong(LLMError):
    user_message = (
        "This message and the instructions it needs do not fit the model's context window. An administrator "
        "can raise the context size of the model (HYPERALIGN_CHAT_CONTEXT_TOKENS and the server's own setting)."
    )


class ReasoningOnly(LLMError):
    user_message = (
        "The model spent its whole answer thinking and wrote no reply. Please try again; if it keeps "
        "happening, an administrator can give the model a larger token limit or a model that thinks less."
    )


@dataclass(frozen=True)
class Completion:
    """A whole (non-streamed) answer and what it cost."""

    text: str
    model: str
    tokens_in: int
    tokens_out: int
    ms: float
    response_format: str  # json_schema | json_object | text: what the server accepted
    reasoning_tokens: int = 0  # of tokens_out, spent thinking (the server's count, else estimated)
    estimated: bool = False  # the server reported no usage: the counts are ours

    @property
    def spent(self) -> Spent:
        return Spent(self.tokens_in, self.tokens_out, self.reasoning_tokens, self.estimated)


@dataclass(frozen=True)
class ModelCall:
    """What one request to the model server cost, for the usage records (assistant/usage.py)."""

    purpose: str
    model: str
    user_id: int | None  # whose turn or job it served; None for calls of no one's (doctor, benchmarks)
    tokens_in: int
    tokens_out: int  # the reasoning tokens included
    reasoning_tokens: int
    estimated: bool  # the server reported no usage: the counts are ours (assistant.context, assistant.reasoning)
    ms: float
    outcome: str  # "ok", or the LLMError subclass the call failed with


Meter = Callable[[ModelCall], None]  # must not block: it is called on the event loop after every request


class Gateway(Protocol):
    label: str  # shown with every reply: which model wrote it
    offline: bool

    def stream(self, prompt: Prompt, *, purpose: Purpose, on_reasoning: OnReasoning | None = None,
               user_id: int | None = None) -> AsyncIterator[str]: ...

    async def complete(self, prompt: Prompt, *, purpose: Purpose, json_schema: dict | None = None,
                       user_id: int | None = None) -> Completion: ...

    async def close(self) -> None: ...


class OpenAIGateway:
    """Any OpenAI-compatible server through the official async client."""

    offline = False

    def __init__(
        self,
        *,
        api_key: str | None,
        base_url: str | None,
        models: dict[Purpose, str],
        windows: dict[Purpose, int],
        timeout: float,
        max_retries: int,
        thinking_opened: bool = False,
        meter: Meter | None = None,
    ) -> None:
        """`windows`: each purpose's context size in tokens, which every request is fitted to.
        `thinking_opened`: the models' template opens the thinking block, so answers start inside it.
        `meter`: told what every request cost, failed ones included."""
        # Local servers (Ollama, vLLM, llama.cpp) ignore the key, but the client insists on one.
        self._client = openai.AsyncOpenAI(
            api_key=api_key or "not-needed", base_url=base_url, timeout=timeout, max_retries=max_retries
        )
        self._models = dict(models)
        self._thinking_opened = thinking_opened
        self._meter = meter
        self._usage_streamed = True  # ask streams for their usage until the server refuses the option
        self._budgets = {purpose: budget_for(str(purpose), windows[purpose], counter_for(model))
                         for purpose, model in self._models.items()}
        # A model on a server of one's own is told how much it may write (the answer's room), so that
        # prompt and answer never overflow its window; OpenAI's models have their own output limits.
        self._capped = {purpose for purpose, model in self._models.items()
                        if base_url is not None and not is_openai_model(model)}
        self.label = self._models[Purpose.CHAT]

    def _fitted(self, prompt: Prompt, budget: Budget) -> list[dict[str, str]]:
        """The messages of a request; never more than the budget allows (counted only when the bytes
        alone do not show it)."""
        try:
            messages = list(prompt(budget) if callable(prompt) else prompt)
        except PromptTooLarge as exc:
            raise PromptTooLong(str(exc)) from exc
        if not budget.fits(messages):
            raise PromptTooLong(f"{budget.count(messages)} prompt tokens, {budget.limit} allowed")
        return messages

    def _retry(self, exc: openai.BadRequestError, prompt: Prompt, purpose: Purpose, budget: Budget,
               messages: Messages) -> Budget | None:
        """The budget of the one retry when the server said the prompt is too long for it and the prompt
        can be fitted again; else None."""
        if not callable(prompt):
            return None
        answer = budget.answer if purpose in self._capped else 0
        smaller = _retry_budget(exc, budget, budget.count(messages), answer)
        if smaller is not None:
            logger.info("llm purpose=%s model=%s: prompt too long for the server, retrying smaller",
                        purpose, self._models[purpose])
        return smaller

    async def stream(self, prompt: Prompt, *, purpose: Purpose, on_reasoning: OnReasoning | None = None,
                     user_id: int | None = None) -> AsyncIterator[str]:
        """Yield the reply's text as it arrives; raise an LLMError carrying any partial text.

        The prompt is fitted to the purpose's budget; a server that still says it is too long gets one
        retry, fitted smaller. A reasoning model's thinking, inline or in its own field, is never
        yielded: it goes to `on_reasoning` when one is given (assistant.reasoning). What the call cost
        goes to the meter, whatever its outcome: the server's usage when it streams it, else our counts."""
        model = self._models[purpose]
        budget = self._budgets[purpose]
        messages = self._fitted(prompt, budget)
        started, received, finish = time.perf_counter(), [], None
        splitter, thought = ThinkSplitter(opened=self._thinking_opened), 0
        usage, sent, outcome = None, False, "stopped"  # stopped: the reader closed the stream early or was cancelled
        response = None

        async def think(text: str) -> None:
            nonlocal thought
            thought += len(text)
            if text and on_reasoning is not None:
                await on_reasoning(text)

        try:
            try:
                try:
                    response = await self._send(model, messages, purpose, stream=True, **self._options(purpose, budget))
                except openai.BadRequestError as exc:
                    if (smaller := self._retry(exc, prompt, purpose, budget, messages)) is None:
                        raise
                    budget = smaller
                    messages = self._fitted(prompt, budget)
                    response = await self._send(model, messages, purpose, stream=True, **self._options(purpose, budget))
                sent = True
                async for chunk in response:
                    usage = chunk.usage or usage  # the last chunk's, when the server streams usage
                    if not chunk.choices:
                        continue
                    choice = chunk.choices[0]
                    if choice.delta:
                        await think(_reasoning_field(choice.delta))
                        split = splitter.feed(choice.delta.content or "")
                        await think(split.reasoning)
                        if split.reply:
                            received.append(split.reply)
                            yield split.reply
                    finish = choice.finish_reason or finish
                split = splitter.finish()
                await think(split.reasoning)
                if split.reply:
                    received.append(split.reply)
                    yield split.reply
            except LLMError:
                raise
            except Exception as exc:  # mapped, never swallowed: the caller gets a typed error
                raise _map_error(exc, partial="".join(received)) from exc
            if not "".join(received).strip() and finish != "content_filter":  # a provider refusal is named as one
                if thought:
                    raise ReasoningOnly(f"only thinking ({thought} characters), finish_reason={finish}")
                raise ModelBadResponse("the stream ended without any text")
            _check_finish(finish, partial="".join(received))
            outcome = "ok"
        except LLMError as exc:
            outcome = type(exc).__name__
            raise
        finally:
            if response is not None:
                # A reader that stopped early leaves the HTTP stream open; closed here, not by the garbage
                # collector at some later await (which raised "async generator already executing" there).
                with contextlib.suppress(Exception):
                    await response.close()
            ms = (time.perf_counter() - started) * 1000
            logger.info(
                "llm purpose=%s model=%s prompt_chars=%d chunks=%d chars=%d reasoning_chars=%d outcome=%s ms=%.0f",
                purpose, model, sum(len(m["content"]) for m in messages), len(received), sum(map(len, received)),
                thought, outcome, ms,
            )
            counter, reply = budget.counter, "".join(received)
            self._metered(purpose, user_id, lambda: _spent(usage, counter, messages, reply, thought) if sent
                          else _unanswered(counter, messages, outcome), ms, outcome)

    async def complete(self, prompt: Prompt, *, purpose: Purpose, json_schema: dict | None = None,
                       user_id: int | None = None) -> Completion:
        """One whole answer. With a schema: structured output where the server supports it, falling back
        to JSON mode and then to plain text when it answers 400 to the format (the caller validates).
        Fitted and retried smaller once, as `stream`; metered, as `stream`."""
        started = time.perf_counter()
        asked: list[Messages] = []  # what was sent, the last request last
        try:
            completion = await self._complete(prompt, purpose, json_schema, started, asked)
        except BaseException as exc:  # cancelled too (a deliberation's timeout): what it used was used
            outcome = type(exc).__name__ if isinstance(exc, LLMError) else "stopped"
            counter = self._budgets[purpose].counter
            spent = exc.spent if isinstance(exc, LLMError) and exc.spent != NOTHING_SPENT else None
            self._metered(purpose, user_id, lambda: spent or (_unanswered(counter, asked[-1], outcome) if asked
                                                              else NOTHING_SPENT),
                          (time.perf_counter() - started) * 1000, outcome)
            raise
        self._metered(purpose, user_id, lambda: completion.spent, completion.ms, "ok")
        return completion

    async def _complete(self, prompt: Prompt, purpose: Purpose, json_schema: dict | None, started: float,
                        asked: list[Messages]) -> Completion:
        model = self._models[purpose]
        budget = self._budgets[purpose]
        messages = self._fitted(prompt, budget)
        retried = False
        formats: list[tuple[str, ResponseFormat | None]] = [("text", None)]
        if json_schema is not None:
            schema = cast("JSONSchema", json_schema)  # {"name", "schema", "strict"}, as the callers build it
            formats = [("json_schema", {"type": "json_schema", "json_schema": schema}),
                       ("json_object", {"type": "json_object"}), ("text", None)]
        position = 0
        while position < len(formats):
            name, response_format = formats[position]
            asked.append(messages)
            try:
                response = await self._send(
                    model, messages, purpose, response_format=response_format if response_format is not None else openai.omit,
                    **self._options(purpose, budget),
                )
            except openai.BadRequestError as exc:
                if _too_long(exc):  # never taken for a format the server refuses
                    if retried or (smaller := self._retry(exc, prompt, purpose, budget, messages)) is None:
                        raise _map_error(exc, partial="") from exc
                    budget, retried = smaller, True
                    messages = self._fitted(prompt, budget)
                    continue
                if position + 1 < len(formats):
                    logger.info("llm purpose=%s model=%s: %s not supported, falling back", purpose, model, name)
                    position += 1
                    continue
                raise _map_error(exc, partial="") from exc
            except Exception as exc:
                raise _map_error(exc, partial="") from exc
            return _completion(response, model, name, started, budget.counter, messages,
                               thinking_opened=self._thinking_opened)
        raise AssertionError("unreachable")

    def _options(self, purpose: Purpose, budget: Budget) -> dict:
        return {"max_tokens": budget.answer} if purpose in self._capped else {}

    def _metered(self, purpose: Purpose, user_id: int | None, spending: Callable[[], Spent], ms: float,
                 outcome: str) -> None:
        """Tell the meter what a request used; `spending` is only called (and counts) when there is one."""
        if self._meter is None:
            return
        try:
            spent = spending()
            self._meter(ModelCall(str(purpose), self._models[purpose], user_id, spent.tokens_in, spent.tokens_out,
                                  spent.reasoning_tokens, spent.estimated, round(ms, 1), outcome))
        except Exception:  # a usage record must never cost the user their reply
            logger.exception("llm purpose=%s: the usage meter failed", purpose)

    async def _send(self, model: str, messages: Messages, purpose: Purpose, **options):  # noqa: ANN202
        async def send(**more):  # noqa: ANN202
            return await self._client.chat.completions.create(
                model=model, messages=_sdk_messages(messages), extra_headers={"X-Assistant-Purpose": str(purpose)},
                **options, **more,
            )

        if not options.get("stream") or not self._usage_streamed:
            return await send()
        try:
            # Servers that can (OpenAI, vLLM, llama.cpp, Ollama) end the stream with its usage; most
            # others ignore the field, and the few that refuse it (older Azure API versions) are asked
            # without it from then on: their usage is counted here.
            return await send(stream_options={"include_usage": True})
        except (openai.BadRequestError, openai.UnprocessableEntityError) as exc:
            if "stream_options" not in _said(exc)[0]:
                raise
        self._usage_streamed = False
        logger.info("llm purpose=%s model=%s: the server refuses stream_options; usage is counted here", purpose, model)
        return await send()

    async def close(self) -> None:
        await self._client.close()


def resolve(prompt: Prompt, budget: Budget | None = None) -> list[dict[str, str]]:
    """The messages of a prompt: as given, or fitted to `budget` (no limit when there is none)."""
    if not callable(prompt):
        return list(prompt)
    return list(prompt(budget or Budget(window=10**9, limit=10**9, answer=0, counter=counter_for("gpt-4o"))))


def _sdk_messages(messages: Messages) -> list[ChatCompletionMessageParam]:
    """Our role/content dicts as the SDK's message params: the same JSON, which the SDK types role by role."""
    return cast("list[ChatCompletionMessageParam]", list(messages))


def _check_finish(finish: str | None, *, partial: str) -> None:
    """Fail closed: a streamed reply is complete only when the server said it stopped on its own."""
    if finish == "content_filter":
        raise ModelRefused("finish_reason=content_filter", partial=partial)
    if finish == "length":
        raise ReplyTruncated("finish_reason=length", partial=partial)
    if finish is None:
        # The server died or closed the connection cleanly after some tokens: no finish, maybe no [DONE].
        raise StreamBroken("the stream ended without a finish reason", partial=partial)


def _completion(response, model: str, response_format: str, started: float, counter: TokenCounter,
                messages: Messages, *, thinking_opened: bool = False) -> Completion:
    if not response.choices:
        raise ModelBadResponse("no choices in the answer")
    choice = response.choices[0]
    text, thinking = strip_reasoning((choice.message.content or "") if choice.message else "", opened=thinking_opened)
    thinking += _reasoning_field(choice.message) if choice.message else ""
    spent = _spent(response.usage, counter, messages, text, len(thinking))
    if choice.finish_reason == "content_filter":
        raise ModelRefused("finish_reason=content_filter", spent=spent)
    if choice.finish_reason == "length":
        # Cut off: whatever JSON it holds may be a draft from the middle of a reasoning model's
        # thinking, not its conclusion. Nothing of it is parsed (fail closed).
        raise ReplyTruncated("finish_reason=length", spent=spent)
    if not text.strip():
        if thinking:
            raise ReasoningOnly(f"only thinking ({len(thinking)} characters)", spent=spent)
        raise ModelBadResponse("the answer was empty", spent=spent)
    return Completion(
        text=text, model=model, tokens_in=spent.tokens_in, tokens_out=spent.tokens_out,
        ms=(time.perf_counter() - started) * 1000, response_format=response_format,
        reasoning_tokens=spent.reasoning_tokens, estimated=spent.estimated,
    )


def _spent(usage: object, counter: TokenCounter, messages: Messages, answer: str, thinking_chars: int) -> Spent:
    """The server's usage where it reported any; else our count of the prompt and the answer (exact for
    OpenAI's models, else o200k without the fitting's margin) and four characters a token of thinking."""
    thinking = tokens_for_chars(thinking_chars)
    prompt_tokens, completion_tokens = getattr(usage, "prompt_tokens", 0), getattr(usage, "completion_tokens", 0)
    if isinstance(prompt_tokens, int) and isinstance(completion_tokens, int) and (prompt_tokens or completion_tokens):
        details = getattr(usage, "completion_tokens_details", None)
        stated = getattr(details, "reasoning_tokens", None)
        return Spent(prompt_tokens, completion_tokens, stated if isinstance(stated, int) and stated else thinking)
    raw = replace(counter, exact=True)  # what was used, not what fitting must allow for
    return Spent(raw.messages(messages), raw.count(answer) + thinking, thinking, estimated=True)


# How a request that brought back no answer ended, when the model had its prompt: it timed out or was
# abandoned (the user's stop, a deliberation's time limit) while the server worked on it.
_REACHED_THE_MODEL = {"stopped", "ModelTimeout", "StreamBroken"}


def _unanswered(counter: TokenCounter, messages: Messages, outcome: str) -> Spent:
    """What a request with no usage back used: its prompt, estimated, when the model had it; else nothing
    (refused with an error status, or never delivered)."""
    if outcome not in _REACHED_THE_MODEL:
        return NOTHING_SPENT
    return Spent(replace(counter, exact=True).messages(messages), estimated=True)


def _reasoning_field(part: object) -> str:
    """Thinking a server sent apart from the answer: `reasoning_content` (vLLM, llama.cpp, DeepSeek)
    or `reasoning` (Ollama, OpenRouter). The SDK keeps such extra fields as attributes."""
    for name in ("reasoning_content", "reasoning"):
        value = getattr(part, name, None)
        if isinstance(value, str) and value:
            return value
    return ""


# How servers say a prompt is too long: OpenAI ("maximum context length is N tokens",
# code context_length_exceeded), vLLM (the same words, or "maximum model length"), llama.cpp
# ("exceeds the available context size", exceed_context_size_error), LM Studio ("context length of
# only N tokens"). Ollama says nothing: it cuts the prompt's beginning, which fitting prevents.
_TOO_LONG = re.compile(r"context[_ ]length|context size|context window|maximum model length|max_model_len"
                       r"|exceed_context|too many tokens", re.I)
_WINDOW = re.compile(r"(?:maximum context length is|context length of only|maximum model length of)\s*(\d+)", re.I)
_PROMPT = re.compile(r"messages resulted in\s*(\d+)", re.I)  # OpenAI: the prompt alone
_ASKED = re.compile(r"you requested\s*(\d+)", re.I)  # vLLM, OpenAI: the prompt and the answer asked for


def _said(exc: openai.APIStatusError) -> tuple[str, dict]:
    """All a server said in its refusal, as text, and its error object (where numbers may be)."""
    body = exc.body if isinstance(exc.body, dict) else {}
    error = body.get("error")
    return " ".join(str(part) for part in (exc.message, exc.code, body) if part), error if isinstance(error, dict) else body


def _too_long(exc: openai.BadRequestError) -> bool:
    return bool(_TOO_LONG.search(_said(exc)[0]))


def _retry_budget(exc: openai.BadRequestError, budget: Budget, tokens: int, answer: int) -> Budget | None:
    """The smaller budget to retry with when the server said the prompt is too long, else None.
    `tokens`: our count of the refused prompt; `answer`: the max_tokens it was sent with (0: none).

    Where the server says its window and how many tokens it counted (vLLM, OpenAI, llama.cpp), the
    retry is fitted to that, scaled by how far its count and ours differ; else a quarter smaller."""
    if not _too_long(exc):
        return None
    said, detail = _said(exc)
    window = _integer(detail.get("n_ctx")) or _found(_WINDOW, said)
    counted = _integer(detail.get("n_prompt_tokens")) or _found(_PROMPT, said)
    if counted is None and (asked := _found(_ASKED, said)) is not None:
        counted = asked - answer
    smaller = budget.smaller(window)
    if window and counted and counted > 0:
        theirs = (window - budget.answer) * tokens / counted
        smaller = replace(smaller, limit=min(smaller.limit, int(theirs * 0.95)))
    return smaller if smaller.limit > 0 else None


def _integer(value: object) -> int | None:
    return value if isinstance(value, int) and value > 0 else None


def _found(pattern: re.Pattern[str], text: str) -> int | None:
    match = pattern.search(text)
    return int(match.group(1)) if match else None


def _map_error(exc: Exception, *, partial: str) -> LLMError:
    """Our error for what the server said: its status, and its error's `code` and `type` where they tell
    more (a spent quota is a 429 like a rate limit; a missing model a 404 like a wrong URL). The detail
    names them, never the server's message, which may quote the request."""
    detail = f"{type(exc).__name__}: {getattr(exc, 'status_code', '') or ''}".strip()
    said = _error_words(exc)
    if said:
        detail += f" ({said})"
    if isinstance(exc, openai.APITimeoutError):
        return ModelTimeout(detail, partial=partial)
    if isinstance(exc, openai.RateLimitError):
        quota = "insufficient_quota" in said  # OpenAI's code and type both say it
        return (QuotaExhausted if quota else ModelRateLimited)(detail, partial=partial)
    if isinstance(exc, openai.APIStatusError) and exc.status_code == 402:  # OpenRouter and others: no credits left
        return QuotaExhausted(detail, partial=partial)
    if isinstance(exc, openai.NotFoundError) and _names_missing_model(exc):
        return ModelNotFound(detail, partial=partial)
    if isinstance(exc, (openai.AuthenticationError, openai.PermissionDeniedError, openai.NotFoundError)):
        return ModelMisconfigured(detail, partial=partial)
    if isinstance(exc, openai.APIStatusError) and exc.status_code == 503:
        # Ollama's full queue, llama.cpp loading its model, OpenAI overloaded: all pass with time.
        return ModelBusy(detail, partial=partial)
    if isinstance(exc, openai.APIConnectionError):
        return StreamBroken(detail, partial=partial) if partial else ModelUnavailable(detail, partial=partial)
    if isinstance(exc, openai.InternalServerError):
        return ModelUnavailable(detail, partial=partial)
    if isinstance(exc, openai.BadRequestError) and _too_long(exc):
        return PromptTooLong(detail, partial=partial)
    if isinstance(exc, (openai.APIResponseValidationError, openai.BadRequestError, openai.UnprocessableEntityError,
                        ValueError)):  # the server refused the request's form, or answered out of form
        return ModelBadResponse(detail, partial=partial)
    if isinstance(exc, (httpx2.TransportError, openai.APIError)):
        return StreamBroken(detail, partial=partial) if partial else ModelUnavailable(detail, partial=partial)
    return ModelBadResponse(detail, partial=partial)


OFFLINE_LABEL = "offline model"

OFFLINE_NOTICE = "Offline mode: no language model is connected"

# The whole notice, once per conversation (the first reply, and again only once it has left the window).
OFFLINE_REPLY = f"""\
**{OFFLINE_NOTICE}**, so I can't write a real reply, and I won't pretend to.

What already works: your message is saved, this conversation is in the sidebar and can be resumed \
tomorrow, and everything you write here stays in your own account.

To connect a model, stop the app and start it again with one of:
- OpenAI: `OPENAI_API_KEY=sk-...`
- any OpenAI-compatible server (Ollama, vLLM, llama.cpp, LM Studio): \
`OPENAI_BASE_URL=http://localhost:11434/v1` and `HYPERALIGN_CHAT_MODEL=<model name>`

_(This reply comes from the built-in offline model, not from a language model.)_"""

# Every later reply of the conversation: the notice is on screen already, so one line that still says it.
OFFLINE_SHORT_REPLY = (f"_{OFFLINE_NOTICE}, so this is not a reply; your message is saved. For replies, restart "
                       "the app with `OPENAI_API_KEY` or `OPENAI_BASE_URL` set._")

OFFLINE_STARTER = f"{OFFLINE_NOTICE}. What works, and how to connect one?"


def offline_reply(messages: Messages) -> str:
    """The whole notice, unless the conversation the reply sees already holds an offline reply."""
    said = any(m.get("role") == "assistant" and OFFLINE_NOTICE in m.get("content", "") for m in messages)
    return OFFLINE_SHORT_REPLY if said else OFFLINE_REPLY


class OfflineModel:
    """The gateway used when no model is configured: honest, fixed text, streamed like a model's."""

    offline = True
    label = OFFLINE_LABEL

    async def stream(self, prompt: Prompt, *, purpose: Purpose, on_reasoning: OnReasoning | None = None,
                     user_id: int | None = None) -> AsyncIterator[str]:
        for line in offline_reply(resolve(prompt)).splitlines(keepends=True):
            yield line

    async def complete(self, prompt: Prompt, *, purpose: Purpose, json_schema: dict | None = None,
                       user_id: int | None = None) -> Completion:
        # Hypotheses need a language model; pretending would invent a profile. The style card needs none.
        raise ModelUnavailable("offline mode: no language model is connected")

    async def close(self) -> None:
        return None


# --- what the server said, and probing it (hyperalign doctor, serve's start) --------------------------

_MISSING_MODEL = re.compile(r"model_not_found|\bmodel\b.{0,200}?\b(?:not found|does not exist)", re.I | re.S)


def _error_words(exc: Exception) -> str:
    """The server's error `code` and `type`, which name the problem without quoting anything."""
    if not isinstance(exc, openai.APIStatusError):
        return ""
    return " ".join(f"{name}={value}" for name, value in (("code", exc.code), ("type", exc.type)) if value)


def _names_missing_model(exc: openai.APIStatusError) -> bool:
    """A 404 about the model (OpenAI, LM Studio: model_not_found; vLLM, Ollama: in words), not the URL."""
    return bool(_MISSING_MODEL.search(f"{exc.code} {exc.body} {exc.message}"))


# A tiny, valid call: a one-field object, the word JSON in the prompt (OpenAI's JSON mode wants it).
_PROBE_MESSAGES = [{"role": "user", "content": 'Reply with the JSON object {"ok": true} and nothing else.'}]
_PROBE_SCHEMA = {"name": "probe", "strict": True, "schema": {
    "type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"], "additionalProperties": False}}
_PROBE_FORMATS: list[tuple[str, ResponseFormat]] = [
    ("json_schema", {"type": "json_schema", "json_schema": cast("JSONSchema", _PROBE_SCHEMA)}),
    ("json_object", {"type": "json_object"}),
]


@dataclass(frozen=True)
class ServerProbe:
    """What one model server said about one model. `None`: not asked, or it did not get that far."""

    reachable: bool
    models: tuple[str, ...] = ()  # the ids GET /models lists
    listed: bool | None = None
    server: str = ""  # vllm | llamacpp | ollama, where the server tells; else ""
    window: int | None = None  # the context window it says it runs the model with
    window_source: str = ""  # where it said so
    streams: bool | None = None
    usage_streamed: bool | None = None  # a stream asked for its usage (stream_options) ended with it
    structured: str | None = None  # json_schema | json_object | text: the first it took
    latency_ms: float | None = None  # of the tiny streamed call, start to finish
    problem: LLMError | None = None  # why it stopped, as the app would report it


async def probe(*, api_key: str | None, base_url: str | None, model: str, timeout: float,
                calls: bool = True) -> ServerProbe:
    """Ask the server what it serves and what it says of its window; with `calls`, also stream a tiny
    answer (a few tokens) and find the first structured-output mode it takes. Never raises an LLMError:
    the failure is in `problem`."""
    client = openai.AsyncOpenAI(api_key=api_key or "not-needed", base_url=base_url, timeout=timeout, max_retries=0,
                                default_headers={"X-Assistant-Purpose": "doctor"})
    try:
        try:
            listing = await client.models.list()
        except Exception as exc:  # mapped: the report says why in the app's own words
            mapped = _map_error(exc, partial="")
            return ServerProbe(reachable=not isinstance(exc, openai.APIConnectionError), problem=mapped)
        models = tuple(entry.id for entry in listing.data)
        server, window, source = "", None, ""
        if base_url is not None:  # a server of one's own: OpenAI's own API states no window
            async with httpx2.AsyncClient(timeout=timeout, headers={"Authorization": f"Bearer {client.api_key}"}) as http:
                server, window, source = await _stated_window(http, base_url, listing.data, model)
        found = ServerProbe(reachable=True, models=models, listed=lists(models, model), server=server, window=window,
                            window_source=source)
        if not calls:
            return found
        # OpenAI's newer models refuse max_tokens; servers of one's own may not know its successor.
        return await _tiny_calls(client, model, found, modern=base_url is None or is_openai_model(model))
    finally:
        await client.close()


def lists(models: Sequence[str], model: str) -> bool:
    """Whether a model list names the model; Ollama lists "llama3.2:latest" for a pull of "llama3.2"."""
    return model in models or f"{model}:latest" in models or model.removesuffix(":latest") in models


async def _stated_window(http: httpx2.AsyncClient, base_url: str, entries: list, model: str,
                         ) -> tuple[str, int | None, str]:
    """Which server this is and the window it runs the model with, where it says: vLLM in its model list
    (max_model_len), llama.cpp in GET /props (default_generation_settings.n_ctx). Ollama says only the
    model's trained maximum (/api/show), not the num_ctx it runs with, so for it: no window."""
    for entry in entries:
        if entry.id == model and isinstance(stated := getattr(entry, "max_model_len", None), int):
            return "vllm", stated, "vLLM /v1/models max_model_len"
    root = base_url.rstrip("/").removesuffix("/v1")  # both live beside /v1, at the server's root
    props = await _get_json(http, f"{root}/props")
    settings = props.get("default_generation_settings") if isinstance(props, dict) else None
    n_ctx = (settings or {}).get("n_ctx") if isinstance(settings, dict) else None
    if not isinstance(n_ctx, int) and isinstance(props, dict):
        n_ctx = props.get("n_ctx")  # newer builds may say it at the top
    if isinstance(n_ctx, int) and n_ctx > 0:
        return "llamacpp", n_ctx, "llama.cpp /props n_ctx"
    version = await _get_json(http, f"{root}/api/version")
    if isinstance(version, dict) and "version" in version:
        return "ollama", None, ""
    return "", None, ""


async def _get_json(http: httpx2.AsyncClient, url: str) -> object:
    """GET a route beside the OpenAI ones; None when there is none (most servers have neither)."""
    try:
        response = await http.get(url)
        return response.json() if response.status_code == 200 else None
    except (httpx2.HTTPError, ValueError):
        return None


async def _tiny_calls(client: openai.AsyncOpenAI, model: str, found: ServerProbe, *, modern: bool) -> ServerProbe:
    """`modern`: cap the answer with max_completion_tokens (OpenAI), else with max_tokens."""

    def cap(tokens: int) -> dict:
        return {"max_completion_tokens": tokens} if modern else {"max_tokens": tokens}

    async def streamed(**more) -> list:
        stream = await client.chat.completions.create(model=model, messages=_sdk_messages(_PROBE_MESSAGES),
                                                      stream=True, extra_body=cap(8), **more)
        return [chunk async for chunk in stream]

    started = time.perf_counter()
    try:
        try:  # as the gateway asks: with its usage at the end
            chunks = await streamed(stream_options={"include_usage": True})
        except (openai.BadRequestError, openai.UnprocessableEntityError) as exc:
            if "stream_options" not in _said(exc)[0]:
                raise
            started, chunks = time.perf_counter(), await streamed()  # the gateway asks again without, too
    except Exception as exc:
        return replace(found, streams=False, problem=_map_error(exc, partial=""))
    found = replace(found, streams=bool(chunks), usage_streamed=any(getattr(c, "usage", None) for c in chunks),
                    latency_ms=(time.perf_counter() - started) * 1000)
    for name, response_format in _PROBE_FORMATS:
        try:
            await client.chat.completions.create(model=model, messages=_sdk_messages(_PROBE_MESSAGES),
                                                 response_format=response_format, extra_body=cap(16))
            return replace(found, structured=name)
        except openai.BadRequestError:
            continue  # refused: the next mode, as the gateway falls back
        except Exception as exc:
            return replace(found, problem=_map_error(exc, partial=""))
    return replace(found, structured="text")
