"""Amazon Bedrock: Converse (its own usage shape) and invoke (the model's, e.g. Anthropic's)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, Optional
from urllib.parse import unquote

from . import anthropic
from ._base import Format, Meta, Parsed, Tokens, add_unit, as_int, find_json_after, model_of, zero

if TYPE_CHECKING:
    from .._sse import StreamTap

_ACTIONS = ("converse", "converse-stream", "invoke", "invoke-with-response-stream")


def usage(u: Dict[str, Any], meta: Meta) -> Tokens:
    if "input_tokens" in u:  # invoke with an Anthropic body
        return anthropic.usage(u, meta)
    t = zero()
    read = as_int(u.get("cacheReadInputTokens"))
    write = as_int(u.get("cacheWriteInputTokens"))
    t["input_tokens"] = as_int(u.get("inputTokens")) + read + write
    t["output_tokens"] = as_int(u.get("outputTokens"))
    t["cached_input_tokens"] = read
    t["cache_write_tokens"] = write
    details = u.get("cacheDetails")  # the writes by time-to-live: [{"ttl": "1h", "inputTokens": n}, …]
    if isinstance(details, list):
        for d in details:
            ttl = d.get("ttl") if isinstance(d, dict) else None
            if ttl in ("5m", "1h"):
                add_unit(meta, f"cache_write_{ttl}_tokens", d.get("inputTokens"))
    return t


def classify(path: str) -> Optional[str]:
    if "/model/" in path and path.rsplit("/", 1)[-1] in _ACTIONS:
        return "llm"
    return None


def match_host(host: str) -> Optional[str]:
    return "bedrock" if host.startswith("bedrock-runtime.") and host.endswith(".amazonaws.com") else None


def model_from_path(path: str) -> str:
    if "/model/" not in path:
        return ""
    return unquote(path.split("/model/", 1)[1].rsplit("/", 1)[0])


def body(obj: Dict[str, Any], meta: Meta) -> Parsed:
    u = obj.get("usage")
    return model_of(obj), usage(u, meta) if isinstance(u, dict) else None


def stream(tap: "StreamTap", meta: Meta) -> Parsed:
    """AWS event-stream framing is binary: the usage is JSON inside the final metadata frame."""
    source = tap.kept() or (tap.last or b"")
    u = find_json_after(source, b'"usage"')
    return "", usage(u, meta) if isinstance(u, dict) else None


FORMAT = Format(
    name="bedrock",
    providers={"bedrock": ()},
    match_host=match_host,
    classify=classify,
    body=body,
    stream=stream,
    model_from_path=model_from_path,
)
