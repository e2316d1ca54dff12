"""OTLP traces arrive out of order and in pieces: each call is counted once, with the path of its ancestors."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from io import StringIO

import pytest
import time_machine
from django.core.management import call_command
from django.db import connection

from ingestion import partitions
from ingestion.models import ROLLUP_GRAINS, OtlpSpan, OtlpTrace, RunFacet, RunSummary, TraceEvent
from ingestion.otlp_services import HierarchySpan
from ingestion.tasks import otlp_resolve

from .otlp_export import S, chat, new_trace_id, protobuf
from .test_otlp_ingest import post_otlp  # noqa: F401 - the fixture

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 12, 31, 23, 40, 0, tzinfo=timezone.utc)  # 23:40 UTC on the year's last day
NO_PARTITION_YET = partitions.month_add(partitions.month_start(datetime.now(timezone.utc)), 13) - timedelta(minutes=20)
FOLDED = [m for _, hourly, daily in ROLLUP_GRAINS.values() for m in (hourly, daily)] + [RunSummary, RunFacet]


def _snapshot() -> dict:
    return {model.__name__: sorted(tuple(row) for row in model.objects.unscoped().values_list(
        *[f.attname for f in model._meta.concrete_fields if f.attname != "id"])) for model in FOLDED}


def _assert_rollups_equal_rebuild():
    incremental = _snapshot()
    call_command("rebuild_rollups", stdout=StringIO())
    assert _snapshot() == incremental


def _hierarchy(org) -> dict[str, set[str]]:
    """trace id → the span ids its hierarchy record holds."""
    import msgspec

    return {trace: {h.span_id for h in msgspec.msgpack.decode(bytes(blob), type=list[HierarchySpan])}
            for trace, blob in OtlpTrace.objects.for_org(org).values_list("trace_id", "spans")}


def _agent_tree(trace, start):
    workflow = S("workflow", trace, start=start, ms=9000, scope="traceloop",
                 attrs={"gen_ai.workflow.name": "support"})
    agent = S("invoke_agent triage", trace, parent=workflow.span_id, start=start, ms=8000, scope="pydantic-ai",
              attrs={"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "triage"})
    http = S("POST /search", trace, parent=agent.span_id, start=start, ms=4000, scope="requests",
             attrs={"http.request.method": "POST"})
    tool = S("execute_tool lookup", trace, parent=http.span_id, start=start, ms=3000, scope="pydantic-ai",
             attrs={"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "lookup"})
    call = chat(trace, parent=tool.span_id, start=start + timedelta(seconds=1), input_tokens=100, output_tokens=20)
    return workflow, agent, http, tool, call


def test_children_exported_before_their_parents_are_resolved_once_the_root_arrives(org, ingest_key, prices,
                                                                                     post_otlp):
    trace = new_trace_id()
    with time_machine.travel(T0, tick=False):
        workflow, agent, http, tool, call = _agent_tree(trace, T0 - timedelta(seconds=30))
        second = chat(trace, parent=agent.span_id, start=T0 - timedelta(seconds=20), input_tokens=7, output_tokens=1)
        post_otlp(ingest_key, protobuf([call]))
        post_otlp(ingest_key, protobuf([tool, second]))
        assert not TraceEvent.objects.for_org(org).exists()  # waiting for the ancestors
        post_otlp(ingest_key, protobuf([http, agent]))
        assert not TraceEvent.objects.for_org(org).exists()
        post_otlp(ingest_key, protobuf([workflow]))

    events = {e.span_id: e for e in TraceEvent.objects.for_org(org)}
    assert events[call.span_id].section_path == "workflow:support/agent:triage/tool:lookup"
    assert events[second.span_id].section_path == "workflow:support/agent:triage"
    assert RunSummary.objects.for_org(org).get().calls == 2
    assert set(OtlpSpan.objects.for_org(org).exclude(outcome="").values_list("span_id", flat=True)) == {
        call.span_id, second.span_id}
    _assert_rollups_equal_rebuild()


def test_after_the_wait_the_path_is_built_from_what_has_arrived(org, ingest_key, prices, post_otlp, settings):
    trace = new_trace_id()
    with time_machine.travel(T0, tick=False) as clock:
        workflow, agent, http, tool, call = _agent_tree(trace, T0 - timedelta(seconds=5))
        post_otlp(ingest_key, protobuf([call, tool, http]))  # the agent and the workflow never arrive
        clock.shift(timedelta(seconds=29))
        otlp_resolve.delay()
        assert not TraceEvent.objects.for_org(org).exists()
        clock.shift(timedelta(seconds=2))
        otlp_resolve.delay()
        [event] = TraceEvent.objects.for_org(org)
        assert event.section_path == "tool:lookup"
        # The late root changes nothing: the call was counted, once.
        post_otlp(ingest_key, protobuf([agent, workflow]))
        otlp_resolve.delay()
    assert TraceEvent.objects.for_org(org).count() == 1
    assert RunSummary.objects.for_org(org).get().calls == 1
    _assert_rollups_equal_rebuild()


def test_without_beat_the_next_export_of_the_org_emits_the_calls_that_waited(org, ingest_key, post_otlp):
    """`make demo` runs no beat: an org's later export resolves its overdue calls too."""
    with time_machine.travel(T0, tick=False) as clock:
        orphan = chat(new_trace_id(), parent="00000000000000aa", start=T0, input_tokens=3)
        post_otlp(ingest_key, protobuf([orphan]))
        clock.shift(timedelta(seconds=31))
        post_otlp(ingest_key, protobuf([chat(new_trace_id(), start=T0, input_tokens=4)]))
    assert TraceEvent.objects.for_org(org).count() == 2


