"""POST /v1/events: authenticate, validate structurally, persist in one write, answer 202."""

from __future__ import annotations

import logging
import zlib

from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.http import HttpResponse
from django.utils import timezone
from django.http.request import RawPostDataException
from django.core.exceptions import RequestDataTooBig
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema, extend_schema_view, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import APIException, ParseError, PermissionDenied, UnsupportedMediaType
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.parsers import BaseParser
from rest_framework.response import Response
from rest_framework.throttling import BaseThrottle
from rest_framework.views import APIView

from accounts.metrics import IngestMetricsMixin

from accounts.authentication import HasApiKey
from accounts.models import ApiKey
from accounts.ratelimit import window_hit

from .chunked import DECODED as chunked_decoded
from .otlp import OtlpDecodeError, response_encode, status_encode
from .otlp_services import otlp_ingest
from .schema import BatchDecodeError, BatchShapeError, batch_decode, events_validate
from .services import events_ingest

logger = logging.getLogger(__name__)


class PayloadTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "payload_too_large"


class ApiKeyThrottle(BaseThrottle):
    """Requests per minute per API key (`setting`), counted in a sliding window (accounts.ratelimit)."""

    scope = "ingest"
    setting = "LLMOBSERVE_INGEST_RATE"
    retry_after: int | None = None

    def allow_request(self, request, view) -> bool:
        key = getattr(request, "auth", None)
        if key is None:
            return True
        self.retry_after = window_hit(f"{self.scope}:{key.pk}", limit=getattr(settings, self.setting))
        return self.retry_after is None

    def wait(self) -> int | None:
        return self.retry_after


class JsonBodyParser(BaseParser):
    """Declares the accepted media type for the schema; the view reads the raw body itself."""

    media_type = "application/json"

    def parse(self, stream, media_type=None, parser_context=None):  # pragma: no cover - never called
        return None


