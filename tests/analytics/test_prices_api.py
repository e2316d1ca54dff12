"""GET /v1/prices: which price (row, variant, time window, discount) would price a call, tenant-aware."""

from datetime import datetime, timezone
from decimal import Decimal

import pytest
from django.core.management import call_command

from ingestion.price_services import discount_save
from ingestion.pricing import price_book_invalidate

from ..conftest import make_price

pytestmark = pytest.mark.django_db


@pytest.fixture
def synced(db):
    call_command("sync_prices", verbosity=0)
    price_book_invalidate()


def test_deepseek_off_peak_is_the_window_in_force_at_that_time(api, read_key, synced):
    night = api(read_key).get("/v1/prices", provider="deepseek", model="deepseek-chat", at="2026-11-29T03:00:00Z")
    evening = api(read_key).get("/v1/prices", provider="deepseek", model="deepseek-chat", at="2026-11-29T18:00:00+00:00")
    assert night.status_code == evening.status_code == 200
    night, evening = night.json(), evening.json()
    assert night["variant"] == "00:30–16:30 UTC" and evening["variant"] == "outside 00:30–16:30 UTC"
    # 1M in + 1M out: $1.37 at 03:00 UTC and $0.685 at 18:00 UTC (the registry's figures)
    assert night["pico_per_token"]["input"] + night["pico_per_token"]["output"] == 1_370_000
    assert evening["pico_per_token"]["input"] + evening["pico_per_token"]["output"] == 685_000
    assert Decimal(night["unit_prices"]["input_mtok"]) * 10**6 == night["pico_per_token"]["input"]
    assert night["source"] == "registry" and night["synced_at"] and night["edited_at"] is None
    assert night["entry"].startswith("deepseek/") and night["discount"] is None


def test_a_batch_call_is_priced_by_the_batch_variant(api, read_key, synced):
    standard = api(read_key).get("/v1/prices", provider="openai", model="gpt-4o", at="2026-11-29T12:00:00Z").json()
    batch = api(read_key).get("/v1/prices", provider="openai", model="gpt-4o", at="2026-11-29T12:00:00Z",
                              processing="batch").json()
    assert standard["variant"] is None
    assert batch["variant"] == "batch −50%"
    assert batch["pico_per_token"]["input"] * 2 == standard["pico_per_token"]["input"]
    assert Decimal(batch["unit_prices"]["output_mtok"]) * 2 == Decimal(standard["unit_prices"]["output_mtok"])


def test_the_orgs_override_wins_and_another_orgs_is_invisible(api, read_key, other_read_key, org, synced):
    make_price(org=org, provider="openai", model_match="gpt-4o", input_mtok="1.5", output_mtok="6",
               effective_from=datetime(2026, 11, 1, tzinfo=timezone.utc))
    discount_save(org=org, provider="openai", percent=Decimal("12.5"))
    mine = api(read_key).get("/v1/prices", provider="openai", model="gpt-4o", at="2026-11-29T12:00:00Z").json()
    assert mine["source"] == "override" and mine["entry"] == "openai/gpt-4o"
    assert mine["unit_prices"] == {"input_mtok": "1.5", "output_mtok": "6"}
    assert mine["effective_from"] == "2026-11-01T00:00:00Z" and mine["edited_at"] and mine["synced_at"] is None
    assert mine["discount"] == {"percent": "12.5", "model_match": None, "match_kind": None,
                                "effective_from": "2000-01-01T00:00:00Z"}
    before = api(read_key).get("/v1/prices", provider="openai", model="gpt-4o", at="2026-10-31T23:40:00Z").json()
    assert before["source"] == "registry"  # the override's effective date is respected
    theirs = api(other_read_key).get("/v1/prices", provider="openai", model="gpt-4o",
                                     at="2026-11-29T12:00:00Z").json()
    assert theirs["source"] == "registry" and theirs["discount"] is None
    assert theirs["unit_prices"]["input_mtok"] == "2.5"


def test_nothing_matches_is_a_404_with_a_message(api, read_key, prices):
    response = api(read_key).get("/v1/prices", provider="openai", model="no-such-model")
    assert response.status_code == 404
    assert "no-such-model" in response.json()["detail"] and "unpriced" in response.json()["detail"]


def test_bad_input_is_a_400(api, read_key, prices):
    for params in ({"provider": "openai", "model": "gpt-4o", "at": "yesterday"},
                   {"provider": "openai", "model": "gpt-4o", "at": "2026-13-45T00:00:00Z"},
                   {"model": "gpt-4o"}, {"provider": "openai"}):
        response = api(read_key).get("/v1/prices", **params)
        assert response.status_code == 400, params
        assert set(response.json()) & {"at", "provider", "model"}


def test_a_read_key_is_required(api, ingest_key, prices):
    assert api(None).get("/v1/prices", provider="openai", model="gpt-4o").status_code in (401, 403)
    assert api(ingest_key).get("/v1/prices", provider="openai", model="gpt-4o").status_code in (401, 403)
    assert api("llmo_bogus").get("/v1/prices", provider="openai", model="gpt-4o").status_code in (401, 403)


def test_the_endpoint_is_in_the_openapi_schema(client):
    schema = client.get("/v1/schema", HTTP_ACCEPT="application/json").content.decode()
    assert "/v1/prices" in schema and "prices_lookup" in schema
