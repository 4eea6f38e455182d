"""A stand-in model server for load benchmarks: OpenAI's chat-completions API over HTTP, with a set
latency before the first token and a set token rate, so a benchmark measures the app, not a model.

It answers every purpose the way the app expects (the `X-Assistant-Purpose` header): the safety
deliberation with a comply verdict, the hypotheses job with one valid proposal, and a chat reply by
streaming words. Streams end with their usage, as OpenAI's do. It runs in a thread of the benchmark's
own process (a ThreadingHTTPServer: each request its own thread, so latencies overlap as a real
server's do).
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

VERDICT = json.dumps({"decision": "comply", "rules": ["GEN.A1"], "rationale": "An everyday request."})
PROPOSALS = json.dumps({"hypotheses": [{"action": "add", "facet": "style", "text": "Writes short, direct messages.",
                                        "evidence": [1], "confidence": 0.6}]})
WORDS = ("Here is a reply of the stand-in model, written at the rate the benchmark asked for, one word "
         "after another, so that the stream looks like a real model's stream.").split()


class StandInServer:
    def __init__(self, *, latency_ms: float, tokens: int = 40, tokens_per_s: float = 200.0) -> None:
        """`latency_ms` before each answer's first byte; a chat reply of `tokens` words at `tokens_per_s`."""
        self.latency, self.tokens, self.rate = latency_ms / 1000, tokens, tokens_per_s
        self.calls: dict[str, int] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._server.request_queue_size = 512  # a crowd connects at once
        self._thread = threading.Thread(target=self._server.serve_forever, name="stand-in-model", daemon=True)

    def __enter__(self) -> StandInServer:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def base_url(self) -> str:
        port = self._server.server_address[1]
        return f"http://127.0.0.1:{port}/v1"

    def counted(self, purpose: str) -> None:
        with self._lock:
            self.calls[purpose] = self.calls.get(purpose, 0) + 1


def _handler(stand_in: StandInServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_: object) -> None:
            return None

        def do_GET(self) -> None:
            self._json({"object": "list", "data": [{"id": "stand-in", "object": "model", "owned_by": "bench"}]})

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)) or b"{}")
            purpose = self.headers.get("x-assistant-purpose", "chat")
            stand_in.counted(purpose)
            time.sleep(stand_in.latency)
            model = body.get("model", "stand-in")
            if not body.get("stream"):
                text = VERDICT if purpose == "safety" else PROPOSALS if purpose == "hypotheses" else " ".join(WORDS)
                self._json({"id": "c", "object": "chat.completion", "created": int(time.time()), "model": model,
                            "choices": [{"index": 0, "finish_reason": "stop",
                                         "message": {"role": "assistant", "content": text}}],
                            "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}})
                return
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            pause = 1 / stand_in.rate if stand_in.rate > 0 else 0
            words = [WORDS[i % len(WORDS)] for i in range(stand_in.tokens)]
            try:
                for i, word in enumerate(words):
                    self._event(model, {"content": word if i == 0 else " " + word})
                    time.sleep(pause)
                self._event(model, {}, finish="stop")
                self._event(model, None, usage={"prompt_tokens": 100, "completion_tokens": len(words),
                                                "total_tokens": 100 + len(words)})
                self._chunk(b"data: [DONE]\n\n")
                self._chunk(b"")
            except (BrokenPipeError, ConnectionResetError):
                return  # the app stopped reading (the user pressed stop)

        def _event(self, model: str, delta: dict | None, finish: str | None = None, usage: dict | None = None) -> None:
            choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
            payload = {"id": "c", "object": "chat.completion.chunk", "created": int(time.time()), "model": model,
                       "choices": choices, **({"usage": usage} if usage else {})}
            self._chunk(f"data: {json.dumps(payload)}\n\n".encode())

        def _chunk(self, data: bytes) -> None:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        def _json(self, payload: dict) -> None:
            data = json.dumps(payload).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler
