"""Local servers that speak the providers' real wire formats, and a fake collector.

Shapes follow the providers' API references (OpenAI chat/responses/embeddings,
Anthropic messages, Gemini generateContent, Bedrock converse, Cohere v2 chat,
Pinecone query), including their usage/cache/reasoning fields and SSE framing. A request's
model picks a variant: ``cache-write`` (OpenAI cache writes), ``thinking`` (Anthropic thinking
tokens), ``delta-input`` (Anthropic input counts in ``message_delta``), ``error-429``/``error-400``,
``audio`` (OpenAI audio token details), ``web-search`` (OpenAI Responses web search calls; Anthropic
server tool use, 1 h cache writes, priority tier, fast speed), Gemini model ``gemini-multimodal``
(modality details, tool-use prompt tokens, grounding). OpenAI echoes a requested ``service_tier``
as the served one (``auto`` is served ``default``), as the API does.

Batch downloads (GET, JSONL served in chunks, generated line by line): OpenAI
``/v1/files/file-out-<n>/content`` (a Batch output file of n lines; every 5th line a 400),
``file-err-<n>`` (an error file), ``file-in`` (a batch's input file) and ``file-train`` (a fine-tuning
file): not batch output;
Anthropic ``/v1/messages/batches/msgbatch_<n>`` (the batch, with its ``results_url``) and
``…/results`` (n lines: succeeded, with every 7th errored, 11th canceled, 13th expired).
``pad`` in a file id (``file-out-3000-pad``) makes each answer ~6 KB of text; ``-odd`` in an
Anthropic batch id puts a broken line and a non-result line after the first result.
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


OPENAI_USAGE_AUDIO = dict(
    OPENAI_USAGE,
    prompt_tokens_details={"cached_tokens": 0, "audio_tokens": 700, "image_tokens": 0},
    completion_tokens_details={"reasoning_tokens": 0, "audio_tokens": 250, "accepted_prediction_tokens": 0,
                               "rejected_prediction_tokens": 0},
)
ANTHROPIC_USAGE_WEB = {
    "input_tokens": 50,
    "cache_creation_input_tokens": 1000,
    "cache_read_input_tokens": 2000,
    "output_tokens": 120,
    "cache_creation": {"ephemeral_5m_input_tokens": 400, "ephemeral_1h_input_tokens": 600},
    "server_tool_use": {"web_search_requests": 3, "web_fetch_requests": 0},
    "service_tier": "priority",
    "speed": "fast",
}
GEMINI_USAGE_MULTIMODAL = {
    "promptTokenCount": 1000,
    "candidatesTokenCount": 300,
    "cachedContentTokenCount": 200,
    "toolUsePromptTokenCount": 150,
    "totalTokenCount": 1450,
    "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 400}, {"modality": "AUDIO", "tokenCount": 500},
                            {"modality": "IMAGE", "tokenCount": 100}],
    "cacheTokensDetails": [{"modality": "AUDIO", "tokenCount": 200}],
    "candidatesTokensDetails": [{"modality": "TEXT", "tokenCount": 100}, {"modality": "AUDIO", "tokenCount": 200}],
    "toolUsePromptTokensDetails": [{"modality": "TEXT", "tokenCount": 150}],
}
GEMINI_GROUNDING = {"webSearchQueries": ["weather paris", "paris forecast"],
                    "groundingChunks": [{"web": {"uri": "https://example.com", "title": "Example"}}]}


def sse(event: Optional[str], data: Any, nl: str = "\n") -> bytes:
    text = ""
    if event:
        text += f"event: {event}{nl}"
    payload = data if isinstance(data, str) else json.dumps(data)
    text += f"data: {payload}{nl}{nl}"
    return text.encode()


def openai_chat(model: str = GPT, usage: Dict[str, Any] = OPENAI_USAGE,
                tier: Optional[str] = None) -> Dict[str, Any]:
    return {**({"service_tier": tier} if tier else {}),
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
                       usage: Dict[str, Any] = OPENAI_USAGE, tier: Optional[str] = None) -> List[bytes]:
    base: Dict[str, Any] = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1700000000,
                            "model": model, "system_fingerprint": "fp_1"}
    if tier:
        base["service_tier"] = tier
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


WEB_SEARCH_CALLS = [
    {"type": "web_search_call", "id": f"ws_{i}", "status": "completed",
     "action": {"type": "search", "query": q}} for i, q in enumerate(("llm prices", "batch api discount"))
]


def responses_obj(status: str = "completed", usage: Any = RESPONSES_USAGE, tier: Optional[str] = None,
                  web_search: bool = False) -> Dict[str, Any]:
    obj = {
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
    if tier:
        obj["service_tier"] = tier
    if web_search and status == "completed":
        obj["output"] = WEB_SEARCH_CALLS + obj["output"]
    return obj


def responses_stream(usage: Dict[str, Any] = RESPONSES_USAGE, tier: Optional[str] = None,
                     web_search: bool = False) -> List[bytes]:
    out = [sse("response.created", {"type": "response.created", "sequence_number": 0,
                                      "response": responses_obj("in_progress", None, tier)}),
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
                                            "response": responses_obj(usage=usage, tier=tier,
                                                                      web_search=web_search)}))
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


def anthropic_stream(delta_updates_input: bool = False, thinking: bool = False,
                     web: bool = False) -> List[bytes]:
    start_usage = dict(ANTHROPIC_USAGE_WEB if web else ANTHROPIC_USAGE, output_tokens=1)
    if web:  # the searches run during the answer: message_start reports none yet
        start_usage["server_tool_use"] = {"web_search_requests": 0, "web_fetch_requests": 0}
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
    if web:  # cumulative, like output_tokens
        delta_usage["server_tool_use"] = ANTHROPIC_USAGE_WEB["server_tool_use"]
    out.append(sse("message_delta", {"type": "message_delta",
                                      "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                                      "usage": delta_usage}))
    out.append(sse("message_stop", {"type": "message_stop"}))
    return out


def gemini_response(final: bool = True, multimodal: bool = False) -> Dict[str, Any]:
    usage = GEMINI_USAGE if final else {"promptTokenCount": 100, "candidatesTokenCount": 3,
                                         "totalTokenCount": 103}
    candidate: Dict[str, Any] = {"content": {"parts": [{"text": "".join(TEXT_PIECES)}], "role": "model"},
                                 "finishReason": "STOP", "index": 0}
    if multimodal:
        usage = GEMINI_USAGE_MULTIMODAL if final else {"promptTokenCount": 1000, "candidatesTokenCount": 3}
        if final:
            candidate["groundingMetadata"] = GEMINI_GROUNDING
        else:
            candidate = {k: v for k, v in candidate.items() if k != "finishReason"}
    return {
        "candidates": [candidate],
        "usageMetadata": usage,
        "modelVersion": GEMINI,
        "responseId": "resp-g1",
    }


# -- batch results files ----------------------------------------------------------------------------

_PAD = "x" * 6000


def openai_batch_line(i: int, pad: bool = False) -> Dict[str, Any]:
    """Line i of an OpenAI Batch output file: every 5th request failed with a 400."""
    if i % 5 == 4:
        return {"id": f"batch_req_{i}", "custom_id": f"req-{i}", "error": None,
                "response": {"status_code": 400, "request_id": f"r{i}",
                             "body": {"error": {"message": "bad", "type": "invalid_request_error"}}}}
    usage = dict(OPENAI_USAGE, prompt_tokens=100 + i, completion_tokens=10 + i % 7,
                 prompt_tokens_details={"cached_tokens": 0, "audio_tokens": 0},
                 completion_tokens_details={"reasoning_tokens": 0, "audio_tokens": 0})
    body = openai_chat(usage=usage, tier="default")
    if pad:
        body["choices"][0]["message"]["content"] = _PAD
    return {"id": f"batch_req_{i}", "custom_id": f"req-{i}", "error": None,
            "response": {"status_code": 200, "request_id": f"r{i}", "body": body}}


def openai_error_line(i: int) -> Dict[str, Any]:
    return {"id": f"batch_req_{i}", "custom_id": f"req-{i}", "response": None,
            "error": {"code": "batch_expired", "message": "This request could not be executed before the "
                                                          "completion window expired."}}


ANTHROPIC_BATCH_KINDS = ((13, "expired"), (11, "canceled"), (7, "errored"))


def anthropic_batch_line(i: int, pad: bool = False) -> Dict[str, Any]:
    for every, kind in ANTHROPIC_BATCH_KINDS:
        if i % every == every - 1:
            result: Dict[str, Any] = {"type": kind}
            if kind == "errored":
                result["error"] = {"type": "error", "error": {"type": "invalid_request_error", "message": "bad"}}
            return {"custom_id": f"req-{i}", "result": result}
    usage = dict(ANTHROPIC_USAGE, input_tokens=50 + i, output_tokens=20 + i % 9, service_tier="batch")
    message = anthropic_message(usage=usage)
    if pad:
        message["content"] = [{"type": "text", "text": _PAD}]
    return {"custom_id": f"req-{i}", "result": {"type": "succeeded", "message": message}}


def jsonl(lines: Any) -> Any:
    for obj in lines:
        yield json.dumps(obj).encode() + b"\n"


def chunked_lines(lines: Any, size: int = 65536) -> Any:
    """Lines regrouped into chunks of about ``size`` bytes (a line may straddle two chunks)."""
    pending = b""
    for line in lines:
        pending += line
        while len(pending) >= size:
            yield pending[:size]
            pending = pending[size:]
    if pending:
        yield pending


def batch_count(name: str) -> int:
    digits = "".join(ch for ch in name.replace("-pad", "").replace("-odd", "") if ch.isdigit())
    return int(digits) if digits else 3


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

    def _stream(self, chunks: Any, content_type: str = "text/event-stream") -> None:
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
        path = self.path.split("?", 1)[0]
        parts = path.strip("/").split("/")
        if path.startswith("/v1/files/") and path.endswith("/content"):
            name = parts[2]
            pad = name.endswith("-pad")
            lines: Any
            if name.startswith("file-out-"):
                lines = (openai_batch_line(i, pad) for i in range(batch_count(name)))
            elif name.startswith("file-err-"):
                lines = (openai_error_line(i) for i in range(batch_count(name)))
            elif name == "file-in":  # a batch's input file: requests, not results
                lines = ({"custom_id": f"req-{i}", "method": "POST", "url": "/v1/chat/completions",
                          "body": {"model": "gpt-4o", "messages": []}} for i in range(3))
            elif name == "file-train":
                lines = ({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}
                         for _ in range(3))
            else:
                return self._json(404, {"error": {"message": "No such File object", "type": "invalid_request_error"}})
            return self._stream(chunked_lines(jsonl(lines)), "application/octet-stream")
        if path.startswith("/v1/messages/batches/") and len(parts) in (4, 5):
            batch_id = parts[3]
            if len(parts) == 5 and parts[4] == "results":
                lines = (anthropic_batch_line(i, batch_id.endswith("-pad")) for i in range(batch_count(batch_id)))
                data = jsonl(lines)
                if "-odd" in batch_id:  # a broken line and a foreign one after the first result
                    first = next(data)
                    data = iter([first, b"{not json\n", b'{"hello": 1}\n', *data])
                return self._stream(chunked_lines(data), "application/binary")
            return self._json(200, {
                "id": batch_id, "type": "message_batch", "processing_status": "ended",
                "request_counts": {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0},
                "ended_at": "2026-11-29T23:40:00Z", "created_at": "2026-11-29T12:00:00Z",
                "expires_at": "2026-11-30T12:00:00Z", "archived_at": None, "cancel_initiated_at": None,
                "results_url": f"{self.server.url}/v1/messages/batches/{batch_id}/results"})
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
        tier = body.get("service_tier") if isinstance(body, dict) else None
        tier = "default" if tier == "auto" else tier
        if path.endswith("/chat/completions"):
            usage = {"cache-write": OPENAI_USAGE_CACHE_WRITE, "audio": OPENAI_USAGE_AUDIO}.get(model, OPENAI_USAGE)
            if stream:
                include = bool((body.get("stream_options") or {}).get("include_usage"))
                return self._stream(openai_chat_stream(include, usage=usage, tier=tier))
            return self._json(200, openai_chat(usage=usage, tier=tier))
        if path.endswith("/responses"):
            usage = RESPONSES_USAGE_CACHE_WRITE if model == "cache-write" else RESPONSES_USAGE
            web = model == "web-search"
            if stream:
                return self._stream(responses_stream(usage, tier, web))
            return self._json(200, responses_obj(usage=usage, tier=tier, web_search=web))
        if path.endswith("/embeddings"):
            return self._json(200, EMBEDDINGS)
        if path.endswith("/v1/messages"):
            if stream:
                return self._stream(anthropic_stream(model == "delta-input", model == "thinking",
                                                     model == "web-search"))
            usage = {"thinking": ANTHROPIC_USAGE_THINKING, "web-search": ANTHROPIC_USAGE_WEB}.get(
                model, ANTHROPIC_USAGE)
            return self._json(200, anthropic_message(usage=usage))
        mm = "/gemini-multimodal:" in path
        if path.endswith(":streamGenerateContent"):
            return self._stream([sse(None, gemini_response(False, mm), "\r\n"),
                                 sse(None, gemini_response(True, mm), "\r\n")])
        if path.endswith(":generateContent"):
            return self._json(200, gemini_response(multimodal=mm))
        if path.endswith("/converse"):
            if "cache-ttl" in path:  # Claude on Bedrock with 1-hour prompt caching
                usage = dict(BEDROCK_CONVERSE["usage"], cacheDetails=[{"ttl": "5m", "inputTokens": 2},
                                                                      {"ttl": "1h", "inputTokens": 3}])
                return self._json(200, dict(BEDROCK_CONVERSE, usage=usage))
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
