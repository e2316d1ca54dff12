"""The pricing hot path: events priced per second by the in-memory PriceBook (what the processing task calls per
event), over the whole genai-prices registry, without a database.

Four mixes: token-only calls (the common case), the same with a service tier / batch context, calls that report
web searches or audio tokens (`usage`), and DeepSeek calls across its time window; then token-only calls of an org
with negotiated discounts (a provider-wide 20% on openai and a 12.5% on the `claude-` prefix of anthropic).

    .venv/bin/python bench/price_book.py [--events 200000]

Runs against this checkout; an older checkout without `usage`/`context` prints only the token-only figure.
"""

from __future__ import annotations

import argparse
import inspect
import os
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmobserve_site.settings")

import django  # noqa: E402

django.setup()

from ingestion.models import ModelPrice  # noqa: E402
from ingestion.price_registry import registry_load  # noqa: E402
from ingestion.pricing import PriceBook  # noqa: E402

MODELS = [("openai", "gpt-4o-2024-08-06"), ("openai", "gpt-4o-mini"), ("anthropic", "claude-sonnet-4-5-20250929"),
          ("google", "gemini-2.5-pro"), ("deepseek", "deepseek-chat"), ("azure_openai", "gpt-4o"),
          ("bedrock", "us.anthropic.claude-3-5-sonnet-20240620-v1:0"), ("mistral", "mistral-small-latest")]


def book_rows() -> list[ModelPrice]:
    rows = []
    for i, row in enumerate(registry_load().rows, start=1):
        rows.append(ModelPrice(pk=i, provider=row.provider, match_kind=row.match_kind, model_match=row.model_match,
                               effective_from=row.effective_from, source="genai-prices", **row.values()))
    return rows


def book_load() -> PriceBook:
    return PriceBook(book_rows())


def run(book: PriceBook, n: int, org_id: int | None = None, **extra) -> float:
    # What the processing task calls per event: `quote` (this checkout), `price` (before it existed).
    price = getattr(book, "quote", book.price)
    at0 = datetime(2026, 11, 29, tzinfo=timezone.utc)
    calls = [(MODELS[i % len(MODELS)], at0 + timedelta(minutes=37 * i)) for i in range(1000)]
    for (provider, model), at in calls:  # warm the memo, as a running worker has
        book.price(org_id=org_id, provider=provider, model=model, at=at, input_tokens=1, output_tokens=1, **extra)
    started = time.perf_counter()
    done = 0
    while done < n:
        for (provider, model), at in calls:
            price(org_id=org_id, provider=provider, model=model, at=at, input_tokens=12_000 + done % 7,
                       output_tokens=800, cached_input_tokens=4_000, cache_write_tokens=0, **extra)
        done += len(calls)
    return done / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=200_000)
    args = parser.parse_args()
    started = time.perf_counter()
    book = book_load()
    print(f"price book: {len(book._index.scopes.get(None, {}))} providers loaded in "
          f"{time.perf_counter() - started:.2f}s")
    print(f"token-only calls:          {run(book, args.events):>12,.0f} events/s")
    if "context" in inspect.signature(book.price).parameters:
        print(f"with a batch context:      {run(book, args.events, context={'processing': 'batch'}):>12,.0f} events/s")
        print(f"with a priority tier:      "
              f"{run(book, args.events, context={'service_tier': 'priority'}):>12,.0f} events/s")
        print(f"reporting web searches:    {run(book, args.events, usage={'web_searches': 2}):>12,.0f} events/s")
        print(f"reporting audio tokens:    "
              f"{run(book, args.events, usage={'input_audio_tokens': 1_000}):>12,.0f} events/s")
    if "discounts" in inspect.signature(PriceBook).parameters:
        from decimal import Decimal

        from ingestion.models import EPOCH, PriceDiscount

        discounted = PriceBook(book_rows(), [
            PriceDiscount(pk=1, org_id=1, provider="openai", model_match="", percent=Decimal("20"),
                          effective_from=EPOCH),
            PriceDiscount(pk=2, org_id=1, provider="anthropic", match_kind="prefix", model_match="claude-",
                          percent=Decimal("12.5"), effective_from=EPOCH)])
        print(f"an org with discounts:     {run(discounted, args.events, org_id=1):>12,.0f} events/s")


if __name__ == "__main__":
    main()
