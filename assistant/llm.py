"""The one LLM gateway: the only importer of `openai`, and the built-in offline model.

Every call names its purpose (chat, safety, hypotheses): the purpose picks the model from the
settings and travels as the `X-Assistant-Purpose` header, so logs and test servers can tell
calls apart without reading prompts. Provider errors leave this module only as `LLMError`
subclasses whose `user_message` is safe to show in the chat.
"""

from __future__ import annotations

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

from assistant.context import Budget, Fit, PromptTooLarge, budget_for, counter_for, is_openai_model
from assistant.reasoning import ThinkSplitter, estimate_tokens, strip_reasoning

logger = logging.getLogger(__name__)

Messages = Sequence[dict[str, str]]
Prompt = Messages | Fit  # fixed messages, or a function that fits them to a budget
OnReasoning = Callable[[str], Awaitable[None]]


class Purpose(StrEnum):
    CHAT = "chat"
    SAFETY = "safety"
    HYPOTHESES = "hypotheses"


class LLMError(Exception):
    """A model call failed. `user_message` says what happened in words fit for the chat."""

    user_message = "The language model failed to answer."

    def __init__(self, detail: str = "", *, partial: str = "") -> None:
        super().__init__(detail or self.user_message)
        self.partial = partial  # text already streamed when the failure happened


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


