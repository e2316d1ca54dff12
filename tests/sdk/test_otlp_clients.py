"""Real OpenTelemetry clients → POST /v1/otlp/v1/traces on the live collector → priced calls.

Each test configures its exporter the way docs/opentelemetry.md tells users to, with the two
standard variables (``OTEL_EXPORTER_OTLP_ENDPOINT=<host>/v1/otlp`` and
``OTEL_EXPORTER_OTLP_HEADERS=Authorization=Bearer%20<key>``), runs an official provider client
against the local fake provider servers, and reads what the collector stored.

Covered: the official ``opentelemetry-instrumentation-openai-v2`` (protobuf), an OTLP/JSON export of
spans the OTel SDK recorded, Traceloop's ``opentelemetry-instrumentation-anthropic`` beside the
anthropic SDK's own spans (gzip), OpenLLMetry's OpenAI instrumentation, Pydantic AI's own instrumentation
(agents, tools, aggregated usage), and Node processes (OpenTelemetry JS proto exporter + the Vercel AI SDK's
telemetry, or OpenLLMetry JS on the `openai` client), whose exporter sends chunked bodies.
"""

from __future__ import annotations

import base64
import hashlib
import io
import itertools
import json
import os
import shutil
import subprocess
import urllib.request
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Dict, Iterator, List, Optional, Sequence

import anthropic
import openai
import pytest
import requests
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExportResult,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from .fakes import ProviderHandler, ProviderServer, openai_chat, serve

pytestmark = pytest.mark.django_db(transaction=True)

NODE_DIR = Path(__file__).parent / "node"

# Prices of the `prices` fixture, in pico-USD per token.
GPT4O_IN, GPT4O_CACHED, GPT4O_OUT = 2_500_000, 1_250_000, 10_000_000
SONNET_IN, SONNET_READ, SONNET_WRITE, SONNET_OUT = 3_000_000, 300_000, 3_750_000, 15_000_000
EMBED_IN = 20_000  # text-embedding-3-small: $0.02 / 1M


class UniqueIdHandler(ProviderHandler):
    """The fake providers, with a fresh response id per request (a real provider never repeats one).

    The collector counts one call per provider response id, so the shared fakes' fixed ids
    (``chatcmpl-1``, ``msg_1``) would fold distinct calls into one.
    """

    server: "UniqueIdServer"

    def _fresh(self, text: str, n: int) -> str:
        return text.replace('"chatcmpl-1"', f'"chatcmpl-{n}"').replace('"msg_1"', f'"msg_otlp{n}"')

    def _json(self, status: int, obj: Any, headers: Optional[Dict[str, str]] = None) -> None:
        n = next(self.server.ids)
        super()._json(status, json.loads(self._fresh(json.dumps(obj), n)), headers)

    def _stream(self, chunks: List[bytes], content_type: str = "text/event-stream") -> None:
        n = next(self.server.ids)
        super()._stream([self._fresh(c.decode(), n).encode() for c in chunks], content_type)


    def do_POST(self) -> None:
        """A chat completion offered tools and holding no tool result yet asks for the first tool (an agent's loop)."""
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else {}
        messages = body.get("messages") or []
        if (self.path.endswith("/chat/completions") and body.get("tools") and not body.get("stream")
                and not any(m.get("role") == "tool" for m in messages)):
            tool = body["tools"][0]["function"]["name"]
            reply = openai_chat()
            reply["choices"][0]["message"] = {"role": "assistant", "content": None, "refusal": None, "tool_calls": [{
                "id": "call_1", "type": "function", "function": {"name": tool, "arguments": '{"question": "q"}'}}]}
            reply["choices"][0]["finish_reason"] = "tool_calls"
            return self._json(200, reply)
        connection, self.rfile = self.rfile, io.BytesIO(raw)  # the shared fake reads the body itself
        try:
            super().do_POST()
        finally:
            self.rfile = connection


class UniqueIdServer(ProviderServer):
    def __init__(self) -> None:
        super().__init__()
        self.RequestHandlerClass = UniqueIdHandler
        self.ids = itertools.count(1)


