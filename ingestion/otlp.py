"""OTLP/HTTP trace exports → compact span records (pure functions; docs/architecture.md § OTLP).

`export_decode` reads an `ExportTraceServiceRequest` — protobuf, parsed by upb in C with the published
`opentelemetry-proto` descriptors (`_otlp_upb`) or by the published Python classes, or OTLP/JSON — and keeps, per
span, only what the ingest reads: the ids, the instrumentation scope name, and the attributes of the alias table
(`/work/shared/OTLP.md`). Everything else (prompts, completions, request headers, events, links, resource
attributes) is dropped here, before anything is stored. `span_record` maps those attributes onto a `SpanIn`: the
span's own section label, an explicit path or customer, and, for a billable provider call, the call as an
`EventIn` validated by the wire format's rules.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import re
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any, Callable, Iterator

import msgspec
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from google.rpc import code_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from .schema import FUTURE_TOLERANCE, MAX_TOKENS, EventIn, timestamp_error, tokens_inclusive

logger = logging.getLogger(__name__)

# --- the alias table (first present wins) -------------------------------------------------------

PROVIDER_KEYS = ("gen_ai.provider.name", "gen_ai.system", "llm.provider", "llm.system", "ai.model.provider")
MODEL_KEYS = ("gen_ai.response.model", "llm.model_name", "ai.response.model", "gen_ai.request.model", "ai.model.id")
INPUT_KEYS = ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "llm.token_count.prompt",
              "ai.usage.inputTokens", "ai.usage.promptTokens")
CACHE_READ_KEYS = ("gen_ai.usage.cache_read.input_tokens", "gen_ai.usage.cache_read_input_tokens",
                   "llm.token_count.prompt_details.cache_read", "gen_ai.usage.details.cache_read_tokens",
                   "ai.usage.inputTokenDetails.cacheReadTokens", "ai.usage.cachedInputTokens")
CACHE_WRITE_KEYS = ("gen_ai.usage.cache_creation.input_tokens", "gen_ai.usage.cache_write.input_tokens",
                    "gen_ai.usage.cache_creation_input_tokens", "llm.token_count.prompt_details.cache_write",
                    "gen_ai.usage.details.cache_write_tokens", "ai.usage.inputTokenDetails.cacheWriteTokens")
OUTPUT_KEYS = ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens", "llm.token_count.completion",
               "ai.usage.outputTokens", "ai.usage.completionTokens")
REASONING_KEYS = ("gen_ai.usage.reasoning.output_tokens", "gen_ai.usage.reasoning_tokens",
                  "llm.token_count.completion_details.reasoning", "gen_ai.usage.details.reasoning_tokens",
                  "ai.usage.outputTokenDetails.reasoningTokens", "ai.usage.reasoningTokens")
STREAM_KEYS = ("gen_ai.request.stream", "gen_ai.is_streaming")
CUSTOMER_KEYS = ("llmobserve.customer_id", "enduser.id", "user.id", "langfuse.user.id",
                 "ai.telemetry.metadata.userId", "gen_ai.request.user")
COST_KEYS = ("gen_ai.usage.cost", "llm.cost.total", "operation.cost")
OPERATION, OPERATION_ID, SPAN_KIND = "gen_ai.operation.name", "ai.operationId", "openinference.span.kind"
AGENT, TOOL, WORKFLOW, FUNCTION_ID = "gen_ai.agent.name", "gen_ai.tool.name", "gen_ai.workflow.name", \
    "ai.telemetry.functionId"
SECTION_PATH, RESPONSE_ID, TTFT, TIER = "llmobserve.section_path", "gen_ai.response.id", \
    "gen_ai.response.time_to_first_chunk", "openai.response.service_tier"
ERROR_TYPE, HTTP_STATUS, SERVER_ADDRESS = "error.type", "http.response.status_code", "server.address"
COST_AMOUNT, COST_CURRENCY = "gen_ai.usage.cost.amount", "gen_ai.usage.cost.currency"
TTFT_MS = "ai.response.msToFirstChunk"  # the Vercel AI SDK's doStream spans: milliseconds

KEPT_KEYS = frozenset(PROVIDER_KEYS + MODEL_KEYS + INPUT_KEYS + CACHE_READ_KEYS + CACHE_WRITE_KEYS + OUTPUT_KEYS
                      + REASONING_KEYS + STREAM_KEYS + CUSTOMER_KEYS + COST_KEYS + (
                          OPERATION, OPERATION_ID, SPAN_KIND, AGENT, TOOL, WORKFLOW, FUNCTION_ID, SECTION_PATH,
                          RESPONSE_ID, TTFT, TTFT_MS, TIER, ERROR_TYPE, HTTP_STATUS, SERVER_ADDRESS, COST_AMOUNT,
                          COST_CURRENCY))
USAGE_KEYS = INPUT_KEYS + OUTPUT_KEYS

# The fields read through the alias table (`_firsts`): each one's keys, first present wins.
ALIAS_FIELDS = {"provider": PROVIDER_KEYS, "model": MODEL_KEYS, "input": INPUT_KEYS, "cache_read": CACHE_READ_KEYS,
                "cache_write": CACHE_WRITE_KEYS, "output": OUTPUT_KEYS, "reasoning": REASONING_KEYS,
                "stream": STREAM_KEYS, "customer": CUSTOMER_KEYS, "cost": COST_KEYS}

CALL_OPERATIONS = frozenset({"chat", "generate_content", "text_completion", "embeddings"})
NEVER_CALL_OPERATIONS = frozenset({"invoke_agent", "create_agent", "execute_tool", "invoke_workflow",
                                   "fetch_response", "retrieval"})
VERCEL_CALL_SUFFIXES = (".doGenerate", ".doStream", ".doEmbed")

# OTel GenAI provider names (and the Vercel AI SDK's "<provider>.<api>" ids) → the price table's providers.
PROVIDERS = {
    "openai": "openai", "anthropic": "anthropic", "aws.bedrock": "bedrock", "amazon-bedrock": "bedrock",
    "bedrock": "bedrock", "azure.ai.openai": "azure_openai", "azure-openai": "azure_openai", "azure": "azure_openai",
    "azure.ai.inference": "azure_ai", "gcp.gemini": "google", "gcp.gen_ai": "google", "gcp.vertex_ai": "vertex_ai",
    "google": "google", "vertex": "vertex_ai", "gemini": "google", "cohere": "cohere", "deepseek": "deepseek",
    "groq": "groq", "ibm.watsonx.ai": "ibm", "mistral_ai": "mistral", "mistral": "mistral",
    "mistralai": "mistral", "moonshot_ai": "moonshotai", "perplexity": "perplexity", "x_ai": "x-ai", "xai": "x-ai",
    "openrouter": "openrouter", "together": "together", "fireworks": "fireworks",
}
HOSTS = (  # server.address → provider, when no provider attribute is present
    ("api.openai.com", "openai"), ("api.anthropic.com", "anthropic"),
    ("generativelanguage.googleapis.com", "google"), ("aiplatform.googleapis.com", "vertex_ai"),
    (".openai.azure.com", "azure_openai"), ("bedrock-runtime.", "bedrock"), ("api.mistral.ai", "mistral"),
    ("api.cohere.", "cohere"), ("api.groq.com", "groq"), ("api.deepseek.com", "deepseek"), ("api.x.ai", "x-ai"),
    ("openrouter.ai", "openrouter"),
)
# Instrumentations whose spans are second choice when a provider SDK traced the same response itself
# (Traceloop's Anthropic stream output count is one too high).
_SECOND_CHOICE_SCOPES = ("opentelemetry.instrumentation.", "traceloop", "openinference.", "openlit")

TRACE_ID_HEX, SPAN_ID_HEX = 32, 16
TRACE_ID_BYTES, SPAN_ID_BYTES = TRACE_ID_HEX // 2, SPAN_ID_HEX // 2
LABEL_MAX, PATH_MAX, SOURCE_MAX = 256, 1024, 160
_UNSENDABLE = re.compile("[\x00-\x1f\ud800-\udfff]")


class SpanIn(msgspec.Struct, omit_defaults=True):
    """One span as stored in an OTLP RawBatch: nothing of its content, only what the ingest reads."""

    trace_id: str
    span_id: str
    parent_span_id: str = ""
    label: str = ""
    section_path: str | None = None
    customer_id: str | None = None
    source: str = ""
    response_id: str = ""
    rank: int = 0
    call: EventIn | None = None


# `span_record` builds a SpanIn positionally, in this order.
assert SpanIn.__struct_fields__ == ("trace_id", "span_id", "parent_span_id", "label", "section_path", "customer_id",
                                    "source", "response_id", "rank", "call")

# An OTLP RawBatch's payload: its span records in MessagePack (encoded in the request, decoded by the worker: 0.6 µs
# a span less than JSON, and 14% smaller). Payloads stored as JSON before it (a list: always b"[", which no MessagePack
# array starts with) still decode.
spans_encode = msgspec.msgpack.Encoder().encode
_spans_msgpack_decode = msgspec.msgpack.Decoder(list[SpanIn]).decode
_spans_json_decode = msgspec.json.Decoder(list[SpanIn]).decode


def spans_decode(payload: bytes) -> list[SpanIn]:
    return _spans_json_decode(payload) if payload[:1] == b"[" else _spans_msgpack_decode(payload)


call_encode = msgspec.json.Encoder().encode
call_decode = msgspec.json.Decoder(EventIn).decode


class OtlpDecodeError(ValueError):
    """The body is not an ExportTraceServiceRequest in the declared encoding."""


class RawSpan(msgspec.Struct, gc=False):
    """A span as decoded, before mapping: ids as lower-case hex, only the kept attributes.

    A Struct, not a dataclass: built in a third of the time; and untracked by the cyclic collector (it holds
    only texts, numbers and a dict of them), so a body's spans do not trigger collections."""

    trace_id: str
    span_id: str
    parent_span_id: str
    scope: str
    start_ns: int
    end_ns: int
    status_code: int
    attrs: dict[str, Any] = {}
    ids_valid: bool = False  # the decoder saw well-formed ids (span_record need not check them again)


