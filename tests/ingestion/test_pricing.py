"""Price resolution and cost math: exact integer pico-USD, the PriceBook agreeing with the single lookups."""

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from django.db.models import F
from hypothesis import given, settings, strategies as st

from ingestion import pricing
from ingestion.models import EPOCH, ModelPrice, PriceVersion, TraceEvent
from ingestion.price_services import price_save
from ingestion.pricing import (
    PriceBook,
    cost_compute,
    lookup_chain,
    price_book_get,
    price_book_invalidate,
    price_resolve,
    prices_changed,
)

NOW = datetime(2025, 6, 1, 12, tzinfo=timezone.utc)
M = 1_000_000


@pytest.fixture(autouse=True)
def _fresh_price_book(monkeypatch):
    monkeypatch.setattr(pricing, "_book", None)  # this process starts without a book
    yield


def price(provider="openai", model="gpt-4o", kind="exact", org=None, effective_from=EPOCH, **fields):
    fields.setdefault("input_mtok", Decimal("2.5"))
    fields.setdefault("output_mtok", Decimal("10"))
    return price_save(provider=provider, match_kind=kind, model_match=model, org=org,
                      effective_from=effective_from, **fields)


def resolve(provider, model, org=None, at=NOW):
    return price_resolve(org_id=org.pk if org else None, provider=provider, model=model, at=at)


# --- Matching -----------------------------------------------------------------------------------

@pytest.mark.django_db
def test_dated_mini_model_prices_as_mini_never_as_the_shorter_prefix():
    gpt4o = price(model="gpt-4o", kind="prefix")
    mini = price(model="gpt-4o-mini", kind="prefix", input_mtok=Decimal("0.15"), output_mtok=Decimal("0.6"))
    assert resolve("openai", "gpt-4o-mini-2024-07-18") == mini
    assert resolve("openai", "gpt-4o-2024-08-06") == gpt4o
    # Same answer whatever the insertion order: a shorter prefix created later does not win.
    price(model="gpt-4", kind="prefix", input_mtok=Decimal("30"))
    assert resolve("openai", "gpt-4o-mini-2024-07-18") == mini


@pytest.mark.django_db
def test_exact_name_beats_a_longer_prefix_and_a_regex():
    exact = price(model="gpt-4o-mini", kind="exact", input_mtok=Decimal("0.15"))
    price(model="gpt-4o-mini", kind="prefix", input_mtok=Decimal("1"))
    price(model=r"gpt-4o-mini.*", kind="regex", input_mtok=Decimal("2"))
    assert resolve("openai", "gpt-4o-mini") == exact
    assert resolve("openai", "gpt-4o-mini-2024-07-18").input_mtok == Decimal("1")


@pytest.mark.django_db
def test_regex_is_a_case_insensitive_full_match():
    rule = price(provider="anthropic", model=r"claude-opus-5-\d{8}", kind="regex")
    assert resolve("anthropic", "claude-opus-5-20260101") == rule
    assert resolve("anthropic", "CLAUDE-OPUS-5-20260101") == rule
    assert resolve("anthropic", "claude-opus-5-20260101-extra") is None  # fullmatch, not search
    assert resolve("anthropic", "x-claude-opus-5-20260101") is None


@pytest.mark.django_db
def test_model_names_match_case_insensitively():
    rule = price(model="GPT-4o", kind="exact")
    assert resolve("OpenAI", "gpt-4O") == rule


@pytest.mark.django_db
def test_no_price_is_none_never_zero():
    price(model="gpt-4o")
    assert resolve("openai", "gpt-5") is None
    assert resolve("anthropic", "gpt-4o") is None
    book = PriceBook.load()
    assert book.price(org_id=None, provider="openai", model="gpt-5", at=NOW, input_tokens=1,
                      output_tokens=1) is None


# --- Overrides and history ------------------------------------------------------------------------

@pytest.mark.django_db
def test_org_override_beats_global_only_for_that_org(org, other_org):
    global_price = price(model="gpt-4o", kind="prefix")
    override = price(model="gpt-4o", kind="prefix", org=org, input_mtok=Decimal("2"))
    assert resolve("openai", "gpt-4o-2024-08-06", org=org) == override
    assert resolve("openai", "gpt-4o-2024-08-06", org=other_org) == global_price
    assert resolve("openai", "gpt-4o-2024-08-06") == global_price