@pytest.fixture(scope="module")
def provider() -> Iterator[UniqueIdServer]:
    srv = UniqueIdServer()
    serve(srv)
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def collector(live_server, prices, monkeypatch) -> SimpleNamespace:
    """An org with an ingest key, and the two environment variables that point exporters at it."""
    from accounts.services import api_key_create

    from ..conftest import make_price
    from ..factories import OrganizationFactory

    make_price(provider="openai", model_match="text-embedding-3-small", input_mtok="0.02", output_mtok="0")
    org = OrganizationFactory()
    key = api_key_create(org=org).raw_key
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"{live_server.url}/v1/otlp")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"Authorization=Bearer%20{key}")
    for var in ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
                "OTEL_EXPORTER_OTLP_COMPRESSION", "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION"):
        monkeypatch.delenv(var, raising=False)
    return SimpleNamespace(org=org, key=key, url=live_server.url)


class RecordingExporter(OTLPSpanExporter):
    """The real protobuf exporter (configured from the environment), remembering each export's result."""

    def __init__(self) -> None:
        super().__init__()
        self.results: List[SpanExportResult] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        result = super().export(spans)
        self.results.append(result)
        return result


class Tracing:
    """A tracer provider exporting to the collector, plus an in-memory copy of every span."""

    def __init__(self, *, batch: bool) -> None:
        self.exporter = RecordingExporter()
        self.memory = InMemorySpanExporter()
        self.provider = TracerProvider(resource=Resource.create({"service.name": "otlp-client-test"}))
        # Simple: one export per span as it ends (children before parents, one trace over many
        # requests). Batch: one export at the end, children first.
        self.provider.add_span_processor(
            BatchSpanProcessor(self.exporter, schedule_delay_millis=60_000) if batch
            else SimpleSpanProcessor(self.exporter))
        self.provider.add_span_processor(SimpleSpanProcessor(self.memory))
        self.tracer = self.provider.get_tracer("llmobserve.tests.app")

    def flush(self) -> None:
        assert self.provider.force_flush(timeout_millis=30_000)
        assert self.exporter.results and all(r is SpanExportResult.SUCCESS for r in self.exporter.results), \
            self.exporter.results

    def spans(self, **attrs: Any) -> List[ReadableSpan]:
        return [s for s in self.memory.get_finished_spans()
                if all((s.attributes or {}).get(k) == v for k, v in attrs.items())]

    def agent(self, name: str):
        return self.tracer.start_as_current_span(
            f"invoke_agent {name}", kind=SpanKind.INTERNAL,
            attributes={"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": name})

    def tool(self, name: str):
        return self.tracer.start_as_current_span(
            f"execute_tool {name}", kind=SpanKind.INTERNAL,
            attributes={"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": name})

    def shutdown(self) -> None:
        self.provider.shutdown()


@pytest.fixture
def tracing() -> Iterator[Any]:
    made: List[Tracing] = []

    def make(*, batch: bool = False) -> Tracing:
        made.append(Tracing(batch=batch))
        return made[-1]

    yield make
    for t in made:
        t.shutdown()


def hexid(n: int, width: int) -> str:
    return format(n, f"0{width}x")


def stored(org) -> List[Any]:
    from ingestion.models import TraceEvent

    return list(TraceEvent.objects.for_org(org).order_by("timestamp", "id"))


def openai_agent_calls(t: Tracing, provider: UniqueIdServer, *, agent: str, tool: str, prompt: str,
                       embed: bool = False) -> None:
    """Under an agent: a chat completion inside a tool, a streamed one (with usage), optionally an embedding."""
    oai = openai.OpenAI(base_url=provider.url + "/v1", api_key="sk-test", max_retries=0)
    messages = [{"role": "user", "content": prompt}]
    with t.agent(agent):
        with t.tool(tool):
            oai.chat.completions.create(model="gpt-4o", messages=messages)
        for _ in oai.chat.completions.create(model="gpt-4o", messages=messages, stream=True,
                                             stream_options={"include_usage": True}):
            pass
        if embed:
            oai.embeddings.create(model="text-embedding-3-small", input=prompt)
    t.flush()


