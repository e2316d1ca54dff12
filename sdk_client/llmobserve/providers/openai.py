"""OpenAI's format: chat completions, completions, Responses, embeddings; and the many
OpenAI-compatible APIs (a host name the SDK does not know is read as this format too)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, Optional

from ._base import (SERVICE_TIER, BatchLine, Format, Meta, Parsed, Tokens, add_unit, as_int, dig, loads, model_of,
                    set_str, subsets, zero)

if TYPE_CHECKING:
    from .._sse import StreamTap

_DONE = (b"response.completed", b"response.incomplete", b"response.failed")


# Token details -> the registry's units (as genai-prices' own OpenAI extractors map them):
# subsets of input (``prompt_tokens_details`` / ``input_tokens_details`` / the Realtime API's
# ``input_token_details``) and of output.
_INPUT_UNITS = (("audio_tokens", "input_audio_tokens"), ("image_tokens", "input_image_tokens"))
_CACHED_UNITS = (("audio_tokens", "cache_audio_read_tokens"), ("image_tokens", "cache_image_read_tokens"))
_OUTPUT_UNITS = (("audio_tokens", "output_audio_tokens"), ("image_tokens", "output_image_tokens"))


def units(u: Dict[str, Any], meta: Meta) -> None:
    for key in ("prompt_tokens_details", "input_tokens_details", "input_token_details"):
        details = u.get(key)
        if isinstance(details, dict):
            for field, unit in _INPUT_UNITS:
                add_unit(meta, unit, details.get(field))
            cached = details.get("cached_tokens_details")
            if isinstance(cached, dict):
                for field, unit in _CACHED_UNITS:
                    add_unit(meta, unit, cached.get(field))
    for key in ("completion_tokens_details", "output_tokens_details", "output_token_details"):
        details = u.get(key)
        if isinstance(details, dict):
            for field, unit in _OUTPUT_UNITS:
                add_unit(meta, unit, details.get(field))


def response_facts(obj: Dict[str, Any], meta: Meta) -> None:
    """What a chat completion or a Responses object says beyond usage: the tier that served it
    and, for Responses, the web searches it ran (one ``web_search_call`` output item each)."""
    set_str(meta, SERVICE_TIER, obj.get("service_tier"))
    output = obj.get("output")
    if isinstance(output, list):
        add_unit(meta, "web_searches", sum(
            1 for item in output if isinstance(item, dict) and item.get("type") == "web_search_call"))


def usage(u: Dict[str, Any], meta: Optional[Meta] = None) -> Tokens:
    """Chat ``prompt_tokens`` / Responses ``input_tokens`` are all input: the cache read
    (``cached_tokens``) and cache write (``cache_write_tokens``) details are subsets of it."""
    if meta is not None:
        units(u, meta)
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
    response_facts(obj, meta)
    return model_of(obj), usage(u, meta) if isinstance(u, dict) else None


def stream(tap: "StreamTap", meta: Meta) -> Parsed:
    for name in _DONE:  # Responses API: the final event holds the whole response
        done = loads(tap.events.get(name))
        if isinstance(done, dict):
            resp = done.get("response") or {}
            u = resp.get("usage")
            if isinstance(resp, dict):
                response_facts(resp, meta)
            return str(resp.get("model") or ""), usage(u, meta) if isinstance(u, dict) else None
    last = loads(tap.last)
    first = loads(tap.first)
    model = ""
    for obj in (last, first):
        if isinstance(obj, dict):
            m = obj.get("model") or dig(obj, "response", "model")
            if isinstance(m, str) and m:
                model = m
                break
    for obj in (last, first):  # every chat chunk repeats the served tier
        if isinstance(obj, dict) and obj.get("service_tier"):
            set_str(meta, SERVICE_TIER, obj["service_tier"])
            break
    if isinstance(last, dict):  # chat: the last chunk (stream_options.include_usage)
        u = last.get("usage") or dig(last, "x_groq", "usage")
        if isinstance(u, dict):
            return model, usage(u, meta)
    return model, None


def batch_path(path: str) -> Optional[bool]:
    """``GET /v1/files/{id}/content``: a batch's output (or error) file when its lines say so."""
    return False if path.endswith("/content") and "/files/" in path else None


def batch_line(obj: Any) -> Optional[BatchLine]:
    """``{"id", "custom_id", "response": {"status_code", "request_id", "body"}, "error"}``: the body
    is the endpoint's usual answer (chat completion, Responses object, embeddings list)."""
    if not isinstance(obj, dict) or "custom_id" not in obj or "response" not in obj:
        return None
    custom_id = str(obj.get("custom_id") or "")
    resp = obj.get("response")
    if not isinstance(resp, dict):  # the error file: the request never ran
        return custom_id, "error", None, None
    code = resp.get("status_code")
    http_status = code if isinstance(code, int) and not isinstance(code, bool) else None
    status = "ok" if http_status is None or http_status < 400 else ("rate_limited" if http_status == 429 else "error")
    body_obj = resp.get("body")
    return custom_id, status, http_status, body_obj if isinstance(body_obj, dict) else None


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
    batch_path=batch_path,
    batch_line=batch_line,
)