def test_the_wait_is_a_setting(org, ingest_key, post_otlp, settings):
    settings.LLMOBSERVE_OTLP_RESOLVE_WAIT = 300
    trace = new_trace_id()
    with time_machine.travel(T0, tick=False) as clock:
        orphan = chat(trace, parent="00000000000000aa", start=T0, input_tokens=3)
        post_otlp(ingest_key, protobuf([orphan]))
        clock.shift(timedelta(seconds=200))
        otlp_resolve.delay()
        assert not TraceEvent.objects.for_org(org).exists()
        clock.shift(timedelta(seconds=101))
        otlp_resolve.delay()
    assert TraceEvent.objects.for_org(org).get().section_path == ""


def test_a_re_sent_export_is_counted_once(org, ingest_key, prices, post_otlp):
    trace = new_trace_id()
    spans = list(_agent_tree(trace, datetime.now(timezone.utc) - timedelta(minutes=1)))
    body = protobuf(spans)
    for _ in range(3):
        assert post_otlp(ingest_key, body).status_code == 200
    # Even after the spans were pruned (a day later), a re-sent export is not counted again.
    with time_machine.travel(datetime.now(timezone.utc) + timedelta(days=2), tick=False) as clock:
        otlp_resolve.delay()
        assert not OtlpSpan.objects.for_org(org).exists()
        assert not OtlpTrace.objects.for_org(org).exists()
        post_otlp(ingest_key, body)
        clock.shift(timedelta(seconds=31))
        otlp_resolve.delay()
    assert TraceEvent.objects.for_org(org).count() == 1
    assert RunSummary.objects.for_org(org).get().calls == 1
    _assert_rollups_equal_rebuild()


