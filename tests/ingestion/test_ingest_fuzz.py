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
