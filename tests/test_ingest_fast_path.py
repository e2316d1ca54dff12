"""The ingest endpoints' short path through the middleware (llmobserve_site.middleware.IngestFastPathMiddleware):
their answers skip the browser middleware, keep the security headers, and carry the API's own policy."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from ingestion.models import TraceEvent
from llmobserve_site.middleware import API_CONTENT_SECURITY_POLICY

from .ingestion.otlp_export import chat, new_trace_id, protobuf

pytestmark = pytest.mark.django_db

EVENT = {"provider": "openai", "model": "gpt-4o-mini", "input_tokens": 10, "output_tokens": 2}


def _api_headers(response) -> None:
    assert response["Content-Security-Policy"] == API_CONTENT_SECURITY_POLICY
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"  # SecurityMiddleware, above the short path
    assert response["Referrer-Policy"] == "same-origin"
    assert int(response["Content-Length"]) == len(response.content)  # (an empty protobuf answer: 0)
    assert "Set-Cookie" not in response and not response.cookies


def test_ingest_answers_skip_the_browser_middleware(org, member, client, ingest_key, post_events,
                                                    django_capture_on_commit_callbacks):
    client.force_login(member)  # a session cookie goes along; no page middleware reads it here
    for url in ("/v1/events", "/events"):
        response = post_events(ingest_key, [dict(EVENT, event_id=url)], url=url)
        assert response.status_code == 202 and response.json()["accepted"] == 1, url
        _api_headers(response)
        assert "no-store" not in response.get("Cache-Control", "")  # the signed-in pages' header is not added
    export = protobuf([chat(new_trace_id(), start=datetime.now(timezone.utc), input_tokens=10, output_tokens=2)])
    with django_capture_on_commit_callbacks(execute=True):
        response = client.generic("POST", "/v1/otlp/v1/traces", export,
                                  content_type="application/x-protobuf", headers={"Authorization": f"Bearer {ingest_key}"})
    assert response.status_code == 200 and response["Content-Type"] == "application/x-protobuf"
    assert ExportTraceServiceResponse.FromString(response.content).partial_success.rejected_spans == 0
    _api_headers(response)
    assert TraceEvent.objects.for_org(org).count() == 3


def test_refusals_take_the_short_path_too(org, ingest_key, post_events):
    for response, status in ((post_events("llmo_nope", [EVENT]), 401), (post_events(ingest_key, b"{not json"), 400),
                             (post_events(ingest_key, [EVENT], content_type="text/plain"), 415)):
        assert response.status_code == status, response.content
        assert "detail" in response.json()
        _api_headers(response)
    assert not TraceEvent.objects.for_org(org).exists()


def test_every_other_path_keeps_the_whole_chain(client, api, read_key):
    for response in (api(read_key).get("/v1/stats/summary"), client.get("/accounts/login/"),
                     client.post("/v1/events/", b"[]", content_type="application/json")):
        assert response["Content-Security-Policy"] != API_CONTENT_SECURITY_POLICY
        assert "script-src 'self'" in response["Content-Security-Policy"]


def test_the_https_redirect_still_comes_first(ingest_key, post_events, settings):
    settings.SECURE_SSL_REDIRECT = True
    response = post_events(ingest_key, [EVENT])
    assert response.status_code == 301 and response["Location"] == "https://testserver/v1/events"