def _decompressed(body: bytes, limit: int) -> bytes:
    """Inflate gzip without ever holding more than `limit` + 1 bytes (a gzip bomb stops early)."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise ParseError(f"Body is not valid gzip: {exc}") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise PayloadTooLarge(f"Decompressed body exceeds {limit // (1024 * 1024)} MB.")
    return out


def read_body(request, *, limit: int, media_types: tuple[str, ...], hint: str) -> tuple[bytes, str]:
    """The request body, inflated, within `limit` bytes, and its media type (one of `media_types`).

    A chunked body (no Content-Length) is readable only when `ingestion.chunked` decoded it for the
    server in use; otherwise the request is refused (400), never taken as empty.
    """
    meta = request.META
    chunked = "chunked" in meta.get("HTTP_TRANSFER_ENCODING", "").lower()
    if chunked and not meta.get("CONTENT_LENGTH"):
        raise ParseError("The chunked request body could not be read by this server: send a Content-Length.")
    if meta.get(chunked_decoded) == "truncated":
        raise PayloadTooLarge(f"Body exceeds {limit // (1024 * 1024)} MB.")
    if meta.get("CONTENT_LENGTH") in (None, "", "0") and not chunked:
        raise ParseError(f"Body is empty: {hint}")
    content_type = request.content_type.split(";")[0].strip().lower()
    if content_type not in media_types:
        raise UnsupportedMediaType(request.content_type or "(none)",
                                   detail=f"Send Content-Type: {' or '.join(media_types)} (optionally gzip-encoded).")
    try:
        body = request.body
    except RequestDataTooBig:
        raise PayloadTooLarge(f"Body exceeds {limit // (1024 * 1024)} MB.") from None
    except RawPostDataException:  # pragma: no cover - the stream was read elsewhere
        raise ParseError("Body could not be read.") from None
    encoding = request.headers.get("Content-Encoding", "").strip().lower()
    if encoding == "gzip":
        body = _decompressed(body, limit)
    elif encoding not in ("", "identity"):
        raise UnsupportedMediaType(encoding, detail="Content-Encoding must be gzip or identity.")
    if len(body) > limit:
        raise PayloadTooLarge(f"Body exceeds {limit // (1024 * 1024)} MB.")
    return body, content_type


def read_json_body(request, *, limit: int) -> bytes:
    return read_body(request, limit=limit, media_types=("application/json",),
                     hint='send a JSON array of events or {"events": [...]}.')[0]


_ingest_response = inline_serializer("IngestResponse", {
    "accepted": serializers.IntegerField(),
    "rejected": serializers.ListField(child=serializers.DictField()),
    "over_cap": serializers.BooleanField(),
})


# The wire format (DESIGN §4, docs/api.md) for the OpenAPI schema; validation itself is `schema.EventIn` (msgspec).
_event_fields = {name: serializers.CharField(required=False, allow_null=True) for name in (
    "event_id", "run_id", "span_id", "parent_span_id", "section", "section_path", "provider", "model", "endpoint",
    "customer_id", "cost_usd")}
_event_fields.update({name: serializers.IntegerField(required=False, min_value=0) for name in (
    "input_tokens", "output_tokens", "cached_input_tokens", "cache_write_tokens", "reasoning_tokens")})
_event_fields.update({
    "span_type": serializers.ChoiceField(["llm", "embedding", "vector_db", "api", "other"], required=False),
    "status": serializers.ChoiceField(["ok", "error", "rate_limited", "timeout", "cancelled"], required=False),
    "latency_ms": serializers.FloatField(required=False, allow_null=True, min_value=0),
    "ttft_ms": serializers.FloatField(required=False, allow_null=True, min_value=0),
    "http_status": serializers.IntegerField(required=False, allow_null=True),
    "stream": serializers.BooleanField(required=False),
    "timestamp": serializers.DateTimeField(required=False),
    "metadata": serializers.DictField(required=False),
    "service_tier": serializers.CharField(required=False, allow_null=True, max_length=32,
                                          help_text="The tier that served the call (e.g. flex, priority, default)."),
    "processing": serializers.ChoiceField(["batch"], required=False, allow_null=True,
                                          help_text='"batch" for Batch API results, else null.'),
    "speed": serializers.CharField(required=False, allow_null=True, max_length=32, help_text='e.g. "fast".'),
    "usage": serializers.DictField(child=serializers.IntegerField(min_value=0), required=False, help_text=(
        "Usage beyond the token fields: registry unit name → count (web_searches, input_audio_tokens, "
        "cache_write_1h_tokens, audio_seconds, read_units, …). An unknown unit rejects the event.")),
})
_event_in = inline_serializer("EventIn", _event_fields)
_batch_in = inline_serializer("EventBatch", {"events": serializers.ListField(child=_event_in)})


class EventsIngestView(IngestMetricsMixin, APIView):
    metrics_endpoint = "events"
    throttle_classes = [ApiKeyThrottle]
    parser_classes = [JsonBodyParser]

    @extend_schema(
        operation_id="events_ingest", summary="Ingest a batch of events",
        request={"application/json": _batch_in},
        description="A batch as {\"events\": [...]} or a bare array of events. docs/api.md has every field and limit.",
        responses={202: _ingest_response, 400: OpenApiResponse(description="Not JSON / not a list of objects"),
                   401: None, 413: None, 415: None, 429: None},
        examples=[OpenApiExample("batch", value={"events": [{"provider": "openai", "model": "gpt-4o-mini",
                                                              "input_tokens": 1200, "output_tokens": 300}]}),
                  OpenApiExample("batch result with web searches", value={"events": [{
                      "provider": "anthropic", "model": "claude-sonnet-4-5", "input_tokens": 12000,
                      "output_tokens": 800, "processing": "batch", "service_tier": "standard",
                      "usage": {"web_searches": 2, "cache_write_1h_tokens": 0}}]})],
    )
    def post(self, request):
        limit = settings.LLMOBSERVE_MAX_BODY_BYTES
        body = read_json_body(request, limit=limit)
        try:
            typed, raw = batch_decode(body)
        except (BatchDecodeError, BatchShapeError) as exc:
            raise ParseError(str(exc)) from None
        if typed is None and raw and not any(isinstance(item, dict) for item in raw):
            raise ParseError("Body must be a list of event objects.")
        count = len(typed if typed is not None else raw)
        if count > settings.LLMOBSERVE_MAX_EVENTS_PER_REQUEST:
            raise PayloadTooLarge(f"At most {settings.LLMOBSERVE_MAX_EVENTS_PER_REQUEST} events per request "
                                  f"(got {count}).")
        now = timezone.now()
        accepted, rejected = events_validate(typed=typed, raw=raw, now=now)
        result = events_ingest(api_key=request.auth, events=accepted, rejected=rejected, received_at=now)
        return Response({"accepted": result.accepted, "rejected": result.rejected, "over_cap": result.over_cap},
                        status=status.HTTP_202_ACCEPTED)


@extend_schema_view(post=extend_schema(exclude=True))
class EventsIngestAliasView(EventsIngestView):
    """`POST /events`: the same endpoint, kept out of the schema."""


# --- OTLP/HTTP traces --------------------------------------------------------------------------

OTLP_MEDIA_TYPES = ("application/x-protobuf", "application/protobuf", "application/json")
OTLP_ERROR_HEADERS = ("Retry-After", "WWW-Authenticate")
OTLP_RETRY_AFTER_SECONDS = 5


class ProtobufBodyParser(JsonBodyParser):
    media_type = "application/x-protobuf"


class AnswerWhateverAccept(DefaultContentNegotiation):
    """Exporters may send `Accept: application/x-protobuf`: the answer's encoding follows the request's body,
    and errors are JSON, instead of DRF's 406."""

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class HasIngestScopeKey(HasApiKey):
    """OTLP exporters run inside the user's services: they get an ingest-scope key, never a read key."""

    message = "OTLP export needs an ingest-scope key: a read key is refused here."

    def has_permission(self, request, view) -> bool:
        if not super().has_permission(request, view):
            return False
        if request.auth.scope != ApiKey.Scope.INGEST:
            raise PermissionDenied(self.message)
        return True