# The second: what an array literal must quote (PostgreSQL reads the ids as one text[] literal).
@pytest.mark.parametrize("response", ["msg_01", 'msg_"01"\\{a,b} NULL é'])
def test_two_spans_with_one_response_id_count_once_preferring_the_provider_sdks_own(org, ingest_key, prices,
                                                                                   post_otlp, response):
    """The anthropic SDK traces itself and Traceloop adds its own span for the same response: siblings here,
    and across two separate root traces."""
    start = datetime.now(timezone.utc) - timedelta(minutes=1)
    trace = new_trace_id()
    parent = S("handler", trace, start=start, scope="app", attrs={})
    common = {"gen_ai.response.id": response, "gen_ai.request.model": "claude-sonnet-4-5"}
    sdk = chat(trace, parent=parent.span_id, provider="anthropic", model="claude-sonnet-4-5", input_tokens=1000,
               output_tokens=50, start=start, **common, **{"gen_ai.usage.cache_write.input_tokens": 400})
    sdk.scope = "anthropic"
    traceloop = chat(trace, parent=parent.span_id, provider="anthropic", model="claude-sonnet-4-5",
                     input_tokens=1000, output_tokens=51, start=start, **common,
                     **{"gen_ai.usage.cache_creation.input_tokens": 400})
    traceloop.scope = "opentelemetry.instrumentation.anthropic"
    post_otlp(ingest_key, protobuf([traceloop, sdk, parent]))

    [event] = TraceEvent.objects.for_org(org)
    assert (event.span_id, event.output_tokens, event.cache_write_tokens) == (sdk.span_id, 50, 400)
    assert event.source == "otlp:anthropic"
    # 600 × $3 + 400 × $3.75 + 50 × $15 per 1M
    assert event.cost_pico == 600 * 3_000_000 + 400 * 3_750_000 + 50 * 15_000_000

    # Two root traces, one per instrumentation, in separate requests: still one call.
    other = {"gen_ai.response.id": response + "2"}
    a = chat(new_trace_id(), provider="anthropic", model="claude-sonnet-4-5", input_tokens=10, start=start, **other)
    a.scope = "opentelemetry.instrumentation.anthropic"
    b = chat(new_trace_id(), provider="anthropic", model="claude-sonnet-4-5", input_tokens=10, start=start, **other)
    b.scope = "anthropic"
    post_otlp(ingest_key, protobuf([a]))
    post_otlp(ingest_key, protobuf([b]))
    assert TraceEvent.objects.for_org(org).count() == 2
    _assert_rollups_equal_rebuild()


def test_a_lesser_span_of_a_response_waits_for_the_providers_own_still_waiting_for_its_parent(org, ingest_key,
                                                                                                 prices, post_otlp):
    """The anthropic SDK's span arrives first but waits for its parent; Traceloop's span of the same response
    then arrives complete, alone in its group: it is not counted, and the SDK's is once its parent comes."""
    start = datetime.now(timezone.utc) - timedelta(minutes=1)
    trace = new_trace_id()
    parent = S("handler", trace, start=start, scope="app", attrs={})
    response = {"gen_ai.response.id": "msg_waits"}
    sdk = chat(trace, parent=parent.span_id, provider="anthropic", model="claude-sonnet-4-5", input_tokens=1000,
               output_tokens=50, start=start, **response)
    sdk.scope = "anthropic"
    traceloop = chat(new_trace_id(), provider="anthropic", model="claude-sonnet-4-5", input_tokens=1000,
                     output_tokens=51, start=start, **response)
    traceloop.scope = "opentelemetry.instrumentation.anthropic"
    post_otlp(ingest_key, protobuf([sdk]))
    post_otlp(ingest_key, protobuf([traceloop]))
    assert not TraceEvent.objects.for_org(org).exists()

    post_otlp(ingest_key, protobuf([parent]))
    [event] = TraceEvent.objects.for_org(org)
    assert (event.span_id, event.output_tokens, event.source) == (sdk.span_id, 50, "otlp:anthropic")
    _assert_rollups_equal_rebuild()


def test_error_spans_have_no_response_id_and_each_counts(org, ingest_key, post_otlp):
    start = datetime.now(timezone.utc)
    trace = new_trace_id()
    e1 = chat(trace, start=start, **{"error.type": "RateLimitError", "http.response.status_code": 429})
    e2 = chat(trace, start=start, **{"error.type": "APITimeoutError"})
    e3 = chat(trace, start=start)
    e3.error = True
    post_otlp(ingest_key, protobuf([e1, e2, e3]))
    statuses = {e.span_id: (e.status, e.http_status) for e in TraceEvent.objects.for_org(org)}
    assert statuses == {e1.span_id: ("rate_limited", 429), e2.span_id: ("timeout", None),
                        e3.span_id: ("error", None)}
    assert RunSummary.objects.for_org(org).get().errors == 3