@pytest.mark.django_db
def test_org_override_maps_an_azure_deployment_name(org):
    price(provider="openai", model="gpt-4o")
    deployment = price(provider="azure_openai", model="prod-chat", org=org, input_mtok=Decimal("2.75"))
    assert resolve("azure_openai", "prod-chat", org=org) == deployment
    assert resolve("azure_openai", "prod-chat") is None


@pytest.mark.django_db
def test_price_history_uses_the_latest_effective_from_at_the_event_time(org):
    old = price(model="gpt-4o", effective_from=EPOCH, input_mtok=Decimal("5"))
    new = price(model="gpt-4o", effective_from=datetime(2024, 8, 6, tzinfo=timezone.utc))
    assert resolve("openai", "gpt-4o", at=datetime(2024, 8, 5, 23, 59, tzinfo=timezone.utc)) == old
    assert resolve("openai", "gpt-4o", at=datetime(2024, 8, 6, tzinfo=timezone.utc)) == new
    # An override that starts later does not apply before it starts.
    later = price(model="gpt-4o", org=org, effective_from=datetime(2025, 1, 1, tzinfo=timezone.utc))
    assert resolve("openai", "gpt-4o", org=org, at=datetime(2024, 12, 31, tzinfo=timezone.utc)) == new
    assert resolve("openai", "gpt-4o", org=org, at=datetime(2025, 1, 2, tzinfo=timezone.utc)) == later


@pytest.mark.django_db
def test_nothing_before_the_first_effective_date():
    price(model="gpt-4o", effective_from=datetime(2024, 5, 13, tzinfo=timezone.utc))
    assert resolve("openai", "gpt-4o", at=datetime(2024, 5, 12, tzinfo=timezone.utc)) is None


@pytest.mark.django_db
def test_an_exact_rule_not_yet_in_force_falls_back_to_the_prefix():
    prefix = price(model="gpt-4o", kind="prefix")
    exact = price(model="gpt-4o-2024-08-06", effective_from=datetime(2024, 8, 6, tzinfo=timezone.utc))
    assert resolve("openai", "gpt-4o-2024-08-06", at=datetime(2024, 8, 1, tzinfo=timezone.utc)) == prefix
    assert resolve("openai", "gpt-4o-2024-08-06", at=datetime(2024, 9, 1, tzinfo=timezone.utc)) == exact


# --- Provider aliases ----------------------------------------------------------------------------

@pytest.mark.django_db
@pytest.mark.parametrize("provider,model,expected_provider,expected_model", [
    ("azure_openai", "gpt-4o-mini", "openai", "gpt-4o-mini"),
    ("azure", "gpt-4o-mini", "openai", "gpt-4o-mini"),
    ("bedrock", "anthropic.claude-3-5-sonnet-20240620-v1:0", "anthropic", "claude-3-5-sonnet-20240620"),
    ("bedrock", "us.anthropic.claude-3-5-sonnet-20240620-v1:0", "anthropic", "claude-3-5-sonnet-20240620"),
    ("bedrock", "meta.llama3-1-70b-instruct-v1:0", "meta", "llama3-1-70b-instruct"),
    ("bedrock", "mistral.mistral-large-2407-v1:0", "mistral", "mistral-large-2407"),
    ("bedrock", "cohere.command-r-plus-v1:0", "cohere", "command-r-plus"),
    ("vertex_ai", "claude-3-5-sonnet-v2@20241022", "anthropic", "claude-3-5-sonnet-v2-20241022"),
    ("vertex", "gemini-1.5-pro-002", "google", "gemini-1.5-pro-002"),
    ("openrouter", "openai/gpt-4o", "openai", "gpt-4o"),
    ("openrouter", "anthropic/claude-3.5-sonnet", "anthropic", "claude-3.5-sonnet"),
])
def test_provider_aliases_fall_back_to_the_models_maker(provider, model, expected_provider, expected_model):
    target = price(provider=expected_provider, model=expected_model)
    assert resolve(provider, model) == target
    assert (expected_provider, expected_model) in lookup_chain(provider, model)


