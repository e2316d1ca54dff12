"""POST /v1/events: validation, limits, durability, exact pricing and exactly-once rollups."""

import gzip
import json
from datetime import datetime, timedelta, timezone

import pytest
from django.db.models import Sum

from accounts.services import api_key_create, api_key_revoke
from ingestion.models import HourlyRollup, RawBatch, RunFacet, RunSummary, TraceEvent
from ingestion.services import batch_process

pytestmark = pytest.mark.django_db

NOW = datetime.now(timezone.utc).replace(microsecond=0)


def ev(**fields):
    base = {"provider": "openai", "model": "gpt-4o", "input_tokens": 1000, "output_tokens": 200,
            "timestamp": (NOW - timedelta(minutes=5)).isoformat()}
    base.update(fields)
    return base


def test_mixed_batch_keeps_valid_events_and_lists_rejections(org, ingest_key, post_events, prices):
    body = [ev(event_id="a"), ev(input_tokens=-5, status="bogus"), "not an object", ev(event_id="b", model="")]
    response = post_events(ingest_key, {"events": body})
    assert response.status_code == 202
    data = response.json()
    assert data["accepted"] == 1 and data["over_cap"] is False
    assert data["rejected"] == [
        {"index": 1, "errors": {"input_tokens": "Expected `int` >= 0", "status": "Invalid enum value 'bogus'"}},
        {"index": 2, "errors": {"event": "must be a JSON object"}},
        {"index": 3, "errors": {"model": "required for llm spans"}},
    ]
    assert list(TraceEvent.objects.for_org(org).values_list("event_id", flat=True)) == ["a"]


def test_bare_array_alias_url_and_defaults(org, ingest_key, post_events):
    response = post_events(ingest_key, [{"span_type": "api", "section_path": "agent:a/tool:b"}], url="/events")
    assert response.status_code == 202 and response.json()["accepted"] == 1
    event = TraceEvent.objects.for_org(org).get()
    assert len(event.event_id) == 32 and event.run_id == event.event_id
    assert event.section == "tool:b" and event.section_path == "agent:a/tool:b"
    assert event.status == "ok" and event.input_tokens == 0 and event.cost_pico is None
    assert abs((event.timestamp - datetime.now(timezone.utc)).total_seconds()) < 60


def test_section_alone_becomes_the_path(org, ingest_key, post_events, prices):
    post_events(ingest_key, [ev(section="tool:search")])
    assert TraceEvent.objects.for_org(org).get().section_path == "tool:search"


def test_each_section_of_a_path_is_a_label_of_at_most_256_characters(org, ingest_key, post_events, prices):
    """The first section is the agent the rollups and run summaries keep, the last the call's section: a longer
    one is refused with the event (PostgreSQL's columns would refuse the whole batch's fold), the others stored."""
    widest = "agent:" + "é" * 250  # 256 characters
    body = [ev(event_id="wide", run_id="r1", section_path=f"{widest}/tool:{'😀' * 251}"),  # 256 and 256: stored
            ev(event_id="agent-257", section_path=widest + "x/tool:a"),
            ev(event_id="last-257", section_path=f"agent:a/{'t' * 257}", section="tool:short"),
            ev(event_id="path-1024", section_path="/".join(["a" * 256] * 3 + ["b" * 253]))]  # 1,024: four sections
    response = post_events(ingest_key, {"events": body})

    assert response.status_code == 202 and response.json()["accepted"] == 2
    assert {r["index"]: r["errors"] for r in response.json()["rejected"]} == {
        1: {"section_path": "section 1 of the path has 257 characters; each section is a label of at most 256"},
        2: {"section_path": "section 2 of the path has 257 characters; each section is a label of at most 256"}}
    stored = {e.event_id: e for e in TraceEvent.objects.for_org(org)}
    assert set(stored) == {"wide", "path-1024"}
    assert stored["wide"].section == "tool:" + "😀" * 251
    assert RunSummary.objects.for_org(org).get(run_id="r1").agent == widest
    assert HourlyRollup.objects.for_org(org).aggregate(n=Sum("calls"))["n"] == 2


def test_gzip_body_is_accepted(org, ingest_key, post_events, prices):
    response = post_events(ingest_key, {"events": [ev(), ev()]}, gzip=True)
    assert response.status_code == 202 and response.json()["accepted"] == 2
    assert TraceEvent.objects.for_org(org).count() == 2


@pytest.mark.parametrize("body, message", [
    (b"{not json", "not valid JSON"),
    (b'{"foo": 1}', "JSON array of events"),
    (b'"a string"', "JSON array of events"),
    (b"[1, 2, 3]", "list of event objects"),
])
def test_malformed_bodies_get_400_with_a_message(ingest_key, post_events, body, message):
    response = post_events(ingest_key, body)
    assert response.status_code == 400
    assert message in response.json()["detail"]