def test_vercel_outer_wrapper_and_aggregates_are_not_counted(org, ingest_key, prices, post_otlp):
    start = datetime.now(timezone.utc) - timedelta(minutes=1)
    trace = new_trace_id()
    usage = {"ai.usage.inputTokens": 1000, "ai.usage.outputTokens": 100, "ai.telemetry.functionId": "summarise",
             "ai.telemetry.metadata.userId": "user-9"}
    outer = S("ai.streamText", trace, start=start, scope="ai",
              attrs={"ai.operationId": "ai.streamText", "ai.model.id": "gpt-4o", "ai.model.provider": "openai.chat",
                     **usage})
    inner = S("ai.streamText.doStream", trace, parent=outer.span_id, start=start, scope="ai",
              attrs={"ai.operationId": "ai.streamText.doStream", "ai.model.id": "gpt-4o",
                     "ai.model.provider": "openai.chat", "gen_ai.system": "openai.chat",
                     "gen_ai.request.model": "gpt-4o", "gen_ai.response.model": "gpt-4o-2024-08-06",
                     "gen_ai.usage.input_tokens": 1000, "gen_ai.usage.output_tokens": 100,
                     "ai.usage.inputTokenDetails.cacheReadTokens": 400, **usage,
                     "ai.request.headers.authorization": "Bearer sk-secret"})
    post_otlp(ingest_key, protobuf([inner, outer]))

    [event] = TraceEvent.objects.for_org(org)
    assert event.span_id == inner.span_id
    assert (event.provider, event.model, event.stream) == ("openai", "gpt-4o-2024-08-06", True)
    assert (event.input_tokens, event.cached_input_tokens, event.output_tokens) == (1000, 400, 100)
    assert event.section_path == "agent:summarise"
    assert event.customer_id == "user-9"


def test_innermost_usage_bearing_span_wins(org, ingest_key, prices, post_otlp):
    """A framework's chat span wrapping the provider instrumentation's chat span: the inner one counts."""
    start = datetime.now(timezone.utc) - timedelta(minutes=1)
    trace = new_trace_id()
    outer = chat(trace, start=start, input_tokens=500, output_tokens=5)
    outer.scope = "langchain"
    inner = chat(trace, parent=outer.span_id, start=start, input_tokens=500, output_tokens=5)
    post_otlp(ingest_key, protobuf([inner]))
    post_otlp(ingest_key, protobuf([outer]))
    [event] = TraceEvent.objects.for_org(org)
    assert event.span_id == inner.span_id
    # The outer span resolved on arrival (nothing below it is pending): it is not kept, and a re-sent
    # export of it still finds the inner call it is superseded by.
    assert not OtlpSpan.objects.for_org(org).filter(span_id=outer.span_id).exists()
    post_otlp(ingest_key, protobuf([outer]))
    assert TraceEvent.objects.for_org(org).get().span_id == inner.span_id
    _assert_rollups_equal_rebuild()


def test_calls_resolved_on_arrival_are_not_kept_but_the_hierarchy_is(org, ingest_key, prices, post_otlp):
    """A trace resolved within one export keeps its non-call spans (a later child may hang below them) in one
    hierarchy record and no call row; a parent that arrives before its children still gives them their full
    path, and the record of a trace that arrives in pieces holds every piece."""
    with time_machine.travel(T0, tick=False):
        whole = _agent_tree(new_trace_id(), T0 - timedelta(seconds=30))
        post_otlp(ingest_key, protobuf(list(whole)))
        assert TraceEvent.objects.for_org(org).count() == 1
        assert not OtlpSpan.objects.for_org(org).exists()
        assert _hierarchy(org) == {whole[0].trace_id: {span.span_id for span in whole[:4]}}

        trace = new_trace_id()
        workflow, agent, http, tool, call = _agent_tree(trace, T0 - timedelta(seconds=20))
        post_otlp(ingest_key, protobuf([agent, workflow]))  # the parents first (concurrent exports)
        post_otlp(ingest_key, protobuf([call, tool, http]))
        late = chat(trace, parent=agent.span_id, start=T0 - timedelta(seconds=10), input_tokens=7)
        post_otlp(ingest_key, protobuf([late]))

    events = {e.span_id: e.section_path for e in TraceEvent.objects.for_org(org)}
    assert events[call.span_id] == "workflow:support/agent:triage/tool:lookup"
    assert events[late.span_id] == "workflow:support/agent:triage"
    assert len(events) == 3
    assert not OtlpSpan.objects.for_org(org).filter(is_call=True).exists()
    assert _hierarchy(org)[trace] == {workflow.span_id, agent.span_id, http.span_id, tool.span_id}
    _assert_rollups_equal_rebuild()


