"""A loopback OpenAI-compatible server for tests: scripted per purpose, recording every request.

The real `openai` client talks to it over HTTP, so serialisation, streaming (SSE), retries,
timeouts and our error mapping all run for real. `use("vllm")` (or openai, llamacpp, ollama, lmstudio)
makes it answer as that server does, following its public documentation (`ServerMode` below):
the response formats it takes and how it refuses the others, its error bodies, a missing model, an
overload, usage in the stream, extra fields in chunks, what GET /v1/models and /props say. Replies are scripted per purpose (the
`X-Assistant-Purpose` header the gateway sends); a call with nothing scripted is answered with
HTTP 500 and remembered in `unscripted`. The `fake_llm` fixture fails a test for either mistake in its
script: a call nobody scripted, or a scripted reply nobody asked for (`problems()`); a reply left over
means the code under test made fewer calls than the test says.
"""

from __future__ import annotations

import json
import math
import socket
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# The context windows the tests' gateways are built with: a small local model's.
WINDOWS = {purpose: 8_192 for purpose in ("chat", "safety", "hypotheses")}


@dataclass
class Reply:
    """One scripted answer."""

    text: str = ""
    status: int = 200
    delay: float = 0.0  # seconds before answering at all (longer than the client timeout = timeout)
    chunk_delay: float = 0.0  # seconds between streamed chunks
    break_after: int | None = None  # close the connection after this many content chunks
    finish_reason: str | None = "stop"  # None: the stream ends without a final chunk (a server that died)
    done: bool = True  # send `data: [DONE]` at the end of a stream
    headers: dict[str, str] = field(default_factory=dict)
    chunks: list[str] | None = None  # how the text is split when streamed; default: by words
    # Thinking sent apart from the answer, in this field (vLLM/llama.cpp: reasoning_content; Ollama:
    # reasoning), streamed word by word before the answer.
    reasoning: str = ""
    reasoning_field: str = "reasoning_content"
    # The server's own answer instead of a reply: "busy", "rate_limited", "quota" (as its mode says them).
    failure: str | None = None
    usage: dict | None = None  # the usage the server reports; default: 1 token in, 1 out

    def pieces(self) -> list[str]:
        if self.chunks is not None:
            return self.chunks
        words = self.text.split(" ")
        return [w if i == 0 else " " + w for i, w in enumerate(words)] if self.text else []


@dataclass
class Recorded:
    purpose: str
    path: str
    body: dict
    headers: dict[str, str]


Responder = Callable[[dict], "Reply | str"]  # computes a reply from the request body (a model that reads)


# How servers refuse a prompt longer than the model's window, from their documentation and code:
# vLLM counts prompt plus max_tokens against --max-model-len; llama.cpp the prompt against -c;
# OpenAI the prompt against the model's window; Ollama refuses nothing and drops the prompt's start.
TOO_LONG = {
    "vllm": lambda window, asked: {
        "object": "error", "type": "BadRequestError", "param": None, "code": 400,
        "message": f"This model's maximum context length is {window} tokens. However, you requested {asked} "
                   "tokens. Please reduce the length of the messages or completion."},
    "llamacpp": lambda window, asked: {"error": {
        "code": 400, "type": "exceed_context_size_error", "n_prompt_tokens": asked, "n_ctx": window,
        "message": "the request exceeds the available context size, try increasing it"}},
    "openai": lambda window, asked: {"error": {
        "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded",
        "message": f"This model's maximum context length is {window} tokens. However, you requested {asked} "
                   "tokens. Please reduce the length of the messages or completion."}},
}


# --- server modes -------------------------------------------------------------------------------
# How each real server differs, as data, from its public documentation and source (see the notes
# beside each). A failure is (HTTP status, JSON body); `None` where the server has no such answer.

Failure = tuple[int, "dict | str"]


