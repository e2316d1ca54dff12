"""The v1 event wire format (DESIGN §4), validated with msgspec: one C pass per batch.

`events_validate` never raises on bad input: it splits a decoded batch into normalised
valid events and `{"index", "errors"}` rejections.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from .price_units import REPORTABLE, UNIT_WIRE_FIELDS

# Per field per event. The dearest price in the shipped registry is $600 per 1M tokens; at up to $1,000 per 1M
# (10^9 pico-USD per token) one event's cost stays below 5 × 10^18 pico-USD (input, cache read and cache write
# ≤ 10^9 each, output + reasoning ≤ 2 × 10^9), inside a signed 64-bit integer. docs/api.md § Limits.
MAX_TOKENS = 1_000_000_000
# What a stored, normalised count may reach: input + cached + cache_write (Anthropic's convention) is 3 × the cap.
MAX_STORED_TOKENS = 3 * MAX_TOKENS
TOKEN_FIELDS = ("input_tokens", "output_tokens", "cached_input_tokens", "cache_write_tokens", "reasoning_tokens")
TOKENS_ERROR = f"must be an integer from 0 to {MAX_TOKENS}"
MAX_COST_USD = Decimal(1_000_000)
MAX_USAGE = MAX_TOKENS  # any unit's count in one call (tokens, searches, seconds, …)
METADATA_MAX_BYTES = 8 * 1024
SECTION_MAX = 256  # a section label, and each section of a path
METADATA_MAX_DEPTH = 32
INT64 = 2**63
FUTURE_TOLERANCE = timedelta(hours=1)
PRICED_SPAN_TYPES = frozenset({"llm", "embedding"})

Str64 = Annotated[str, Meta(max_length=64)]
Tokens = Annotated[int, Meta(ge=0, le=MAX_STORED_TOKENS)]  # the wire cap, MAX_TOKENS, is checked per event


class EventIn(msgspec.Struct, omit_defaults=True):
    """One call. Unknown fields are ignored; every field has the default of DESIGN §4."""

    event_id: Annotated[str, Meta(min_length=1, max_length=64)] | None = None
    run_id: Annotated[str, Meta(max_length=128)] | None = None
    span_id: Str64 | None = None
    parent_span_id: Str64 | None = None
    section: Annotated[str, Meta(max_length=SECTION_MAX)] = ""
    section_path: Annotated[str, Meta(max_length=1024)] = ""
    span_type: Literal["llm", "embedding", "vector_db", "api", "other"] = "llm"
    provider: Str64 = ""
    model: Annotated[str, Meta(max_length=256)] = ""
    endpoint: Annotated[str, Meta(max_length=256)] = ""
    input_tokens: Tokens = 0
    output_tokens: Tokens = 0
    cached_input_tokens: Tokens = 0
    cache_write_tokens: Tokens = 0
    reasoning_tokens: Tokens = 0
    latency_ms: Annotated[float, Meta(ge=0, le=1e10)] | None = None
    ttft_ms: Annotated[float, Meta(ge=0, le=1e10)] | None = None  # streams: request start to first body byte
    status: Literal["ok", "error", "rate_limited", "timeout", "cancelled"] = "ok"
    http_status: Annotated[int, Meta(ge=100, le=599)] | None = None
    customer_id: Annotated[str, Meta(max_length=256)] | None = None
    stream: bool = False
    timestamp: datetime | None = None
    cost_usd: Annotated[str, Meta(max_length=40)] | float | None = None
    metadata: dict[str, Any] = {}
    # Wire v1 additions (docs/api.md): what the provider billed beyond tokens, and the context that selects a price.
    service_tier: Annotated[str, Meta(max_length=32)] | None = None  # the tier that served the call
    processing: Literal["batch"] | None = None
    speed: Annotated[str, Meta(max_length=32)] | None = None
    usage: dict[str, Annotated[int, Meta(ge=0, le=MAX_USAGE)]] = {}


class BatchIn(msgspec.Struct):
    events: list[EventIn]


_FIELDS = EventIn.__struct_fields__
# One single-field struct per field: used only on the slow path, to report every bad field.
_FIELD_STRUCTS = {
    name: msgspec.defstruct(f"Check_{name}", [(name, EventIn.__annotations__[name], None)])
    for name in _FIELDS
}
_PATH_RE = re.compile(r"at `\$\.(\w+)")


def _field_errors(raw: Any) -> dict[str, str]:
    if not isinstance(raw, dict):
        return {"event": "must be a JSON object"}
    errors: dict[str, str] = {}
    for name in _FIELDS:
        if name not in raw:
            continue
        try:
            msgspec.convert({name: raw[name]}, _FIELD_STRUCTS[name])
        except msgspec.ValidationError as exc:
            message = str(exc).split(" - at ")[0]
            # Stored counts may reach MAX_STORED_TOKENS; the client is told the wire limit.
            errors[name] = TOKENS_ERROR if name in TOKEN_FIELDS and "<=" in message else message
    return errors or {"event": "invalid event"}


# Labels are stored as text and shown in pages and URLs: C0 control characters (NUL included, which PostgreSQL
# text cannot hold; newline and tab, which break one-line labels) and lone surrogates (not Unicode) are refused.
LABEL_FIELDS = ("event_id", "run_id", "span_id", "parent_span_id", "section", "section_path", "provider", "model",
                "endpoint", "customer_id")
_LABEL_BAD = re.compile("[\x00-\x1f\ud800-\udfff]")
_METADATA_BAD = re.compile("[\x00\ud800-\udfff]")


def _label_error(value: str) -> str | None:
    bad = _LABEL_BAD.search(value)
    if bad is None:
        return None
    char = bad.group()
    if "\ud800" <= char <= "\udfff":
        return f"contains a lone surrogate (U+{ord(char):04X}) at position {bad.start()}: not valid Unicode"
    return (f"contains the control character U+{ord(char):04X} at position {bad.start()}; "
            "labels may not contain U+0000–U+001F")


def _metadata_error(metadata: dict[str, Any]) -> str | None:
    """What PostgreSQL jsonb (and our 64-bit sums) cannot store: NUL, lone surrogates, huge or non-finite numbers.

    Iterative, so a deeply nested value costs no recursion.
    """
    stack: list[tuple[Any, int]] = [(metadata, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            if depth > METADATA_MAX_DEPTH:
                return f"nested deeper than {METADATA_MAX_DEPTH} levels"
            for key, item in value.items():
                if not isinstance(key, str) or _METADATA_BAD.search(key):
                    return "keys may not contain U+0000 or lone surrogates"
                stack.append((item, depth + 1))
        elif isinstance(value, list):
            if depth > METADATA_MAX_DEPTH:
                return f"nested deeper than {METADATA_MAX_DEPTH} levels"
            stack.extend((item, depth + 1) for item in value)
        elif isinstance(value, str):
            if _METADATA_BAD.search(value):
                return "strings may not contain U+0000 or lone surrogates"
        elif isinstance(value, bool) or value is None:
            continue
        elif isinstance(value, int):
            if not -INT64 <= value < INT64:
                return "integers must fit in 64 bits"
        elif isinstance(value, float):
            if value != value or value in (float("inf"), float("-inf")):
                return "numbers must be finite"
    return None


def _usage_error(event: EventIn) -> str | None:
    """A unit name neither the registry nor our price table defines; a classic token count sent twice, differently."""
    for name, count in event.usage.items():
        if name not in REPORTABLE:
            if name == "requests":
                return "unknown unit 'requests' (a request price is charged once per call)"
            return f"unknown unit {name[:64]!r}"
        field = UNIT_WIRE_FIELDS.get(name)
        if field is not None and getattr(event, field) not in (0, count):
            return f"{name} ({count}) differs from {field} ({getattr(event, field)})"
    return None


def timestamp_error(timestamp: datetime, now: datetime) -> str | None:
    """Why a call's timestamp is refused (naive means UTC), or None."""
    ts = timestamp if timestamp.tzinfo else timestamp.replace(tzinfo=timezone.utc)
    if ts > now + FUTURE_TOLERANCE:
        return "more than 1 hour in the future"
    if ts.year < 2000:
        return "before 2000-01-01"
    return None


