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
# One line of a batch results file, read: (custom_id, status, http_status, the result's response
# body or None). ``status`` is a wire status: "ok" for a result that was served (and billed).
BatchLine = Tuple[str, str, Optional[int], Optional[Dict[str, Any]]]

# Keys a format sets in ``meta`` that become wire fields, not metadata (``build_event`` moves them).
USAGE = "usage"  # {registry unit name: count}: usage beyond the five classic token fields
SERVICE_TIER = "service_tier"  # the tier that served the call, as the provider reported it
SPEED = "speed"


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
    # GET path -> True: batch results (one event per JSONL line); False: maybe, when the first
    # line has the batch shape (``batch_line`` answers it); None: not a batch download
    batch_path: Optional[Callable[[str], Optional[bool]]] = None
    # a decoded JSONL line -> its result, or None when the line is not a batch result
    batch_line: Optional[Callable[[Any], Optional[BatchLine]]] = None


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


def add_unit(meta: Meta, unit: str, count: Any) -> None:
    """Add ``count`` of a registry usage unit (``genai_prices`` names: ``web_searches``,
    ``input_audio_tokens``, ``cache_write_1h_tokens``, …); zero counts are not sent."""
    n = as_int(count)
    if n:
        units = meta.setdefault(USAGE, {})
        units[unit] = units.get(unit, 0) + n


def set_str(meta: Meta, key: str, value: Any) -> None:
    """A served tier or speed, when the provider reported one (bounded, as the wire allows)."""
    if isinstance(value, str) and value:
        meta[key] = value[:32]


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
