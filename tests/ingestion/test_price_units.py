"""Wire v1 additions (`service_tier`, `processing`, `speed`, `usage`), generic unit prices, variants and time
windows on hand-made price rows, and the provenance every call carries, through POST /v1/events, the read API,
the export, the run page and the admin's re-pricing."""

import csv
import io
import json
from datetime import datetime, timedelta, timezone

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.urls import reverse

from ingestion.models import TraceEvent
from ingestion.price_services import price_save
from ingestion.services import events_reprice_range

pytestmark = pytest.mark.django_db

PICO = 10**12
M = 1_000_000
# An awkward instant: 23:40 UTC on the last day of a month.
NOW = datetime(2026, 11, 30, 23, 40, tzinfo=timezone.utc)


def ev(**fields):
    base = {"provider": "acme", "model": "m1", "input_tokens": 10_000, "output_tokens": 1_000,
            "timestamp": (NOW - timedelta(minutes=5)).isoformat()}
    base.update(fields)
    return base


@pytest.fixture
def row(db):
    """$2 / $8 per 1M, $10 per 1,000 web searches, $40 per 1M audio input tokens; batch −50% (from 2026-01-01),
    priority +70%; 1–4 h UTC at half price; 200k tier at double input."""
    return price_save(
        provider="acme", model_match="m1", match_kind="exact", input_mtok="2", output_mtok="8",
        unit_prices={"web_searches_kcount": "10", "input_audio_mtok": "40"},
        tiers=[{"above": 200_000, "input_mtok": "4"}],
        variants=[{"when": {"processing": "batch"}, "prices": {"input_mtok": "1", "output_mtok": "4"},
                   "from": "2026-01-01"},
                  {"when": {"service_tier": "priority"}, "prices": {"input_mtok": "3.4", "output_mtok": "13.6"}}],
        time_windows=[{"start": "01:00", "end": "04:00", "prices": {"input_mtok": "1", "output_mtok": "4"}}],
    )


def _stored(org):
    return {e.event_id: e for e in TraceEvent.objects.for_org(org)}


@time_machine.travel(NOW, tick=False)
def test_usage_context_and_windows_price_through_the_ingest_endpoint(org, ingest_key, post_events, row):
    at_2am = NOW.replace(hour=2, minute=0)
    response = post_events(ingest_key, [
        ev(event_id="plain"),
        ev(event_id="search", usage={"web_searches": 2}),
        ev(event_id="audio", usage={"input_audio_tokens": 4_000}),
        ev(event_id="batch", processing="batch"),
        ev(event_id="priority", service_tier="priority", speed="fast"),
        ev(event_id="night", timestamp=at_2am.isoformat()),
        ev(event_id="big", input_tokens=300_000, usage={"web_searches": 1}),
        ev(event_id="old-batch", processing="batch", timestamp="2025-12-31T23:59:59Z"),
    ])
    assert response.json()["accepted"] == 8 and response.json()["rejected"] == []
    s = _stored(org)
    plain = 10_000 * 2 * M + 1_000 * 8 * M
    assert s["plain"].cost_pico == plain and s["plain"].price_variant == "outside 01:00–04:00 UTC"
    assert s["search"].cost_pico == plain + 2 * 10**10 and s["search"].usage == {"web_searches": 2}
    # Audio tokens are a part of the input: 6,000 at $2, 4,000 at $40.
    assert s["audio"].cost_pico == 6_000 * 2 * M + 4_000 * 40 * M + 1_000 * 8 * M
    assert s["batch"].cost_pico * 2 == plain and s["batch"].processing == "batch"
    assert s["batch"].price_variant == "outside 01:00–04:00 UTC · batch −50%"
    assert s["priority"].cost_pico == 10_000 * 3_400_000 + 1_000 * 13_600_000
    assert (s["priority"].service_tier, s["priority"].speed) == ("priority", "fast")
    assert "priority tier +70%" in s["priority"].price_variant
    assert s["night"].cost_pico * 2 == plain and s["night"].price_variant == "01:00–04:00 UTC"
    assert s["big"].cost_pico == 300_000 * 4 * M + 1_000 * 8 * M + 10**10
    assert s["old-batch"].cost_pico == plain  # the batch price starts on 2026-01-01
    assert all(e.price_source == "admin" and e.billed_cost_pico == e.cost_pico for e in s.values())