def _openai_error(message: str, type_: str, code: str | None, param: str | None = None) -> dict:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def _vllm_error(status: int, message: str, type_: str) -> dict:
    # vLLM's ErrorResponse since 0.10 (`{"error": ErrorInfo}`); `code` is the HTTP status, an int.
    # Before, the same fields sat at the top level with "object": "error" (as TOO_LONG["vllm"] above).
    return {"error": {"message": message, "type": type_, "param": None, "code": status}}


def _llamacpp_error(status: int, message: str, type_: str) -> dict:
    # tools/server: format_error_response() -> {"code", "message", "type"} under "error".
    return {"error": {"code": status, "message": message, "type": type_}}


def _ollama_error(status: int, message: str) -> dict:
    # ollama/openai/openai.go NewError: type by status, `code` always null.
    type_ = {400: "invalid_request_error", 404: "not_found_error"}.get(status, "api_error")
    return {"error": {"message": message, "type": type_, "param": None, "code": None}}


@dataclass(frozen=True)
class ServerMode:
    """What one server does differently. `formats`: the response_format types it takes (a request
    without one is always taken); `refuse_format(kind, body)`: its answer to a format it refuses, or
    None to take it. `failures`: its answers to a missing model, overload, rate limit and spent
    quota, each from the model name. `streams_usage`: a final chunk with `choices: []` and `usage`
    when the request asks with `stream_options.include_usage`. The extras are fields it adds to
    every chunk, to each chunk's choice, and to the last chunk. `window_field`: where it states the
    context window it runs the model with ("max_model_len" in /v1/models, "props" for GET /props)."""

    name: str
    formats: frozenset[str]
    refuse_format: Callable[[str, dict], Failure | None]
    failures: dict[str, Callable[[str], Failure]]
    streams_usage: bool = True
    chunk_extras: dict = field(default_factory=dict)
    choice_extras: dict = field(default_factory=dict)
    last_extras: dict = field(default_factory=dict)
    owned_by: str = "tests"
    window_field: str | None = None
    serves_any_name: bool = False  # answers whatever model a request names (llama.cpp's one model)
    version_route: str | None = None  # a root route that names the server (Ollama: /api/version)
    # Its answer to a request that holds `stream_options` at all (Azure OpenAI before api-version
    # 2024-09-01-preview: 400 "Unrecognized request argument supplied"; strict servers: 422), or None.
    refuse_stream_options: Failure | None = None

    def refusal(self, body: dict) -> Failure | None:
        """The server's answer to the request's response_format or stream options, when it refuses them."""
        if "stream_options" in body and self.refuse_stream_options is not None:
            return self.refuse_stream_options
        kind = (body.get("response_format") or {}).get("type")
        if not kind or kind == "text":
            return None
        if kind not in self.formats:
            return self.refuse_format(kind, body)
        if self.name == "openai" and kind == "json_object" and "json" not in json.dumps(body.get("messages")).lower():
            # OpenAI's JSON mode refuses a prompt that never says "JSON" (a known trap of the fallback).
            return 400, _openai_error("'messages' must contain the word 'json' in some form, to use "
                                      "'response_format' of type 'json_object'.", "invalid_request_error",
                                      None, "messages")
        return None


OPENAI = ServerMode(
    # platform.openai.com/docs/guides/error-codes and the chat streaming reference: every chunk carries
    # system_fingerprint, service_tier and (since 2025) an `obfuscation` padding string; 404
    # model_not_found; 429 rate_limit_exceeded vs insufficient_quota (waiting does not help); 503 overloaded.
    name="openai",
    formats=frozenset({"json_schema", "json_object"}),
    refuse_format=lambda kind, body: (400, _openai_error(
        f"Invalid value: '{kind}'. Supported values are: 'json_object', 'json_schema', and 'text'.",
        "invalid_request_error", "invalid_value", "response_format.type")),
    failures={
        "unknown_model": lambda model: (404, _openai_error(
            f"The model `{model}` does not exist or you do not have access to it.", "invalid_request_error",
            "model_not_found")),
        "busy": lambda model: (503, _openai_error(
            "The engine is currently overloaded, please try again later.", "server_error", None)),
        "rate_limited": lambda model: (429, _openai_error(
            f"Rate limit reached for {model} on requests per min (RPM): Limit 3, Used 3, Requested 1.",
            "requests", "rate_limit_exceeded")),
        "quota": lambda model: (429, _openai_error(
            "You exceeded your current quota, please check your plan and billing details.",
            "insufficient_quota", "insufficient_quota")),
    },
    chunk_extras={"system_fingerprint": "fp_fake", "service_tier": "default", "obfuscation": "Xq3v"},
    choice_extras={"logprobs": None},
    owned_by="openai",
)

