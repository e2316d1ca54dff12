"""Local servers that speak the providers' real wire formats, and a fake collector.

Shapes follow the providers' API references (OpenAI chat/responses/embeddings,
Anthropic messages, Gemini generateContent, Bedrock converse, Cohere v2 chat,
Pinecone query), including their usage/cache/reasoning fields and SSE framing. A request's
model picks a variant: ``cache-write`` (OpenAI cache writes), ``thinking`` (Anthropic thinking
tokens), ``delta-input`` (Anthropic input counts in ``message_delta``), ``error-429``/``error-400``.
"""

from __future__ import annotations

import gzip
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List, Optional, Tuple

GPT = "gpt-4o-2024-08-06"
CLAUDE = "claude-sonnet-4-5-20250929"
GEMINI = "gemini-2.5-flash"
TEXT_PIECES = ["Hel", "lo", ", wor", "ld", "!"]

OPENAI_USAGE = {
    "prompt_tokens": 1200,
    "completion_tokens": 300,
    "total_tokens": 1500,
    "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
    "completion_tokens_details": {
        "reasoning_tokens": 128,
        "audio_tokens": 0,
        "accepted_prediction_tokens": 0,
        "rejected_prediction_tokens": 0,
    },
}
# A first call that writes the prompt cache: cache_write_tokens is a subset of prompt_tokens.
OPENAI_USAGE_CACHE_WRITE = dict(OPENAI_USAGE, prompt_tokens_details={
    "cached_tokens": 0, "cache_write_tokens": 1152, "audio_tokens": 0})
RESPONSES_USAGE = {
    "input_tokens": 500,
    "input_tokens_details": {"cached_tokens": 256},
    "output_tokens": 90,
    "output_tokens_details": {"reasoning_tokens": 40},
    "total_tokens": 590,
}
RESPONSES_USAGE_CACHE_WRITE = dict(RESPONSES_USAGE, input_tokens_details={
    "cached_tokens": 0, "cache_write_tokens": 384})
ANTHROPIC_USAGE = {
    "input_tokens": 50,
    "cache_creation_input_tokens": 1000,
    "cache_read_input_tokens": 2000,
    "output_tokens": 120,
    "cache_creation": {"ephemeral_5m_input_tokens": 1000, "ephemeral_1h_input_tokens": 0},
    "service_tier": "standard",
}
# Extended thinking: output_tokens includes the thinking, output_tokens_details breaks it down.
ANTHROPIC_USAGE_THINKING = dict(ANTHROPIC_USAGE, output_tokens_details={"thinking_tokens": 80})
GEMINI_USAGE = {
    "promptTokenCount": 100,
    "candidatesTokenCount": 50,
    "cachedContentTokenCount": 40,
    "thoughtsTokenCount": 30,
    "totalTokenCount": 180,
}


def sse(event: Optional[str], data: Any, nl: str = "\n") -> bytes:
    text = ""
    if event:
        text += f"event: {event}{nl}"
    payload = data if isinstance(data, str) else json.dumps(data)
    text += f"data: {payload}{nl}{nl}"
    return text.encode()


def openai_chat(model: str = GPT, usage: Dict[str, Any] = OPENAI_USAGE) -> Dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1700000000,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "".join(TEXT_PIECES), "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": usage,
        "system_fingerprint": "fp_1",
    }


def openai_chat_stream(include_usage: bool, model: str = GPT,
                       usage: Dict[str, Any] = OPENAI_USAGE) -> List[bytes]:
    base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1700000000, "model": model,
            "system_fingerprint": "fp_1"}
    chunks = []
    for i, piece in enumerate(TEXT_PIECES):
        delta: Dict[str, Any] = {"content": piece}
        if i == 0:
            delta["role"] = "assistant"
        c = dict(base, choices=[{"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}])
        if include_usage:
            c["usage"] = None
        chunks.append(sse(None, c))
    last = dict(base, choices=[{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}])
    if include_usage:
        last["usage"] = None
    chunks.append(sse(None, last))
    if include_usage:
        chunks.append(sse(None, dict(base, choices=[], usage=usage)))
    chunks.append(b"data: [DONE]\n\n")
    return chunks


def responses_obj(status: str = "completed", usage: Any = RESPONSES_USAGE) -> Dict[str, Any]:
    return {
        "id": "resp_1",
        "object": "response",
        "created_at": 1700000000,
        "status": status,
        "model": "gpt-4.1-2025-04-14",
        "output": [
            {
                "type": "message",
                "id": "msg_1",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "".join(TEXT_PIECES), "annotations": []}],
            }
        ] if status == "completed" else [],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": usage,
    }


def responses_stream(usage: Dict[str, Any] = RESPONSES_USAGE) -> List[bytes]:
    out = [sse("response.created", {"type": "response.created", "sequence_number": 0,
                                      "response": responses_obj("in_progress", None)}),
           sse("response.output_item.added", {
               "type": "response.output_item.added", "output_index": 0, "sequence_number": 1,
               "item": {"type": "message", "id": "msg_1", "status": "in_progress", "role": "assistant",
                        "content": []}}),
           sse("response.content_part.added", {
               "type": "response.content_part.added", "item_id": "msg_1", "output_index": 0,
               "content_index": 0, "sequence_number": 2,
               "part": {"type": "output_text", "text": "", "annotations": []}})]
    for i, piece in enumerate(TEXT_PIECES):
        out.append(sse("response.output_text.delta", {
            "type": "response.output_text.delta", "item_id": "msg_1", "output_index": 0,
            "content_index": 0, "delta": piece, "sequence_number": i + 1}))
    out.append(sse("response.completed", {"type": "response.completed", "sequence_number": 99,
                                            "response": responses_obj(usage=usage)}))
    return out


def anthropic_message(model: str = CLAUDE, usage: Dict[str, Any] = ANTHROPIC_USAGE) -> Dict[str, Any]:
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": "".join(TEXT_PIECES)}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": usage,
    }