@time_machine.travel(NOW, tick=False)
def test_bad_usage_is_rejected_with_its_reason_and_valid_events_beside_it_are_kept(org, ingest_key, post_events,
                                                                                    row):
    response = post_events(ingest_key, [
        ev(event_id="ok", usage={"input_tokens": 10_000, "web_searches": 0}),
        ev(usage={"x": 1}),
        ev(usage={"requests": 1}),
        ev(usage={"web_searches": -1}),
        ev(usage={"web_searches": 1.5}),
        ev(input_tokens=5, usage={"input_tokens": 6}),
        ev(processing="online"),
        ev(service_tier="t" * 33),
        ev(usage=["web_searches"]),
    ]).json()
    assert response["accepted"] == 1
    errors = {r["index"]: r["errors"] for r in response["rejected"]}
    assert errors[1] == {"usage": "unknown unit 'x'"}
    assert "once per call" in errors[2]["usage"]
    assert set(errors[3]) == {"usage"} and set(errors[4]) == {"usage"}
    assert errors[5] == {"usage": "input_tokens (6) differs from input_tokens (5)"}
    assert set(errors[6]) == {"processing"} and set(errors[7]) == {"service_tier"} and set(errors[8]) == {"usage"}
    stored = TraceEvent.objects.for_org(org).get()
    assert stored.event_id == "ok" and stored.usage == {} and stored.input_tokens == 10_000


@time_machine.travel(NOW, tick=False)
def test_classic_fields_sent_as_units_and_one_hour_writes_in_usage_or_metadata(org, ingest_key, post_events):
    price_save(provider="anthropic", model_match="claude-x", match_kind="exact", input_mtok="3", output_mtok="15",
               cached_input_mtok="0.3", cache_write_mtok="3.75", cache_write_1h_mtok="6")
    common = dict(provider="anthropic", model="claude-x", input_tokens=0, output_tokens=0)
    post_events(ingest_key, [
        ev(event_id="units", **{**common, "usage": {"input_tokens": 5_000, "cache_write_tokens": 2_000,
                                                     "cache_write_1h_tokens": 2_000, "output_tokens": 100}}),
        ev(event_id="meta", **{**common, "input_tokens": 5_000, "cache_write_tokens": 2_000, "output_tokens": 100},
           metadata={"cache_write_1h_tokens": 2_000}),
    ])
    s = _stored(org)
    expected = 3_000 * 3 * M + 2_000 * 6 * M + 100 * 15 * M
    assert s["units"].cost_pico == s["meta"].cost_pico == expected
    assert s["units"].input_tokens == 5_000 and s["units"].usage == {"cache_write_1h_tokens": 2_000}


@time_machine.travel(NOW, tick=False)
def test_a_unit_only_row_leaves_calls_without_its_units_unpriced(org, ingest_key, post_events):
    price_save(provider="acme", model_match="whisper", match_kind="exact", input_mtok="0", output_mtok="0",
               unit_prices={"audio_hours": "0.36"})
    post_events(ingest_key, [ev(event_id="none", model="whisper", input_tokens=0, output_tokens=0),
                             ev(event_id="hour", model="whisper", usage={"audio_seconds": 1800})])
    s = _stored(org)
    assert s["none"].cost_pico is None
    assert s["hour"].cost_pico == 18 * 10**10  # half an hour at $0.36


def test_rows_refuse_unknown_units_and_bad_windows_and_variants():
    for fields, word in (({"unit_prices": {"web_searchez_kcount": "1"}}, "web_searchez_kcount"),
                         ({"unit_prices": {"web_searches_kcount": "0.0000000001"}}, "nine decimals"),
                         ({"time_windows": [{"start": "25:00", "end": "01:00", "prices": {}}]}, "25:00"),
                         ({"variants": [{"when": {}, "prices": {"input_mtok": "1"}}]}, "when"),
                         ({"variants": [{"when": {"processing": "batch"}, "prices": {"inputt_mtok": "1"}}]},
                          "inputt_mtok")):
        with pytest.raises(ValidationError) as info:
            price_save(provider="acme", model_match="bad", input_mtok="1", output_mtok="1", **fields)
        assert word in str(info.value), (fields, info.value)


