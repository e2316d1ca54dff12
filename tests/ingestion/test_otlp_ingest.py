"""POST /v1/otlp/v1/traces: OTLP/HTTP exports in, the same priced, folded calls as /v1/events out."""

from __future__ import annotations

import gzip
import json
from datetime import datetime, timedelta, timezone

import pytest
import time_machine
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from ingestion.models import HourlyRollup, OtlpSpan, RawBatch, RunSummary, TraceEvent

from .otlp_export import S, chat, new_span_id, new_trace_id, otlp_json, protobuf

pytestmark = pytest.mark.django_db

URL = "/v1/otlp/v1/traces"
PB = "application/x-protobuf"
# An awkward instant: 23:40 UTC on a month's last day.
T0 = datetime(2026, 11, 30, 23, 40, 0, tzinfo=timezone.utc)


@pytest.fixture
def post_otlp(client, django_capture_on_commit_callbacks):
    def _post(key, body: bytes, *, content_type=PB, gz=False, **headers):
        if gz:
            body = gzip.compress(body)
            headers["Content-Encoding"] = "gzip"
        if key:
            headers["Authorization"] = f"Bearer {key}"
        with django_capture_on_commit_callbacks(execute=True):
            return client.generic("POST", URL, body, content_type=content_type, headers=headers)
    return _post


def _events(org):
    return list(TraceEvent.objects.for_org(org).order_by("timestamp", "id"))


