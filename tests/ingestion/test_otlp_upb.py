"""The compiled OTLP decoder (ingestion/_otlp_upb.c) reads every body exactly as the published Python classes do.

`ingestion.otlp` decodes protobuf exports with `_otlp_upb` when `make install` built it (CI requires it), else with
`_decode_protobuf_py`. Both must return the same `RawSpan`s for any export, and refuse the same bodies. The module's
mapping of the usual spans (`_otlp_upb.records`, used by `export_records`) must give exactly `span_record`'s records.
"""

from __future__ import annotations

import gzip
import os
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings, strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from ingestion import otlp

from .otlp_export import S, chat, new_trace_id, protobuf
from .test_otlp_ingest import post_otlp  # noqa: F401 - the fixture

needs_upb = pytest.mark.skipif(otlp.DECODER != "upb", reason="ingestion/_otlp_upb is not built (no C compiler at "
                                                               "`make install`): the Python decoder is in use")


def test_ci_builds_and_uses_the_compiled_decoder():
    if not os.environ.get("LLMOBSERVE_CI"):
        pytest.skip("outside CI the compiled decoder is optional")
    assert otlp.DECODER == "upb" and otlp._records_upb is not None


def python_reading(body: bytes) -> str:
    """The published classes' spans (repr: NaN equals NaN), or the refusal."""
    try:
        return repr(list(otlp._decode_protobuf_py(body)))
    except otlp.OtlpDecodeError:
        return "refused"


def upb_reading(body: bytes) -> str:
    try:
        spans = otlp._decode_protobuf(body)
    except otlp.OtlpDecodeError:
        return "refused"
    assert isinstance(spans, list) and all(type(span) is otlp.RawSpan for span in spans)
    return repr(spans)


KEYS = sorted(otlp.KEPT_KEYS)[:40] + ["gen_ai.prompt.0.content", "http.request.header.authorization", "", "é 键"]


def any_values(depth: int = 2):
    scalars = (st.builds(lambda: AnyValue())
               | st.text(max_size=12).map(lambda v: AnyValue(string_value=v))
               | st.booleans().map(lambda v: AnyValue(bool_value=v))
               | st.integers(-2**63, 2**63 - 1).map(lambda v: AnyValue(int_value=v))
               | st.floats().map(lambda v: AnyValue(double_value=v))
               | st.binary(max_size=8).map(lambda v: AnyValue(bytes_value=v)))
    if depth == 0:
        return scalars
    inner = any_values(depth - 1)

    def array(values):
        value = AnyValue()
        value.array_value.values.extend(values)
        return value

    def kvlist(pairs):
        value = AnyValue()
        value.kvlist_value.values.extend(KeyValue(key=k, value=v) for k, v in pairs)
        return value

    return scalars | st.lists(inner, max_size=3).map(array) | st.lists(st.tuples(st.text(max_size=5), inner),
                                                                         max_size=3).map(kvlist)


key_values = st.builds(lambda key, value, unset: KeyValue(key=key) if unset else KeyValue(key=key, value=value),
                       st.sampled_from(KEYS) | st.text(max_size=10), any_values(), st.booleans())


@st.composite
def spans(draw):
    span = Span(trace_id=draw(st.binary(max_size=17)), span_id=draw(st.binary(max_size=9)),
                parent_span_id=draw(st.binary(max_size=9)), name=draw(st.text(max_size=8)),
                start_time_unix_nano=draw(st.integers(0, 2**64 - 1)), end_time_unix_nano=draw(st.integers(0, 2**64 - 1)))
    span.attributes.extend(draw(st.lists(key_values, max_size=8)))
    if draw(st.booleans()):
        span.status.code = draw(st.integers(-2**31, 2**31 - 1))
    return span


@st.composite
def exports(draw):
    request = ExportTraceServiceRequest()
    for _ in range(draw(st.integers(0, 2))):
        resource_spans = request.resource_spans.add()
        for _ in range(draw(st.integers(0, 2))):
            scope_spans = resource_spans.scope_spans.add()
            if draw(st.booleans()):
                scope_spans.scope.name = draw(st.text(max_size=10))
            scope_spans.spans.extend(draw(st.lists(spans(), max_size=4)))
    return request.SerializeToString()


@needs_upb
@settings(max_examples=300)
@given(body=exports())
def test_any_export_reads_the_same(body):
    expected = python_reading(body)
    assert expected != "refused"
    assert upb_reading(body) == expected


@needs_upb
@settings(max_examples=300)
@given(body=exports(), cut=st.integers(0, 10_000), flips=st.lists(st.tuples(st.integers(0, 10_000),
                                                                          st.integers(0, 255)), max_size=3))