@time_machine.travel(NOW, tick=False)
def test_provenance_in_the_read_api_the_export_and_the_run_page(org, ingest_key, read_key, api, post_events, row,
                                                                member_client):
    post_events(ingest_key, [ev(event_id="b", run_id="r", processing="batch", usage={"web_searches": 1}),
                             ev(event_id="c", run_id="r", provider="pinecone", model="", span_type="vector_db",
                                cost_usd="0.25"),
                             ev(event_id="u", run_id="r", model="unknown")])
    body = api(read_key).get("/v1/runs/r").json()
    events = {e["event_id"]: e for e in body["events"]}
    price = events["b"]["price"]
    assert price["source"] == "admin" and price["entry"] == "acme/m1" and price["variant"].endswith("batch −50%")
    assert isinstance(price["version"], int) and price["synced_at"] is None
    assert events["b"]["processing"] == "batch" and events["b"]["usage"] == {"web_searches": 1}
    assert events["b"]["billed_cost_usd"] == events["b"]["cost_usd"]
    assert events["c"]["price"] == {"source": "client", "entry": None, "version": None, "variant": None,
                                    "synced_at": None, "list_cost_usd": None, "discount_pct": None}
    assert events["u"]["price"] is None and events["u"]["service_tier"] is None

    response = api(read_key).get("/v1/export", format="csv", window="24h")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    by_id = {r["event_id"]: r for r in rows}
    assert list(rows[0])[-3:] == ["billed_cost_usd", "price", "cost_usd"]
    assert json.loads(by_id["b"]["price"])["entry"] == "acme/m1" and by_id["u"]["price"] == ""
    assert json.loads(by_id["b"]["usage"]) == {"web_searches": 1}

    page = member_client.get(f"/o/{org.slug}/runs/r/").content.decode()
    row.refresh_from_db()
    assert f"m1 · outside 01:00–04:00 UTC · batch −50% · admin price, edited {row.updated_at:%Y-%m-%d}" in page
    assert "client-reported" in page


def test_a_reprice_keeps_the_first_cost_as_billed(org, ingest_key, post_events, row, admin_client):
    with time_machine.travel(NOW, tick=False):
        post_events(ingest_key, [ev(event_id="a")])
        price_save(price=row, input_mtok="3")
        before = TraceEvent.objects.for_org(org).get()
        assert events_reprice_range(since=NOW - timedelta(days=1), until=NOW + timedelta(hours=1)) == 1
    after = TraceEvent.objects.for_org(org).get()
    assert after.cost_pico == before.cost_pico + 10_000 * M
    assert after.billed_cost_pico == before.cost_pico == before.billed_cost_pico


def test_the_admin_previews_a_reprice_by_provider_and_model_then_applies_it(org, ingest_key, post_events, row,
                                                                           admin_client, django_capture_on_commit_callbacks):
    with time_machine.travel(NOW, tick=False):
        post_events(ingest_key, [ev(event_id="a"), ev(event_id="b", processing="batch"),
                                 ev(event_id="c", model="m2")])
        price_save(price=row, input_mtok="3")
        form = {"since": (NOW - timedelta(days=1)).strftime("%Y-%m-%d %H:%M"),
                "until": (NOW + timedelta(hours=1)).strftime("%Y-%m-%d %H:%M")}
        before = {e.event_id: e.cost_pico for e in TraceEvent.objects.for_org(org)}
        page = admin_client.post("/admin/ingestion/modelprice/reprice/", {**form, "preview": "1"})
        text = page.content.decode()
        assert page.status_code == 200 and 'data-testid="reprice-preview"' in text
        # The batch call keeps its cost ($1 per 1M is its own price) but its label now reads −67% of $3.
        assert "Dry run: 2 of 3 events would change" in text
        assert "<td>acme</td><td>m1</td><td>2</td><td>2</td><td>0</td>" in text
        assert "+0.01" in text  # 10,000 input tokens × $1 more per 1M
        assert {e.event_id: e.cost_pico for e in TraceEvent.objects.for_org(org)} == before  # nothing written
        with django_capture_on_commit_callbacks(execute=True):
            applied = admin_client.post("/admin/ingestion/modelprice/reprice/", {**form, "apply": "1"})
        assert applied.status_code == 302
    after = {e.event_id: e for e in TraceEvent.objects.for_org(org)}
    assert after["a"].cost_pico == before["a"] + 10_000 * M and after["a"].billed_cost_pico == before["a"]
    assert after["b"].cost_pico == before["b"] and after["b"].price_variant.endswith("batch −67%")
