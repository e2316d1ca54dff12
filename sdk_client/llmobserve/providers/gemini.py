"""Google's Gemini format (AI Studio and Vertex AI); Claude on Vertex is routed to Anthropic's."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, Optional, Tuple

from ._base import Format, Meta, Parsed, Tokens, add_unit, as_int, loads, model_of, zero

if TYPE_CHECKING:
    from .._sse import StreamTap


# ``*TokensDetails`` lists ({"modality", "tokenCount"}) -> the registry's units, as genai-prices'
# own Gemini extractor maps them (DOCUMENT tokens are priced as image tokens; TEXT is the rest).
_INPUT = {"AUDIO": "input_audio_tokens", "IMAGE": "input_image_tokens", "DOCUMENT": "input_image_tokens",
          "VIDEO": "input_video_tokens"}
_MODALITY_UNITS = {
    "promptTokensDetails": _INPUT,
    "toolUsePromptTokensDetails": _INPUT,
    "cacheTokensDetails": {"AUDIO": "cache_audio_read_tokens", "IMAGE": "cache_image_read_tokens",
                           "DOCUMENT": "cache_image_read_tokens", "VIDEO": "cache_video_read_tokens"},
    "candidatesTokensDetails": {"AUDIO": "output_audio_tokens", "IMAGE": "output_image_tokens",
                                "DOCUMENT": "output_image_tokens", "VIDEO": "output_video_tokens"},
}


def units(u: Dict[str, Any], meta: Meta) -> None:
    for key, by_modality in _MODALITY_UNITS.items():
        details = u.get(key)
        if not isinstance(details, list):
            continue
        for d in details:
            if isinstance(d, dict):
                unit = by_modality.get(str(d.get("modality") or ""))
                if unit is not None:
                    add_unit(meta, unit, d.get("tokenCount"))
    # Tool-use prompt tokens (e.g. search results fed back to the model) are input, and a unit of their own.
    add_unit(meta, "input_tool_tokens", u.get("toolUsePromptTokenCount"))


def grounding(obj: Dict[str, Any], meta: Meta) -> None:
    """Grounding with Google Search: the queries the model ran (``webSearchQueries``), one
    ``web_searches`` each, summed over the candidates."""
    candidates = obj.get("candidates")
    if not isinstance(candidates, list):
        return
    for c in candidates:
        gm = c.get("groundingMetadata") if isinstance(c, dict) else None
        queries = gm.get("webSearchQueries") if isinstance(gm, dict) else None
        if isinstance(queries, list):
            add_unit(meta, "web_searches", len(queries))


def usage(u: Dict[str, Any], meta: Optional[Meta] = None) -> Tokens:
    """Gemini reports thoughts outside ``candidatesTokenCount``: output is the sum."""
    if meta is not None:
        units(u, meta)
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
    grounding(obj, meta)
    return model_of(obj, "modelVersion"), usage(u, meta) if isinstance(u, dict) else None


def stream(tap: "StreamTap", meta: Meta) -> Parsed:
    last = loads(tap.last)
    if isinstance(last, list) and last:
        last = last[-1]
    if isinstance(last, dict):  # the final chunk: usage, and the grounding of the whole answer
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