def tokens_inclusive(event: EventIn) -> None:
    """Input includes cache reads/writes and output includes reasoning (Anthropic's convention reports input
    without the cache; ours includes it)."""
    if event.cached_input_tokens + event.cache_write_tokens > event.input_tokens:
        event.input_tokens += event.cached_input_tokens + event.cache_write_tokens
    if event.reasoning_tokens > event.output_tokens:
        event.output_tokens += event.reasoning_tokens


def _section_path_error(path: str) -> str | None:
    """Each section of a path is a section label (`section`'s limit): its first names the agent the rollups and
    run summaries keep, its last is the call's `section` when none is sent."""
    for position, segment in enumerate(path.split("/"), 1):
        if len(segment) > SECTION_MAX:
            return (f"section {position} of the path has {len(segment)} characters; each section is a label of at "
                    f"most {SECTION_MAX}")
    return None


def _semantic_errors(event: EventIn, now: datetime) -> dict[str, str]:
    errors: dict[str, str] = {}
    for name in LABEL_FIELDS:
        value = getattr(event, name)
        if value and (problem := _label_error(value)):
            errors[name] = problem
    if len(event.section_path) > SECTION_MAX and (problem := _section_path_error(event.section_path)):
        errors["section_path"] = problem
    for name in TOKEN_FIELDS:
        if getattr(event, name) > MAX_TOKENS:
            errors[name] = TOKENS_ERROR
    if event.span_type in PRICED_SPAN_TYPES:
        if not event.provider:
            errors["provider"] = f"required for {event.span_type} spans"
        if not event.model:
            errors["model"] = f"required for {event.span_type} spans"
    if event.timestamp is not None and (problem := timestamp_error(event.timestamp, now)):
        errors["timestamp"] = problem
    if event.cost_usd is not None:
        try:
            cost = Decimal(str(event.cost_usd))
            if not cost.is_finite() or cost < 0 or cost > MAX_COST_USD:
                raise InvalidOperation
        except (InvalidOperation, ValueError):
            errors["cost_usd"] = "must be a non-negative decimal string below 1000000"
    if event.usage and (problem := _usage_error(event)):
        errors["usage"] = problem
    for name in ("service_tier", "speed"):
        value = getattr(event, name)
        if value and (problem := _label_error(value)):
            errors[name] = problem
    if event.metadata:
        if problem := _metadata_error(event.metadata):
            errors["metadata"] = problem
        elif len(msgspec.json.encode(event.metadata)) > METADATA_MAX_BYTES:
            errors["metadata"] = "larger than 8 KB"
    return errors