def test_official_openai_v2_instrumentation_chat_stream_and_embeddings(collector, provider, tracing):
    """openai-v2 + the protobuf exporter, one span per request: exact tokens, cost, sections, source."""
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

    from ingestion.models import RunSummary

    t = tracing(batch=False)
    OpenAIInstrumentor().instrument(tracer_provider=t.provider)
    try:
        openai_agent_calls(t, provider, agent="researcher", tool="search", prompt="hi", embed=True)
    finally:
        OpenAIInstrumentor().uninstrument()

    chats = t.spans(**{"gen_ai.operation.name": "chat"})
    [embed_span] = t.spans(**{"gen_ai.operation.name": "embeddings"})
    [root] = t.spans(**{"gen_ai.operation.name": "invoke_agent"})
    assert len(chats) == 2 and len(t.memory.get_finished_spans()) == 5
    # Five spans, five requests, children first: the collector resolved the trace when its root came.
    assert len(t.exporter.results) == 5

    events = stored(collector.org)
    by_span = {e.span_id: e for e in events}
    assert set(by_span) == {hexid(s.context.span_id, 16) for s in chats + [embed_span]}
    run_id = hexid(root.context.trace_id, 32)
    assert {e.run_id for e in events} == {run_id}

    in_tool, streamed = (by_span[hexid(s.context.span_id, 16)] for s in sorted(chats, key=lambda s: s.start_time))
    for chat in (in_tool, streamed):
        # openai-v2 reports no cached tokens on chat completions: 1,200 input billed as uncached.
        assert (chat.provider, chat.model) == ("openai", "gpt-4o-2024-08-06")
        assert (chat.input_tokens, chat.cached_input_tokens, chat.output_tokens) == (1200, 0, 300)
        assert chat.cost_pico == 1200 * GPT4O_IN + 300 * GPT4O_OUT
        assert chat.source == f"otlp:{chats[0].instrumentation_scope.name}"
        assert chat.status == "ok"
    assert in_tool.section_path == "agent:researcher/tool:search"
    assert streamed.section_path == "agent:researcher"
    embed = by_span[hexid(embed_span.context.span_id, 16)]
    assert (embed.model, embed.input_tokens, embed.output_tokens) == ("text-embedding-3-small", 8, 0)
    assert embed.cost_pico == 8 * EMBED_IN
    assert embed.section_path == "agent:researcher"
    assert embed.source == f"otlp:{embed_span.instrumentation_scope.name}"

    run = RunSummary.objects.for_org(collector.org).get(run_id=run_id)
    assert (run.calls, run.cost_pico, run.agent) == (3, sum(e.cost_pico for e in events), "agent:researcher")


def otlp_json(spans: Sequence[ReadableSpan]) -> bytes:
    """The OTLP/JSON encoding of spans, as an OTLP/JSON exporter sends it.

    The protobuf message from the SDK's own encoder, through protobuf's canonical JSON mapping with
    the two changes OTLP/JSON makes: trace and span ids are hex strings (not base64) and enums are
    integers.
    """
    from google.protobuf import json_format

    doc = json_format.MessageToDict(encode_spans(spans), use_integers_for_enums=True)
    for rs in doc.get("resourceSpans", []):
        for ss in rs.get("scopeSpans", []):
            for span in ss.get("spans", []):
                for field in ("traceId", "spanId", "parentSpanId"):
                    if span.get(field):
                        span[field] = base64.b64decode(span[field]).hex()
                for link in span.get("links", []):
                    for field in ("traceId", "spanId"):
                        if link.get(field):
                            link[field] = base64.b64decode(link[field]).hex()
    return json.dumps(doc).encode()


def post_json(url: str, key: str, body: bytes) -> Dict[str, Any]:
    req = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/json", "Authorization": f"Bearer {key}"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("application/json")
        return json.loads(resp.read() or b"{}")


