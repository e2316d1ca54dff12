"""Issue 12: what the database cannot store is refused per event, in `rejected`, and never costs the valid
events next to it; bodies that cannot be read at all get a clear 400, never a 500."""

import json

import pytest

from ingestion.models import TraceEvent
from ingestion.schema import LABEL_FIELDS, MAX_TOKENS, METADATA_MAX_DEPTH

pytestmark = pytest.mark.django_db

VALID = {"event_id": "valid-1", "provider": "openai", "model": "gpt-4o", "input_tokens": 10, "output_tokens": 2}


def ev(**fields):
    return {"provider": "openai", "model": "gpt-4o", "input_tokens": 10, "output_tokens": 2, **fields}


def stored_ids(org):
    return sorted(TraceEvent.objects.for_org(org).values_list("event_id", flat=True))


@pytest.mark.parametrize("field", LABEL_FIELDS)
@pytest.mark.parametrize("char", ["\x00", "\n", "\r", "\t", "\x1b", "\x1f"])
def test_a_control_character_in_any_label_rejects_that_event_only(field, char, org, ingest_key, post_events):
    bad = ev(**{"event_id": "bad-1", field: f"a{char}b"})
    response = post_events(ingest_key, [bad, VALID])
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["accepted"] == 1
    [rejection] = body["rejected"]
    assert rejection["index"] == 0
    assert f"U+{ord(char):04X}" in rejection["errors"][field]
    assert stored_ids(org) == ["valid-1"]


def test_a_lone_surrogate_is_rejected_per_event_not_per_batch(org, ingest_key, post_events):
    body = ('[{"event_id": "bad", "provider": "openai", "model": "gpt-4o", "customer_id": "\\ud800"}, '
            + json.dumps(VALID) + "]")
    response = post_events(ingest_key, body)
    assert response.status_code == 202, response.content
    assert response.json()["rejected"][0]["errors"] == {
        "customer_id": "contains a lone surrogate (U+D800) at position 0: not valid Unicode"}
    assert stored_ids(org) == ["valid-1"]


@pytest.mark.parametrize("metadata, error", [
    ({"note": "a\x00b"}, "strings may not contain U+0000 or lone surrogates"),
    ({"a\x00": 1}, "keys may not contain U+0000 or lone surrogates"),
    ({"deep": [[{"x": "\x00"}]]}, "strings may not contain U+0000 or lone surrogates"),
])
def test_metadata_nul_is_rejected_per_event(metadata, error, org, ingest_key, post_events):
    response = post_events(ingest_key, [ev(event_id="bad", metadata=metadata), VALID])
    assert response.json()["rejected"] == [{"index": 0, "errors": {"metadata": error}}]
    assert stored_ids(org) == ["valid-1"]


def test_metadata_strings_may_hold_newlines_and_tabs(org, ingest_key, post_events):
    response = post_events(ingest_key, [ev(event_id="ok", metadata={"prompt_name": "line 1\nline 2\tend"})])
    assert response.json()["accepted"] == 1
    assert TraceEvent.objects.for_org(org).get().metadata == {"prompt_name": "line 1\nline 2\tend"}


def test_metadata_nested_too_deep_is_rejected_per_event(org, ingest_key, post_events):
    deep: object = "leaf"
    for _ in range(METADATA_MAX_DEPTH + 5):
        deep = {"k": deep}
    response = post_events(ingest_key, [ev(event_id="bad", metadata=deep), VALID])
    assert response.json()["rejected"] == [
        {"index": 0, "errors": {"metadata": f"nested deeper than {METADATA_MAX_DEPTH} levels"}}]
    assert stored_ids(org) == ["valid-1"]


def test_token_counts_are_capped_per_field(org, ingest_key, post_events, prices):
    assert MAX_TOKENS == 1_000_000_000
    response = post_events(ingest_key, [
        # Every field at the maximum, in the conventions that add subsets on top (Anthropic's input without
        # its cache reads/writes, reasoning outside output): the largest cost one event can carry.
        ev(event_id="max", input_tokens=MAX_TOKENS, cached_input_tokens=MAX_TOKENS, cache_write_tokens=MAX_TOKENS,
           output_tokens=MAX_TOKENS, reasoning_tokens=MAX_TOKENS),
        ev(event_id="over", output_tokens=MAX_TOKENS + 1),
        ev(event_id="far-over", input_tokens=2**60),
    ])
    body = response.json()
    assert body["accepted"] == 1
    assert body["rejected"] == [{"index": 1, "errors": {"output_tokens": "must be an integer from 0 to 1000000000"}},
                                {"index": 2, "errors": {"input_tokens": "must be an integer from 0 to 1000000000"}}]
    event = TraceEvent.objects.for_org(org).get()
    # gpt-4o: $2.50 in, $1.25 cached, cache write at the input price, $10 out per 1M.
    assert (event.input_tokens, event.output_tokens) == (3 * MAX_TOKENS, MAX_TOKENS)
    assert event.cost_pico == MAX_TOKENS * (2_500_000 + 1_250_000 + 2_500_000 + 10_000_000)


@pytest.mark.parametrize("number", ["1e400", "-1e400", "1000000000000000000000000000000", "9" * 5000, "-" + "9" * 50])
@pytest.mark.parametrize("field", ["input_tokens", "latency_ms", "http_status", "cost_usd", "metadata"])
def test_one_out_of_range_number_rejects_only_its_event(number, field, org, ingest_key, post_events):
    value = '{"n": %s}' % number if field == "metadata" else number
    bad = '{"event_id": "bad", "span_type": "api", "%s": %s}' % (field, value)
    body = '{"events": [%s, %s, %s]}' % (json.dumps(VALID), bad, json.dumps({**VALID, "event_id": "valid-2"}))
    response = post_events(ingest_key, body)
    assert response.status_code == 202, response.content
    data = response.json()
    assert data["accepted"] == 2
    assert [r["index"] for r in data["rejected"]] == [1]
    assert list(data["rejected"][0]["errors"]) == [field]
    assert stored_ids(org) == ["valid-1", "valid-2"]


@pytest.mark.parametrize("body, message", [
    (b"[" * 100_000 + b"]" * 100_000, "JSON is nested too deeply"),
    (b'[{"provider": "openai", "model": "gpt-4o", "metadata": ' + b"[" * 5000 + b"]" * 5000 + b"}]",
     "JSON is nested too deeply"),
    (b'[{"provider": "openai", "model": "gpt-4o", "run_id": "\xff\xfe"}]', "Body is not valid UTF-8"),
    (b'[{"provider": "openai", "model": "gpt-4o", "latency_ms": NaN}]', "Body is not valid JSON"),
    (b'[{"provider": "openai", "model": "gpt-4o", "latency_ms": 1e400', "Body is not valid JSON"),
])
def test_unreadable_bodies_get_a_clear_400(body, message, org, ingest_key, post_events):
    response = post_events(ingest_key, body)
    assert response.status_code == 400
    assert response.json()["detail"].startswith(message)
    assert stored_ids(org) == []