def _normalise(event: EventIn, now: datetime) -> EventIn:
    """Fill server defaults so the stored batch is complete and re-processing is deterministic."""
    if event.event_id is None:
        event.event_id = uuid.uuid4().hex
    if not event.run_id:
        event.run_id = event.event_id
    if event.timestamp is None:
        event.timestamp = now
    elif event.timestamp.tzinfo is None:
        event.timestamp = event.timestamp.replace(tzinfo=timezone.utc)
    else:
        event.timestamp = event.timestamp.astimezone(timezone.utc)
    path = event.section_path.strip("/")
    if path and not event.section:
        event.section = path.rsplit("/", 1)[-1]
    elif event.section and not path:
        path = event.section
    event.section_path = path
    if event.usage:
        # The classic token fields are units too: a count sent in `usage` lands in its field, zeros are dropped.
        usage = {}
        for name, count in event.usage.items():
            field = UNIT_WIRE_FIELDS.get(name)
            if field is not None:
                setattr(event, field, count)
            elif count:
                usage[name] = count
        event.usage = usage
    tokens_inclusive(event)
    if event.cost_usd is not None:
        event.cost_usd = format(Decimal(str(event.cost_usd)), "f")
    return event


class BatchShapeError(ValueError):
    """The body is JSON but not a list of objects (or {"events": [...]})."""


