"""A local server that speaks the Anthropic Messages API, for driving the real `anthropic` SDK.

Queue scripted replies with `tool_answer(...)`, `error(...)`, `slow(...)` or `raw(...)`; each
POST /v1/messages pops one (when the queue is empty: a tool call with no suggestions). Every
request is kept in `requests` (headers and parsed JSON body) for assertions.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 429: "rate_limit_error",
               500: "api_error", 529: "overloaded_error"}


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: Any


class FakeAnthropic:
    def __init__(self) -> None:
        self.replies: list[Reply] = []
        self.requests: list[Recorded] = []
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = raw
                with fake._lock:
                    fake.requests.append(Recorded(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                    reply = fake.replies.pop(0) if fake.replies else fake._tool_reply(body, {"suggestions": []})
                if self.path.split("?")[0] != "/v1/messages":
                    reply = fake._error_reply(404, "not found")
                if reply.delay:
                    time.sleep(reply.delay)
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(reply.body)))
                    self.send_header("request-id", f"req_{uuid.uuid4().hex[:24]}")
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(reply.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client timed out and went away

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeAnthropic:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # --- scripting ---------------------------------------------------------------
    @staticmethod
    def _tool_reply(request_body: Any, tool_input: Any, *, input_tokens: int = 1200, output_tokens: int = 300,
                    tool_name: str | None = None) -> Reply:
        model = request_body.get("model", "claude-sonnet-5-5") if isinstance(request_body, dict) else "claude"
        forced = (request_body.get("tool_choice") or {}).get("name") if isinstance(request_body, dict) else None
        message = {
            "id": f"msg_{uuid.uuid4().hex[:24]}",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "tool_use", "id": f"toolu_{uuid.uuid4().hex[:24]}",
                         "name": tool_name or forced or "report_instrumentation", "input": tool_input}],
            "stop_reason": "tool_use",
            "stop_sequence": None,
            "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens,
                      "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
        }
        return Reply(body=json.dumps(message).encode())

    @staticmethod
    def _error_reply(status: int, message: str) -> Reply:
        body = {"type": "error", "error": {"type": ERROR_TYPES.get(status, "api_error"), "message": message},
                "request_id": f"req_{uuid.uuid4().hex[:24]}"}
        return Reply(status=status, body=json.dumps(body).encode())

    def tool_answer(self, suggestions: Any, *, input_tokens: int = 1200, output_tokens: int = 300,
                    tool_name: str | None = None, raw_input: Any = None) -> None:
        """The next answer is a forced tool call whose input is {"suggestions": …} (or `raw_input`)."""
        tool_input = raw_input if raw_input is not None else {"suggestions": suggestions}
        self.replies.append(self._tool_reply({}, tool_input, input_tokens=input_tokens,
                                             output_tokens=output_tokens, tool_name=tool_name))

    def text_answer(self, text: str) -> None:
        """A reply with only a text block: no tool call at all."""
        message = {"id": "msg_text", "type": "message", "role": "assistant", "model": "claude-sonnet-5-5",
                   "content": [{"type": "text", "text": text}], "stop_reason": "end_turn", "stop_sequence": None,
                   "usage": {"input_tokens": 900, "output_tokens": 40}}
        self.replies.append(Reply(body=json.dumps(message).encode()))

    def error(self, status: int, message: str = "Overloaded", *, times: int = 1) -> None:
        for _ in range(times):
            self.replies.append(self._error_reply(status, message))

    def slow(self, seconds: float) -> None:
        self.replies.append(Reply(body=self._tool_reply({}, {"suggestions": []}).body, delay=seconds))

    def raw(self, status: int, body: bytes) -> None:
        self.replies.append(Reply(status=status, body=body))