VLLM = ServerMode(
    # docs.vllm.ai OpenAI-compatible server: structured outputs take json_schema and json_object;
    # /v1/models states max_model_len; chunks carry logprobs and stop_reason; a model it does not serve
    # is a 404 NotFoundError. It queues rather than refuses, so no overload answer is modelled.
    name="vllm",
    formats=frozenset({"json_schema", "json_object", "structural_tag"}),
    refuse_format=lambda kind, body: (400, _vllm_error(
        400, f"1 validation error: response_format.type: Input should be 'text', 'json_object', "
             f"'json_schema' or 'structural_tag' (got {kind!r})", "BadRequestError")),
    failures={
        "unknown_model": lambda model: (404, _vllm_error(404, f"The model `{model}` does not exist.", "NotFoundError")),
    },
    choice_extras={"logprobs": None, "stop_reason": None},
    owned_by="vllm",
    window_field="max_model_len",
)

LLAMACPP = ServerMode(
    # llama.cpp tools/server/README.md and server-common.cpp: response_format text | json_object |
    # json_schema, anything else "must be one of ..."; one model, whatever name a request gives; GET
    # /props states default_generation_settings.n_ctx; /health and requests answer 503 "Loading model"
    # (unavailable_error) until the model is loaded; the last chunk carries `timings`.
    name="llamacpp",
    formats=frozenset({"json_schema", "json_object"}),
    refuse_format=lambda kind, body: (400, _llamacpp_error(
        400, f'response_format type must be one of "text" or "json_object", but got: {kind}', "invalid_request_error")),
    failures={
        "busy": lambda model: (503, _llamacpp_error(503, "Loading model", "unavailable_error")),
    },
    chunk_extras={"system_fingerprint": "b6200-fake"},
    last_extras={"timings": {"prompt_n": 5, "prompt_ms": 12.5, "predicted_n": 3, "predicted_ms": 40.1,
                             "predicted_per_second": 74.8}},
    owned_by="llamacpp",
    window_field="props",
    serves_any_name=True,
)

# llama.cpp builds before json_schema support (2024) refused it with the same message: the gateway
# falls back to json_object, which they took.
LLAMACPP_OLD = replace(LLAMACPP, name="llamacpp-old", formats=frozenset({"json_object"}))

OLLAMA = ServerMode(
    # docs.ollama.com/api/openai-compatibility and ollama/openai/openai.go: response_format json_object
    # ("json") and json_schema (its schema), other types ignored; stream_options.include_usage honoured;
    # every chunk has system_fingerprint "fp_ollama" and thinking in `reasoning`; errors are
    # {"error": {message, type, param, code: null}}; a model not pulled: 404 `model "x" not found, try
    # pulling it first`; a full queue (OLLAMA_MAX_QUEUE): 503 "server busy ... maximum pending requests
    # exceeded". /v1/models says no window (GET /api/show gives the trained one, not num_ctx).
    name="ollama",
    formats=frozenset({"json_schema", "json_object"}),
    refuse_format=lambda kind, body: None,  # unknown types are ignored: plain text
    failures={
        "unknown_model": lambda model: (404, _ollama_error(404, f'model "{model}" not found, try pulling it first')),
        "busy": lambda model: (503, _ollama_error(503, "server busy, please try again.  maximum pending requests exceeded")),
    },
    chunk_extras={"system_fingerprint": "fp_ollama"},
    owned_by="library",
    version_route="/api/version",
)