# --- decoding -------------------------------------------------------------------------------------

_PB_SCALARS = frozenset(("string_value", "bool_value", "int_value", "double_value"))


_ZERO_TRACE_BYTES, _ZERO_SPAN_BYTES = bytes(TRACE_ID_BYTES), bytes(SPAN_ID_BYTES)


def _decode_protobuf_py(body: bytes) -> Iterator[RawSpan]:
    """The published Python classes' reading of the body (used when `_otlp_upb` is not built)."""
    try:
        request = ExportTraceServiceRequest.FromString(body)
    except (DecodeError, RecursionError, ValueError) as exc:
        raise _not_an_export(exc) from None
    kept, scalar = KEPT_KEYS, _PB_SCALARS
    for resource_spans in request.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            scope = scope_spans.scope.name
            for span in scope_spans.spans:
                attrs = {}
                for kv in span.attributes:
                    key = kv.key
                    if key in kept:
                        # Most kept attributes are texts: a non-empty string_value is read in one access (a third
                        # of the CPU of WhichOneof and a getattr); other values and the empty text by their kind.
                        value = kv.value
                        text = value.string_value
                        if text:
                            attrs[key] = text
                        else:
                            kind = value.WhichOneof("value")
                            attrs[key] = getattr(value, kind) if kind in scalar else None
                trace_id, span_id, parent = span.trace_id, span.span_id, span.parent_span_id
                # What span_record would check of the hex: cheaper on the bytes, before they are converted.
                ids_valid = len(trace_id) == TRACE_ID_BYTES and trace_id != _ZERO_TRACE_BYTES \
                    and len(span_id) == SPAN_ID_BYTES and span_id != _ZERO_SPAN_BYTES \
                    and len(parent) in (0, SPAN_ID_BYTES)
                yield RawSpan(trace_id.hex(), span_id.hex(), parent.hex(), scope, span.start_time_unix_nano,
                              span.end_time_unix_nano, span.status.code, attrs, ids_valid)