def test_an_orgs_spans_go_with_it_without_a_database_foreign_key(org, other_org, ingest_key, prices, post_otlp):
    """OtlpSpan.org and OtlpTrace.org have no database constraint (migrations 0018, 0022): deleting an org still
    removes its spans and hierarchy records."""
    from accounts.models import Organization

    with time_machine.travel(T0, tick=False):
        tree = _agent_tree(new_trace_id(), T0 - timedelta(seconds=30))
        post_otlp(ingest_key, protobuf([tree[-1], *tree[1:4]]))  # the call waits for its root
    OtlpSpan.objects.create(org=other_org, trace_id=new_trace_id(), span_id="0" * 16)
    OtlpTrace.objects.create(org=other_org, trace_id=new_trace_id(), spans=b"\x90")
    assert OtlpSpan.objects.for_org(org).count() == 1
    assert OtlpTrace.objects.for_org(org).count() == 1
    Organization.objects.get(pk=org.pk).delete()
    assert not OtlpSpan.objects.unscoped().filter(org_id=org.pk).exists()
    assert not OtlpTrace.objects.unscoped().filter(org_id=org.pk).exists()
    assert OtlpSpan.objects.for_org(other_org).count() == OtlpTrace.objects.for_org(other_org).count() == 1


def test_a_child_call_arriving_after_its_parent_call_was_counted_is_not_counted_again(org, ingest_key, prices,
                                                                                     post_otlp):
    """The parent call resolved on arrival and was not kept: its late child waits, then finds the parent
    among the stored events and is superseded (the known limit: the outer span's numbers, counted once)."""
    with time_machine.travel(T0, tick=False) as clock:
        trace = new_trace_id()
        outer = chat(trace, start=T0 - timedelta(seconds=5), input_tokens=500, output_tokens=5)
        inner = chat(trace, parent=outer.span_id, start=T0 - timedelta(seconds=5), input_tokens=500,
                     output_tokens=5)
        lone = chat(new_trace_id(), parent="00000000000000aa", start=T0, input_tokens=3)
        post_otlp(ingest_key, protobuf([outer]))
        post_otlp(ingest_key, protobuf([inner, lone]))
        clock.shift(timedelta(seconds=31))
        otlp_resolve.delay()
    assert set(TraceEvent.objects.for_org(org).values_list("span_id", flat=True)) == {outer.span_id, lone.span_id}
    assert OtlpSpan.objects.for_org(org).get(span_id=inner.span_id).outcome == "superseded"
    assert RunSummary.objects.for_org(org).filter(run_id=trace).get().calls == 1
    _assert_rollups_equal_rebuild()