class OtlpTracesView(IngestMetricsMixin, APIView):
    """`POST /v1/otlp/v1/traces`: OTLP/HTTP trace exports, protobuf or JSON (docs/api.md § OTLP)."""

    metrics_endpoint = "otlp"
    throttle_classes = [ApiKeyThrottle]
    parser_classes = [ProtobufBodyParser, JsonBodyParser]
    permission_classes = [HasIngestScopeKey]
    content_negotiation_class = AnswerWhateverAccept

    @extend_schema(
        operation_id="otlp_traces_ingest", summary="Ingest an OTLP/HTTP trace export (ExportTraceServiceRequest)",
        request={"application/x-protobuf": OpenApiTypes.BINARY, "application/json": OpenApiTypes.OBJECT},
        responses={200: OpenApiResponse(description="ExportTraceServiceResponse, in the request's encoding"),
                   400: OpenApiResponse(description="Not an ExportTraceServiceRequest"), 401: None, 403: None,
                   413: None, 415: None, 429: None, 503: None},
    )
    def post(self, request):
        body, media_type = read_body(request, limit=settings.LLMOBSERVE_MAX_BODY_BYTES, media_types=OTLP_MEDIA_TYPES,
                                     hint="send an OTLP ExportTraceServiceRequest.")
        json_body = media_type == "application/json"
        try:
            result = otlp_ingest(api_key=request.auth, body=body, json_body=json_body)
        except OtlpDecodeError as exc:
            raise ParseError(str(exc)) from None
        payload = response_encode(rejected=result.rejected, message=result.error_message, json_body=json_body)
        return HttpResponse(payload, content_type=media_type, status=200)

    def handle_exception(self, exc):
        """Every refusal (400, 401/403, 413, 415, 429, 503) answers a google.rpc.Status, as the OTLP/HTTP spec asks.

        A database fault anywhere in the request (the key's lookup and touch included, not only the store) is a
        503 the exporter retries, never a 500."""
        if isinstance(exc, (OperationalError, InterfaceError)):
            logger.warning("otlp: the export could not be stored", exc_info=True)
            return self._status_response(status.HTTP_503_SERVICE_UNAVAILABLE, "Storage is unavailable; retry later.",
                                         {"Retry-After": str(OTLP_RETRY_AFTER_SECONDS)})
        response = super().handle_exception(exc)
        data = response.data
        message = str(data.get("detail", data)) if isinstance(data, dict) else str(data)
        return self._status_response(response.status_code, message,
                                     {h: response[h] for h in OTLP_ERROR_HEADERS if response.has_header(h)})

    def _status_response(self, http_status: int, message: str, headers: dict[str, str]) -> HttpResponse:
        """The Status in the request's encoding: protobuf for a protobuf request, JSON otherwise."""
        content_type = (self.request.content_type or "").split(";")[0].strip().lower()
        media_type = content_type if content_type in OTLP_MEDIA_TYPES else "application/json"
        body = status_encode(http_status=http_status, message=message, json_body=media_type == "application/json")
        return HttpResponse(body, content_type=media_type, status=http_status, headers=headers)