@pytest.mark.django_db
def test_the_resellers_own_price_wins_over_the_makers():
    price(provider="anthropic", model="claude-3-5-sonnet", kind="prefix")
    bedrock = price(provider="aws", model="anthropic.claude-3-5-sonnet", kind="prefix", input_mtok=Decimal("3.3"))
    assert resolve("bedrock", "anthropic.claude-3-5-sonnet-20240620-v1:0") == bedrock


@pytest.mark.django_db
def test_direct_providers_do_not_borrow_another_makers_price():
    price(provider="openai", model="gpt-4o")
    assert resolve("anthropic", "gpt-4o") is None


# --- Cost ------------------------------------------------------------------------------------------

def mp(**fields):
    defaults = {"provider": "p", "model_match": "m", "input_mtok": Decimal("3"), "output_mtok": Decimal("15"),
                "pk": 1}
    return ModelPrice(**{**defaults, **fields})


def test_cost_is_integer_pico_usd():
    cost = cost_compute(price=mp(), input_tokens=1000, output_tokens=500)
    assert cost == 1000 * 3_000_000 + 500 * 15_000_000  # $0.0105
    assert isinstance(cost, int)
    assert cost_compute(price=mp(input_mtok=Decimal("0.000001")), input_tokens=1, output_tokens=0) == 1


def test_openai_cached_input_is_a_subset_of_input():
    gpt4o = mp(input_mtok=Decimal("2.5"), output_mtok=Decimal("10"), cached_input_mtok=Decimal("1.25"))
    cost = cost_compute(price=gpt4o, input_tokens=10_000, cached_input_tokens=8_000, output_tokens=100)
    assert cost == 2_000 * 2_500_000 + 8_000 * 1_250_000 + 100 * 10_000_000


def test_anthropic_cache_read_and_write():
    sonnet = mp(cached_input_mtok=Decimal("0.3"), cache_write_mtok=Decimal("3.75"))
    cost = cost_compute(price=sonnet, input_tokens=10_000, cached_input_tokens=6_000, cache_write_tokens=3_000,
                        output_tokens=200)
    assert cost == 1_000 * 3_000_000 + 6_000 * 300_000 + 3_000 * 3_750_000 + 200 * 15_000_000


def test_missing_cache_prices_fall_back_to_the_input_price():
    no_cache = mp()
    with_cache = cost_compute(price=no_cache, input_tokens=10_000, cached_input_tokens=6_000,
                              cache_write_tokens=3_000, output_tokens=0)
    assert with_cache == cost_compute(price=no_cache, input_tokens=10_000, output_tokens=0)
    only_read = mp(cached_input_mtok=Decimal("0.3"))
    assert cost_compute(price=only_read, input_tokens=10, cached_input_tokens=4, cache_write_tokens=6,
                        output_tokens=0) == 4 * 300_000 + 6 * 3_000_000


def test_uncached_input_is_clamped_at_zero():
    sonnet = mp(cached_input_mtok=Decimal("0.3"))
    assert cost_compute(price=sonnet, input_tokens=10, cached_input_tokens=50, output_tokens=0) == 50 * 300_000


SONNET_4 = {
    "input_mtok": Decimal("3"), "output_mtok": Decimal("15"), "cached_input_mtok": Decimal("0.3"),
    "cache_write_mtok": Decimal("3.75"),
    "tiers": [{"above": 200_000, "input_mtok": "6", "output_mtok": "22.5", "cached_input_mtok": "0.6",
               "cache_write_mtok": "7.5"}],
}


def test_claude_sonnet_4_over_200k_input_pays_the_long_context_price_for_every_token():
    sonnet4 = mp(**SONNET_4)
    at_limit = cost_compute(price=sonnet4, input_tokens=200_000, output_tokens=1_000)
    assert at_limit == 200_000 * 3_000_000 + 1_000 * 15_000_000
    over = cost_compute(price=sonnet4, input_tokens=250_000, cached_input_tokens=50_000, cache_write_tokens=10_000,
                        output_tokens=1_000)
    assert over == 190_000 * 6_000_000 + 50_000 * 600_000 + 10_000 * 7_500_000 + 1_000 * 22_500_000