def test_missing_wrong_and_revoked_keys_get_401(org, post_events):
    assert post_events(None, [ev()]).status_code == 401
    assert post_events("llmo_nope", [ev()]).status_code == 401
    created = api_key_create(org=org)
    api_key_revoke(api_key=created.api_key)
    assert post_events(created.raw_key, [ev()]).status_code == 401


def test_key_in_x_header_is_accepted(org, post_events, client, ingest_key):
    response = client.post("/v1/events", json.dumps([ev()]), content_type="application/json",
                           headers={"X-LLMObserve-API-Key": ingest_key})
    assert response.status_code == 202


def test_wrong_content_type_gets_415(ingest_key, post_events):
    assert post_events(ingest_key, b"a=b", content_type="application/x-www-form-urlencoded").status_code == 415
    assert post_events(ingest_key, b"[]", **{"Content-Encoding": "br"}).status_code == 415


def test_too_many_events_get_413(ingest_key, post_events):
    response = post_events(ingest_key, [{"span_type": "api"}] * 1001)
    assert response.status_code == 413 and "1000" in response.json()["detail"]


def test_gzip_bomb_is_refused_without_inflating_it(ingest_key, post_events):
    bomb = gzip.compress(b"[" + b" " * (64 * 1024 * 1024) + b"]")  # 64 MB of spaces, ~64 KB compressed
    response = post_events(ingest_key, bomb, **{"Content-Encoding": "gzip"})
    assert response.status_code == 413


def test_plain_body_over_5mb_gets_413(ingest_key, post_events):
    body = json.dumps([{"span_type": "api", "metadata": {"x": "y" * 6000}}] * 900).encode()
    assert len(body) > 5 * 1024 * 1024
    assert post_events(ingest_key, body).status_code == 413


def test_throttled_key_gets_429_with_retry_after(ingest_key, post_events, settings):
    settings.LLMOBSERVE_INGEST_RATE = 2
    assert post_events(ingest_key, []).status_code == 202
    assert post_events(ingest_key, []).status_code == 202
    response = post_events(ingest_key, [])
    assert response.status_code == 429
    assert int(response["Retry-After"]) >= 1


def test_future_timestamp_and_bad_cost_are_rejected(ingest_key, post_events):
    future = (datetime.now(timezone.utc) + timedelta(hours=2)).isoformat()
    response = post_events(ingest_key, [ev(timestamp=future), {"span_type": "api", "cost_usd": "-1"}])
    assert [r["errors"] for r in response.json()["rejected"]] == [
        {"timestamp": "more than 1 hour in the future"},
        {"cost_usd": "must be a non-negative decimal string below 1000000"},
    ]


# --- pricing through the pipeline ---------------------------------------------------------------

def cost_of(org, event_id):
    return TraceEvent.objects.for_org(org).get(event_id=event_id).cost_pico


def test_exact_costs_for_cache_prefix_and_tier(org, ingest_key, post_events, prices):
    post_events(ingest_key, [
        ev(event_id="openai-cached", input_tokens=1000, cached_input_tokens=400, output_tokens=200),
        # Anthropic convention: input_tokens excludes cache reads and writes; the API adds them.
        ev(event_id="anthropic-cache", provider="anthropic", model="claude-sonnet-4-20250514", input_tokens=100,
           cached_input_tokens=1000, cache_write_tokens=500, output_tokens=50),
        ev(event_id="dated-mini", model="gpt-4o-mini-2024-07-18", input_tokens=1000, output_tokens=1000),
        ev(event_id="long-context", provider="anthropic", model="claude-sonnet-4-20250514", input_tokens=250_000,
           output_tokens=1000),
    ])
    assert cost_of(org, "openai-cached") == 600 * 2_500_000 + 400 * 1_250_000 + 200 * 10_000_000
    assert cost_of(org, "anthropic-cache") == 100 * 3_000_000 + 1000 * 300_000 + 500 * 3_750_000 + 50 * 15_000_000
    assert TraceEvent.objects.for_org(org).get(event_id="anthropic-cache").input_tokens == 1600
    assert cost_of(org, "dated-mini") == 1000 * 150_000 + 1000 * 600_000  # never gpt-4o's price
    assert cost_of(org, "long-context") == 250_000 * 6_000_000 + 1000 * 22_500_000  # every token at the tier


