"""Every price field is priced: Anthropic 1-hour cache writes and per-unit (vector DB) prices, read from the
event's metadata as the SDK sends it, through POST /v1/events, against published rates."""

from decimal import Decimal

import pytest
from llmobserve.providers import anthropic as sdk_anthropic, pinecone as sdk_pinecone

from ingestion.models import TraceEvent
from ingestion.price_services import price_save, prices_sync

pytestmark = pytest.mark.django_db

PICO = 10**12
M = 1_000_000


def _usd(pico: int) -> Decimal:
    return Decimal(pico) / PICO


def _anthropic_event(event_id: str, model: str, usage: dict) -> dict:
    """The wire event the SDK builds from an Anthropic Messages response's `usage`."""
    meta: dict = {}
    tokens = sdk_anthropic.usage(usage, meta)
    wire = {k: meta.pop(k) for k in ("usage", "service_tier", "speed") if k in meta}  # top-level fields
    event = {"event_id": event_id, "provider": "anthropic", "model": model, "endpoint": "/v1/messages",
             "timestamp": "2025-11-20T12:00:00Z", **{k: v for k, v in tokens.items() if v}, **wire}
    if meta:
        event["metadata"] = meta
    return event


def _cost(org, event_id: str) -> int | None:
    return TraceEvent.objects.for_org(org).get(event_id=event_id).cost_pico


# Claude Sonnet 4.5, Anthropic's published rates (USD per 1M tokens): input 3, output 15, cache read 0.30,
# 5-minute cache write 3.75 (1.25 × input), 1-hour cache write 6 (2 × input); above 200k input tokens
# every token at 6 / 22.50 / 0.60 / 7.50 / 12.
SONNET_45 = dict(provider="anthropic", match_kind="prefix", model_match="claude-sonnet-4-5", input_mtok="3",
                 output_mtok="15", cached_input_mtok="0.3", cache_write_mtok="3.75", cache_write_1h_mtok="6",
                 tiers=[{"above": 200_000, "input_mtok": "6", "output_mtok": "22.5", "cached_input_mtok": "0.6",
                         "cache_write_mtok": "7.5", "cache_write_1h_mtok": "12"}])


def test_one_hour_cache_writes_are_billed_at_twice_the_input_rate_not_the_five_minute_rate(org, ingest_key,
                                                                                         post_events):
    price_save(**SONNET_45)
    events = [
        # 10,000 tokens written to the 1-hour cache only.
        _anthropic_event("1h", "claude-sonnet-4-5-20250929", {
            "input_tokens": 1_000, "cache_creation_input_tokens": 10_000, "cache_read_input_tokens": 0,
            "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 10_000},
            "output_tokens": 500}),
        # The same, written to the 5-minute cache.
        _anthropic_event("5m", "claude-sonnet-4-5-20250929", {
            "input_tokens": 1_000, "cache_creation_input_tokens": 10_000, "cache_read_input_tokens": 0,
            "cache_creation": {"ephemeral_5m_input_tokens": 10_000, "ephemeral_1h_input_tokens": 0},
            "output_tokens": 500}),
        # Both, plus a cache read.
        _anthropic_event("mixed", "claude-sonnet-4-5-20250929", {
            "input_tokens": 2_000, "cache_creation_input_tokens": 5_000, "cache_read_input_tokens": 20_000,
            "cache_creation": {"ephemeral_5m_input_tokens": 3_000, "ephemeral_1h_input_tokens": 2_000},
            "output_tokens": 100}),
        # Long context: 250,000 input tokens, so every token pays the > 200k tier, 1-hour writes at 12.
        _anthropic_event("long", "claude-sonnet-4-5-20250929", {
            "input_tokens": 200_000, "cache_creation_input_tokens": 40_000, "cache_read_input_tokens": 10_000,
            "cache_creation": {"ephemeral_5m_input_tokens": 10_000, "ephemeral_1h_input_tokens": 30_000},
            "output_tokens": 1_000}),
    ]
    assert events[0]["metadata"] == {"cache_write_1h_tokens": 10_000}  # where the SDK puts it
    assert post_events(ingest_key, {"events": events}).status_code == 202

    assert _usd(_cost(org, "1h")) == Decimal("0.003") + Decimal("0.06") + Decimal("0.0075")  # 1k in, 10k × $6, out
    assert _usd(_cost(org, "5m")) == Decimal("0.003") + Decimal("0.0375") + Decimal("0.0075")  # 10k × $3.75
    one_hour_write = Decimal(10_000) * 6 / M
    assert one_hour_write == 2 * Decimal(10_000) * 3 / M  # 2 × base input
    assert _usd(_cost(org, "mixed")) == (Decimal(2_000) * 3 + Decimal(20_000) * Decimal("0.3")
                                         + Decimal(3_000) * Decimal("3.75") + Decimal(2_000) * 6
                                         + Decimal(100) * 15) / M
    assert _usd(_cost(org, "long")) == (Decimal(200_000) * 6 + Decimal(10_000) * Decimal("0.6")
                                        + Decimal(10_000) * Decimal("7.5") + Decimal(30_000) * 12
                                        + Decimal(1_000) * Decimal("22.5")) / M


