"""A loopback OpenAI-compatible server for tests: scripted per purpose, recording every request.

The real `openai` client talks to it over HTTP, so serialisation, streaming (SSE), retries,
timeouts and our error mapping all run for real. Replies are scripted per purpose (the
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
from dataclasses import dataclass, field
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


class FakeLLM:
    def __init__(self) -> None:
        # A context window the fake enforces as `window_style` does ("ollama": accept, but note the
        # overflow in `overflowed`), counting o200k_base tokens times `token_scale` (a denser tokenizer).
        self.window: int | None = None
        self.window_style = "vllm"
        self.token_scale = 1.0
        self.overflowed: list[Recorded] = []
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
            if self.path.rstrip("/").endswith("/models"):
                self._json(200, {"object": "list", "data": [{"id": "fake-model", "object": "model", "owned_by": "tests"}]})
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
            reply = fake._next(record)
            if reply is None:
                self._json(500, {"error": {"message": f"fake LLM: nothing scripted for purpose {purpose!r}"}})
                return
            if reply.delay:
                time.sleep(reply.delay)
            try:
                if reply.status != 200:
                    self._json(reply.status, {"error": {"message": f"scripted {reply.status}"}}, reply.headers)
                elif body.get("stream"):
                    self._stream(reply, body)
                else:
                    self._json(200, _completion(reply, body))
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (e.g. its timeout): nothing left to say

        def _json(self, status: int, payload: dict, headers: dict[str, str] | None = None) -> None:
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
            self._event(_chunk(model, {"role": "assistant", "content": ""}))
            for word in reply.reasoning.split(" ") if reply.reasoning else []:
                self._event(_chunk(model, {reply.reasoning_field: word + " ", "content": None}))
            for index, piece in enumerate(reply.pieces()):
                if reply.break_after is not None and index >= reply.break_after:
                    # Vanish mid-stream: no final chunk, no [DONE], no chunked terminator.
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                if reply.chunk_delay:
                    time.sleep(reply.chunk_delay)
                self._event(_chunk(model, {"content": piece}))
            if reply.finish_reason is not None:
                self._event(_chunk(model, {}, finish=reply.finish_reason))
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
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


def verdict(decision: str = "comply", *rules: str, rationale: str = "An everyday request that no rule restricts.") -> str:
    """A safety deliberation's answer, as the model would write it."""
    return json.dumps({"decision": decision, "rules": list(rules) or ["GEN.A1"], "rationale": rationale})


def comply(_body: dict) -> str:
    """The default safety responder of the test fixtures: every request is an everyday one."""
    return verdict()