def _upb_decoder() -> Callable[[bytes], list[RawSpan]] | None:
    """`_otlp_upb.decode` (ingestion/_otlp_upb.c, built by `make install`) loaded with the published descriptors.

    It reads the body with upb, the C runtime under the protobuf package's own classes, and returns exactly the
    `RawSpan`s `_decode_protobuf_py` returns (tests/ingestion/test_otlp_upb.py compares them), in about a third of
    its CPU: most of the Python decoder's time is a Python object for every attribute and every value
    (docs/otlp-performance.md, twenty-fourth pass). None when the module was not built."""
    try:
        from . import _otlp_upb
    except ImportError:
        return None
    files = [module.DESCRIPTOR.serialized_pb for module in (common_pb2, resource_pb2, trace_pb2, trace_service_pb2)]
    try:
        _otlp_upb.setup(files, KEPT_KEYS, RawSpan)
    except (ValueError, RuntimeError):  # descriptors it cannot read (an opentelemetry-proto it does not know)
        logger.warning("ingestion/_otlp_upb cannot load the OTLP descriptors; decoding in Python", exc_info=True)
        return None
    return _otlp_upb.decode


def _not_an_export(exc: Exception) -> OtlpDecodeError:
    return OtlpDecodeError(f"Body is not a protobuf ExportTraceServiceRequest: {exc}")


def _decode_protobuf(body: bytes) -> list[RawSpan]:
    if _decode_upb is None:
        return list(_decode_protobuf_py(body))
    try:
        return _decode_upb(body)
    except ValueError as exc:
        raise _not_an_export(exc) from None


def _get(obj: dict, camel: str, snake: str, default: Any = None) -> Any:
    value = obj.get(camel, default)
    return obj.get(snake, default) if value is default else value