class BatchDecodeError(ValueError):
    """The body is not JSON we can read (with a message for the client)."""


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def _parse_int(text: str) -> int | float:
    # Past 64 bits any integer is out of range for every field; inf keeps it rejectable without converting
    # thousands of digits (Python refuses int() of more than 4,300).
    return int(text) if len(text) <= 40 else float("inf" if text[0] != "-" else "-inf")


def _tolerant_decode(body: bytes) -> Any:
    """Python's json, for the bodies msgspec refuses for one value only: a number out of range (1e400, a
    100-digit integer) or a lone surrogate. Such values are kept (as inf or a big int) so that per-event
    validation rejects the one event that carries them; every other error stays an error."""
    try:
        return json.loads(body.decode("utf-8"), parse_constant=_refuse_constant, parse_int=_parse_int)
    except (ValueError, RecursionError):
        return None


def _decode_any(body: bytes) -> Any:
    try:
        return _decoder_any.decode(body)
    except RecursionError:
        raise BatchDecodeError(f"JSON is nested too deeply (metadata may nest {METADATA_MAX_DEPTH} levels).") from None
    except UnicodeDecodeError as exc:
        raise BatchDecodeError(f"Body is not valid UTF-8: {exc.reason}.") from None
    except msgspec.DecodeError as exc:
        raw = _tolerant_decode(body)
        if raw is None:
            raise BatchDecodeError(f"Body is not valid JSON: {exc}") from None
        return raw


_decoder_list = msgspec.json.Decoder(list[EventIn])
_decoder_obj = msgspec.json.Decoder(BatchIn)
_decoder_any = msgspec.json.Decoder()


def batch_decode(body: bytes) -> tuple[list[EventIn] | None, list[Any]]:
    """Fast path: the whole batch typed in one pass. Else the raw items, for per-event validation.

    Raises BatchDecodeError for a body that is not JSON (or nests too deeply, or is not UTF-8) and
    BatchShapeError for a wrong shape.
    """
    stripped = body.lstrip()
    decoder = _decoder_list if stripped[:1] == b"[" else _decoder_obj
    try:
        typed = decoder.decode(body)
    except (msgspec.DecodeError, RecursionError, UnicodeDecodeError):  # ValidationError included
        raw = _decode_any(body)
    else:
        return (typed if isinstance(typed, list) else typed.events), []
    if isinstance(raw, dict) and isinstance(raw.get("events"), list):
        raw = raw["events"]
    elif not isinstance(raw, list):
        raise BatchShapeError('Body must be a JSON array of events or {"events": [...]}.')
    return None, raw


def events_validate(*, typed: list[EventIn] | None, raw: list[Any], now: datetime | None = None
                    ) -> tuple[list[EventIn], list[dict[str, Any]]]:
    now = now or datetime.now(timezone.utc)
    accepted: list[EventIn] = []
    rejected: list[dict[str, Any]] = []
    items = typed if typed is not None else raw
    for index, item in enumerate(items):
        if typed is None:
            try:
                item = msgspec.convert(item, EventIn)
            except msgspec.ValidationError:
                rejected.append({"index": index, "errors": _field_errors(raw[index])})
                continue
        errors = _semantic_errors(item, now)
        if errors:
            rejected.append({"index": index, "errors": errors})
        else:
            accepted.append(_normalise(item, now))
    return accepted, rejected


events_encode = msgspec.json.Encoder().encode
events_decode = msgspec.json.Decoder(list[EventIn]).decode