LMSTUDIO = ServerMode(
    # lmstudio.ai/docs (structured output: json_schema) and its bug tracker (#189, #307): json_object is
    # refused with a bare string error, "'response_format.type' must be 'json_schema' or 'text'"; a model
    # it does not have: 404 model_not_found (OpenAI's shape); usage streamed only when asked (#713).
    name="lmstudio",
    formats=frozenset({"json_schema"}),
    refuse_format=lambda kind, body: (400, {"error": "'response_format.type' must be 'json_schema' or 'text'"}),
    failures={
        "unknown_model": lambda model: (404, _openai_error(
            f'Model "{model}" not found. Please specify a valid model.', "invalid_request_error", "model_not_found",
            "model")),
    },
    choice_extras={"logprobs": None},
    owned_by="organization_owner",
)

SERVERS = {mode.name: mode for mode in (OPENAI, VLLM, LLAMACPP, LLAMACPP_OLD, OLLAMA, LMSTUDIO)}
MODES = ("openai", "vllm", "llamacpp", "ollama", "lmstudio")  # one per real server, for parametrised tests


class FakeLLM:
    def __init__(self) -> None:
        # A context window the fake enforces as `window_style` does ("ollama": accept, but note the
        # overflow in `overflowed`), counting o200k_base tokens times `token_scale` (a denser tokenizer).
        self.window: int | None = None
        self.window_style = "vllm"
        self.token_scale = 1.0
        self.overflowed: list[Recorded] = []
        # The server's behaviour (None: the plain fake, OpenAI's shapes) and the models it serves
        # (None: any name, listed as "fake-model"); a name it does not serve gets its mode's 404.
        self.mode: ServerMode | None = None
        self.models: list[str] | None = None
        self._scripts: dict[str, deque[Reply]] = defaultdict(deque)
        self._responders: dict[str, Responder] = {}
        self.requests: list[Recorded] = []
        self.unscripted: list[Recorded] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def use(self, mode: str | ServerMode) -> FakeLLM:
        """Answer as the named server does (SERVERS), or as a variant of one built with `replace`."""
        self.mode = SERVERS[mode] if isinstance(mode, str) else mode
        if self.mode.name in TOO_LONG or self.mode.name == "ollama":
            self.window_style = self.mode.name
        return self

    def stated_window(self) -> int:
        """The context window the server says it runs the model with (vLLM, llama.cpp)."""
        return self.window or 32_768

    def failure(self, name: str, model: str) -> Failure | None:
        """The mode's answer for `name` (unknown_model, busy, rate_limited, quota), if it has one."""
        failures = self.mode.failures if self.mode is not None else OPENAI.failures
        make = failures.get(name)
        return make(model) if make is not None else None

    def refusal(self, record: Recorded) -> Failure | None:
        """The server's answer to a request it refuses before any model runs: a model it does not serve,
        a response format it does not take. Recorded, and the script is left as it was."""
        model = record.body.get("model", "")
        found: Failure | None = None
        if self.models is not None and model not in self.models and not (self.mode and self.mode.serves_any_name):
            found = self.failure("unknown_model", model)
        if found is None and self.mode is not None:
            found = self.mode.refusal(record.body)
        if found is not None:
            with self._lock:
                self.requests.append(record)
        return found

    def listing(self) -> dict:
        """GET /v1/models as the server answers it."""
        mode = self.mode or OPENAI
        names = self.models if self.models is not None else ["fake-model"]
        data = []
        for name in names:
            entry = {"id": name, "object": "model", "created": 1_700_000_000, "owned_by": mode.owned_by}
            if mode.window_field == "max_model_len":
                entry.update(root=name, parent=None, max_model_len=self.stated_window(), permission=[])
            if mode.name.startswith("llamacpp"):
                entry["meta"] = {"n_ctx_train": 131_072, "n_vocab": 151_936, "n_params": 8_000_000_000}
            data.append(entry)
        return {"object": "list", "data": data}

    def script(self, purpose: str, *replies: Reply | str) -> None:
        with self._lock:
            for reply in replies:
                self._scripts[purpose].append(Reply(text=reply) if isinstance(reply, str) else reply)

    def respond(self, purpose: str, responder: Responder | None) -> None:
        """Answer every call of the purpose with `responder(body)` once the script queue is empty."""
        with self._lock:
            if responder is None:
                self._responders.pop(purpose, None)
            else:
                self._responders[purpose] = responder

    def requests_for(self, purpose: str) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if r.purpose == purpose]

    def pending(self) -> dict[str, int]:
        """Scripted replies not used (yet), per purpose."""
        with self._lock:
            return {k: len(v) for k, v in self._scripts.items() if v}

    def problems(self) -> str | None:
        """What was wrong with the script, for a fixture to fail the test with; None when nothing was."""
        found = []
        if self.unscripted:
            found.append(f"unscripted model calls: {[r.purpose for r in self.unscripted]}")
        if left := self.pending():
            found.append(f"scripted replies never used, per purpose: {left}")
        return "; ".join(found) or None

    def clear(self) -> None:
        """Forget what is left of the script and what went unscripted (between tests sharing one fake)."""
        with self._lock:
            self._scripts.clear()
            self.unscripted.clear()

    def tokens(self, body: dict) -> int:
        from assistant.context import TokenCounter

        return math.ceil(TokenCounter("o200k_base", exact=True).messages(body.get("messages") or []) * self.token_scale)

    def too_long(self, record: Recorded) -> dict | None:
        """The refusal a real server of `window_style` would send for this request, if any."""
        if self.window is None:
            return None
        prompt = self.tokens(record.body)
        asked = prompt + (record.body.get("max_tokens") or 0 if self.window_style in ("vllm", "openai") else 0)
        if asked <= self.window:
            return None
        if self.window_style == "ollama":
            self.overflowed.append(record)
            return None
        with self._lock:
            self.requests.append(record)
        return TOO_LONG[self.window_style](self.window, asked if self.window_style != "llamacpp" else prompt)

    def reset(self) -> None:
        self.window, self.window_style, self.token_scale = None, "vllm", 1.0
        self.mode, self.models = None, None
        self.overflowed.clear()
        with self._lock:
            self._scripts.clear()
            self._responders.clear()
            self.requests.clear()
            self.unscripted.clear()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _next(self, record: Recorded) -> Reply | None:
        with self._lock:
            self.requests.append(record)
            queue = self._scripts.get(record.purpose)
            if queue:
                return queue.popleft()
            responder = self._responders.get(record.purpose)
            if responder is None:
                self.unscripted.append(record)
                return None
        reply = responder(record.body)  # outside the lock: a responder may be slow or call back
        return Reply(text=reply) if isinstance(reply, str) else reply