def test_otlp_json_export_of_recorded_spans_is_stored_once_even_when_resent(collector, provider):
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

    from ingestion.models import RunSummary

    memory = InMemorySpanExporter()
    tp = TracerProvider(resource=Resource.create({"service.name": "otlp-json-test"}))
    tp.add_span_processor(SimpleSpanProcessor(memory))
    tracer = tp.get_tracer("llmobserve.tests.app")
    OpenAIInstrumentor().instrument(tracer_provider=tp)
    try:
        oai = openai.OpenAI(base_url=provider.url + "/v1", api_key="sk-test", max_retries=0)
        with tracer.start_as_current_span("nightly", attributes={"gen_ai.workflow.name": "nightly-digest"}):
            with tracer.start_as_current_span("invoke_agent summarizer", attributes={
                    "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "summarizer"}):
                oai.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    finally:
        OpenAIInstrumentor().uninstrument()
        tp.shutdown()
    spans = memory.get_finished_spans()
    [chat] = [s for s in spans if (s.attributes or {}).get("gen_ai.operation.name") == "chat"]
    body = otlp_json(spans)
    assert b'"traceId": "%s"' % hexid(chat.context.trace_id, 32).encode() in body

    url = f"{collector.url}/v1/otlp/v1/traces"
    first = post_json(url, collector.key, body)
    assert not (first.get("partialSuccess") or {}).get("rejectedSpans")
    post_json(url, collector.key, body)  # exporters retry: a re-sent export counts nothing twice

    [event] = stored(collector.org)
    assert (event.run_id, event.span_id) == (hexid(chat.context.trace_id, 32), hexid(chat.context.span_id, 16))
    assert (event.input_tokens, event.output_tokens, event.cost_pico) == (1200, 300, 1200 * GPT4O_IN + 300 * GPT4O_OUT)
    assert event.section_path == "workflow:nightly-digest/agent:summarizer"
    run = RunSummary.objects.for_org(collector.org).get()
    assert (run.calls, run.cost_pico) == (1, event.cost_pico)


@pytest.mark.parametrize("batch", [True, False], ids=["one-export", "export-per-span"])
def test_traceloop_anthropic_beside_the_sdks_own_spans_counts_one_call_per_response(
        collector, provider, tracing, monkeypatch, batch):
    """Traceloop's span and the anthropic SDK's own span share a response id: one call, exact cache tokens."""
    from opentelemetry.instrumentation.anthropic import AnthropicInstrumentor

    from ingestion.models import RawBatch, RunSummary

    monkeypatch.setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")
    t = tracing(batch=batch)
    AnthropicInstrumentor().instrument(tracer_provider=t.provider)
    secret = "traceloop-secret-prompt-5e1f"
    try:
        claude = anthropic.Anthropic(base_url=provider.url, api_key="sk-ant-test", max_retries=0,
                                     open_telemetry={"tracer_provider": t.provider})
        with t.agent("writer"):  # the two spans are siblings under the agent
            claude.messages.create(model="claude-sonnet-4-5", max_tokens=50,
                                   messages=[{"role": "user", "content": secret}])
        # No parent: two root traces for the same response.
        with claude.messages.stream(model="claude-sonnet-4-5", max_tokens=50,
                                    messages=[{"role": "user", "content": secret}]) as stream:
            for _ in stream.text_stream:
                pass
        t.flush()
    finally:
        AnthropicInstrumentor().uninstrument()

    calls = t.spans(**{"gen_ai.operation.name": "chat"})
    scopes = {s.instrumentation_scope.name for s in calls}
    assert scopes == {"opentelemetry.instrumentation.anthropic", "com.anthropic.sdk.python"}, scopes
    assert len(calls) == 4 and len({s.attributes["gen_ai.response.id"] for s in calls}) == 2
    # Traceloop's stream output is one too high (message_start's 1 + message_delta's cumulative 120).
    assert sorted(s.attributes["gen_ai.usage.output_tokens"] for s in calls) == [120, 120, 120, 121]

    events = stored(collector.org)
    assert len(events) == 2, [(e.source, e.span_id, e.output_tokens) for e in events]
    created, streamed = events
    expected_cost = 50 * SONNET_IN + 2000 * SONNET_READ + 1000 * SONNET_WRITE + 120 * SONNET_OUT
    for call in events:
        assert (call.provider, call.model) == ("anthropic", "claude-sonnet-4-5-20250929")
        assert (call.input_tokens, call.cached_input_tokens, call.cache_write_tokens) == (3050, 2000, 1000)
        assert call.output_tokens == 120
        assert call.cost_pico == expected_cost
    assert created.section_path == "agent:writer" and not created.stream
    assert streamed.section_path == "" and streamed.stream
    assert RunSummary.objects.for_org(collector.org).filter(run_id=created.run_id).get().calls == 1

    # Prompts and completions recorded by Traceloop are stored nowhere once processed.
    for e in events:
        assert secret not in json.dumps(e.metadata) and "Hello, world" not in json.dumps(e.metadata)
    for batch in RawBatch.objects.for_org(collector.org):
        assert batch.processed_at is not None
        assert secret.encode() not in bytes(batch.payload)


def test_pydantic_ai_agents_and_tools_count_each_model_request_once(collector, provider, tracing):
    """Pydantic AI's own instrumentation: invoke_agent (with aggregated usage) and execute_tool become sections.

    A planner agent calls a tool that runs a researcher agent: three model requests, three calls, and the
    `invoke_agent` spans' `gen_ai.aggregated_usage.*` totals are not counted again.
    """
    from pydantic_ai import Agent
    from pydantic_ai.models.instrumented import InstrumentationSettings
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    from ingestion.models import RunSummary

    t = tracing(batch=True)
    settings = InstrumentationSettings(tracer_provider=t.provider)
    model = OpenAIChatModel("gpt-4o", provider=OpenAIProvider(base_url=provider.url + "/v1", api_key="sk-test"))
    researcher = Agent(model, name="researcher")
    planner = Agent(model, name="planner")

    @planner.tool_plain
    async def ask_researcher(question: str) -> str:
        return (await researcher.run(question)).output

    Agent.instrument_all(settings)
    try:
        assert planner.run_sync("pydantic-secret-prompt").output == "Hello, world!"
    finally:
        Agent.instrument_all(False)
    t.flush()

    chats = t.spans(**{"gen_ai.operation.name": "chat"})
    agents = t.spans(**{"gen_ai.operation.name": "invoke_agent"})
    [tool] = t.spans(**{"gen_ai.operation.name": "execute_tool"})
    assert len(chats) == 3 and {a.attributes["gen_ai.agent.name"] for a in agents} == {"planner", "researcher"}
    assert tool.attributes["gen_ai.tool.name"] == "ask_researcher"
    [outer] = [a for a in agents if a.attributes["gen_ai.agent.name"] == "planner"]
    assert outer.attributes["gen_ai.aggregated_usage.input_tokens"] == 2 * 1200  # its own requests: not counted again

    events = stored(collector.org)
    assert {e.span_id for e in events} == {hexid(s.context.span_id, 16) for s in chats}
    scope = chats[0].instrumentation_scope.name
    for call in events:
        # The fake reports 1,024 of the 1,200 input tokens as cached and 128 of the 300 output as reasoning.
        assert (call.provider, call.model) == ("openai", "gpt-4o-2024-08-06")
        assert (call.input_tokens, call.cached_input_tokens) == (1200, 1024)
        assert (call.output_tokens, call.reasoning_tokens) == (300, 128)
        assert call.cost_pico == 176 * GPT4O_IN + 1024 * GPT4O_CACHED + 300 * GPT4O_OUT
        assert call.source == f"otlp:{scope}"
        assert "pydantic-secret-prompt" not in json.dumps(call.metadata)
    assert sorted(e.section_path for e in events) == [
        "agent:planner", "agent:planner", "agent:planner/tool:ask_researcher/agent:researcher"]
    run = RunSummary.objects.for_org(collector.org).get(run_id=hexid(outer.context.trace_id, 32))
    assert (run.calls, run.cost_pico) == (3, sum(e.cost_pico for e in events))


def test_traceloop_openai_instrumentation_chat_and_stream(collector, provider, tracing):
    """OpenLLMetry's OpenAI instrumentation (the one `traceloop-sdk` installs): cached input tokens, sections."""
    from opentelemetry.instrumentation.openai import OpenAIInstrumentor

    t = tracing(batch=True)
    OpenAIInstrumentor().instrument(tracer_provider=t.provider)
    try:
        openai_agent_calls(t, provider, agent="triage", tool="classify", prompt="tl-secret")
    finally:
        OpenAIInstrumentor().uninstrument()

    chats = t.spans(**{"gen_ai.operation.name": "chat"})
    assert len(chats) == 2
    events = stored(collector.org)
    assert {e.span_id for e in events} == {hexid(s.context.span_id, 16) for s in chats}
    created, streamed = events
    for call in events:
        assert (call.provider, call.model) == ("openai", "gpt-4o-2024-08-06")
        assert (call.input_tokens, call.cached_input_tokens) == (1200, 1024)
        assert call.output_tokens == 300
        assert call.cost_pico == 176 * GPT4O_IN + 1024 * GPT4O_CACHED + 300 * GPT4O_OUT
        assert call.source == f"otlp:{chats[0].instrumentation_scope.name}"
        assert "tl-secret" not in json.dumps(call.metadata)
    assert (created.section_path, created.stream) == ("agent:triage/tool:classify", False)
    assert (streamed.section_path, streamed.stream) == ("agent:triage", True)


class CountingSession(requests.Session):
    """The exporter's own requests session, keeping each answer (status, headers, body) it got."""

    def __init__(self) -> None:
        super().__init__()
        self.answers: List[requests.Response] = []

    def send(self, *args: Any, **kwargs: Any) -> requests.Response:
        response = super().send(*args, **kwargs)
        self.answers.append(response)
        return response


def one_chat_span() -> Sequence[ReadableSpan]:
    """A finished chat span of 10 input and 5 output tokens, recorded in memory."""
    memory = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(memory))
    with tp.get_tracer("t").start_as_current_span("chat gpt-4o", attributes={
            "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o",
            "gen_ai.usage.input_tokens": 10, "gen_ai.usage.output_tokens": 5}):
        pass
    tp.shutdown()
    return memory.get_finished_spans()


@pytest.mark.parametrize("refusal", ["no-key", "read-key", "throttled"])
def test_the_python_exporter_reads_our_refusals_as_the_spec_says(collector, monkeypatch, settings, refusal):
    """401/403 are final, 429's Retry-After is honoured: one request each, a failed export, a decodable Status."""
    from google.rpc import code_pb2
    from google.rpc.status_pb2 import Status

    from accounts.services import api_key_create

    if refusal == "no-key":
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "Authorization=Bearer%20llmo_nope")
    elif refusal == "read-key":
        read = api_key_create(org=collector.org, name="read", scope="read").raw_key
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"Authorization=Bearer%20{read}")
    else:
        settings.LLMOBSERVE_INGEST_RATE = 1
    session = CountingSession()
    exporter = OTLPSpanExporter(session=session)
    spans = one_chat_span()
    if refusal == "throttled":
        assert exporter.export(spans) is SpanExportResult.SUCCESS
        session.answers.clear()
    assert exporter.export(spans) is SpanExportResult.FAILURE
    exporter.shutdown()

    [answer] = session.answers  # not retried: 401/403 are final; 429's Retry-After is past the export's deadline
    expected = {"no-key": (401, code_pb2.UNAUTHENTICATED), "read-key": (403, code_pb2.PERMISSION_DENIED),
                "throttled": (429, code_pb2.RESOURCE_EXHAUSTED)}[refusal]
    assert answer.headers["Content-Type"] == "application/x-protobuf"
    assert (answer.status_code, Status.FromString(answer.content).code) == expected
    if refusal == "throttled":
        assert int(answer.headers["Retry-After"]) > 10  # the exporter's default timeout: it gives up, no hammering