def test_client_cost_only_fills_a_gap(org, ingest_key, post_events, prices):
    post_events(ingest_key, [
        {"event_id": "pinecone", "span_type": "vector_db", "provider": "pinecone", "cost_usd": "0.000123"},
        ev(event_id="priced", cost_usd="99"),
    ])
    assert cost_of(org, "pinecone") == 123_000_000
    assert cost_of(org, "priced") == 1000 * 2_500_000 + 200 * 10_000_000


def test_duplicates_within_and_across_batches_count_once(org, ingest_key, post_events, prices):
    first = post_events(ingest_key, [ev(event_id="dup", run_id="r1"), ev(event_id="dup", run_id="r1")])
    second = post_events(ingest_key, [ev(event_id="dup", run_id="r1"), ev(event_id="other", run_id="r1")])
    assert first.json()["accepted"] == 2 and second.json()["accepted"] == 2
    assert TraceEvent.objects.for_org(org).count() == 2
    rollup = HourlyRollup.objects.for_org(org).aggregate(calls=Sum("calls"), cost=Sum("cost_pico"))
    one = 1000 * 2_500_000 + 200 * 10_000_000
    assert rollup == {"calls": 2, "cost": 2 * one}
    run = RunSummary.objects.for_org(org).get(run_id="r1")
    assert (run.calls, run.cost_pico) == (2, 2 * one)


def test_processing_a_batch_twice_changes_nothing(org, ingest_key, post_events, prices):
    post_events(ingest_key, [ev(event_id=f"e{i}", run_id="run") for i in range(5)])
    batch = RawBatch.objects.for_org(org).get()
    assert batch.processed_at is not None
    before = list(HourlyRollup.objects.for_org(org).values("calls", "cost_pico"))
    assert batch_process(batch_id=batch.pk) == 0  # already processed: skipped
    # A worker that died after its work committed but before the ack: the batch is delivered again.
    RawBatch.objects.for_org(org).update(processed_at=None)
    assert batch_process(batch_id=batch.pk) == 0
    assert list(HourlyRollup.objects.for_org(org).values("calls", "cost_pico")) == before
    assert RunSummary.objects.for_org(org).get().calls == 5


def test_rollups_runs_and_facets_hold_the_dimensions(org, ingest_key, post_events, prices):
    post_events(ingest_key, [
        ev(run_id="r", section_path="agent:researcher/tool:search", customer_id="cust-1"),
        ev(run_id="r", section_path="agent:researcher", status="error", http_status=500, latency_ms=1500),
        ev(run_id="r", model="mystery-model"),
    ])
    rows = {(r.agent, r.section_path, r.model, r.customer_id): r for r in HourlyRollup.objects.for_org(org)}
    assert set(rows) == {("agent:researcher", "agent:researcher/tool:search", "gpt-4o", "cust-1"),
                         ("agent:researcher", "agent:researcher", "gpt-4o", ""),
                         ("", "", "mystery-model", "")}
    assert rows[("", "", "mystery-model", "")].unpriced_calls == 1
    assert rows[("agent:researcher", "agent:researcher", "gpt-4o", "")].errors == 1
    run = RunSummary.objects.for_org(org).get(run_id="r")
    assert (run.calls, run.errors, run.unpriced_calls, run.customer_id, run.agent) == (3, 1, 1, "cust-1",
                                                                                       "agent:researcher")
    assert run.ended_at - run.started_at == timedelta(milliseconds=1500)
    facets = set(RunFacet.objects.for_org(org).values_list("kind", "value"))
    assert {("section", "agent:researcher/tool:search"), ("model", "mystery-model"), ("customer", "cust-1"),
            ("status", "error")} <= facets
    assert ("status", "ok") not in facets  # ok runs are found by RunSummary.errors == 0


def test_unpriced_event_is_priced_when_a_price_is_added(org, ingest_key, post_events, django_capture_on_commit_callbacks):
    from ingestion.pricing import prices_changed

    from ..conftest import make_price

    post_events(ingest_key, [ev(event_id="new", model="brand-new-model", run_id="r")])
    assert cost_of(org, "new") is None
    assert HourlyRollup.objects.for_org(org).get().unpriced_calls == 1
    with django_capture_on_commit_callbacks(execute=True):
        make_price(provider="openai", model_match="brand-new-model", input_mtok="1", output_mtok="2")
        prices_changed()
    expected = 1000 * 1_000_000 + 200 * 2_000_000
    assert cost_of(org, "new") == expected
    rollup = HourlyRollup.objects.for_org(org).get()
    assert (rollup.unpriced_calls, rollup.cost_pico) == (0, expected)
    run = RunSummary.objects.for_org(org).get()
    assert (run.unpriced_calls, run.cost_pico) == (0, expected)


def test_over_cap_is_reported_to_the_sdk(org, ingest_key, post_events):
    from accounts.services import org_over_cap_set

    org_over_cap_set(org=org, over_cap=True)
    assert post_events(ingest_key, [{"span_type": "api"}]).json()["over_cap"] is True


