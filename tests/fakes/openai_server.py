"""A scripted OpenAI-compatible chat-completions server on 127.0.0.1 (the outside world, faked).

It speaks the real wire protocol (HTTP/1.1, JSON bodies, SSE when `stream` is set) so the
real `openai` client inside `ChatOpenAI` is exercised end to end. Each POST to
/v1/chat/completions pops the next scripted `Reply`; every request is recorded.

Streaming (`"stream": true`): `data: {chat.completion.chunk}` events whose
`choices[0].delta.content` carry the reply in pieces (`stream(...)` scripts how many and the
delay between them, and can cut the connection after some), then `data: [DONE]`.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

Kind = Literal["chat", "status", "malformed", "reset", "empty_choices", "drip"]


@dataclass(frozen=True)
class Reply:
    kind: Kind
    content: str = ""
    status: int = 200
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0  # wait before answering (to trigger client timeouts)
    chunks: tuple[str, ...] = ()  # streamed pieces (default: 16-character pieces)
    interval_s: float = 0.0  # wait before each streamed piece
    break_after: int | None = None  # streamed: reset the connection after this many pieces


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    json: Any


def chat(content: str, *, delay_s: float = 0.0) -> Reply:
    return Reply("chat", content=content, delay_s=delay_s)


def split_pieces(content: str, n: int) -> tuple[str, ...]:
    """`content` in n consecutive pieces of about equal length (joined, they are `content`)."""
    n = max(1, min(n, len(content)))
    cuts = [round(i * len(content) / n) for i in range(n + 1)]
    return tuple(content[a:b] for a, b in zip(cuts, cuts[1:], strict=False))


def stream(
    content: str,
    *,
    pieces: int = 40,
    interval_s: float = 0.0,
    break_after: int | None = None,
    delay_s: float = 0.0,
) -> Reply:
    """A reply streamed in `pieces` SSE chunks, `interval_s` apart (the whole reply at once to
    a request without `stream`); `break_after`: the connection is reset after that many."""
    return Reply(
        "chat",
        content=content,
        delay_s=delay_s,
        chunks=split_pieces(content, pieces),
        interval_s=interval_s,
        break_after=break_after,
    )


def rate_limited(*, retry_after: str = "0") -> Reply:
    body = {
        "error": {
            "message": "Rate limit reached for requests",
            "type": "rate_limit_exceeded",
            "code": "rate_limit_exceeded",
            "param": None,
        }
    }
    return Reply("status", status=429, body=body, headers={"retry-after": retry_after})


def insufficient_quota() -> Reply:
    body = {
        "error": {
            "message": "You exceeded your current quota, please check your plan and billing details.",
            "type": "insufficient_quota",
            "code": "insufficient_quota",
            "param": None,
        }
    }
    return Reply("status", status=429, body=body)


def server_error(status: int = 500) -> Reply:
    body = {"error": {"message": "The server had an error", "type": "server_error", "code": None}}
    return Reply("status", status=status, body=body)


def unauthorized(message: str = "Incorrect API key provided.") -> Reply:
    body = {
        "error": {"message": message, "type": "invalid_request_error", "code": "invalid_api_key"}
    }
    return Reply("status", status=401, body=body)


def malformed() -> Reply:
    return Reply("malformed")


def reset() -> Reply:
    return Reply("reset")


def empty_choices() -> Reply:
    return Reply("empty_choices")


def drip(content: str, *, interval_s: float) -> Reply:
    """A valid reply sent one byte at a time: no single read stalls, the whole takes long."""
    return Reply("drip", content=content, delay_s=interval_s)


def completion_json(content: str, model: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": 10,
            "completion_tokens": len(content.split()),
            "total_tokens": 10 + len(content.split()),
        },
    }


class FakeOpenAIServer:
    """Start with `start()`, stop with `close()`; `base_url` ends in /v1 like OpenAI's."""

    def __init__(self) -> None:
        self._replies: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self.requests: list[RecordedRequest] = []
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    def script(self, *replies: Reply) -> None:
        with self._lock:
            self._replies.extend(replies)

    def start(self) -> FakeOpenAIServer:
        self._thread.start()
        return self

    def close(self) -> None:
        self._stopping.set()  # releases handlers sleeping in a scripted delay
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def _next(self, request: RecordedRequest) -> Reply:
        with self._lock:
            self.requests.append(request)
            if self._replies:
                return self._replies.popleft()
        body = {"error": {"message": "fake: script exhausted", "type": "server_error"}}
        return Reply("status", status=500, body=body)