def test_the_python_exporter_retries_after_our_503_and_the_export_is_stored_once(collector, monkeypatch):
    """A real storage fault: another connection holds SQLite's write lock, so the request's first write (the key's
    touch, before the store) fails: 503, Retry-After: 5, a google.rpc.Status UNAVAILABLE, not a 500. The
    exporter waits and re-sends, and the call counts once."""
    import sqlite3
    import threading

    from django.db import connection, connections
    from google.rpc import code_pb2
    from google.rpc.status_pb2 import Status

    if connection.vendor != "sqlite":
        pytest.skip("the write lock is SQLite's; PostgreSQL storage faults are in tests/ingestion/test_faults.py")
    # The live server opens a connection per request: make its wait for the lock short.
    monkeypatch.setitem(connections.settings["default"]["OPTIONS"], "timeout", 0.2)
    locker = sqlite3.connect(connection.settings_dict["NAME"], isolation_level=None, check_same_thread=False)
    locker.execute("BEGIN IMMEDIATE")  # the write lock: readers go on (WAL), writers time out
    release = threading.Timer(2.0, lambda: locker.execute("COMMIT"))

    session = CountingSession()
    exporter = OTLPSpanExporter(session=session)
    spans = one_chat_span()
    release.start()
    try:
        assert exporter.export(spans) is SpanExportResult.SUCCESS
    finally:
        release.join()
        locker.close()
        exporter.shutdown()

    first, second = session.answers
    assert (first.status_code, first.headers["Retry-After"]) == (503, "5")
    assert Status.FromString(first.content).code == code_pb2.UNAVAILABLE
    assert second.status_code == 200
    [event] = stored(collector.org)
    assert (event.input_tokens, event.output_tokens) == (10, 5)