def _tree(trace, *, start):
    """invoke_agent(researcher) → execute_tool(web_search) → chat gpt-4o; spans listed children first."""
    agent = S("invoke_agent researcher", trace, start=start, ms=5000, scope="pydantic-ai",
              attrs={"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "researcher",
                     "gen_ai.aggregated_usage.input_tokens": 1200, "gen_ai.aggregated_usage.output_tokens": 300})
    tool = S("execute_tool web_search", trace, parent=agent.span_id, start=start + timedelta(seconds=1), ms=3000,
             scope="pydantic-ai", attrs={"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "web_search"})
    call = chat(trace, parent=tool.span_id, start=start + timedelta(seconds=2), input_tokens=1200, output_tokens=300,
                **{"gen_ai.usage.cache_read.input_tokens": 200, "gen_ai.response.id": "chatcmpl-1"})
    return agent, tool, call


def test_protobuf_export_becomes_a_priced_call_with_its_section_path(org, ingest_key, prices, post_otlp):
    trace = new_trace_id()
    with time_machine.travel(T0, tick=False):
        agent, tool, call = _tree(trace, start=T0 - timedelta(minutes=1))
        response = post_otlp(ingest_key, protobuf([call, tool, agent]))

    assert response.status_code == 200
    assert response["Content-Type"] == PB
    parsed = ExportTraceServiceResponse.FromString(response.content)
    assert parsed.partial_success.rejected_spans == 0
    [event] = _events(org)
    assert (event.run_id, event.span_id, event.parent_span_id) == (trace, call.span_id, tool.span_id)
    assert event.section_path == "agent:researcher/tool:web_search"
    assert event.section == "tool:web_search"
    assert (event.provider, event.model, event.span_type) == ("openai", "gpt-4o", "llm")
    assert (event.input_tokens, event.cached_input_tokens, event.output_tokens) == (1200, 200, 300)
    # 1000 × $2.5 + 200 × $1.25 + 300 × $10 per 1M tokens
    assert event.cost_pico == (1000 * 2_500_000 + 200 * 1_250_000 + 300 * 10_000_000)
    assert event.cost_source == "price"
    assert event.latency_ms == 1000.0
    assert event.timestamp == call.start
    assert event.source == "otlp:opentelemetry.instrumentation.openai_v2"
    assert HourlyRollup.objects.for_org(org).get().calls == 1
    assert HourlyRollup.objects.for_org(org).get().section_path == "agent:researcher/tool:web_search"
    assert RunSummary.objects.for_org(org).get(run_id=trace).calls == 1
    assert RawBatch.objects.for_org(org).get(kind="otlp").processed_at is not None


def test_an_accept_header_does_not_matter(org, ingest_key, post_otlp):
    body = protobuf([chat(new_trace_id(), start=datetime.now(timezone.utc), input_tokens=1)])
    response = post_otlp(ingest_key, body, HTTP_ACCEPT="application/x-protobuf")
    assert response.status_code == 200
    ExportTraceServiceResponse.FromString(response.content)
    assert post_otlp(ingest_key, b"\xff", HTTP_ACCEPT="application/x-protobuf").status_code == 400
    other = protobuf([chat(new_trace_id(), start=datetime.now(timezone.utc), input_tokens=1)])
    assert post_otlp(ingest_key, other, content_type="application/protobuf").status_code == 200
    assert TraceEvent.objects.for_org(org).count() == 2


def test_otlp_json_export_gzip_answers_json(org, ingest_key, prices, post_otlp):
    trace = new_trace_id()
    call = chat(trace, start=datetime.now(timezone.utc) - timedelta(minutes=1), model="gpt-4o-mini",
                input_tokens=1000, output_tokens=100, **{"enduser.id": "acme", "gen_ai.request.stream": True,
                                                          "gen_ai.response.time_to_first_chunk": 0.25})
    response = post_otlp(ingest_key, otlp_json([call]), content_type="application/json", gz=True)

    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/json"
    assert json.loads(response.content) == {}
    [event] = _events(org)
    assert (event.model, event.input_tokens, event.output_tokens) == ("gpt-4o-mini", 1000, 100)
    assert event.customer_id == "acme"
    assert event.stream is True and event.ttft_ms == 250.0
    assert event.cost_pico == 1000 * 150_000 + 100 * 600_000
    assert event.section_path == ""


def test_vercel_time_to_first_chunk_in_milliseconds_is_read(org, ingest_key, prices, post_otlp):
    start = datetime.now(timezone.utc) - timedelta(minutes=1)
    vercel = chat(new_trace_id(), start=start, input_tokens=10, output_tokens=5,
                  **{"ai.operationId": "ai.streamText.doStream", "ai.response.msToFirstChunk": 42.5})
    post_otlp(ingest_key, protobuf([vercel]))
    [event] = _events(org)
    assert event.stream is True and event.ttft_ms == 42.5


def test_json_ids_must_be_hex_and_bad_spans_are_counted_in_partial_success(org, ingest_key, post_otlp):
    trace = new_trace_id()
    good = chat(trace, start=datetime.now(timezone.utc), input_tokens=5, output_tokens=5)
    doc = json.loads(otlp_json([good, chat(trace, start=datetime.now(timezone.utc), input_tokens=1)]))
    doc["resourceSpans"][0]["scopeSpans"][0]["spans"][1]["spanId"] = "not-hex"
    response = post_otlp(ingest_key, json.dumps(doc).encode(), content_type="application/json")

    assert response.status_code == 200
    partial = json.loads(response.content)["partialSuccess"]
    assert partial["rejectedSpans"] == "1"
    assert "span_id must be 8 bytes" in partial["errorMessage"]
    assert len(_events(org)) == 1


def test_a_span_breaking_the_event_rules_is_refused_with_a_reason(org, ingest_key, post_otlp):
    trace = new_trace_id()
    bad = chat(trace, start=datetime.now(timezone.utc) + timedelta(days=2), input_tokens=5)
    too_many = chat(trace, start=datetime.now(timezone.utc), input_tokens=5 * 10**9)
    ok = chat(trace, start=datetime.now(timezone.utc), input_tokens=5)
    response = post_otlp(ingest_key, protobuf([bad, too_many, ok]))

    parsed = ExportTraceServiceResponse.FromString(response.content)
    assert parsed.partial_success.rejected_spans == 2
    assert "more than 1 hour in the future" in parsed.partial_success.error_message
    assert "input_tokens" in parsed.partial_success.error_message
    assert [e.span_id for e in _events(org)] == [ok.span_id]


@pytest.mark.parametrize("body", [b"\xff\xff\xff\xff", b"\x0a\x05abc", b"garbage that is not protobuf\x00\x01"])
def test_undecodable_protobuf_is_400(org, ingest_key, post_otlp, body):
    response = post_otlp(ingest_key, body)
    assert response.status_code == 400
    assert not RawBatch.objects.for_org(org).exists()


def test_undecodable_json_is_400(org, ingest_key, post_otlp):
    for body in (b"{", b"[1, 2]", b'{"resourceSpans": 3}', b'{"resourceSpans": [{"scopeSpans": [{"spans": [1]}]}]}'):
        assert post_otlp(ingest_key, body, content_type="application/json").status_code == 400, body


def test_keys_media_types_and_sizes(org, ingest_key, read_key, post_otlp, settings):
    body = protobuf([chat(new_trace_id(), start=datetime.now(timezone.utc), input_tokens=1)])
    assert post_otlp(None, body).status_code == 401
    assert post_otlp("llmo_nope", body).status_code == 401
    forbidden = post_otlp(read_key, body)
    assert forbidden.status_code == 403 and b"ingest-scope key" in forbidden.content  # a google.rpc.Status
    assert post_otlp(ingest_key, body, content_type="text/plain").status_code == 415
    assert post_otlp(ingest_key, b"", content_type=PB).status_code == 400
    settings.LLMOBSERVE_MAX_BODY_BYTES = 100
    assert post_otlp(ingest_key, body * 10).status_code == 413
    assert post_otlp(ingest_key, b"\x00" * 100_000, gz=True).status_code == 413  # a gzip bomb stops early
    assert not TraceEvent.objects.for_org(org).exists()


def test_x_llmobserve_api_key_header_and_throttle(org, ingest_key, client, settings, django_capture_on_commit_callbacks):
    settings.LLMOBSERVE_INGEST_RATE = 2
    body = protobuf([chat(new_trace_id(), start=datetime.now(timezone.utc), input_tokens=1, model="m")])
    codes = []
    for _ in range(3):
        with django_capture_on_commit_callbacks(execute=True):
            r = client.generic("POST", URL, body, content_type=PB, headers={"X-LLMObserve-API-Key": ingest_key})
        codes.append(r.status_code)
    assert codes == [200, 200, 429]
    assert int(r["Retry-After"]) >= 1


def test_unknown_model_is_unpriced_and_the_reported_cost_is_kept(org, ingest_key, prices, post_otlp):
    trace = new_trace_id()
    unknown = chat(trace, start=datetime.now(timezone.utc), model="mystery-9", input_tokens=10, output_tokens=1,
                   **{"gen_ai.usage.cost": 0.0125})
    known = chat(trace, start=datetime.now(timezone.utc), model="gpt-4o", input_tokens=1000, output_tokens=0,
                 **{"operation.cost": 99.5})
    unreported = chat(trace, start=datetime.now(timezone.utc), model="mystery-9", input_tokens=10)
    post_otlp(ingest_key, protobuf([unknown, known, unreported]))

    by_span = {e.span_id: e for e in _events(org)}
    a, b, c = by_span[unknown.span_id], by_span[known.span_id], by_span[unreported.span_id]
    assert (a.cost_pico, a.cost_source, a.reported_cost_pico) == (12_500_000_000, "client", 12_500_000_000)
    assert (b.cost_pico, b.cost_source, b.reported_cost_pico) == (2_500_000_000, "price", 99_500_000_000_000)
    assert (c.cost_pico, c.cost_source, c.reported_cost_pico) == (None, "", None)  # unpriced, never $0


def test_another_orgs_key_cannot_touch_this_orgs_traces(org, other_org, ingest_key, prices, post_otlp):
    from accounts.services import api_key_create

    other_key = api_key_create(org=other_org, name="ingest", scope="ingest").raw_key
    trace = new_trace_id()
    call = chat(trace, start=datetime.now(timezone.utc), input_tokens=100, output_tokens=10,
                **{"gen_ai.response.id": "chatcmpl-shared"})
    post_otlp(ingest_key, protobuf([call]))
    # The other org sends the same trace and span ids (and response id) with other numbers.
    call.attrs["gen_ai.usage.input_tokens"] = 999
    post_otlp(other_key, protobuf([call]))

    [mine] = _events(org)
    [theirs] = _events(other_org)
    assert (mine.input_tokens, theirs.input_tokens) == (100, 999)
    assert mine.event_id == theirs.event_id
    # Each resolved on arrival: neither org keeps a span row.
    assert OtlpSpan.objects.for_org(org).count() == OtlpSpan.objects.for_org(other_org).count() == 0


@pytest.mark.parametrize("attrs, expected", [
    ({"gen_ai.provider.name": "gcp.gemini", "gen_ai.request.model": "gemini-2.5-flash"}, ("google", "gemini-2.5-flash")),
    ({"gen_ai.system": "aws.bedrock", "gen_ai.request.model": "anthropic.claude-x"}, ("bedrock", "anthropic.claude-x")),
    ({"gen_ai.system": "azure.ai.openai", "gen_ai.response.model": "gpt-4o"}, ("azure_openai", "gpt-4o")),
    ({"llm.provider": "mistral_ai", "llm.model_name": "mistral-large"}, ("mistral", "mistral-large")),
    ({"server.address": "api.anthropic.com", "gen_ai.request.model": "claude-x"}, ("anthropic", "claude-x")),
    ({"gen_ai.request.model": "m"}, ("unknown", "m")),
])
def test_provider_and_model_map_onto_the_price_tables_names(attrs, expected, org, ingest_key, post_otlp):
    span = S("chat", new_trace_id(), start=datetime.now(timezone.utc),
             attrs={"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": 1, **attrs})
    post_otlp(ingest_key, protobuf([span]))
    event = TraceEvent.objects.for_org(org).get()
    assert (event.provider, event.model) == expected


def test_dialects_tier_embeddings_and_reasoning(org, ingest_key, post_otlp):
    start = datetime.now(timezone.utc)
    trace = new_trace_id()
    pydantic = S("chat", trace, start=start, scope="pydantic-ai", attrs={
        "gen_ai.operation.name": "chat", "gen_ai.system": "openai", "gen_ai.request.model": "o3",
        "gen_ai.usage.input_tokens": 500, "gen_ai.usage.output_tokens": 900,
        "gen_ai.usage.details.cache_read_tokens": 100, "gen_ai.usage.details.reasoning_tokens": 800,
        "openai.response.service_tier": "flex", "openai.request.service_tier": "auto"})
    embed = S("embeddings", trace, start=start, attrs={
        "gen_ai.operation.name": "embeddings", "gen_ai.system": "openai",
        "gen_ai.request.model": "text-embedding-3-small", "gen_ai.usage.input_tokens": 42})
    # An instrumentation that reports Anthropic's exclusive input: stored inclusive, as the SDK's calls are.
    exclusive = S("anthropic.chat", trace, start=start, scope="some-anthropic-instrumentation", attrs={
        "gen_ai.system": "anthropic", "gen_ai.request.model": "claude-sonnet-4-5",
        "gen_ai.usage.input_tokens": 10, "gen_ai.usage.output_tokens": 5,
        "gen_ai.usage.cache_read_input_tokens": 3000, "gen_ai.usage.cache_creation_input_tokens": 200})
    post_otlp(ingest_key, protobuf([pydantic, embed, exclusive]))
    events = {e.span_id: e for e in TraceEvent.objects.for_org(org)}
    p, e, x = events[pydantic.span_id], events[embed.span_id], events[exclusive.span_id]
    assert (p.input_tokens, p.cached_input_tokens, p.output_tokens, p.reasoning_tokens) == (500, 100, 900, 800)
    assert p.service_tier == "flex" and p.metadata == {}
    assert (e.span_type, e.input_tokens) == ("embedding", 42)
    assert (x.input_tokens, x.cached_input_tokens, x.cache_write_tokens) == (3210, 3000, 200)