def _handler_for(server: FakeOpenAIServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the real API

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass  # quiet test output

        def do_GET(self) -> None:
            self._send_json(404, {"error": {"message": "not found", "type": "invalid_request"}})

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("content-length") or 0))
            try:
                payload = json.loads(raw) if raw else None
            except ValueError:
                payload = None
            request = RecordedRequest(
                method="POST",
                path=self.path,
                headers={k.lower(): v for k, v in self.headers.items()},
                json=payload,
            )
            if not self.path.rstrip("/").endswith("/chat/completions"):
                server.requests.append(request)
                self._send_json(404, {"error": {"message": "not found", "type": "invalid_request"}})
                return
            reply = server._next(request)
            if reply.kind != "drip" and reply.delay_s and server._stopping.wait(reply.delay_s):
                return
            try:
                self._answer(reply, payload or {})
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout): nothing left to do

        def _answer(self, reply: Reply, payload: dict[str, Any]) -> None:
            model = str(payload.get("model", "fake-model"))
            if reply.kind == "chat":
                if payload.get("stream"):
                    self._send_sse(reply, model)
                else:
                    self._send_json(200, completion_json(reply.content, model))
            elif reply.kind == "status":
                self._send_json(reply.status, reply.body or {}, reply.headers)
            elif reply.kind == "malformed":
                self._send_raw(200, b'{"id": "chatcmpl-fake", "choices": [', "application/json")
            elif reply.kind == "empty_choices":
                body = completion_json("", model)
                body["choices"] = []
                self._send_json(200, body)
            elif reply.kind == "reset":
                # SO_LINGER 0 makes close() send RST: the client sees a reset, no response.
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                self.connection.close()
                self.close_connection = True
            elif reply.kind == "drip":
                data = json.dumps(completion_json(reply.content, model)).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                for i in range(len(data)):
                    if server._stopping.wait(reply.delay_s):
                        return
                    self.wfile.write(data[i : i + 1])
                    self.wfile.flush()

        def _send_json(
            self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
        ) -> None:
            self._send_raw(status, json.dumps(body).encode(), "application/json", headers)

        def _send_raw(
            self, status: int, data: bytes, ctype: str, headers: dict[str, str] | None = None
        ) -> None:
            self.send_response(status)
            self.send_header("content-type", ctype)
            self.send_header("content-length", str(len(data)))
            self.send_header("x-request-id", f"req_fake_{time.monotonic_ns()}")
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def _send_sse(self, reply: Reply, model: str) -> None:
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("connection", "close")
            self.end_headers()
            self.close_connection = True
            content = reply.content
            base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "model": model}
            pieces = list(reply.chunks) or [content[i : i + 16] for i in range(0, len(content), 16)]
            events = [{"role": "assistant", "content": ""}] + [
                {"content": p} for p in pieces or [""]
            ]
            for n, delta in enumerate(events):
                if n and reply.interval_s and server._stopping.wait(reply.interval_s):
                    return
                if reply.break_after is not None and n > reply.break_after:
                    self.connection.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                    )
                    self.connection.close()
                    return
                chunk = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.flush()
            final = {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
            self.wfile.write(f"data: {json.dumps(final)}\n\ndata: [DONE]\n\n".encode())
            self.wfile.flush()

    return Handler