def test_a_damaged_export_is_read_or_refused_the_same(body, cut, flips):
    damaged = bytearray(body[:cut % (len(body) + 1)])
    for at, byte in flips:
        if damaged:
            damaged[at % len(damaged)] = byte
    assert upb_reading(bytes(damaged)) == python_reading(bytes(damaged))


@needs_upb
@given(raw=st.binary(max_size=200))
def test_any_bytes_are_read_or_refused_the_same(raw):
    assert upb_reading(raw) == python_reading(raw)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field, encoded by hand: the published classes refuse to build a value nested this deep."""
    size, length = len(payload), b""
    while True:
        byte, size = size & 0x7F, size >> 7
        length += bytes([byte | (0x80 if size else 0)])
        if not size:
            return bytes([number << 3 | 2]) + length + payload


@needs_upb
@pytest.mark.parametrize("depth", [10, 30, 95, 99, 100, 101, 200])
def test_deep_nesting_is_read_or_refused_the_same(depth):
    value = AnyValue(string_value="leaf").SerializeToString()
    for _ in range(depth):  # AnyValue.kvlist_value (6) → KeyValueList.values (1) → KeyValue.value (2)
        value = _field(6, _field(1, _field(1, b"k") + _field(2, value)))
    attribute = _field(1, b"gen_ai.operation.name") + _field(2, value)
    span = _field(1, b"\x01" * 16) + _field(2, b"\x02" * 8) + _field(9, attribute)
    body = _field(1, _field(2, _field(2, span)))  # resource_spans → scope_spans → spans
    assert upb_reading(body) == python_reading(body)


@needs_upb
def test_invalid_utf8_and_truncation_are_refused_by_both():
    good = protobuf([S("chat", new_trace_id(), start=datetime.now(timezone.utc), attrs={"gen_ai.operation.name": "chat"})])
    bad_text = good.replace(b"gen_ai.operation.name", b"gen_ai.operation.nam\xff")
    assert python_reading(bad_text) == upb_reading(bad_text) == "refused"
    truncated = b"\x0a\x05\x01"  # resource_spans (field 1) of 5 bytes, with 1 sent
    assert python_reading(truncated) == upb_reading(truncated) == "refused"
    wrong_type = b"\x08\x01"  # resource_spans sent as a varint: an unknown field to both, no span
    assert python_reading(wrong_type) == upb_reading(wrong_type) == "[]"


@needs_upb
def test_the_benchs_exports_and_the_test_exports_read_the_same():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
    from otlp import make_otlp_batches

    bodies, _ = make_otlp_batches(2100, 512, steps=4)
    trace = new_trace_id()
    bodies = [gzip.decompress(body) for body in bodies] + [
        protobuf([chat(trace, input_tokens=120, output_tokens=30, start=datetime.now(timezone.utc)),
                  S("tool", trace, start=datetime.now(timezone.utc), attrs={"gen_ai.tool.name": "x"})])]
    for body in bodies:
        spans = otlp._decode_protobuf(body)
        assert spans and repr(spans) == python_reading(body)


# --- the mapping's fast path (`_otlp_upb.records`) -------------------------------------------------------------

NOW = datetime(2026, 11, 30, 23, 40, tzinfo=timezone.utc)
FUTURE = timedelta(hours=2)
NOW_NS = int(NOW.timestamp()) * 10**9
COMMON_KEYS = ["gen_ai.operation.name", "gen_ai.provider.name", "gen_ai.system", "gen_ai.request.model",
               "gen_ai.response.model", "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens",
               "gen_ai.usage.cache_read.input_tokens", "gen_ai.usage.cache_creation.input_tokens",
               "gen_ai.usage.reasoning_tokens", "gen_ai.response.id", "gen_ai.agent.name", "gen_ai.tool.name",
               "enduser.id", "server.address", "gen_ai.request.stream"]
TEXTS = ["chat", "embeddings", "invoke_agent", "execute_tool", "create_agent", "retrieval", "text_completion",
         "openai", "anthropic", "aws.bedrock", "OpenAI", "gpt-4o", "claude-sonnet-4-20250514", "api.openai.com",
         "resp_1", "cust-7", "a/b", "", " chat", "chat ", "é", "x\x01y", "\ud7ff", "m" * 256, "m" * 257, "0"]
NUMBERS = [0, 1, 64, 3047, otlp.MAX_TOKENS, otlp.MAX_TOKENS + 1, -1, 200, 429]


def mapped_values():
    return (st.sampled_from(TEXTS).map(lambda v: AnyValue(string_value=v))
            | st.sampled_from(NUMBERS).map(lambda v: AnyValue(int_value=v))
            | st.booleans().map(lambda v: AnyValue(bool_value=v))
            | st.sampled_from([0.0, 1.5, float("nan")]).map(lambda v: AnyValue(double_value=v))
            | st.builds(lambda: AnyValue()))


@st.composite
def mapped_spans(draw):
    """Spans much like real ones (and their edges): valid ids mostly, times around NOW, the alias table's keys."""
    ids = draw(st.sampled_from(["valid", "valid", "valid", "zero_parent", "short", "zero_trace"]))
    trace_id = b"\x00" * 16 if ids == "zero_trace" else b"\x01" + draw(st.binary(min_size=15, max_size=15))
    span_id = b"\x02" * (7 if ids == "short" else 8)
    parent = draw(st.sampled_from([b"", b"\x03" * 8])) if ids != "zero_parent" else b"\x00" * 8
    start = draw(st.integers(NOW_NS - 10**15, NOW_NS + 3600 * 10**9) | st.sampled_from(
        [NOW_NS + 3600 * 10**9 + 1, 946_684_799 * 10**9, 946_684_800 * 10**9, 0, 2**63 - 1, 2**63 + 5]))
    duration = draw(st.integers(0, 10**10) | st.sampled_from([2**53, 2**53 - 1, 10**16 + 1, -5]))
    span = Span(trace_id=trace_id, span_id=span_id, parent_span_id=parent, name="s", start_time_unix_nano=start,
                end_time_unix_nano=max(0, min(2**64 - 1, start + duration)))
    # Mostly what instrumentations send (each usual key with a value of its usual kind, or none), then a few
    # attributes of any kept key with any value, which may repeat a key.
    usual = {"gen_ai.operation.name": st.sampled_from(["chat", "embeddings", "invoke_agent", "execute_tool",
                                                       "create_agent", "retrieval", "other", ""])}
    for key in COMMON_KEYS[1:]:
        if "usage" in key:
            usual[key] = st.sampled_from(NUMBERS[:5]) | st.sampled_from(NUMBERS)
        elif key == "gen_ai.request.stream":
            usual[key] = st.booleans()
        else:
            usual[key] = st.sampled_from(TEXTS[7:17]) | st.sampled_from(TEXTS)
    for key, values in usual.items():
        if draw(st.booleans()):
            value = draw(values)
            kind = {bool: "bool_value", int: "int_value", str: "string_value"}[type(value)]
            span.attributes.append(KeyValue(key=key, value=AnyValue(**{kind: value})))
    keys = st.sampled_from(sorted(otlp.KEPT_KEYS)) | st.just("gen_ai.prompt")
    if draw(st.booleans()):
        span.attributes.extend(KeyValue(key=k, value=v)
                               for k, v in draw(st.lists(st.tuples(keys, mapped_values()), max_size=2)))
    span.status.code = draw(st.sampled_from([0, 1, 2]))
    return span