def _json_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("a boolean is not an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit() and len(value) <= 24:
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise ValueError(f"not an integer: {str(value)[:40]!r}")


def _json_value(value: Any) -> Any:
    if not isinstance(value, dict):
        return None
    if "stringValue" in value or "string_value" in value:
        text = _get(value, "stringValue", "string_value")
        return text if isinstance(text, str) else None
    if "boolValue" in value or "bool_value" in value:
        flag = _get(value, "boolValue", "bool_value")
        return flag if isinstance(flag, bool) else None
    if "intValue" in value or "int_value" in value:
        try:
            return _json_int(_get(value, "intValue", "int_value"))
        except ValueError:
            return None
    if "doubleValue" in value or "double_value" in value:
        number = _get(value, "doubleValue", "double_value")
        if isinstance(number, (int, float)) and not isinstance(number, bool):
            return float(number)
        if isinstance(number, str):  # "NaN", "Infinity" and decimal strings are valid OTLP/JSON
            try:
                return float(number)
            except ValueError:
                return None
    return None


def _json_list(obj: Any, camel: str, snake: str) -> list:
    value = _get(obj, camel, snake, []) if isinstance(obj, dict) else None
    if not isinstance(value, list):
        raise OtlpDecodeError(f"{camel} must be a list.")
    return value


def _hex_id(value: Any) -> str:
    return value.lower() if isinstance(value, str) else "?"


def _decode_json(body: bytes) -> Iterator[RawSpan]:
    try:
        request = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise OtlpDecodeError(f"Body is not valid OTLP/JSON: {exc}") from None
    if not isinstance(request, dict):
        raise OtlpDecodeError("Body must be a JSON object (ExportTraceServiceRequest).")
    kept = KEPT_KEYS
    for resource_spans in _json_list(request, "resourceSpans", "resource_spans"):
        for scope_spans in _json_list(resource_spans, "scopeSpans", "scope_spans"):
            scope = _get(scope_spans, "scope", "scope") or {}
            name = scope.get("name", "") if isinstance(scope, dict) else ""
            for span in _json_list(scope_spans, "spans", "spans"):
                if not isinstance(span, dict):
                    raise OtlpDecodeError("Each span must be a JSON object.")
                attrs = {}
                for kv in _json_list(span, "attributes", "attributes"):
                    if isinstance(kv, dict) and isinstance(key := kv.get("key"), str) and key in kept:
                        attrs[key] = _json_value(kv.get("value"))
                status = span.get("status") or {}
                try:
                    start = _json_int(_get(span, "startTimeUnixNano", "start_time_unix_nano", 0))
                    end = _json_int(_get(span, "endTimeUnixNano", "end_time_unix_nano", 0))
                    code = _json_int(status.get("code", 0)) if isinstance(status, dict) else 0
                except ValueError as exc:
                    raise OtlpDecodeError(f"Span times and status codes must be integers: {exc}") from None
                yield RawSpan(_hex_id(_get(span, "traceId", "trace_id", "")), _hex_id(_get(span, "spanId", "span_id", "")),
                              _hex_id(_get(span, "parentSpanId", "parent_span_id", "")), name if isinstance(name, str)
                              else "", start, end, code, attrs)


def export_decode(body: bytes, *, json_body: bool) -> list[RawSpan]:
    """Every span of the export, decoded; raises OtlpDecodeError for a body that is not an export."""
    return list(_decode_json(body)) if json_body else _decode_protobuf(body)


def response_encode(*, rejected: int, message: str, json_body: bool) -> bytes:
    """The ExportTraceServiceResponse, in the request's encoding (partial_success only when spans were refused)."""
    if json_body:
        if not rejected:
            return b"{}"
        return json.dumps({"partialSuccess": {"rejectedSpans": str(rejected), "errorMessage": message}}).encode()
    response = ExportTraceServiceResponse()
    if rejected:
        response.partial_success.rejected_spans = rejected
        response.partial_success.error_message = message
    return response.SerializeToString()


# The google.rpc.Code of each error status the endpoint answers with (the OpenTelemetry Collector's mapping;
# 413 and 415 are the client's to fix, like 400, and exporters do not retry them).
_RPC_CODES = {
    400: code_pb2.INVALID_ARGUMENT, 401: code_pb2.UNAUTHENTICATED, 403: code_pb2.PERMISSION_DENIED,
    404: code_pb2.NOT_FOUND, 405: code_pb2.UNIMPLEMENTED, 413: code_pb2.INVALID_ARGUMENT,
    415: code_pb2.INVALID_ARGUMENT, 429: code_pb2.RESOURCE_EXHAUSTED, 503: code_pb2.UNAVAILABLE,
}


def status_encode(*, http_status: int, message: str, json_body: bool) -> bytes:
    """An error answer's body per the OTLP/HTTP spec: a google.rpc.Status in the request's encoding."""
    status = status_pb2.Status(code=_RPC_CODES.get(http_status, code_pb2.UNKNOWN), message=message)
    if json_body:
        return json.dumps(json_format.MessageToDict(status)).encode()
    return status.SerializeToString()


# --- mapping --------------------------------------------------------------------------------------

def _first(attrs: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        value = attrs.get(key)
        if value is not None and value != "":
            return value
    return None


@functools.lru_cache(maxsize=1024)
def _plan(keys: tuple[str, ...]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """For a span's attribute keys: each field of ALIAS_FIELDS with its aliases present, in priority order.

    One instrumentation emits the same keys span after span: the plan is computed once per key set (only
    KEPT_KEYS reach here, so the cache is bounded by what instrumentations send, not by the body)."""
    present = frozenset(keys)
    plan = []
    for name, aliases in ALIAS_FIELDS.items():
        keys_present = tuple(key for key in aliases if key in present)
        if keys_present:
            plan.append((name, keys_present))
    return tuple(plan)


def _firsts(attrs: dict[str, Any]) -> dict[str, Any]:
    """Field → the value of its first present alias (`_first` for every field of ALIAS_FIELDS at once)."""
    found: dict[str, Any] = {}
    for name, keys in _plan(tuple(attrs)):
        for key in keys:
            value = attrs[key]
            if value is not None and value != "":
                found[name] = value
                break
    return found


def _text(value: Any, limit: int) -> str:
    """A label as the SDK sends it: C0 controls become spaces, lone surrogates U+FFFD, cut to `limit`."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)
    # isprintable() (no regex call) is false for every control character and surrogate: most labels stop here.
    if not text.isprintable() and _UNSENDABLE.search(text):
        text = _UNSENDABLE.sub(lambda m: " " if m.group() < "\x20" else "\ufffd", text)
    return text.strip()[:limit]


def _count(value: Any) -> int:
    if type(value) is int:  # the usual token count (a bool is not of type int)
        return value
    if isinstance(value, bool) or value is None:
        return 0
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return -1
        value = int(value)
    if isinstance(value, str):
        try:
            value = int(value)
        except ValueError:
            return 0
    return value if isinstance(value, int) else 0


def _flag(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)


# Normalising a text costs more than a cache lookup, and an instrumentation sends the same few provider, agent
# and tool names span after span: the functions below are cached for texts up to this long (≤ 1024 entries
# each, so a few hundred kB at most; a str key never equals a number's, so no value is mistaken for another).
CACHED_TEXT_MAX = 256


def _short_text(value: Any) -> bool:
    return isinstance(value, str) and len(value) <= CACHED_TEXT_MAX


def provider_normalise(value: Any, server_address: Any = None) -> str:
    name = _provider_named_cached(value) if _short_text(value) else _provider_named(value)
    if name:
        return name
    host = _text(server_address, 253).lower()
    for pattern, provider in HOSTS:
        if pattern in host:
            return provider
    return ""


def _provider_named(value: Any) -> str:
    """The provider a provider attribute names ('' for none)."""
    name = _text(value, 64).lower()
    if not name:
        return ""
    if name in PROVIDERS:
        return PROVIDERS[name]
    head = name.split(".", 1)[0]
    return PROVIDERS.get(head, PROVIDERS.get(head.replace("-", "_"), name))


_provider_named_cached = functools.lru_cache(maxsize=1024)(_provider_named)


def _segment(prefix: str, name: Any) -> str:
    return _segment_cached(prefix, name) if _short_text(name) else _segment_of(prefix, name)


def _segment_of(prefix: str, name: Any) -> str:
    text = _text(name, LABEL_MAX - len(prefix)).replace("/", "_")
    return f"{prefix}{text}" if text else ""


_segment_cached = functools.lru_cache(maxsize=1024)(_segment_of)


def span_label(attrs: dict[str, Any]) -> str:
    """The section this span contributes to the spans below it ('' for most spans)."""
    op = attrs.get(OPERATION)
    if op in ("invoke_agent", "create_agent") and attrs.get(AGENT):
        return _segment("agent:", attrs[AGENT])
    if op == "execute_tool" and attrs.get(TOOL):
        return _segment("tool:", attrs[TOOL])
    if attrs.get(WORKFLOW):
        return _segment("workflow:", attrs[WORKFLOW])
    if attrs.get(FUNCTION_ID):
        return _segment("agent:", attrs[FUNCTION_ID])
    return ""


def span_is_call(attrs: dict[str, Any], found: dict[str, Any] | None = None) -> bool:
    """A billable provider call; wrappers (agents, tools, Vercel's outer spans, aggregates) never are.

    `found`: `_firsts(attrs)`, if the caller has it."""
    if found is None:
        found = _firsts(attrs)
    has_usage = "input" in found or "output" in found
    op = attrs.get(OPERATION)
    if op in NEVER_CALL_OPERATIONS:
        return False
    operation_id = attrs.get(OPERATION_ID)
    if isinstance(operation_id, str) and operation_id:
        return operation_id.endswith(VERCEL_CALL_SUFFIXES)
    if op in CALL_OPERATIONS:
        return True
    kind = attrs.get(SPAN_KIND)
    if kind is not None:
        return kind in ("LLM", "EMBEDDING") and has_usage
    if op or attrs.get(AGENT) or attrs.get(TOOL):
        return False
    return has_usage


def _reported_cost(attrs: dict[str, Any], found: dict[str, Any]) -> str | None:
    amount = attrs.get(COST_AMOUNT)
    if amount is not None and str(attrs.get(COST_CURRENCY) or "USD").upper() != "USD":
        amount = None
    if amount is None:
        amount = found.get("cost")
    if amount is None or isinstance(amount, bool):
        return None
    try:
        cost = Decimal(str(amount))
    except InvalidOperation:
        return None
    if not cost.is_finite() or cost < 0 or cost >= 1_000_000:
        return None
    return format(cost, "f")


def _status(span: RawSpan, attrs: dict[str, Any], error_text: str) -> tuple[str, int | None]:
    """`error_text`: `_text` of the error type attribute."""
    if not error_text and HTTP_STATUS not in attrs:  # the usual span: its status code alone decides
        return ("error" if span.status_code == 2 else "ok"), None
    http_status = attrs.get(HTTP_STATUS)
    if http_status is not None:
        http_status = _count(http_status) or None
        if http_status is not None and not 100 <= http_status <= 599:
            http_status = None
    error_type = error_text.lower()
    if http_status == 429 or error_type and ("ratelimit" in error_type.replace("_", "") or "rate_limit" in error_type):
        return "rate_limited", http_status
    if span.status_code == 2 or error_type or (http_status or 0) >= 400:
        if "timeout" in error_type or "timedout" in error_type.replace("_", ""):
            return "timeout", http_status
        if "cancel" in error_type:
            return "cancelled", http_status
        return "error", http_status
    return "ok", http_status


def _ttft_ms(attrs: dict[str, Any]) -> float | None:
    """Time to first chunk in ms: the GenAI convention's seconds, else the Vercel AI SDK's milliseconds."""
    for key, scale in ((TTFT, 1000.0), (TTFT_MS, 1.0)):
        value = attrs.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value * scale < 1e10:
            return float(value) * scale
    return None


_TOKEN_FIELDS = ("input_tokens", "output_tokens", "cached_input_tokens", "cache_write_tokens", "reasoning_tokens")
# EventIn's fields up to the last one `_call` sets, in order: the call is built positionally (a fifth of the time of
# 18 keywords, for every call span of every export). Checked at import against the struct.
_CALL_FIELDS = ("event_id", "run_id", "span_id", "parent_span_id", "section", "section_path", "span_type", "provider",
                "model", "endpoint", "input_tokens", "output_tokens", "cached_input_tokens", "cache_write_tokens",
                "reasoning_tokens", "latency_ms", "ttft_ms", "status", "http_status", "customer_id", "stream",
                "timestamp", "cost_usd", "metadata", "service_tier")
assert EventIn.__struct_fields__[:len(_CALL_FIELDS)] == _CALL_FIELDS
_COST_PRESENT = frozenset((COST_AMOUNT, *COST_KEYS))


def _call(span: RawSpan, attrs: dict[str, Any], found: dict[str, Any], customer_id: str | None, now: datetime
          ) -> tuple[EventIn | None, dict[str, str]]:
    """The call, complete as the wire format's `_normalise` leaves an event but for its ids (set when resolved).

    Every text goes through `_text` (no control characters or lone surrogates, cut to the field's limit),
    every number is range-checked here: of the wire format's `_semantic_errors`, only the timestamp's can fail.
    `customer_id`: `_text` of the customer field, or None. An attribute that is absent costs nothing beyond its
    membership test: a call span of one instrumentation carries a dozen of the alias table's keys at most."""
    get = found.get
    tokens = (_count(get("input")), _count(get("output")), _count(get("cache_read")), _count(get("cache_write")),
              _count(get("reasoning")))
    if min(tokens) < 0 or max(tokens) > MAX_TOKENS:
        return None, {name: f"must be an integer from 0 to {MAX_TOKENS}"
                      for name, value in zip(_TOKEN_FIELDS, tokens) if not 0 <= value <= MAX_TOKENS}
    input_tokens, output_tokens, cached_input_tokens, cache_write_tokens, reasoning_tokens = tokens
    operation_id = attrs.get(OPERATION_ID)
    operation_id = str(operation_id) if operation_id else ""
    embedding = attrs.get(OPERATION) == "embeddings" or (operation_id and operation_id.endswith(".doEmbed")) \
        or attrs.get(SPAN_KIND) == "EMBEDDING"
    error_text = _text(attrs[ERROR_TYPE], 256) if ERROR_TYPE in attrs else ""
    status, http_status = _status(span, attrs, error_text)
    metadata: dict[str, Any] = {}
    if "input" not in found and "output" not in found and status == "ok":
        metadata["usage_missing"] = True
    if status != "ok" and error_text:
        metadata["error_type"] = error_text
    ttft_ms = _ttft_ms(attrs) if TTFT in attrs or TTFT_MS in attrs else None
    latency_ms = (span.end_ns - span.start_ns) / 1e6 if span.end_ns >= span.start_ns > 0 else None
    if latency_ms is not None and latency_ms > 1e10:
        latency_ms = None
    stream = ("stream" in found and _flag(found["stream"])) or (operation_id and operation_id.endswith(".doStream"))
    try:  # (tz as a positional argument: the keyword costs as much again)
        timestamp = datetime.fromtimestamp(span.start_ns / 1e9, timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None, {"timestamp": "start time out of range"}
    if problem := timestamp_error(timestamp, now):
        return None, {"timestamp": problem}
    cost = _reported_cost(attrs, found) if not _COST_PRESENT.isdisjoint(attrs) else None
    tier = (_text(attrs[TIER], 32) or None) if TIER in attrs else None  # the served tier prices the call (variants)
    event = EventIn(
        None, None, None, None, "", "", "embedding" if embedding else "llm",
        provider_normalise(get("provider"), attrs.get(SERVER_ADDRESS)) or "unknown", _text(get("model"), 256) or "unknown",
        "", input_tokens, output_tokens, cached_input_tokens, cache_write_tokens, reasoning_tokens, latency_ms, ttft_ms,
        status, http_status, customer_id, bool(stream), timestamp, cost, metadata, tier,
    )
    tokens_inclusive(event)
    return event, {}


@functools.lru_cache(maxsize=256)
def _rank(scope: str) -> int:
    scope = scope.lower()
    return 1 if any(part in scope for part in _SECOND_CHOICE_SCOPES) else 0


@functools.lru_cache(maxsize=256)
def _source(scope: str) -> str:
    return _text(f"otlp:{scope}" if scope else "otlp", SOURCE_MAX)


def span_record(span: RawSpan, *, now: datetime) -> tuple[SpanIn | None, str]:
    """(record, '') or (None, why the span is refused)."""
    trace_id, span_id, parent = span.trace_id, span.span_id, span.parent_span_id
    if not span.ids_valid:
        if not _is_trace_id(trace_id) or trace_id == _ZERO_TRACE_ID:
            return None, f"span {span_id[:16]!r}: trace_id must be 16 bytes (32 hex digits), not all zero"
        if not _is_span_id(span_id) or span_id == _ZERO_SPAN_ID:
            return None, f"span {span_id[:16]!r}: span_id must be 8 bytes (16 hex digits), not all zero"
        if parent and not _is_span_id(parent):
            return None, f"span {span_id}: parent_span_id must be empty or 8 bytes (16 hex digits)"
    if parent == _ZERO_SPAN_ID:
        parent = ""
    attrs = span.attrs
    found = _firsts(attrs)
    customer = found.get("customer")
    # The call's customer; the span keeps it only when `customer` is truthy.
    customer_id = (_text(customer, 256) or None) if customer is not None else None
    section_path = None
    if path := attrs.get(SECTION_PATH):
        section_path = "/".join(s for s in (_text(p, LABEL_MAX) for p in str(path).split("/")) if s)[:PATH_MAX]
    call, response_id, rank = None, "", 0
    if span_is_call(attrs, found):
        call, errors = _call(span, attrs, found, customer_id, now)
        if call is None:
            detail = "; ".join(f"{k}: {v}" for k, v in sorted(errors.items()))
            return None, f"span {span_id}: {detail}"
        if call.status == "ok" and RESPONSE_ID in attrs:
            response_id = _text(attrs[RESPONSE_ID], 256)
        rank = _rank(span.scope)
    return SpanIn(trace_id, span_id, parent, span_label(attrs), section_path, customer_id if customer else None,
                  _source(span.scope), response_id, rank, call), ""


# Ids as `export_decode` leaves them: lower-case hex of the right length (one C call each).
_is_trace_id = re.compile(f"[0-9a-f]{{{TRACE_ID_HEX}}}").fullmatch
_is_span_id = re.compile(f"[0-9a-f]{{{SPAN_ID_HEX}}}").fullmatch
_ZERO_TRACE_ID, _ZERO_SPAN_ID = "0" * TRACE_ID_HEX, "0" * SPAN_ID_HEX


RESPONSE_PREFIX = "resp:"  # an event id derived from a provider response id (otlp_services keeps it unique)


def event_id_for(*, trace_id: str, span_id: str, provider: str, response_id: str) -> str:
    """One call per provider response: spans sharing a response id share the event id (≤ 64 chars)."""
    if response_id:
        return RESPONSE_PREFIX + hashlib.sha1(f"{provider}\x1f{response_id}".encode()).hexdigest()
    return trace_id + span_id


# --- the mapping's fast path in C ---------------------------------------------------------------------------------

# Each kept key's role in `_otlp_upb.records` (its C enum, in this order): the alias table's fields, then the keys
# read alone; a key of the last two roles sends a span (a call span, for "rare_call") to `span_record`.
_FAST_ROLE_NAMES = (*ALIAS_FIELDS, "operation", "agent", "tool", "response_id", "server_address", "rare_call",
                    "rare_any")
assert _FAST_ROLE_NAMES[:10] == ("provider", "model", "input", "cache_read", "cache_write", "output", "reasoning",
                                 "stream", "customer", "cost")
_FAST_SINGLE_KEYS = {OPERATION: "operation", AGENT: "agent", TOOL: "tool", RESPONSE_ID: "response_id",
                     SERVER_ADDRESS: "server_address", **dict.fromkeys(
                         (ERROR_TYPE, HTTP_STATUS, TTFT, TTFT_MS, TIER, COST_AMOUNT, COST_CURRENCY), "rare_call"),
                     **dict.fromkeys((SECTION_PATH, OPERATION_ID, SPAN_KIND, WORKFLOW, FUNCTION_ID), "rare_any")}

# The C path's call rule names these operations (and relies on every never-call operation being a text).
assert CALL_OPERATIONS == {"chat", "generate_content", "text_completion", "embeddings"} and all(NEVER_CALL_OPERATIONS)


def _fast_roles() -> dict[str, int]:
    roles = {key: _FAST_ROLE_NAMES.index(field) for field, keys in ALIAS_FIELDS.items() for key in keys}
    roles.update({key: _FAST_ROLE_NAMES.index(role) for key, role in _FAST_SINGLE_KEYS.items()})
    assert set(roles) == KEPT_KEYS and len(roles) == sum(map(len, ALIAS_FIELDS.values())) + len(_FAST_SINGLE_KEYS)
    return roles


def _upb_records() -> Callable[[bytes, datetime], list[SpanIn | RawSpan]] | None:
    """`_otlp_upb.records` set up with the mapping's table, or None (the module is not built or not loaded)."""
    if _decode_upb is None:
        return None
    from . import _otlp_upb
    try:
        _otlp_upb.setup_mapping(_fast_roles(), tuple(ALIAS_FIELDS.values()), {
            "SpanIn": SpanIn, "EventIn": EventIn, "provider_normalise": provider_normalise, "segment": _segment,
            "rank": _rank, "source": _source, "fromtimestamp": datetime.fromtimestamp, "utc": timezone.utc,
            "max_tokens": MAX_TOKENS})
    except (AttributeError, ValueError, RuntimeError):  # a module built from an older source: `make install`
        logger.warning("ingestion/_otlp_upb cannot map spans (rebuild it with `make install`); mapping in Python",
                       exc_info=True)
        return None
    return _otlp_upb.records


_decode_upb = _upb_decoder()
_records_upb = _upb_records()
DECODER = "upb" if _decode_upb else "python"


def export_records(body: bytes, *, json_body: bool, now: datetime) -> Iterator[tuple[SpanIn | None, str]]:
    """`span_record` of every span of `export_decode(body)`, in order. With the compiled decoder, a protobuf body's
    usual spans are mapped in C as they are read (`_otlp_upb.records`: the same records, without the interpreter's
    cost a span); every other span is mapped here."""
    if json_body or _records_upb is None:
        for span in export_decode(body, json_body=json_body):
            yield span_record(span, now=now)
        return
    try:
        items = _records_upb(body, now + FUTURE_TOLERANCE)
    except ValueError as exc:
        raise _not_an_export(exc) from None
    for item in items:
        if type(item) is SpanIn:
            yield item, ""
        else:
            yield span_record(item, now=now)
