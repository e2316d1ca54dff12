"""Prices for the demo's models (the real table comes from `sync_prices`, built elsewhere)."""

from tests.conftest import make_price

DEMO_PRICES = [
    dict(provider="openai", model_match="gpt-4o", input_mtok="2.5", output_mtok="10", cached_input_mtok="1.25"),
    dict(provider="openai", model_match="gpt-4o-mini", input_mtok="0.15", output_mtok="0.6",
         cached_input_mtok="0.075"),
    dict(provider="openai", model_match="text-embedding-3-small", input_mtok="0.02", output_mtok="0"),
    dict(provider="anthropic", match_kind="prefix", model_match="claude-sonnet-4", input_mtok="3", output_mtok="15",
         cached_input_mtok="0.3", cache_write_mtok="3.75"),
    dict(provider="anthropic", match_kind="prefix", model_match="claude-haiku-4", input_mtok="1", output_mtok="5",
         cached_input_mtok="0.1", cache_write_mtok="1.25"),
    dict(provider="google", model_match="gemini-2.5-flash", input_mtok="0.3", output_mtok="2.5",
         cached_input_mtok="0.075"),
    dict(provider="google", model_match="gemini-2.5-pro", input_mtok="1.25", output_mtok="10",
         cached_input_mtok="0.31"),
]


def demo_prices_create():
    return [make_price(**fields) for fields in DEMO_PRICES]
