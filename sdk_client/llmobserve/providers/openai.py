"""OpenAI's format: chat completions, completions, Responses, embeddings; and the many
OpenAI-compatible APIs (a host name the SDK does not know is read as this format too)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, Optional

from ._base import Format, Meta, Parsed, Tokens, as_int, dig, loads, model_of, subsets, zero

if TYPE_CHECKING:
    from .._sse import StreamTap

_DONE = (b"response.completed", b"response.incomplete", b"response.failed")


def usage(u: Dict[str, Any]) -> Tokens:
    """Chat ``prompt_tokens`` / Responses ``input_tokens`` are all input: the cache read
    (``cached_tokens``) and cache write (``cache_write_tokens``) details are subsets of it."""
    t = zero()
    if "prompt_tokens" in u or "completion_tokens" in u:
        t["input_tokens"] = as_int(u.get("prompt_tokens"))
        t["output_tokens"] = as_int(u.get("completion_tokens"))
        t["cached_input_tokens"] = as_int(dig(u, "prompt_tokens_details", "cached_tokens")) or as_int(
            u.get("prompt_cache_hit_tokens")  # DeepSeek
        )
        t["cache_write_tokens"] = as_int(dig(u, "prompt_tokens_details", "cache_write_tokens"))
        t["reasoning_tokens"] = as_int(dig(u, "completion_tokens_details", "reasoning_tokens"))
    else:  # Responses API
        t["input_tokens"] = as_int(u.get("input_tokens"))
        t["output_tokens"] = as_int(u.get("output_tokens"))
        t["cached_input_tokens"] = as_int(dig(u, "input_tokens_details", "cached_tokens"))
        t["cache_write_tokens"] = as_int(dig(u, "input_tokens_details", "cache_write_tokens"))
        t["reasoning_tokens"] = as_int(dig(u, "output_tokens_details", "reasoning_tokens"))
    return subsets(t)


def classify(path: str) -> Optional[str]:
    if path.endswith("/embeddings"):
        return "embedding"
    if path.endswith(("/chat/completions", "/completions", "/responses")):
        return "llm"
    return None


def body(obj: Dict[str, Any], meta: Meta) -> Parsed:
    u = obj.get("usage")
    if not isinstance(u, dict):
        u = dig(obj, "response", "usage")
    return model_of(obj), usage(u) if isinstance(u, dict) else None


def stream(tap: "StreamTap", meta: Meta) -> Parsed:
    for name in _DONE:  # Responses API: the final event holds the whole response
        done = loads(tap.events.get(name))
        if isinstance(done, dict):
            resp = done.get("response") or {}
            u = resp.get("usage")
            return str(resp.get("model") or ""), usage(u) if isinstance(u, dict) else None
    last = loads(tap.last)
    first = loads(tap.first)
    model = ""
    for obj in (last, first):
        if isinstance(obj, dict):
            m = obj.get("model") or dig(obj, "response", "model")
            if isinstance(m, str) and m:
                model = m
                break
    if isinstance(last, dict):  # chat: the last chunk (stream_options.include_usage)
        u = last.get("usage") or dig(last, "x_groq", "usage")
        if isinstance(u, dict):
            return model, usage(u)
    return model, None


FORMAT = Format(
    name="openai",
    providers={
        "openai": ("api.openai.com",),
        "azure_openai": (),
        "mistral": ("api.mistral.ai",),
        "groq": ("api.groq.com",),
        "together": ("api.together.xyz", "api.together.ai"),
        "openrouter": ("openrouter.ai",),
        "deepseek": ("api.deepseek.com",),
        "fireworks": ("api.fireworks.ai",),
        "xai": ("api.x.ai",),
        "perplexity": ("api.perplexity.ai",),
    },
    suffixes=(
        (".openai.azure.com", "azure_openai"),
        (".cognitiveservices.azure.com", "azure_openai"),
        (".services.ai.azure.com", "azure_openai"),
    ),
    classify=classify,
    body=body,
    stream=stream,
    sse_events=frozenset({b"response.created", *_DONE}),  # Responses: model, then usage
    sse_final=frozenset(_DONE),
)