def _handler_for(fake: FakeLLM) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:  # keep test output clean
            return None

        def do_GET(self) -> None:
            mode = fake.mode
            if self.path.rstrip("/").endswith("/models"):
                self._json(200, fake.listing())
            elif self.path == "/props" and mode is not None and mode.window_field == "props":
                self._json(200, {"default_generation_settings": {"n_ctx": fake.stated_window(), "params": {}},
                                 "total_slots": 1, "model_path": "/models/fake.gguf", "build_info": "b6200-fake"})
            elif mode is not None and self.path == mode.version_route:
                self._json(200, {"version": "0.12.0"})
            else:
                self._json(404, {"error": {"message": f"no route {self.path}"}})

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            purpose = self.headers.get("x-assistant-purpose", "unknown")
            record = Recorded(purpose, self.path, body, {k.lower(): v for k, v in self.headers.items()})
            if not self.path.endswith("/chat/completions"):
                self._json(404, {"error": {"message": f"no route {self.path}"}})
                return
            if (refusal := fake.too_long(record)) is not None:
                self._json(400, refusal)
                return
            if (refused := fake.refusal(record)) is not None:
                self._json(*refused)
                return
            reply = fake._next(record)
            if reply is None:
                self._json(500, {"error": {"message": f"fake LLM: nothing scripted for purpose {purpose!r}"}})
                return
            if reply.delay:
                time.sleep(reply.delay)
            try:
                if reply.failure is not None:
                    failed = fake.failure(reply.failure, body.get("model", ""))
                    assert failed is not None, f"{fake.mode and fake.mode.name} has no {reply.failure!r} answer"
                    self._json(*failed, reply.headers)
                elif reply.status != 200:
                    self._json(reply.status, {"error": {"message": f"scripted {reply.status}"}}, reply.headers)
                elif body.get("stream"):
                    self._stream(reply, body)
                else:
                    self._json(200, _completion(reply, body))
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (e.g. its timeout): nothing left to say

        def _json(self, status: int, payload: dict | str, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        def _stream(self, reply: Reply, body: dict) -> None:
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            model = body.get("model", "fake-model")
            mode = fake.mode
            usage = bool((body.get("stream_options") or {}).get("include_usage")) and (mode is None or mode.streams_usage)

            def chunk(delta: dict, finish: str | None = None) -> dict:
                made = _chunk(model, delta, finish)
                if mode is not None:
                    made.update(mode.chunk_extras)
                    made["choices"][0].update(mode.choice_extras)
                    if usage and mode is OPENAI:
                        made["usage"] = None  # OpenAI: every chunk has the key once usage is asked for
                return made

            self._event(chunk({"role": "assistant", "content": ""}))
            for word in reply.reasoning.split(" ") if reply.reasoning else []:
                self._event(chunk({reply.reasoning_field: word + " ", "content": None}))
            for index, piece in enumerate(reply.pieces()):
                if reply.break_after is not None and index >= reply.break_after:
                    # Vanish mid-stream: no final chunk, no [DONE], no chunked terminator.
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                if reply.chunk_delay:
                    time.sleep(reply.chunk_delay)
                self._event(chunk({"content": piece}))
            last: list[dict] = []
            if reply.finish_reason is not None:
                last.append(chunk({}, finish=reply.finish_reason))
                if usage:
                    # OpenAI's streaming reference: a last chunk with no choices, carrying the usage.
                    last.append({**chunk({}), "choices": [], "usage": _usage(reply)})
                if mode is not None and mode.last_extras:
                    last[-1].update(mode.last_extras)
            for event in last:
                self._event(event)
            if reply.done:
                self._write_chunk(b"data: [DONE]\n\n")
            self._write_chunk(b"")

        def _event(self, payload: dict) -> None:
            self._write_chunk(f"data: {json.dumps(payload)}\n\n".encode())

        def _write_chunk(self, data: bytes) -> None:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

    return Handler


def _chunk(model: str, delta: dict, finish: str | None = None) -> dict:
    return {
        "id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": int(time.time()), "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def _completion(reply: Reply, body: dict) -> dict:
    return {
        "id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()),
        "model": body.get("model", "fake-model"),
        "choices": [{"index": 0, "finish_reason": reply.finish_reason, "logprobs": None,
                     "message": {"role": "assistant", "content": reply.text, "refusal": None,
                                 **({reply.reasoning_field: reply.reasoning} if reply.reasoning else {})}}],
        "usage": _usage(reply),
    }


def _usage(reply: Reply) -> dict:
    return reply.usage or {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}


def verdict(decision: str = "comply", *rules: str, rationale: str = "An everyday request that no rule restricts.") -> str:
    """A safety deliberation's answer, as the model would write it."""
    return json.dumps({"decision": decision, "rules": list(rules) or ["GEN.A1"], "rationale": rationale})


def comply(_body: dict) -> str:
    """The default safety responder of the test fixtures: every request is an everyday one."""
    return verdict()
