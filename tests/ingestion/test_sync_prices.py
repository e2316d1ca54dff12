"""`manage.py sync_prices`: offline, idempotent, never touching manual rows or org overrides."""

import time
from datetime import datetime, timezone
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command

from ingestion.models import ModelPrice
from ingestion.price_services import price_save
from ingestion.price_registry import SOURCE
from ingestion.pricing import price_resolve


def sync() -> str:
    out = StringIO()
    call_command("sync_prices", stdout=out, stderr=StringIO())
    return out.getvalue().strip()


def snapshot():
    return sorted(ModelPrice.objects.unscoped().values_list(
        "id", "provider", "match_kind", "model_match", "effective_from", "input_mtok", "output_mtok",
        "cached_input_mtok", "cache_write_mtok", "tiers", "per_request_usd", "source"))


@pytest.mark.django_db
def test_sync_twice_changes_nothing_the_second_time():
    started = time.monotonic()
    first = sync()
    assert time.monotonic() - started < 5
    assert first.startswith("sync_prices: ") and "(created " in first and "updated 0, removed 0)" in first
    rows = snapshot()
    second = sync()
    assert "(created 0, updated 0, removed 0)" in second
    assert snapshot() == rows


@pytest.mark.django_db
def test_sync_prices_at_least_forty_models_across_the_major_providers():
    sync()
    synced = ModelPrice.objects.unscoped().filter(source=SOURCE, org__isnull=True)
    assert synced.values("provider", "display_name").distinct().count() >= 40
    providers = set(synced.values_list("provider", flat=True))
    assert {"openai", "anthropic", "google", "mistral", "cohere"} <= providers
    mini = price_resolve(org_id=None, provider="openai", model="gpt-4o-mini-2024-07-18",
                         at=datetime(2025, 1, 1, tzinfo=timezone.utc))
    assert mini.input_mtok == Decimal("0.15")  # never gpt-4o's 2.5


@pytest.mark.django_db
def test_changed_prices_are_updated_in_place_and_vanished_rows_removed():
    sync()
    row = ModelPrice.objects.unscoped().filter(source=SOURCE, provider="openai", match_kind="exact").first()
    price_save(price=row, input_mtok=Decimal("999"))
    gone = price_save(provider="openai", model_match="gpt-retired", source=SOURCE)
    out = sync()
    assert "(created 0, updated 1, removed 1)" in out
    row.refresh_from_db()
    assert row.input_mtok != Decimal("999")  # same row, same id: events keep pointing at it
    assert not ModelPrice.objects.unscoped().filter(pk=gone.pk).exists()


@pytest.mark.django_db
def test_manual_rows_and_org_overrides_are_never_touched(org):
    manual = price_save(provider="openai", model_match="gpt-4o", match_kind="exact",
                                       input_mtok=Decimal("1.11"), source="manual")
    own = price_save(provider="openai", model_match="my-finetune", input_mtok=Decimal("9"),
                                    source="manual")
    override = price_save(org=org, provider="openai", model_match="gpt-4o", match_kind="exact",
                                         input_mtok=Decimal("2"), source=SOURCE)
    sync()
    sync()
    for row, price in ((manual, "1.11"), (own, "9"), (override, "2")):
        row.refresh_from_db()
        assert row.input_mtok == Decimal(price)
    assert ModelPrice.objects.unscoped().filter(org__isnull=True, provider="openai", match_kind="exact",
                                                model_match="gpt-4o").count() == 1


@pytest.mark.django_db
def test_sync_ends_by_announcing_the_price_change(monkeypatch):
    calls = []
    monkeypatch.setattr("ingestion.price_services.prices_changed", lambda: calls.append(1))
    sync()
    assert calls == [1]


@pytest.mark.django_db
def test_dry_run_writes_nothing():
    out = StringIO()
    call_command("sync_prices", "--dry-run", stdout=out, stderr=StringIO())
    assert "dry run" in out.getvalue()
    assert not ModelPrice.objects.unscoped().exists()


REAL_NAMES = [
    # (provider as the SDK reports it, model as the provider reports it, expected input $/1M, output $/1M)
    ("openai", "gpt-4o-2024-08-06", "2.5", "10"),
    ("openai", "gpt-4o-mini-2024-07-18", "0.15", "0.6"),
    ("anthropic", "claude-3-5-haiku-20241022", "0.8", "4"),
    ("anthropic", "claude-sonnet-4-20250514", "3", "15"),
    ("google", "gemini-2.5-pro", "1.25", "10"),
    ("vertex_ai", "claude-3-5-sonnet-v2@20241022", "3", "15"),
    ("bedrock", "us.anthropic.claude-3-5-sonnet-20240620-v1:0", "3", "15"),
    ("bedrock", "cohere.command-r-plus-v1:0", "2.5", "10"),
    ("azure_openai", "gpt-4o-mini", "0.15", "0.6"),
    ("mistral", "mistral-small-latest", "0.1", "0.3"),
    ("cohere", "command-r-plus-08-2024", "2.5", "10"),
    ("openrouter", "openai/gpt-4o-mini", "0.15", "0.6"),
]


@pytest.mark.django_db
def test_synced_prices_reach_the_names_sdks_report():
    sync()
    at = datetime(2025, 6, 1, tzinfo=timezone.utc)
    for provider, model, input_mtok, output_mtok in REAL_NAMES:
        price = price_resolve(org_id=None, provider=provider, model=model, at=at)
        assert price is not None, (provider, model)
        assert (price.input_mtok, price.output_mtok) == (Decimal(input_mtok), Decimal(output_mtok)), (provider, model)


@pytest.mark.django_db
def test_synced_long_context_tier_prices_every_token_of_a_large_request():
    from ingestion.pricing import cost_compute

    sync()
    at = datetime(2025, 6, 1, tzinfo=timezone.utc)
    gemini = price_resolve(org_id=None, provider="google", model="gemini-2.5-pro", at=at)
    assert gemini.tiers and gemini.tiers[0]["above"] == 200_000
    assert cost_compute(price=gemini, input_tokens=300_000, output_tokens=1_000) == (
        300_000 * 2_500_000 + 1_000 * 15_000_000)  # $2.50 / $15 per 1M above 200k
