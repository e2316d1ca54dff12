"""What every format module uses: the ``Format`` it declares and the helpers to read usage.

A format's functions run on the flush thread (``body``/``stream``), except ``classify`` and
``route``, which run on the user's thread for every request to a known host: keep those to a
few string checks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Dict, FrozenSet, Optional, Tuple

if TYPE_CHECKING:
    from .._sse import StreamTap

Tokens = Dict[str, int]
Parsed = Tuple[str, Optional[Tokens]]  # (model, tokens); tokens None when usage is unknown
Meta = Dict[str, Any]


@dataclass(frozen=True)
class Format:
    """One response format, read for every provider that speaks it."""

    name: str
    # provider name -> its exact API hosts (a provider with no fixed host maps to ())
    providers: Dict[str, Tuple[str, ...]]
    # POST path -> span type ("llm", "embedding", "api", "vector_db"), or None: not recorded
    classify: Callable[[str], Optional[str]]
    # a decoded JSON body (dict) -> (model, tokens); extra facts go into meta
    body: Callable[[Dict[str, Any], Meta], Parsed]
    # an SSE (or AWS event-stream) tap -> (model, tokens)
    stream: Callable[["StreamTap", Meta], Parsed] = lambda tap, meta: ("", None)
    # (host suffix, provider) pairs, tried after exact hosts
    suffixes: Tuple[Tuple[str, str], ...] = ()
    # bare host -> provider, for host shapes neither exact nor a suffix
    match_host: Optional[Callable[[str], Optional[str]]] = None
    # path -> (provider, format) when this host serves a call in another format
    route: Optional[Callable[[str], Optional[Tuple[str, str]]]] = None
    # the model named in the URL, for answers that carry none
    model_from_path: Optional[Callable[[str], str]] = None
    # top-level keys holding usage, searched in bodies too big to decode whole
    usage_keys: Tuple[str, ...] = ("usage",)
    # named SSE events whose last payload is kept for ``stream``
    sse_events: FrozenSet[bytes] = frozenset()
    # named SSE events after which the stream is complete
    sse_final: FrozenSet[bytes] = frozenset()
    # named SSE events that end the stream when their payload says so
    sse_final_if: Dict[bytes, Callable[[bytes], bool]] = field(default_factory=dict)


def loads(raw: Optional[bytes]) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def as_int(value: Any) -> int:
    if isinstance(value, bool):
        return 0
    if isinstance(value, (int, float)):
        return max(0, int(value))
    return 0


def dig(obj: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def zero() -> Tokens:
    return {
        "input_tokens": 0,
        "output_tokens": 0,
        "cached_input_tokens": 0,
        "cache_write_tokens": 0,
        "reasoning_tokens": 0,
    }


def subsets(t: Tokens) -> Tokens:
    """Design §4: cache reads and writes are subsets of input, reasoning of output. A provider
    answer that breaks that (a detail larger than its total) is capped, never over-counted."""
    t["cached_input_tokens"] = min(t["cached_input_tokens"], t["input_tokens"])
    t["cache_write_tokens"] = min(t["cache_write_tokens"], t["input_tokens"] - t["cached_input_tokens"])
    t["reasoning_tokens"] = min(t["reasoning_tokens"], t["output_tokens"])
    return t


def model_of(obj: Dict[str, Any], key: str = "model") -> str:
    model = obj.get(key)
    return model if isinstance(model, str) else ""


def find_json_after(raw: bytes, key: bytes) -> Any:
    """The JSON value after the last ``key`` in ``raw`` (a body too big to decode, a binary frame)."""
    idx = raw.rfind(key)
    if idx < 0:
        return None
    try:
        text = raw[idx + len(key):].decode("utf-8", "replace").lstrip(" :")
        return json.JSONDecoder().raw_decode(text)[0]
    except ValueError:
        return None