def anthropic_stream(delta_updates_input: bool = False, thinking: bool = False) -> List[bytes]:
    start_usage = dict(ANTHROPIC_USAGE, output_tokens=1)
    if delta_updates_input:
        start_usage = {"input_tokens": 0, "cache_creation_input_tokens": 0,
                       "cache_read_input_tokens": 0, "output_tokens": 1}
    msg = dict(anthropic_message(), content=[], stop_reason=None, usage=start_usage)
    out = [sse("message_start", {"type": "message_start", "message": msg}),
           sse("content_block_start", {"type": "content_block_start", "index": 0,
                                        "content_block": {"type": "text", "text": ""}}),
           sse("ping", {"type": "ping"})]
    for piece in TEXT_PIECES:
        out.append(sse("content_block_delta", {"type": "content_block_delta", "index": 0,
                                                "delta": {"type": "text_delta", "text": piece}}))
    out.append(sse("content_block_stop", {"type": "content_block_stop", "index": 0}))
    delta_usage: Dict[str, Any] = {"output_tokens": 120}
    if delta_updates_input:
        delta_usage.update(input_tokens=50, cache_creation_input_tokens=1000, cache_read_input_tokens=2000)
    if thinking:
        delta_usage["output_tokens_details"] = ANTHROPIC_USAGE_THINKING["output_tokens_details"]
    out.append(sse("message_delta", {"type": "message_delta",
                                      "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                                      "usage": delta_usage}))
    out.append(sse("message_stop", {"type": "message_stop"}))
    return out


def gemini_response(final: bool = True) -> Dict[str, Any]:
    usage = GEMINI_USAGE if final else {"promptTokenCount": 100, "candidatesTokenCount": 3,
                                         "totalTokenCount": 103}
    return {
        "candidates": [{"content": {"parts": [{"text": "".join(TEXT_PIECES)}], "role": "model"},
                        "finishReason": "STOP", "index": 0}],
        "usageMetadata": usage,
        "modelVersion": GEMINI,
        "responseId": "resp-g1",
    }


BEDROCK_CONVERSE = {
    "output": {"message": {"role": "assistant", "content": [{"text": "Hello"}]}},
    "stopReason": "end_turn",
    "usage": {"inputTokens": 30, "outputTokens": 20, "totalTokens": 65,
              "cacheReadInputTokens": 10, "cacheWriteInputTokens": 5},
    "metrics": {"latencyMs": 120},
}
COHERE_CHAT = {
    "id": "c-1",
    "finish_reason": "COMPLETE",
    "message": {"role": "assistant", "content": [{"type": "text", "text": "Hello"}]},
    "usage": {"billed_units": {"input_tokens": 12, "output_tokens": 7},
              "tokens": {"input_tokens": 80, "output_tokens": 7}, "cached_tokens": 4},
}


def cohere_chat_stream() -> List[bytes]:
    out = [sse("message-start", {"type": "message-start", "id": "c-1",
                                  "delta": {"message": {"role": "assistant", "content": []}}}),
           sse("content-start", {"type": "content-start", "index": 0,
                                  "delta": {"message": {"content": {"type": "text", "text": ""}}}})]
    for piece in TEXT_PIECES:
        out.append(sse("content-delta", {"type": "content-delta", "index": 0,
                                          "delta": {"message": {"content": {"text": piece}}}}))
    out.append(sse("content-end", {"type": "content-end", "index": 0}))
    out.append(sse("message-end", {"type": "message-end", "delta": {"finish_reason": "COMPLETE",
                                                                     "usage": COHERE_CHAT["usage"]}}))
    return out
PINECONE_QUERY = {"results": [], "matches": [{"id": "a", "score": 0.91}], "namespace": "docs",
                  "usage": {"readUnits": 5}}
EMBEDDINGS = {"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2, 0.3]}],
              "model": "text-embedding-3-small", "usage": {"prompt_tokens": 8, "total_tokens": 8}}


class ProviderHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: "ProviderServer"

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def _json(self, status: int, obj: Any, headers: Optional[Dict[str, str]] = None) -> None:
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _stream(self, chunks: List[bytes], content_type: str = "text/event-stream") -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        for chunk in chunks:
            try:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                return
            if self.server.chunk_delay:
                time.sleep(self.server.chunk_delay)
        try:
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass

    def do_GET(self) -> None:
        self.server.requests.append(("GET", self.path, dict(self.headers.items()), b""))
        self._json(200, {"object": "list", "data": []})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        self.server.requests.append(("POST", self.path, dict(self.headers.items()), raw))
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = {}
        model = body.get("model", "") if isinstance(body, dict) else ""
        path = self.path.split("?", 1)[0]
        if model == "error-429":
            return self._json(429, {"error": {"message": "Rate limit reached", "type": "requests",
                                              "code": "rate_limit_exceeded"}}, {"retry-after": "0"})
        if model == "error-400":
            return self._json(400, {"error": {"message": "bad request", "type": "invalid_request_error",
                                              "code": None}})
        if model == "slow":
            time.sleep(1.0)
        stream = bool(body.get("stream")) if isinstance(body, dict) else False
        if path.endswith("/chat/completions"):
            usage = OPENAI_USAGE_CACHE_WRITE if model == "cache-write" else OPENAI_USAGE
            if stream:
                include = bool((body.get("stream_options") or {}).get("include_usage"))
                return self._stream(openai_chat_stream(include, usage=usage))
            return self._json(200, openai_chat(usage=usage))
        if path.endswith("/responses"):
            usage = RESPONSES_USAGE_CACHE_WRITE if model == "cache-write" else RESPONSES_USAGE
            if stream:
                return self._stream(responses_stream(usage))
            return self._json(200, responses_obj(usage=usage))
        if path.endswith("/embeddings"):
            return self._json(200, EMBEDDINGS)
        if path.endswith("/v1/messages"):
            if stream:
                return self._stream(anthropic_stream(model == "delta-input", model == "thinking"))
            return self._json(200, anthropic_message(
                usage=ANTHROPIC_USAGE_THINKING if model == "thinking" else ANTHROPIC_USAGE))
        if path.endswith(":streamGenerateContent"):
            return self._stream([sse(None, gemini_response(False), "\r\n"), sse(None, gemini_response(True), "\r\n")])
        if path.endswith(":generateContent"):
            return self._json(200, gemini_response())
        if path.endswith("/converse"):
            return self._json(200, BEDROCK_CONVERSE)
        if path.endswith("/v2/chat"):
            return self._stream(cohere_chat_stream()) if stream else self._json(200, COHERE_CHAT)
        if path.endswith("/query"):
            return self._json(200, PINECONE_QUERY)
        self._json(404, {"error": "not found"})


class ProviderServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), ProviderHandler)
        self.requests: List[Tuple[str, str, Dict[str, str], bytes]] = []
        self.chunk_delay = 0.0

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"


class CollectorHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: "CollectorServer"

    def log_message(self, *args: Any) -> None:
        pass

    def _reply(self, status: int, obj: Any, headers: Optional[Dict[str, str]] = None) -> None:
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._reply(200, {"status": "ok", "database": "ok", "broker": "eager"})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        srv = self.server
        with srv.lock:
            srv.posts.append(dict(self.headers.items()))
            if srv.fail_next:
                status, headers = srv.fail_next.pop(0)
                return self._reply(status, {"detail": "try later"}, headers)
        if self.headers.get("Authorization") != f"Bearer {srv.api_key}":
            return self._reply(401, {"detail": "invalid key"})
        if self.headers.get("Content-Encoding") == "gzip":
            raw = gzip.decompress(raw)
        doc = json.loads(raw)
        events = doc["events"] if isinstance(doc, dict) else doc
        with srv.lock:
            srv.batches.append(events)
        self._reply(202, {"accepted": len(events), "rejected": [], "over_cap": srv.over_cap})


class CollectorServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, api_key: str = "llmo_test") -> None:
        super().__init__(("127.0.0.1", 0), CollectorHandler)
        self.api_key = api_key
        self.lock = threading.Lock()
        self.batches: List[List[Dict[str, Any]]] = []
        self.posts: List[Dict[str, str]] = []
        self.fail_next: List[Tuple[int, Dict[str, str]]] = []
        self.over_cap = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def events(self) -> List[Dict[str, Any]]:
        with self.lock:
            return [e for b in self.batches for e in b]

    def reset(self) -> None:
        with self.lock:
            self.batches.clear()
            self.posts.clear()
            self.fail_next.clear()
            self.over_cap = False


def serve(server: ThreadingHTTPServer) -> ThreadingHTTPServer:
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server
