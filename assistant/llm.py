"""The one LLM gateway: the only importer of `openai`, and the built-in offline model.

Every call names its purpose (chat, safety, hypotheses): the purpose picks the model from the
settings and travels as the `X-Assistant-Purpose` header, so logs and test servers can tell
calls apart without reading prompts. Provider errors leave this module only as `LLMError`
subclasses whose `user_message` is safe to show in the chat.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, cast

import httpx2
import openai
from openai.types.chat import ChatCompletionMessageParam
from openai.types.chat.completion_create_params import ResponseFormat
from openai.types.shared_params.response_format_json_schema import JSONSchema

from assistant.reasoning import ThinkSplitter, estimate_tokens, strip_reasoning

logger = logging.getLogger(__name__)

Messages = Sequence[dict[str, str]]
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

    def stream(self, messages: Messages, *, purpose: Purpose, on_reasoning: OnReasoning | None = None,
               ) -> AsyncIterator[str]: ...

    async def complete(self, messages: Messages, *, purpose: Purpose, json_schema: dict | None = None) -> Completion: ...

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
        timeout: float,
        max_retries: int,
    ) -> None:
        # Local servers (Ollama, vLLM, llama.cpp) ignore the key, but the client insists on one.
        self._client = openai.AsyncOpenAI(
            api_key=api_key or "not-needed", base_url=base_url, timeout=timeout, max_retries=max_retries
        )
        self._models = dict(models)
        self.label = self._models[Purpose.CHAT]

    async def stream(self, messages: Messages, *, purpose: Purpose, on_reasoning: OnReasoning | None = None,
                     ) -> AsyncIterator[str]:
        """Yield the reply's text as it arrives; raise an LLMError carrying any partial text.

        A reasoning model's thinking, inline or in its own field, is never yielded: it goes to
        `on_reasoning` when one is given (assistant.reasoning)."""
        model = self._models[purpose]
        started, received, finish = time.perf_counter(), [], None
        splitter, thought = ThinkSplitter(), 0

        async def think(text: str) -> None:
            nonlocal thought
            thought += len(text)
            if text and on_reasoning is not None:
                await on_reasoning(text)

        try:
            response = await self._client.chat.completions.create(
                model=model,
                messages=_sdk_messages(messages),
                stream=True,
                extra_headers={"X-Assistant-Purpose": str(purpose)},
            )
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
                "llm purpose=%s model=%s chunks=%d chars=%d reasoning_chars=%d ms=%.0f",
                purpose, model, len(received), sum(map(len, received)), thought, (time.perf_counter() - started) * 1000,
            )
        if not "".join(received).strip() and finish != "content_filter":  # a provider refusal is named as one
            if thought:
                raise ReasoningOnly(f"only thinking ({thought} characters), finish_reason={finish}")
            raise ModelBadResponse("the stream ended without any text")
        _check_finish(finish, partial="".join(received))

    async def complete(self, messages: Messages, *, purpose: Purpose, json_schema: dict | None = None) -> Completion:
        """One whole answer. With a schema: structured output where the server supports it, falling back
        to JSON mode and then to plain text when it answers 400 to the format (the caller validates)."""
        model = self._models[purpose]
        formats: list[tuple[str, ResponseFormat | None]] = [("text", None)]
        if json_schema is not None:
            schema = cast("JSONSchema", json_schema)  # {"name", "schema", "strict"}, as the callers build it
            formats = [("json_schema", {"type": "json_schema", "json_schema": schema}),
                       ("json_object", {"type": "json_object"}), ("text", None)]
        started = time.perf_counter()
        for position, (name, response_format) in enumerate(formats):
            try:
                response = await self._client.chat.completions.create(
                    model=model, messages=_sdk_messages(messages), extra_headers={"X-Assistant-Purpose": str(purpose)},
                    response_format=response_format if response_format is not None else openai.omit,
                )
            except openai.BadRequestError as exc:
                if position + 1 < len(formats):
                    logger.info("llm purpose=%s model=%s: %s not supported, falling back", purpose, model, name)
                    continue
                raise _map_error(exc, partial="") from exc
            except Exception as exc:
                raise _map_error(exc, partial="") from exc
            return _completion(response, model, name, started)
        raise AssertionError("unreachable")

    async def close(self) -> None:
        await self._client.close()


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


def _completion(response, model: str, response_format: str, started: float) -> Completion:
    if not response.choices:
        raise ModelBadResponse("no choices in the answer")
    choice = response.choices[0]
    if choice.finish_reason == "content_filter":
        raise ModelRefused("finish_reason=content_filter")
    text, thinking = strip_reasoning((choice.message.content or "") if choice.message else "")
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

    async def stream(self, messages: Messages, *, purpose: Purpose, on_reasoning: OnReasoning | None = None,
                     ) -> AsyncIterator[str]:
        for line in offline_reply(messages).splitlines(keepends=True):
            yield line

    async def complete(self, messages: Messages, *, purpose: Purpose, json_schema: dict | None = None) -> Completion:
        # Hypotheses need a language model; pretending would invent a profile. The style card needs none.
        raise ModelUnavailable("offline mode: no language model is connected")

    async def close(self) -> None:
        return None