def test_explicit_section_path_and_customer_attributes_win(org, ingest_key, post_otlp):
    start = datetime.now(timezone.utc)
    trace = new_trace_id()
    root = S("request", trace, start=start, scope="app",
             attrs={"llmobserve.section_path": "agent:billing/step:refund", "llmobserve.customer_id": "acme"})
    agent = S("invoke_agent x", trace, parent=root.span_id, start=start, scope="pydantic-ai",
              attrs={"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "writer\nbot"})
    call = chat(trace, parent=agent.span_id, start=start, input_tokens=1)
    post_otlp(ingest_key, protobuf([call, agent, root]))
    [event] = TraceEvent.objects.for_org(org)
    assert event.section_path == "agent:billing/step:refund/agent:writer bot"
    assert event.customer_id == "acme"


@pytest.mark.parametrize("first", ["sdk", "traceloop"])
@pytest.mark.parametrize("start,now", [
    (T0 - timedelta(minutes=1), T0),
    # 2 ms before the new year, the other span 1 ms after it: two monthly partitions (and two years)
    (datetime(2027, 1, 1, tzinfo=timezone.utc) - timedelta(milliseconds=2), T0 + timedelta(minutes=30)),
    # 23:40 on the last day of a month a year from today, which has no partition of its own (the migration and beat
    # create them up to AHEAD_MONTHS ahead): the events wait in the default partition
    (NO_PARTITION_YET, NO_PARTITION_YET + timedelta(minutes=10)),
], ids=["same-minute", "across-the-year-end", "in-the-default-partition"])
def test_spans_of_one_response_that_start_apart_still_count_once(org, ingest_key, prices, post_otlp, first, start,
                                                                 now):
    """The events key holds the timestamp (monthly partitions): two spans of one response starting 3 ms apart,
    in separate exports, still make one call — the later one takes the timestamp its event was stored with,
    also when the two fall in different months, or in a month whose partition does not exist yet."""
    with time_machine.travel(now, tick=False):
        attrs = {"gen_ai.response.id": "msg_apart"}
        sdk = chat(new_trace_id(), provider="anthropic", model="claude-sonnet-4-5", input_tokens=10,
                   start=start + timedelta(milliseconds=3), **attrs)
        sdk.scope = "anthropic"
        traceloop = chat(new_trace_id(), provider="anthropic", model="claude-sonnet-4-5", input_tokens=10,
                         start=start, **attrs)
        traceloop.scope = "opentelemetry.instrumentation.anthropic"
        spans = [sdk, traceloop] if first == "sdk" else [traceloop, sdk]
        post_otlp(ingest_key, protobuf([spans[0]]))
        post_otlp(ingest_key, protobuf([spans[1]]))
        post_otlp(ingest_key, protobuf([spans[1]]))  # and re-sent
        [event] = TraceEvent.objects.for_org(org)
        assert event.timestamp == (start + timedelta(milliseconds=3) if first == "sdk" else start)
        assert RunSummary.objects.for_org(org).get().calls == 1
        if start == NO_PARTITION_YET and partitions.is_partitioned():
            with connection.cursor() as cursor:
                cursor.execute(f"SELECT tableoid::regclass::text FROM {partitions.TABLE} WHERE id = %s", [event.pk])
                assert cursor.fetchone()[0] == partitions.DEFAULT_PARTITION
        _assert_rollups_equal_rebuild()


def _triage_agent(trace, now):
    """The root span of an agent run that started 10 s before `now`."""
    return S("invoke_agent triage", trace, start=now - timedelta(seconds=10), ms=8000, scope="pydantic-ai",
             attrs={"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "triage"})


def _stored_batch(org, spans, now, encode=None):
    """The OTLP batch a request would store for these spans (received `now`), not processed yet; `encode` the
    payload's encoder (default: the request's)."""
    from ingestion.models import RawBatch
    from ingestion.otlp import export_decode, span_record, spans_encode

    records = [span_record(span, now=now)[0] for span in export_decode(protobuf(spans), json_body=False)]
    return RawBatch.objects.create(org=org, kind=RawBatch.Kind.OTLP, payload=(encode or spans_encode)(records),
                                   event_count=len(records), received_at=now)


def test_a_batch_stored_as_json_before_payloads_were_messagepack_is_still_processed(org, prices):
    """Span records are stored in MessagePack; a batch a request stored as JSON (before the change, and pending
    through an upgrade) is decoded as such and its calls are counted like any other's."""
    import msgspec

    from ingestion.models import RawBatch
    from ingestion.services import batch_process

    trace = new_trace_id()
    now = datetime.now(timezone.utc)
    root = _triage_agent(trace, now)
    call = chat(trace, parent=root.span_id, start=now - timedelta(seconds=9), input_tokens=1200, output_tokens=80)
    legacy = _stored_batch(org, [call, root], now, encode=msgspec.json.encode)
    current = _stored_batch(org, [chat(new_trace_id(), start=now - timedelta(seconds=5), input_tokens=7,
                                       output_tokens=3)], now)
    assert bytes(legacy.payload)[:1] == b"[" and bytes(current.payload)[:1] != b"["
    batch_process(batch_id=legacy.pk, now=now)
    batch_process(batch_id=current.pk, now=now)  # in the legacy batch's group on PostgreSQL: then a no-op
    events = sorted(TraceEvent.objects.for_org(org).values_list("section_path", "input_tokens", "output_tokens",
                                                                "cost_pico"), key=lambda row: row[1])
    assert [row[:3] for row in events] == [("", 7, 3), ("agent:triage", 1200, 80)]
    assert all(row[3] for row in events)  # priced
    assert not RawBatch.objects.for_org(org).filter(kind="otlp", processed_at__isnull=True).exists()
    _assert_rollups_equal_rebuild()


@pytest.mark.django_db(transaction=True)
def test_one_orgs_span_groups_are_resolved_one_at_a_time(org, prices):
    """Two groups resolved side by side could not see each other's spans: a call in one whose parent is in the
    other would wait out the bounded wait. A group waits for the org's group in flight (PostgreSQL), then
    sees what it stored."""
    import threading

    import psycopg

    from ingestion.otlp_services import OTLP_LOCK_NAMESPACE
    from ingestion.services import batch_process

    if connection.vendor != "postgresql":
        pytest.skip("workers process groups side by side on PostgreSQL only")
    trace = new_trace_id()
    now = datetime.now(timezone.utc)
    root = _triage_agent(trace, now)
    call = chat(trace, parent=root.span_id, start=now - timedelta(seconds=9), input_tokens=100, output_tokens=20)

    def stored(spans):
        return _stored_batch(org, spans, now)

    db = connection.settings_dict
    other = psycopg.connect(host=db["HOST"], port=db["PORT"] or 5432, user=db["USER"], dbname=db["NAME"])
    done = threading.Event()

    def process(batch):
        try:
            batch_process(batch_id=batch.pk)
        finally:
            connection.close()
            done.set()

    try:
        other.execute("SELECT pg_advisory_xact_lock(%s, %s)", [OTLP_LOCK_NAMESPACE, org.pk])  # a group in flight
        thread = threading.Thread(target=process, args=(stored([call]),))
        thread.start()
        assert not done.wait(1.0)  # waits for the group in flight
        other.commit()
        assert done.wait(30)
        thread.join()
    finally:
        other.close()
    batch_process(batch_id=stored([root]).pk)
    assert list(TraceEvent.objects.for_org(org).values_list("section_path", flat=True)) == ["agent:triage"]


def test_the_fold_of_an_otlp_group_is_its_own_batch_and_a_rebuild_meanwhile_counts_each_call_once(
        org, prices, monkeypatch):
    """PostgreSQL: a group's events are stored with a fold batch, folded after the org's resolution lock is
    released. If that fold fails (here: the database drops the connection), the events wait uncounted; a
    rebuild in between leaves them to their fold batch, which the sweeper folds exactly once."""
    import psycopg

    from ingestion import rollups
    from ingestion.models import HourlyRollup, RawBatch
    from ingestion.services import batch_process, batches_sweep

    if connection.vendor != "postgresql":
        pytest.skip("SQLite folds inline: there is no resolution lock to release")
    trace = new_trace_id()
    now = datetime.now(timezone.utc)
    root = _triage_agent(trace, now)
    calls = [chat(trace, parent=root.span_id, start=now - timedelta(seconds=9 - i), input_tokens=100 + i,
                  output_tokens=20) for i in range(3)]
    batch = _stored_batch(org, [*calls, root], now)

    def connection_lost(**kwargs):
        raise psycopg.OperationalError("server closed the connection unexpectedly")

    with monkeypatch.context() as patch:
        patch.setattr(rollups, "fold_stored", connection_lost)
        with pytest.raises(psycopg.OperationalError):
            batch_process(batch_id=batch.pk, now=now)
    assert TraceEvent.objects.for_org(org).count() == 3
    fold = RawBatch.objects.for_org(org).get(kind="fold")
    assert (fold.event_count, fold.processed_at) == (3, None)
    assert not HourlyRollup.objects.for_org(org).exists()

    call_command("rebuild_rollups", stdout=StringIO())
    assert not HourlyRollup.objects.for_org(org).exists()
    assert not RunSummary.objects.for_org(org).exists()

    assert batches_sweep(now=now + timedelta(minutes=1)) == 0  # no new events: they were stored before
    assert RawBatch.objects.for_org(org).get(kind="fold").processed_at is not None
    assert sum(HourlyRollup.objects.for_org(org).values_list("calls", flat=True)) == 3
    assert RunSummary.objects.for_org(org).get(run_id=trace).calls == 3
    _assert_rollups_equal_rebuild()


def test_a_non_call_span_stored_as_a_row_before_hierarchy_records_still_gives_its_label(org, ingest_key, prices,
                                                                                           post_otlp):
    """Spans stored before migration 0022 kept the hierarchy as rows: until pruned they are still ancestors."""
    with time_machine.travel(T0, tick=False):
        workflow, agent, http, tool, call = _agent_tree(new_trace_id(), T0 - timedelta(seconds=30))
        OtlpSpan.objects.create(org=org, trace_id=agent.trace_id, span_id=agent.span_id, label="agent:triage",
                                parent_span_id="")
        post_otlp(ingest_key, protobuf([call, tool, http]))
    assert TraceEvent.objects.for_org(org).get().section_path == "agent:triage/tool:lookup"
    assert _hierarchy(org) == {agent.trace_id: {tool.span_id, http.span_id}}