def test_gemini_2_5_pro_tier_and_the_highest_applicable_tier_wins():
    gemini = mp(input_mtok=Decimal("1.25"), output_mtok=Decimal("10"), cached_input_mtok=Decimal("0.31"), tiers=[
        {"above": 200_000, "input_mtok": "2.5", "output_mtok": "15", "cached_input_mtok": "0.625"},
    ])
    assert cost_compute(price=gemini, input_tokens=300_000, output_tokens=10) == 300_000 * 2_500_000 + 10 * 15 * M
    two = mp(tiers=[{"above": 1_000_000, "input_mtok": "9"}, {"above": 100, "input_mtok": "6"}])
    assert cost_compute(price=two, input_tokens=101, output_tokens=1) == 101 * 6 * M + 15 * M
    assert cost_compute(price=two, input_tokens=1_000_001, output_tokens=1) == 1_000_001 * 9 * M + 15 * M


def test_a_tier_without_cache_prices_charges_cache_at_the_tier_input_price():
    tiered = mp(tiers=[{"above": 10, "input_mtok": "6", "output_mtok": "30"}])
    assert cost_compute(price=tiered, input_tokens=20, cached_input_tokens=20, output_tokens=0) == 20 * 6 * M


def test_per_request_and_per_unit_prices():
    rerank = mp(input_mtok=0, output_mtok=0, per_request_usd=Decimal("0.002"), per_unit_usd=Decimal("0.000000125"))
    assert cost_compute(price=rerank, input_tokens=0, output_tokens=0) == 2_000_000_000
    assert cost_compute(price=rerank, input_tokens=0, output_tokens=0, units=1000) == 2_000_000_000 + 125_000_000


def test_a_price_with_more_than_six_decimals_is_refused_not_rounded():
    with pytest.raises(ValueError):
        cost_compute(price=mp(input_mtok=Decimal("0.0000001")), input_tokens=1, output_tokens=0)


# --- PriceBook -------------------------------------------------------------------------------------

@pytest.mark.django_db
def test_price_book_is_cached_and_reloaded_after_invalidation():
    price(model="gpt-4o")
    book = price_book_get()
    assert price_book_get() is book
    price(model="gpt-4o-mini", input_mtok=Decimal("0.15"))
    price_book_invalidate()
    fresh = price_book_get()
    assert fresh is not book
    assert fresh.price(org_id=None, provider="openai", model="gpt-4o-mini", at=NOW, input_tokens=M,
                       output_tokens=0)[1] == 150_000 * M


@pytest.mark.django_db
def test_price_book_notices_another_process_bumping_the_version(monkeypatch):
    price(model="gpt-4o")
    book = price_book_get()
    # Another process (a shell, `sync_prices`, the admin on another server) commits a price write.
    PriceVersion.objects.filter(pk=1).update(version=F("version") + 1)
    assert price_book_get() is book  # checked at most once per second
    monkeypatch.setattr(pricing, "_book_checked_at", pricing._book_checked_at - 2)
    assert price_book_get() is not book


@pytest.mark.django_db(transaction=True)
def test_prices_changed_invalidates_now_and_reprices_unpriced_events_after_commit(org, ingest_key, post_events):
    from django.db import transaction

    post_events(ingest_key, [{"event_id": "e1", "provider": "openai", "model": "gpt-4o", "input_tokens": 1000}])
    assert TraceEvent.objects.for_org(org).get().cost_pico is None
    book = price_book_get()
    with transaction.atomic():
        price(model="gpt-4o")
        prices_changed()
        assert price_book_get() is not book  # this process reloads at once …
        assert TraceEvent.objects.for_org(org).get().cost_pico is None  # … the re-pricing waits for the commit
    assert TraceEvent.objects.for_org(org).get().cost_pico == 2_500_000_000  # 1000 × $2.5/1M


