"""POST /v1/otlp/v1/traces refusals: each carries a google.rpc.Status in the request's encoding (OTLP/HTTP spec).

Decoded with the published `google.rpc.status_pb2.Status` (googleapis-common-protos), for protobuf and JSON.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from google.protobuf import json_format
from google.rpc import code_pb2
from google.rpc.status_pb2 import Status

from ingestion.models import RawBatch, TraceEvent

from .otlp_export import chat, new_trace_id, otlp_json, protobuf
from .test_otlp_ingest import PB, URL, post_otlp  # noqa: F401 (the fixture)

pytestmark = pytest.mark.django_db
JSON = "application/json"


def _spans():
    return [chat(new_trace_id(), start=datetime.now(timezone.utc), input_tokens=1)]


def _status(response, content_type: str) -> Status:
    """The answer's body as the exporter reads it: a Status in the request's encoding."""
    assert response["Content-Type"] == content_type
    if content_type == JSON:
        return json_format.Parse(response.content, Status())
    return Status.FromString(response.content)


@pytest.fixture(params=[PB, JSON], ids=["protobuf", "json"])
def encoding(request):
    content_type = request.param
    return content_type, (protobuf if content_type == PB else otlp_json)


def test_undecodable_body_is_400_invalid_argument(org, ingest_key, post_otlp, encoding):
    content_type, _ = encoding
    response = post_otlp(ingest_key, b"\xff\xff\xff\xff" if content_type == PB else b"{", content_type=content_type)
    assert response.status_code == 400
    status = _status(response, content_type)
    assert status.code == code_pb2.INVALID_ARGUMENT
    assert ("protobuf" if content_type == PB else "OTLP/JSON") in status.message
    assert not RawBatch.objects.for_org(org).exists()


def test_missing_or_unknown_key_is_401_unauthenticated(org, post_otlp, encoding):
    content_type, encode = encoding
    for key in (None, "llmo_nope"):
        response = post_otlp(key, encode(_spans()), content_type=content_type)
        assert response.status_code == 401
        assert _status(response, content_type).code == code_pb2.UNAUTHENTICATED
        assert response.has_header("WWW-Authenticate")


def test_read_key_is_403_permission_denied(org, read_key, post_otlp, encoding):
    content_type, encode = encoding
    response = post_otlp(read_key, encode(_spans()), content_type=content_type)
    assert response.status_code == 403
    status = _status(response, content_type)
    assert status.code == code_pb2.PERMISSION_DENIED and "ingest-scope key" in status.message


def test_too_large_is_413(org, ingest_key, post_otlp, settings, encoding):
    content_type, encode = encoding
    settings.LLMOBSERVE_MAX_BODY_BYTES = 100
    for body, gz in ((encode(_spans()) * 10, False), (b"\x00" * 100_000, True)):
        response = post_otlp(ingest_key, body, content_type=content_type, gz=gz)
        assert response.status_code == 413
        status = _status(response, content_type)
        assert status.code == code_pb2.INVALID_ARGUMENT and "exceeds" in status.message
    assert not TraceEvent.objects.for_org(org).exists()


def test_unsupported_media_type_is_415_in_json(org, ingest_key, post_otlp):
    response = post_otlp(ingest_key, protobuf(_spans()), content_type="text/plain")
    assert response.status_code == 415
    status = _status(response, JSON)  # an encoding we do not speak: the Status comes as JSON
    assert status.code == code_pb2.INVALID_ARGUMENT and "application/x-protobuf" in status.message
    response = post_otlp(ingest_key, protobuf(_spans()), content_type=PB, **{"Content-Encoding": "br"})
    assert response.status_code == 415 and _status(response, PB).code == code_pb2.INVALID_ARGUMENT


def test_throttled_is_429_resource_exhausted_with_retry_after(org, ingest_key, post_otlp, settings, encoding):
    content_type, encode = encoding
    settings.LLMOBSERVE_INGEST_RATE = 1
    assert post_otlp(ingest_key, encode(_spans()), content_type=content_type).status_code == 200
    response = post_otlp(ingest_key, encode(_spans()), content_type=content_type)
    assert response.status_code == 429 and int(response["Retry-After"]) >= 1
    status = _status(response, content_type)
    assert status.code == code_pb2.RESOURCE_EXHAUSTED and "throttled" in status.message


def test_a_json_attribute_whose_key_is_not_a_string_is_ignored_and_the_span_kept(org, ingest_key, prices, post_otlp):
    """An attribute `"key": [..]` or `{..}` is no attribute we read: the call next to it is stored, no 500."""
    import json

    body = json.loads(otlp_json(_spans()))
    attributes = body["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["attributes"]
    attributes += [{"key": ["gen_ai.request.model"], "value": {"stringValue": "x"}},
                   {"key": {"a": 1}, "value": {"intValue": "1"}}]
    response = post_otlp(ingest_key, json.dumps(body).encode(), content_type=JSON)
    assert response.status_code == 200
    assert TraceEvent.objects.for_org(org).count() == 1