@st.composite
def mapped_exports(draw):
    request = ExportTraceServiceRequest()
    for _ in range(draw(st.integers(1, 2))):
        scope_spans = request.resource_spans.add().scope_spans.add()
        scope_spans.scope.name = draw(st.sampled_from(["", "opentelemetry.instrumentation.anthropic", "anthropic",
                                                       "x\x02"]))
        scope_spans.spans.extend(draw(st.lists(mapped_spans(), min_size=1, max_size=4)))
    return request.SerializeToString()


def python_records(body: bytes, now: datetime = NOW) -> str:
    """`span_record` of the published classes' spans."""
    return repr([otlp.span_record(span, now=now) for span in otlp._decode_protobuf_py(body)])


@needs_upb
@settings(max_examples=1500)
@given(body=mapped_exports())
def test_the_fast_path_maps_any_export_as_span_record_does(body):
    assert repr(list(otlp.export_records(body, json_body=False, now=NOW))) == python_records(body)


@needs_upb
@settings(max_examples=200)
@given(body=exports())
def test_the_fast_path_maps_arbitrary_exports_as_span_record_does(body):
    assert repr(list(otlp.export_records(body, json_body=False, now=NOW))) == python_records(body)


def _mapped_in_c(body: bytes, now: datetime) -> list[bool]:
    return [type(item) is otlp.SpanIn for item in otlp._records_upb(body, now + otlp.FUTURE_TOLERANCE)]