class Gateway(Protocol):
    label: str  # shown with every reply: which model wrote it
    offline: bool

    def stream(self, prompt: Prompt, *, purpose: Purpose, on_reasoning: OnReasoning | None = None,
               ) -> AsyncIterator[str]: ...

    async def complete(self, prompt: Prompt, *, purpose: Purpose, json_schema: dict | None = None) -> Completion: ...

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
    ) -> None:
        """`windows`: each purpose's context size in tokens, which every request is fitted to.
        `thinking_opened`: the models' template opens the thinking block, so answers start inside it."""
        # Local servers (Ollama, vLLM, llama.cpp) ignore the key, but the client insists on one.
        self._client = openai.AsyncOpenAI(
            api_key=api_key or "not-needed", base_url=base_url, timeout=timeout, max_retries=max_retries
        )
        self._models = dict(models)
        self._thinking_opened = thinking_opened
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

    def _limits(self, purpose: Purpose, budget: Budget) -> dict:
        return {"max_tokens": budget.answer} if purpose in self._capped else {}

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
                     ) -> AsyncIterator[str]:
        """Yield the reply's text as it arrives; raise an LLMError carrying any partial text.

        The prompt is fitted to the purpose's budget; a server that still says it is too long gets one
        retry, fitted smaller. A reasoning model's thinking, inline or in its own field, is never
        yielded: it goes to `on_reasoning` when one is given (assistant.reasoning)."""
        model = self._models[purpose]
        budget = self._budgets[purpose]
        messages = self._fitted(prompt, budget)
        started, received, finish = time.perf_counter(), [], None
        splitter, thought = ThinkSplitter(opened=self._thinking_opened), 0

        async def think(text: str) -> None:
            nonlocal thought
            thought += len(text)
            if text and on_reasoning is not None:
                await on_reasoning(text)

        try:
            try:
                response = await self._send(model, messages, purpose, stream=True, **self._limits(purpose, budget))
            except openai.BadRequestError as exc:
                if (smaller := self._retry(exc, prompt, purpose, budget, messages)) is None:
                    raise
                messages = self._fitted(prompt, smaller)
                response = await self._send(model, messages, purpose, stream=True, **self._limits(purpose, smaller))
            async for chunk in response:
                if not chunk.choices:
                    continue  # e.g. the usage chunk
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
        finally:
            logger.info(
                "llm purpose=%s model=%s prompt_chars=%d chunks=%d chars=%d reasoning_chars=%d ms=%.0f", purpose, model,
                sum(len(m["content"]) for m in messages), len(received), sum(map(len, received)), thought,
                (time.perf_counter() - started) * 1000,
            )
        if not "".join(received).strip() and finish != "content_filter":  # a provider refusal is named as one
            if thought:
                raise ReasoningOnly(f"only thinking ({thought} characters), finish_reason={finish}")
            raise ModelBadResponse("the stream ended without any text")
        _check_finish(finish, partial="".join(received))

    async def complete(self, prompt: Prompt, *, purpose: Purpose, json_schema: dict | None = None) -> Completion:
        """One whole answer. With a schema: structured output where the server supports it, falling back
        to JSON mode and then to plain text when it answers 400 to the format (the caller validates).
        Fitted and retried smaller once, as `stream`."""
        model = self._models[purpose]
        budget = self._budgets[purpose]
        messages = self._fitted(prompt, budget)
        retried = False
        formats: list[tuple[str, ResponseFormat | None]] = [("text", None)]
        if json_schema is not None:
            schema = cast("JSONSchema", json_schema)  # {"name", "schema", "strict"}, as the callers build it
            formats = [("json_schema", {"type": "json_schema", "json_schema": schema}),
                       ("json_object", {"type": "json_object"}), ("text", None)]
        started = time.perf_counter()
        position = 0
        while position < len(formats):
            name, response_format = formats[position]
            try:
                response = await self._send(
                    model, messages, purpose, response_format=response_format if response_format is not None else openai.omit,
                    **self._limits(purpose, budget),
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
            return _completion(response, model, name, started, thinking_opened=self._thinking_opened)
        raise AssertionError("unreachable")

    async def _send(self, model: str, messages: Messages, purpose: Purpose, **options):  # noqa: ANN202
        return await self._client.chat.completions.create(
            model=model, messages=_sdk_messages(messages), extra_headers={"X-Assistant-Purpose": str(purpose)},
            **options,
        )

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


def _completion(response, model: str, response_format: str, started: float, *, thinking_opened: bool = False,
                ) -> Completion:
    if not response.choices:
        raise ModelBadResponse("no choices in the answer")
    choice = response.choices[0]
    if choice.finish_reason == "content_filter":
        raise ModelRefused("finish_reason=content_filter")
    if choice.finish_reason == "length":
        # Cut off: whatever JSON it holds may be a draft from the middle of a reasoning model's
        # thinking, not its conclusion. Nothing of it is parsed (fail closed).
        raise ReplyTruncated("finish_reason=length")
    text, thinking = strip_reasoning((choice.message.content or "") if choice.message else "", opened=thinking_opened)
    thinking += _reasoning_field(choice.message) if choice.message else ""
    if not text.strip():
        if thinking:
            raise ReasoningOnly(f"only thinking ({len(thinking)} characters)")
        raise ModelBadResponse("the answer was empty")
    usage = response.usage
    details = getattr(usage, "completion_tokens_details", None) if usage else None
    return Completion(
        text=text, model=model, tokens_in=usage.prompt_tokens if usage else 0,
        tokens_out=usage.completion_tokens if usage else 0, ms=(time.perf_counter() - started) * 1000,
        response_format=response_format,
        reasoning_tokens=(getattr(details, "reasoning_tokens", None) or estimate_tokens(thinking)) if thinking else 0,
    )


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


def _said(exc: openai.BadRequestError) -> tuple[str, dict]:
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
    detail = f"{type(exc).__name__}: {getattr(exc, 'status_code', '') or ''}".strip()
    if isinstance(exc, openai.APITimeoutError):
        return ModelTimeout(detail, partial=partial)
    if isinstance(exc, openai.RateLimitError):
        return ModelRateLimited(detail, partial=partial)
    if isinstance(exc, (openai.AuthenticationError, openai.PermissionDeniedError, openai.NotFoundError)):
        return ModelMisconfigured(detail, partial=partial)
    if isinstance(exc, openai.APIConnectionError):
        return StreamBroken(detail, partial=partial) if partial else ModelUnavailable(detail, partial=partial)
    if isinstance(exc, openai.InternalServerError):
        return ModelUnavailable(detail, partial=partial)
    if isinstance(exc, openai.BadRequestError) and _too_long(exc):
        return PromptTooLong(detail, partial=partial)
    if isinstance(exc, (openai.APIResponseValidationError, openai.BadRequestError, ValueError)):
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
                     ) -> AsyncIterator[str]:
        for line in offline_reply(resolve(prompt)).splitlines(keepends=True):
            yield line

    async def complete(self, prompt: Prompt, *, purpose: Purpose, json_schema: dict | None = None) -> Completion:
        # Hypotheses need a language model; pretending would invent a profile. The style card needs none.
        raise ModelUnavailable("offline mode: no language model is connected")

    async def close(self) -> None:
        return None
