"""No body, however odd, gets a 500 from POST /v1/events (hypothesis)."""

import json

import pytest
from hypothesis import given, strategies as st

from ingestion.schema import EventIn

pytestmark = pytest.mark.django_db

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(
    max_size=40)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
    st.text(max_size=12), inner, max_size=4), max_leaves=20)

FIELD_NAMES = list(EventIn.__struct_fields__)
# Events built from the real field names with values of any JSON type: close to valid, often not.
near_events = st.dictionaries(st.sampled_from(FIELD_NAMES), json_values, max_size=len(FIELD_NAMES))


@given(body=st.lists(near_events, max_size=5) | json_values)
def test_any_json_body_gets_a_4xx_or_202(body, ingest_key, post_events):
    response = post_events(ingest_key, json.dumps(body))
    assert response.status_code in (202, 400, 413), response.content
    if response.status_code == 202:
        data = response.json()
        assert data["accepted"] + len(data["rejected"]) == len(body if isinstance(body, list) else body["events"])


@given(raw=st.binary(max_size=200))
def test_any_bytes_get_a_clear_answer(raw, ingest_key, post_events):
    response = post_events(ingest_key, raw)
    assert response.status_code in (202, 400, 413)
    assert response.json()


@given(raw=st.binary(max_size=100))
def test_broken_gzip_gets_400(raw, ingest_key, post_events):
    response = post_events(ingest_key, raw, **{"Content-Encoding": "gzip"})
    assert response.status_code in (202, 400, 413)


# Numbers JSON can write but no field can hold, and text PostgreSQL cannot store: spliced into the body as raw JSON.
RAW_NUMBERS = ["1e400", "-1e400", "1e-400", "1000000000000000000000000000000", "-" + "9" * 60, "9" * 5000,
               "18446744073709551616", "1000000001"]
hostile_text = st.text(st.characters(max_codepoint=0x3000), max_size=12).map(lambda s: s + "\x00") | st.sampled_from(
    ["\n", "\t", "\x1f", "\u2028", "\x7f", "../..", "50%"])
hostile_values = st.sampled_from(RAW_NUMBERS).map(lambda n: f"@@{n}@@") | hostile_text | json_values


@given(bad=st.dictionaries(st.sampled_from(FIELD_NAMES), hostile_values, min_size=1, max_size=4),
       position=st.integers(0, 2))
def test_one_hostile_event_never_costs_its_neighbours(bad, position, org, ingest_key, post_events):
    valid = [{"span_type": "api", "run_id": f"neighbour-{i}"} for i in range(2)]
    events = valid[:position] + [bad] + valid[position:]
    body = json.dumps({"events": events})
    body = body.replace('"@@', "").replace('@@"', "")  # the raw numbers, unquoted
    response = post_events(ingest_key, body)
    assert response.status_code == 202, response.content[:300]
    data = response.json()
    assert data["accepted"] >= 2
    assert data["accepted"] + len(data["rejected"]) == 3
    assert all(r["index"] == position for r in data["rejected"])