def test_events_are_stored_per_org(org, other_org, ingest_key, post_events, prices):
    other_key = api_key_create(org=other_org).raw_key
    post_events(ingest_key, [ev(event_id="same")])
    post_events(other_key, [ev(event_id="same")])
    assert TraceEvent.objects.for_org(org).count() == 1
    assert TraceEvent.objects.for_org(other_org).count() == 1


def test_events_keep_their_price_until_a_range_is_repriced(org, ingest_key, post_events, prices, admin_client,
                                                           django_capture_on_commit_callbacks):
    from ingestion.models import ModelPrice
    from ingestion.pricing import price_book_invalidate

    post_events(ingest_key, [ev(event_id="kept", run_id="r")])
    old = 1000 * 2_500_000 + 200 * 10_000_000
    ModelPrice.objects.unscoped().filter(pk=prices["gpt-4o"].pk).update(input_mtok="5")
    price_book_invalidate()
    assert cost_of(org, "kept") == old  # a price change does not rewrite history by itself

    since = (NOW - timedelta(hours=1)).strftime("%Y-%m-%d %H:%M:%S")
    until = (NOW + timedelta(hours=1)).strftime("%Y-%m-%d %H:%M:%S")
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post("/admin/ingestion/modelprice/reprice/", {"since": since, "until": until})
    assert response.status_code == 302
    new = 1000 * 5_000_000 + 200 * 10_000_000
    assert cost_of(org, "kept") == new
    assert HourlyRollup.objects.for_org(org).get().cost_pico == new
    assert RunSummary.objects.for_org(org).get().cost_pico == new
    assert admin_client.get("/admin/ingestion/modelprice/reprice/").status_code == 200


def test_agent_level_and_daily_rollups_agree_with_the_hourly_ones(org, ingest_key, post_events, prices,
                                                                   django_capture_on_commit_callbacks):
    """Every rollup table is the same sums at another grain, also after unpriced events are re-priced."""
    from collections import Counter

    from ingestion.models import (AgentDailyRollup, AgentHourlyRollup, CustomerDailyRollup, CustomerHourlyRollup,
                                  DailyRollup)
    from ingestion.pricing import prices_changed

    from ..conftest import make_price

    post_events(ingest_key, [
        ev(run_id="a", section_path="agent:x/tool:y", customer_id="c1"),
        ev(run_id="a", section_path="agent:x", customer_id="c2", timestamp=(NOW - timedelta(hours=30)).isoformat()),
        ev(run_id="b", model="later-priced", section_path="agent:z"),
        ev(run_id="b", status="error"),
    ])
    with django_capture_on_commit_callbacks(execute=True):
        make_price(provider="openai", model_match="later-priced", input_mtok="1", output_mtok="1")
        prices_changed()

    def sums(model, *dims):
        out = Counter()
        for row in model.objects.for_org(org).values(*dims, "calls", "errors", "unpriced_calls", "cost_pico",
                                                      "input_tokens"):
            key = tuple(row[d] for d in dims)
            for name in ("calls", "errors", "unpriced_calls", "cost_pico", "input_tokens"):
                out[key + (name,)] += row[name]
        return out

    fine = sums(HourlyRollup, "agent", "provider", "model")
    assert fine == sums(DailyRollup, "agent", "provider", "model")
    assert fine == sums(AgentHourlyRollup, "agent", "provider", "model")
    assert fine == sums(AgentDailyRollup, "agent", "provider", "model")
    by_customer = sums(HourlyRollup, "customer_id")
    assert by_customer == sums(CustomerHourlyRollup, "customer_id") == sums(CustomerDailyRollup, "customer_id")
    assert by_customer[("c1", "calls")] == 1 and by_customer[("", "calls")] == 2
    assert fine[("agent:z", "openai", "later-priced", "unpriced_calls")] == 0
    assert fine[("agent:z", "openai", "later-priced", "cost_pico")] == 1000 * 1_000_000 + 200 * 1_000_000


def test_ttft_is_stored_and_validated(org, ingest_key, post_events, prices):
    response = post_events(ingest_key, [ev(event_id="s", stream=True, latency_ms=900.5, ttft_ms=120.25),
                                        ev(event_id="n"), ev(event_id="bad", ttft_ms=-1)])
    assert response.json()["accepted"] == 2
    assert response.json()["rejected"] == [{"index": 2, "errors": {"ttft_ms": "Expected `float` >= 0.0"}}]
    stored = dict(TraceEvent.objects.for_org(org).values_list("event_id", "ttft_ms"))
    assert stored == {"s": 120.25, "n": None}
