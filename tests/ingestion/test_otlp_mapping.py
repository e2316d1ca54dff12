"""The request-side mapping's shortcuts keep the wire format's rules (pure functions, no database).

`_firsts` resolves the alias table once per key set; it must pick what `_first` picks per field. `_call`
builds the call without the wire format's `_semantic_errors`/`_normalise`: whatever the attributes, the
call it accepts must pass those checks unchanged, and be what `_normalise` would have left.
"""

from __future__ import annotations

import copy
from datetime import datetime, timezone

from hypothesis import given, settings, strategies as st

from ingestion.otlp import ALIAS_FIELDS, KEPT_KEYS, OPERATION, RawSpan, _first, _firsts, span_record
from ingestion.schema import _normalise, _semantic_errors

NOW = datetime(2026, 3, 1, 0, 0, 0, 7, tzinfo=timezone.utc)  # an instant with microseconds
TRACE, SPAN = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"

values = st.one_of(
    st.none(), st.just(""), st.booleans(), st.integers(min_value=-2**70, max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=300),
    st.sampled_from(["openai", "anthropic", "aws.bedrock", "gpt-4o", "true", "12", " \x00\ud800x", "USD", "EUR"]),
)
attributes = st.dictionaries(st.sampled_from(sorted(KEPT_KEYS)), values, max_size=14)


@settings(max_examples=400, deadline=None)
@given(attributes)
def test_firsts_picks_what_first_picks_for_every_field(attrs):
    found = _firsts(attrs)
    for name, keys in ALIAS_FIELDS.items():
        assert found.get(name) is _first(attrs, keys), name  # the same value object (NaN included)


@settings(max_examples=400, deadline=None)
@given(attrs=attributes, start_s=st.integers(min_value=0, max_value=2**34), duration_ns=st.integers(-10**9, 10**12),
       status=st.sampled_from([0, 1, 2]))
def test_an_accepted_call_passes_the_wire_formats_checks_and_is_already_normalised(attrs, start_s, duration_ns,
                                                                                   status):
    attrs = {**attrs, OPERATION: "chat"}
    start = start_s * 10**9 + 123_456_789
    record, error = span_record(RawSpan(TRACE, SPAN, "", "opentelemetry.instrumentation.openai_v2", start,
                                        start + duration_ns, status, attrs), now=NOW)
    if record is None:
        assert error
        return
    call = record.call
    if call is None:  # not a call after all (a Vercel wrapper's ai.operationId, an OpenInference kind…)
        return
    assert call.event_id is None  # the worker sets the ids when it resolves the span
    assert _semantic_errors(call, NOW) == {}
    normalised = _normalise(copy.deepcopy(call), NOW)
    normalised.event_id = normalised.run_id = None
    assert normalised == call