@needs_upb
def test_the_usual_spans_are_mapped_in_c_and_the_rest_by_span_record():
    """The path is taken for what instrumentations usually send, and left for anything the slower rules decide."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
    from otlp import make_otlp_batches

    now = datetime.now(timezone.utc)
    for body in make_otlp_batches(2100, 512, steps=4)[0]:
        assert all(_mapped_in_c(gzip.decompress(body), now))
    trace = new_trace_id()
    usual = [chat(trace, input_tokens=120, output_tokens=30, start=now, **{"gen_ai.response.id": "r1"}),
             S("invoke_agent planner", trace, start=now, attrs={"gen_ai.operation.name": "invoke_agent",
                                                                "gen_ai.agent.name": "planner", "enduser.id": "c1"}),
             S("tool", trace, start=now, attrs={"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "x"})]
    failed = S("chat", trace, start=now, error=True, attrs={
        "gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": 3, "gen_ai.response.id": "r2"})
    no_usage = [S("chat", trace, start=now, error=error, attrs={"gen_ai.operation.name": "chat"})
                for error in (False, True)]
    usual += [failed, S("retrieval", trace, start=now, attrs={"gen_ai.operation.name": "retrieval",
                                                             "gen_ai.usage.input_tokens": 3}), *no_usage]
    assert _mapped_in_c(protobuf(usual), now) == [True] * len(usual)
    records = [record for record, _ in otlp.export_records(protobuf(usual), json_body=False, now=now)]
    assert [record.call is not None for record in records] == [True, False, False, True, False, True, True]
    assert (records[0].response_id, records[3].response_id, records[3].call.status) == ("r1", "", "error")
    # usage missing is flagged on a call that succeeded, not on one that failed
    assert [records[5].call.metadata, records[6].call.metadata] == [{"usage_missing": True}, {}]
    slower = [chat(trace, input_tokens=1, start=now, **{"error.type": "timeout"}),
              chat(trace, input_tokens=1, start=now, **{"gen_ai.usage.cost": 0.5}),
              chat(trace, input_tokens=1.0, start=now),
              chat(trace, model=" gpt-4o", start=now),
              S("path", trace, start=now, attrs={"llmobserve.section_path": "a/b"}),
              S("vercel", trace, start=now, attrs={"ai.operationId": "ai.generateText.doGenerate"}),
              chat(trace, start=now + FUTURE)]
    assert _mapped_in_c(protobuf(slower), now) == [False] * len(slower)
    body = protobuf(usual + slower)
    assert repr(list(otlp.export_records(body, json_body=False, now=now))) == python_records(body, now)


@needs_upb
@pytest.mark.django_db
def test_odd_labels_are_stored_the_same_through_the_endpoint_with_the_c_path_or_without(org, ingest_key, prices,
                                                                                       post_otlp, monkeypatch):
    from ingestion.models import TraceEvent

    start = datetime.now(timezone.utc)

    def export() -> bytes:
        trace = new_trace_id()
        agent = S("invoke_agent", trace, start=start, scope="app", attrs={
            "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "ré/search ✓", "enduser.id": "cust é"})
        tool = S("execute_tool", trace, parent=agent.span_id, start=start, scope="app", attrs={
            "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "t" * 300})
        calls = [chat(trace, parent=tool.span_id, input_tokens=10, output_tokens=5, start=start,
                      **{"gen_ai.response.id": f"r\x01{trace}", "gen_ai.usage.cache_read.input_tokens": 4}),
                 chat(trace, parent=agent.span_id, input_tokens=7, output_tokens=2, start=start, provider=" OpenAI ",
                      **{"enduser.id": "  padded  "}),
                 chat(trace, parent=agent.span_id, input_tokens=3, output_tokens=1, start=start, model="gpt-4o\u200b",
                      **{"gen_ai.request.stream": True, "gen_ai.usage.reasoning_tokens": 9}),
                 chat(trace, parent=tool.span_id, input_tokens=20, output_tokens=8, start=start,
                      **{"gen_ai.response.id": f"ok-{trace}", "gen_ai.request.stream": True})]
        return protobuf([*calls, tool, agent])

    def stored(run_id: str) -> list[tuple]:
        return sorted(TraceEvent.objects.for_org(org).filter(run_id=run_id).values_list(
            "section_path", "customer_id", "provider", "model", "input_tokens", "output_tokens", "cached_input_tokens",
            "reasoning_tokens", "stream", "status", "cost_pico", "timestamp"))

    body = export()
    assert _mapped_in_c(body, start) == [False, False, False, True, True, False]  # the plain call and the tool
    post_otlp(ingest_key, body)
    monkeypatch.setattr(otlp, "_records_upb", None)  # as without the module: span_record maps every span
    plain_body = export()
    post_otlp(ingest_key, plain_body)
    runs = [otlp.export_decode(b, json_body=False)[0].trace_id for b in (body, plain_body)]
    with_c, without = stored(runs[0]), stored(runs[1])
    assert len(with_c) == 4 and with_c == without
    assert {row[0] for row in with_c} == {"agent:ré_search ✓", "agent:ré_search ✓/tool:" + "t" * 251}