def test_a_price_edit_never_fails_because_the_queue_is_down(org, dead_broker, caplog,
                                                             django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        price(model="gpt-4o")
        prices_changed()
    assert "could not queue ingestion.tasks.events_reprice" in caplog.text


SPREAD_TIMES = [EPOCH, datetime(2024, 1, 1, tzinfo=timezone.utc), datetime(2024, 8, 6, tzinfo=timezone.utc),
                NOW, NOW + timedelta(days=400)]


@pytest.fixture
def price_table(db, org):
    price(model="gpt-4o", kind="prefix", cached_input_mtok=Decimal("1.25"))
    price(model="gpt-4o", kind="prefix", effective_from=datetime(2024, 8, 6, tzinfo=timezone.utc),
          input_mtok=Decimal("2.75"), cached_input_mtok=Decimal("1.375"))
    price(model="gpt-4o-mini", kind="prefix", input_mtok=Decimal("0.15"), output_mtok=Decimal("0.6"))
    price(model="gpt-4o-mini-2024-07-18", input_mtok=Decimal("0.16"), output_mtok=Decimal("0.6"),
          effective_from=datetime(2024, 7, 18, tzinfo=timezone.utc))
    price(model="gpt-4o", kind="prefix", org=org, input_mtok=Decimal("2"),
          effective_from=datetime(2025, 1, 1, tzinfo=timezone.utc))
    price(provider="anthropic", model="claude-sonnet-4", kind="prefix", **SONNET_4)
    price(provider="anthropic", model=r"claude-.*-haiku.*", kind="regex", input_mtok=Decimal("0.8"),
          output_mtok=Decimal("4"), cache_write_mtok=Decimal("1"))
    price(provider="cohere", model="rerank-v3.5", input_mtok=0, output_mtok=0, per_request_usd=Decimal("0.002"))
    return org


MODELS = [("openai", "gpt-4o"), ("openai", "gpt-4o-2024-08-06"), ("openai", "gpt-4o-mini"),
          ("openai", "gpt-4o-mini-2024-07-18"), ("azure_openai", "gpt-4o-mini"), ("openai", "gpt-5"),
          ("anthropic", "claude-sonnet-4-20250514"), ("bedrock", "us.anthropic.claude-sonnet-4-20250514-v1:0"),
          ("anthropic", "claude-3-5-haiku-latest"), ("vertex_ai", "claude-3-5-haiku@20241022"),
          ("cohere", "rerank-v3.5"), ("openrouter", "openai/gpt-4o")]


@settings(deadline=None)  # example count from the loaded profile (capped in CI)
@given(model=st.sampled_from(MODELS), at=st.sampled_from(SPREAD_TIMES), use_org=st.booleans(),
       input_tokens=st.integers(0, 400_000), cached=st.integers(0, 300_000), write=st.integers(0, 50_000),
       output_tokens=st.integers(0, 50_000))
def test_price_book_agrees_exactly_with_resolve_and_compute(price_table, model, at, use_org, input_tokens, cached,
                                                             write, output_tokens):
    org_id = price_table.pk if use_org else None
    provider, name = model
    book = PriceBook.load()
    got = book.price(org_id=org_id, provider=provider, model=name, at=at, input_tokens=input_tokens,
                     output_tokens=output_tokens, cached_input_tokens=cached, cache_write_tokens=write)
    resolved = price_resolve(org_id=org_id, provider=provider, model=name, at=at)
    if resolved is None:
        assert got is None
    else:
        assert got == (resolved.pk, cost_compute(price=resolved, input_tokens=input_tokens,
                                                 output_tokens=output_tokens, cached_input_tokens=cached,
                                                 cache_write_tokens=write))


@pytest.mark.django_db
def test_price_book_prices_a_thousand_events_fast(price_table):
    import time

    book = price_book_get()
    events = [MODELS[i % len(MODELS)] for i in range(20_000)]
    started = time.perf_counter()
    for provider, name in events:
        book.price(org_id=price_table.pk, provider=provider, model=name, at=NOW, input_tokens=1200,
                   output_tokens=300, cached_input_tokens=200, cache_write_tokens=0)
    assert time.perf_counter() - started < 1.0  # ≥ 20,000 events/s with room to spare
