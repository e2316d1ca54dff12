"""Google's Gemini format (AI Studio and Vertex AI); Claude on Vertex is routed to Anthropic's."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, Optional, Tuple

from ._base import Format, Meta, Parsed, Tokens, as_int, loads, model_of, zero

if TYPE_CHECKING:
    from .._sse import StreamTap


def usage(u: Dict[str, Any]) -> Tokens:
    """Gemini reports thoughts outside ``candidatesTokenCount``: output is the sum."""
    t = zero()
    thoughts = as_int(u.get("thoughtsTokenCount"))
    t["input_tokens"] = as_int(u.get("promptTokenCount")) + as_int(u.get("toolUsePromptTokenCount"))
    t["output_tokens"] = as_int(u.get("candidatesTokenCount")) + thoughts
    t["cached_input_tokens"] = as_int(u.get("cachedContentTokenCount"))
    t["reasoning_tokens"] = thoughts
    return t


def classify(path: str) -> Optional[str]:
    if path.endswith((":embedContent", ":batchEmbedContents")):
        return "embedding"
    if path.endswith((":generateContent", ":streamGenerateContent")):
        return "llm"
    if path.endswith((":rawPredict", ":streamRawPredict")) and "/publishers/anthropic/" in path:
        return "llm"  # Claude on Vertex AI
    return None


def route(path: str) -> Optional[Tuple[str, str]]:
    return ("vertex_ai", "anthropic") if "/publishers/anthropic/" in path else None


def model_from_path(path: str) -> str:
    seg = path.rsplit("/models/", 1)[-1] if "/models/" in path else ""
    return seg.split(":", 1)[0]


def body(obj: Dict[str, Any], meta: Meta) -> Parsed:
    u = obj.get("usageMetadata")
    return model_of(obj, "modelVersion"), usage(u) if isinstance(u, dict) else None


def stream(tap: "StreamTap", meta: Meta) -> Parsed:
    last = loads(tap.last)
    if isinstance(last, list) and last:
        last = last[-1]
    if isinstance(last, dict):
        return body(last, meta)
    return "", None


FORMAT = Format(
    name="gemini",
    providers={"google": ("generativelanguage.googleapis.com",), "gemini": (), "vertex_ai": ()},
    suffixes=(("aiplatform.googleapis.com", "google"),),
    classify=classify,
    route=route,
    body=body,
    stream=stream,
    model_from_path=model_from_path,
    usage_keys=("usageMetadata",),
)
