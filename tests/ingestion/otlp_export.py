"""Builds OTLP trace exports with the published `opentelemetry-proto` classes (protobuf and OTLP/JSON)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status


def new_trace_id() -> str:
    return os.urandom(16).hex()


def new_span_id() -> str:
    return os.urandom(8).hex()


@dataclass
class S:
    """One span: hex ids, start time, duration, attributes; `scope` is the instrumentation scope name."""

    name: str
    trace_id: str
    span_id: str = field(default_factory=new_span_id)
    parent: str = ""
    start: datetime | None = None
    ms: float = 1000.0
    attrs: dict[str, Any] = field(default_factory=dict)
    error: bool = False
    scope: str = "opentelemetry.instrumentation.openai_v2"
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


def _value(value: Any) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, (list, tuple)):
        out = AnyValue()
        out.array_value.values.extend(_value(v) for v in value)
        return out
    return AnyValue(string_value=str(value))


def _kvs(attrs: dict[str, Any]) -> list[KeyValue]:
    return [KeyValue(key=k, value=_value(v)) for k, v in attrs.items()]


def request(spans: list[S], resource: dict[str, Any] | None = None) -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.extend(_kvs(resource or {"service.name": "test-app"}))
    by_scope: dict[str, Any] = {}
    for s in spans:
        ss = by_scope.get(s.scope)
        if ss is None:
            ss = by_scope[s.scope] = rs.scope_spans.add()
            ss.scope.name = s.scope
            ss.scope.version = "1.0"
        span = ss.spans.add()
        span.trace_id = bytes.fromhex(s.trace_id)
        span.span_id = bytes.fromhex(s.span_id)
        if s.parent:
            span.parent_span_id = bytes.fromhex(s.parent)
        span.name = s.name
        span.kind = Span.SPAN_KIND_CLIENT
        start_ns = int(s.start.timestamp() * 1e9)
        span.start_time_unix_nano = start_ns
        span.end_time_unix_nano = start_ns + int(s.ms * 1e6)
        span.attributes.extend(_kvs(s.attrs))
        for name, attrs in s.events:
            event = span.events.add()
            event.name = name
            event.time_unix_nano = start_ns
            event.attributes.extend(_kvs(attrs))
        if s.error:
            span.status.code = Status.STATUS_CODE_ERROR
    return req


def protobuf(spans: list[S], **kwargs) -> bytes:
    return request(spans, **kwargs).SerializeToString()


def otlp_json(spans: list[S], **kwargs) -> bytes:
    """OTLP/JSON as the spec writes it: hex ids, camelCase keys, 64-bit integers as strings, enums as ints."""
    doc = MessageToDict(request(spans, **kwargs), use_integers_for_enums=True)
    for rs in doc.get("resourceSpans", []):
        for ss in rs.get("scopeSpans", []):
            for span in ss.get("spans", []):
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        span[key] = __import__("base64").b64decode(span[key]).hex()
    return json.dumps(doc).encode()


def chat(trace_id: str, *, parent: str = "", model: str = "gpt-4o", provider: str = "openai", input_tokens: int = 0,
         output_tokens: int = 0, start: datetime | None = None, **attrs) -> S:
    """An official openai-v2 style chat span."""
    base = {"gen_ai.operation.name": "chat", "gen_ai.system": provider, "gen_ai.request.model": model,
            "gen_ai.response.model": model, "gen_ai.usage.input_tokens": input_tokens,
            "gen_ai.usage.output_tokens": output_tokens}
    base.update(attrs)
    return S(f"chat {model}", trace_id, parent=parent, start=start, attrs=base)
