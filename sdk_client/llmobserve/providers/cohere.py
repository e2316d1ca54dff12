"""Cohere's format: v2 chat (``usage``), v1 chat/generate/embed (``meta``), rerank."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, Optional

from ._base import Format, Meta, Parsed, Tokens, as_int, dig, loads, model_of, subsets, zero

if TYPE_CHECKING:
    from .._sse import StreamTap


def usage(obj: Dict[str, Any]) -> Optional[Tokens]:
    billed = dig(obj, "usage", "billed_units") or dig(obj, "meta", "billed_units")
    if not isinstance(billed, dict):
        return None
    t = zero()
    t["input_tokens"] = as_int(billed.get("input_tokens"))
    t["output_tokens"] = as_int(billed.get("output_tokens"))
    # "prompt tokens that hit the inference cache" (v2 usage; v1 meta): a subset of input.
    t["cached_input_tokens"] = as_int(dig(obj, "usage", "cached_tokens")) or as_int(dig(obj, "meta", "cached_tokens"))
    return subsets(t)


def classify(path: str) -> Optional[str]:
    if path.endswith("/embed"):
        return "embedding"
    if path.endswith(("/chat", "/generate")):
        return "llm"
    if path.endswith("/rerank"):
        return "api"
    return None


def body(obj: Dict[str, Any], meta: Meta) -> Parsed:
    return model_of(obj), usage(obj)


def stream(tap: "StreamTap", meta: Meta) -> Parsed:
    end = loads(tap.events.get(b"message-end") or tap.last)
    if isinstance(end, dict):
        return "", usage(end.get("delta") or end) or usage(end)
    return "", None


FORMAT = Format(
    name="cohere",
    providers={"cohere": ("api.cohere.com", "api.cohere.ai")},
    classify=classify,
    body=body,
    stream=stream,
    usage_keys=("usage", "meta"),
    sse_events=frozenset({b"message-end"}),  # v2
    sse_final=frozenset({b"message-end"}),
)
