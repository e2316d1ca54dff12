"""The v1 event wire format (DESIGN §4), validated with msgspec: one C pass per batch.

`events_validate` never raises on bad input: it splits a decoded batch into normalised
valid events and `{"index", "errors"}` rejections.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

MAX_TOKENS = 2**53  # JSON-safe, far above any real request; keeps sums inside 64-bit integers
METADATA_MAX_BYTES = 8 * 1024
FUTURE_TOLERANCE = timedelta(hours=1)
PRICED_SPAN_TYPES = frozenset({"llm", "embedding"})

Str64 = Annotated[str, Meta(max_length=64)]
Tokens = Annotated[int, Meta(ge=0, le=MAX_TOKENS)]


class EventIn(msgspec.Struct, omit_defaults=True):
    """One call. Unknown fields are ignored; every field has the default of DESIGN §4."""

    event_id: Annotated[str, Meta(min_length=1, max_length=64)] | None = None
    run_id: Annotated[str, Meta(max_length=128)] | None = None
    span_id: Str64 | None = None
    parent_span_id: Str64 | None = None
    section: Annotated[str, Meta(max_length=256)] = ""
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
    status: Literal["ok", "error", "rate_limited", "timeout", "cancelled"] = "ok"
    http_status: Annotated[int, Meta(ge=100, le=599)] | None = None
    customer_id: Annotated[str, Meta(max_length=256)] | None = None
    stream: bool = False
    timestamp: datetime | None = None
    cost_usd: Annotated[str, Meta(max_length=40)] | float | None = None
    metadata: dict[str, Any] = {}


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
            errors[name] = str(exc).split(" - at ")[0]
    return errors or {"event": "invalid event"}


def _semantic_errors(event: EventIn, now: datetime) -> dict[str, str]:
    errors: dict[str, str] = {}
    if event.span_type in PRICED_SPAN_TYPES:
        if not event.provider:
            errors["provider"] = f"required for {event.span_type} spans"
        if not event.model:
            errors["model"] = f"required for {event.span_type} spans"
    if event.timestamp is not None:
        ts = event.timestamp if event.timestamp.tzinfo else event.timestamp.replace(tzinfo=timezone.utc)
        if ts > now + FUTURE_TOLERANCE:
            errors["timestamp"] = "more than 1 hour in the future"
        elif ts.year < 2000:
            errors["timestamp"] = "before 2000-01-01"
    if event.cost_usd is not None:
        try:
            cost = Decimal(str(event.cost_usd))
            if not cost.is_finite() or cost < 0 or cost > Decimal("1e6"):
                raise InvalidOperation
        except (InvalidOperation, ValueError):
            errors["cost_usd"] = "must be a non-negative decimal string below 1000000"
    if event.metadata and len(msgspec.json.encode(event.metadata)) > METADATA_MAX_BYTES:
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
    # Anthropic's convention reports input without cache reads/writes; ours includes them.
    if event.cached_input_tokens + event.cache_write_tokens > event.input_tokens:
        event.input_tokens += event.cached_input_tokens + event.cache_write_tokens
    if event.reasoning_tokens > event.output_tokens:
        event.output_tokens += event.reasoning_tokens
    if event.cost_usd is not None:
        event.cost_usd = format(Decimal(str(event.cost_usd)), "f")
    return event


class BatchShapeError(ValueError):
    """The body is JSON but not a list of objects (or {"events": [...]})."""


_decoder_list = msgspec.json.Decoder(list[EventIn])
_decoder_obj = msgspec.json.Decoder(BatchIn)
_decoder_any = msgspec.json.Decoder()


def batch_decode(body: bytes) -> tuple[list[EventIn] | None, list[Any]]:
    """Fast path: the whole batch typed in one pass. Else the raw items, for per-event validation.

    Raises msgspec.DecodeError for non-JSON and BatchShapeError for a wrong shape.
    """
    stripped = body.lstrip()
    if stripped[:1] == b"[":
        try:
            return _decoder_list.decode(body), []
        except msgspec.ValidationError:
            raw = _decoder_any.decode(body)
    else:
        try:
            return _decoder_obj.decode(body).events, []
        except msgspec.ValidationError:
            raw = _decoder_any.decode(body)
        if not isinstance(raw, dict) or not isinstance(raw.get("events"), list):
            raise BatchShapeError('Body must be a JSON array of events or {"events": [...]}.')
        raw = raw["events"]
    if not isinstance(raw, list):
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