# --- Node: OpenTelemetry JS proto exporter + the Vercel AI SDK ----------------------------------------


def _node_missing(what: str) -> None:
    message = f"{what}; install Node.js 20+ and npm (`apt-get install nodejs npm`) to run the Node OTLP test."
    if os.environ.get("CI", "").lower() == "true":
        raise RuntimeError(message)  # CI must run it
    pytest.skip(message)


@pytest.fixture(scope="session")
def node_modules() -> Path:
    """`npm ci` of tests/sdk/node once (cached: redone only when package-lock.json changes)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        _node_missing("node or npm not found")
    version = subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip()
    if int(version.lstrip("v").split(".")[0]) < 20:
        _node_missing(f"node {version} is too old")
    lock = (NODE_DIR / "package-lock.json").read_bytes()
    stamp = NODE_DIR / "node_modules" / ".llmobserve-lock-sha256"
    digest = hashlib.sha256(lock).hexdigest()
    if not stamp.exists() or stamp.read_text() != digest:
        proc = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=NODE_DIR,
                              capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            if os.environ.get("CI", "").lower() == "true":
                raise RuntimeError(f"npm ci failed:\n{proc.stdout}\n{proc.stderr}")
            pytest.skip(f"npm ci failed (no registry access?): {proc.stderr[-500:]}")
        stamp.write_text(digest)
    return NODE_DIR / "node_modules"


def run_node_export(provider: UniqueIdServer, script: str = "export.mjs") -> Dict[str, Any]:
    """A script of tests/sdk/node (export.mjs: one generateText and one streamText call), exported to the collector."""
    env = dict(os.environ, OPENAI_BASE_URL=f"{provider.url}/v1")
    proc = subprocess.run([shutil.which("node") or "node", script], cwd=NODE_DIR, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    if script == "export.mjs":
        assert out["generated"] == out["streamed"] == "Hello, world!"
    return out


@pytest.fixture
def wsgi_like_production(live_server) -> Iterator[None]:
    """The live server's application wrapped as llmobserve_site/wsgi.py wraps Django's for runserver and gunicorn.

    pytest-django's live server serves Django's bare WSGIHandler; the product (``make demo``, gunicorn)
    serves ``llmobserve_site.wsgi.application``, whose chunked-body middleware the Node exporter needs.
    """
    from ingestion.chunked import ChunkedBodyMiddleware
    from llmobserve_site.wsgi import application

    assert isinstance(application, ChunkedBodyMiddleware)
    httpd = live_server.thread.httpd
    bare = httpd.get_app()
    httpd.set_app(ChunkedBodyMiddleware(bare))
    yield
    httpd.set_app(bare)


def test_node_proto_exporter_with_vercel_ai_sdk_chunked_bodies(collector, provider, node_modules, wsgi_like_production):
    """Vercel AI SDK telemetry → OTel JS proto exporter (chunked, no Content-Length) → two priced calls."""
    from ingestion.models import RunSummary

    run_node_export(provider)

    events = stored(collector.org)
    # ai.generateText / ai.streamText repeat their inner doGenerate / doStream span's usage: two calls, not four.
    assert len(events) == 2, [(e.source, e.span_id, e.input_tokens) for e in events]
    generated, streamed = events
    for call in events:
        assert (call.provider, call.model) == ("openai", "gpt-4o-2024-08-06")
        assert (call.input_tokens, call.cached_input_tokens) == (1200, 1024)
        assert (call.output_tokens, call.reasoning_tokens) == (300, 128)
        assert call.cost_pico == 176 * GPT4O_IN + 1024 * GPT4O_CACHED + 300 * GPT4O_OUT
        assert call.section_path == "agent:support-bot"
        assert call.customer_id == "cust-42"
        assert call.source == "otlp:ai"
        assert "node-secret-prompt" not in json.dumps(call.metadata)
    assert not generated.stream and streamed.stream
    for call in events:
        assert RunSummary.objects.for_org(collector.org).get(run_id=call.run_id).calls == 1


def test_vercel_stream_time_to_first_chunk_is_stored(collector, provider, node_modules, wsgi_like_production):
    run_node_export(provider)
    [streamed] = [e for e in stored(collector.org) if e.stream]
    assert streamed.ttft_ms is not None and 0 < streamed.ttft_ms <= streamed.latency_ms  # ai.response.msToFirstChunk


def test_the_otlp_json_encoding_uses_hex_ids_and_integer_enums():
    """The test's OTLP/JSON encoder follows the spec (ids hex, not base64; enums as integers)."""
    tp = TracerProvider()
    memory = InMemorySpanExporter()
    tp.add_span_processor(SimpleSpanProcessor(memory))
    with tp.get_tracer("t").start_as_current_span("root", kind=SpanKind.CLIENT):
        pass
    tp.shutdown()
    [span] = memory.get_finished_spans()
    encoded = json.loads(otlp_json([span]))["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert encoded["traceId"] == hexid(span.context.trace_id, 32)
    assert encoded["spanId"] == hexid(span.context.span_id, 16)
    assert encoded["kind"] == 3  # SPAN_KIND_CLIENT


def test_node_openllmetry_openai_instrumentation(collector, provider, node_modules, wsgi_like_production):
    """OpenLLMetry JS (@traceloop/instrumentation-openai on the `openai` client) → proto exporter → priced calls."""
    from ingestion.models import RunSummary

    out = run_node_export(provider, "export-traceloop.mjs")
    assert out == {"created": "Hello, world!", "streamed": "Hello, world!"}

    events = stored(collector.org)
    assert len(events) == 2, [(e.source, e.span_id, e.input_tokens) for e in events]
    created, streamed = events
    # OpenLLMetry JS reports input and output only: no cached or reasoning tokens, so cached input is priced
    # as uncached (as with the official Python openai-v2 instrumentation).
    assert (created.provider, created.model) == ("openai", "gpt-4o-2024-08-06")
    assert (created.input_tokens, created.cached_input_tokens, created.output_tokens) == (1200, 0, 300)
    assert created.cost_pico == 1200 * GPT4O_IN + 300 * GPT4O_OUT
    assert created.section_path == "agent:billing-agent/tool:lookup"
    # On a streamed chat completion it records no usage and no stream flag (0.27.0), even with
    # include_usage: the call is kept, flagged usage_missing like an SDK call whose usage never came.
    assert (streamed.model, streamed.input_tokens, streamed.output_tokens) == ("gpt-4o-2024-08-06", 0, 0)
    assert streamed.metadata == {"usage_missing": True} and streamed.cost_pico == 0
    assert streamed.section_path == "agent:billing-agent"
    for call in events:
        assert call.source == "otlp:@traceloop/instrumentation-openai"
        assert "traceloop-js-secret-prompt" not in json.dumps(call.metadata)
    run = RunSummary.objects.for_org(collector.org).get(run_id=created.run_id)
    assert (run.calls, run.cost_pico) == (2, created.cost_pico)