def test_synced_anthropic_prices_bill_one_hour_writes_at_the_published_rates(org, ingest_key, post_events):
    """The genai-prices registry's Claude rows (sync_prices) carry the 1-hour price, long-context tier included."""
    prices_sync()
    events = [
        _anthropic_event("opus-1h", "claude-opus-4-1-20250805", {
            "input_tokens": 0, "cache_creation_input_tokens": 1_000_000,
            "cache_creation": {"ephemeral_1h_input_tokens": 1_000_000}, "output_tokens": 0}),
        _anthropic_event("sonnet-long-1h", "claude-sonnet-4-5-20250929", {
            "input_tokens": 0, "cache_creation_input_tokens": 250_000,
            "cache_creation": {"ephemeral_1h_input_tokens": 250_000}, "output_tokens": 0}),
    ]
    assert post_events(ingest_key, {"events": events}).status_code == 202
    assert _usd(_cost(org, "opus-1h")) == Decimal("30")  # 2 × Opus 4.1's $15 input
    assert _usd(_cost(org, "sonnet-long-1h")) == Decimal(250_000) * 12 / M  # 2 × the $6 long-context input


def test_one_hour_tokens_beyond_the_cache_writes_are_capped_and_bad_values_ignored(org, ingest_key, post_events):
    price_save(**SONNET_45)
    base = {"provider": "anthropic", "model": "claude-sonnet-4-5", "input_tokens": 1_000, "cache_write_tokens": 1_000}
    events = [
        {**base, "event_id": "over", "metadata": {"cache_write_1h_tokens": 5_000}},
        {**base, "event_id": "text", "metadata": {"cache_write_1h_tokens": "lots"}},
        {**base, "event_id": "negative", "metadata": {"cache_write_1h_tokens": -3}},
    ]
    assert post_events(ingest_key, {"events": events}).status_code == 202
    assert _cost(org, "over") == 1_000 * 6 * M  # all 1,000 writes at the 1-hour rate, never more
    assert _cost(org, "text") == _cost(org, "negative") == 1_000 * 3_750_000  # the 5-minute rate


def _pinecone_event(event_id: str, read_units: int) -> dict:
    """A Pinecone query span as the SDK sends it: provider pinecone, no model, `read_units` in metadata."""
    meta: dict = {}
    model, tokens = sdk_pinecone.body({"matches": [], "usage": {"readUnits": read_units}}, meta)
    assert model == "" and tokens is None
    return {"event_id": event_id, "provider": "pinecone", "model": model, "span_type": "vector_db",
            "endpoint": "/query", "metadata": meta, "timestamp": "2025-11-20T12:00:00Z"}


def test_vector_db_units_are_priced_by_a_per_unit_row(org, ingest_key, post_events):
    # Pinecone serverless (Standard): $16 per 1M read units.
    price_save(provider="pinecone", match_kind="regex", model_match=".*", display_name="Pinecone read units",
               per_unit_usd="0.000016", unit_field="read_units")
    assert post_events(ingest_key, {"events": [_pinecone_event("q1", 5), _pinecone_event("q2", 250)]}
                       ).status_code == 202
    q1 = TraceEvent.objects.for_org(org).get(event_id="q1")
    assert (q1.cost_pico, q1.cost_source) == (5 * 16 * M, "price")  # 5 × $0.000016
    assert _usd(_cost(org, "q2")) == Decimal("0.004")


def test_the_unit_field_names_the_metadata_key_and_no_other(org, ingest_key, post_events):
    price_save(provider="pinecone", match_kind="regex", model_match=".*", per_unit_usd="0.000016",
               unit_field="read_units")
    price_save(provider="cohere", model_match="rerank-v3.5", per_unit_usd="0.002")  # no field: metadata "units"
    events = [
        {"event_id": "wrong-key", "provider": "pinecone", "span_type": "vector_db", "metadata": {"units": 5},
         "cost_usd": "0.5"},
        {"event_id": "searches", "provider": "cohere", "model": "rerank-v3.5", "metadata": {"units": 3}},
        {"event_id": "fraction", "provider": "pinecone", "span_type": "vector_db", "metadata": {"read_units": 2.5}},
    ]
    assert post_events(ingest_key, {"events": events}).status_code == 202
    wrong = TraceEvent.objects.for_org(org).get(event_id="wrong-key")
    # The row counts read_units, which this span lacks: not $0, the client's cost fills the gap.
    assert (wrong.cost_pico, wrong.cost_source) == (PICO // 2, "client")
    assert _usd(_cost(org, "searches")) == Decimal("0.006")
    assert _cost(org, "fraction") == 40 * M  # 2.5 × $0.000016


def test_a_span_without_a_model_stays_unpriced_when_no_row_matches_it(org, ingest_key, post_events):
    price_save(provider="openai", model_match="gpt-4o", input_mtok="2.5", output_mtok="10")
    event = _pinecone_event("q", 5)
    assert post_events(ingest_key, {"events": [event]}).status_code == 202
    assert _cost(org, "q") is None
