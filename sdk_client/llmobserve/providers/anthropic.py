"""Anthropic's Messages format (also Claude on Vertex AI, and Bedrock ``invoke`` bodies)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Dict, Optional

from ._base import (SERVICE_TIER, SPEED, BatchLine, Format, Meta, Parsed, Tokens, add_unit, as_int, dig, loads,
                    model_of, set_str, subsets, zero)

if TYPE_CHECKING:
    from .._sse import StreamTap


def usage(u: Dict[str, Any], meta: Meta) -> Tokens:
    """Anthropic's ``input_tokens`` excludes cache reads and writes: input is the sum."""
    t = zero()
    read = as_int(u.get("cache_read_input_tokens"))
    write = as_int(u.get("cache_creation_input_tokens"))
    t["input_tokens"] = as_int(u.get("input_tokens")) + read + write
    t["output_tokens"] = as_int(u.get("output_tokens"))
    t["cached_input_tokens"] = read
    t["cache_write_tokens"] = write
    # output_tokens includes thinking: output_tokens_details is a read-only breakdown of it.
    t["reasoning_tokens"] = as_int(dig(u, "output_tokens_details", "thinking_tokens"))
    one_hour = as_int(dig(u, "cache_creation", "ephemeral_1h_input_tokens"))
    if one_hour:
        meta["cache_write_1h_tokens"] = one_hour  # the pre-``usage`` spelling, for older collectors
    # Subsets of cache_creation_input_tokens by time-to-live, priced apart (1 h writes cost 2x input).
    add_unit(meta, "cache_write_1h_tokens", one_hour)
    add_unit(meta, "cache_write_5m_tokens", dig(u, "cache_creation", "ephemeral_5m_input_tokens"))
    add_unit(meta, "web_searches", dig(u, "server_tool_use", "web_search_requests"))
    set_str(meta, SERVICE_TIER, u.get("service_tier"))
    set_str(meta, SPEED, u.get("speed"))
    return subsets(t)


def classify(path: str) -> Optional[str]:
    return "llm" if path.endswith(("/messages", "/complete")) else None


def body(obj: Dict[str, Any], meta: Meta) -> Parsed:
    u = obj.get("usage")
    return model_of(obj), usage(u, meta) if isinstance(u, dict) else None


def stream(tap: "StreamTap", meta: Meta) -> Parsed:
    start = loads(tap.events.get(b"message_start"))
    message = start.get("message") if isinstance(start, dict) else None
    model = ""
    u: Dict[str, Any] = {}
    if isinstance(message, dict):
        model = str(message.get("model") or "")
        if isinstance(message.get("usage"), dict):
            u.update(message["usage"])
    delta = loads(tap.events.get(b"message_delta"))
    if isinstance(delta, dict) and isinstance(delta.get("usage"), dict):
        # Cumulative: each present field replaces the message_start value.
        u.update({k: v for k, v in delta["usage"].items() if v is not None})
    return model, usage(u, meta) if u else None


def batch_path(path: str) -> Optional[bool]:
    """``GET /v1/messages/batches/{id}/results``: always a Message Batch's results (JSONL)."""
    return True if path.endswith("/results") and "/messages/batches/" in path else None


_BATCH_STATUS = {"succeeded": "ok", "errored": "error", "canceled": "cancelled", "expired": "timeout"}


def batch_line(obj: Any) -> Optional[BatchLine]:
    """``{"custom_id", "result": {"type": "succeeded", "message": {…}}}``; errored, canceled and
    expired results were not served (nor billed): recorded with their status and no usage."""
    if not isinstance(obj, dict) or "custom_id" not in obj:
        return None
    result = obj.get("result")
    kind = result.get("type") if isinstance(result, dict) else None
    status = _BATCH_STATUS.get(kind if isinstance(kind, str) else "", "error")
    message = result.get("message") if isinstance(result, dict) and status == "ok" else None
    return str(obj.get("custom_id") or ""), status, None, message if isinstance(message, dict) else None


def delta_stops(payload: bytes) -> bool:
    """A ``message_delta`` whose ``delta.stop_reason`` is set carries the final usage: the
    message is over (LiteLLM closes the response here, before ``message_stop``)."""
    if b'"stop_reason"' not in payload:
        return False
    try:
        obj = json.loads(payload)
    except ValueError:
        return False
    delta = obj.get("delta") if isinstance(obj, dict) else None
    return isinstance(delta, dict) and delta.get("stop_reason") is not None


FORMAT = Format(
    name="anthropic",
    providers={"anthropic": ("api.anthropic.com",)},
    classify=classify,
    body=body,
    stream=stream,
    # message_start: model + initial usage; message_delta: cumulative output (+ input / cache updates)
    sse_events=frozenset({b"message_start", b"message_delta"}),
    sse_final=frozenset({b"message_stop"}),
    sse_final_if={b"message_delta": delta_stops},
    batch_path=batch_path,
    batch_line=batch_line,
)
