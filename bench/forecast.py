"""Backtest of the month-end forecast (analytics/forecast.py) on generated and demo histories.

    .venv/bin/python bench/forecast.py            # every candidate model, the default one marked
    .venv/bin/python bench/forecast.py --seeds 40 --model weekday28

For each case and seed, a daily cost history is generated up to the end of a target month (February, March
and April 2026 in turn: 28, 31 and 30 days); the forecast is made at 12:00 UTC on day 7, 14 and 21 (today's
spend so far = half of that day's cost) with the same pure function the endpoint uses, and compared with the
actual month total. Prints, per case and overall, the mean absolute percentage error (MAPE) of the projection
and the share of actual totals inside [low, high]. No database: the demo history (analytics.demo) is priced in
memory with the standard prices of bench/dashboard.py. Deterministic: same arguments, same figures.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import sys
from collections import defaultdict
from datetime import date, datetime, timedelta, timezone
from fractions import Fraction
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmobserve_site.settings")

import django  # noqa: E402

django.setup()

from analytics.demo import demo_events  # noqa: E402
from analytics.forecast import DEFAULT_MODEL, MODELS, ForecastModel, forecast_compute  # noqa: E402
from ingestion.models import ModelPrice  # noqa: E402
from ingestion.money import PICO_PER_USD, usd_to_pico  # noqa: E402
from ingestion.pricing import PriceBook  # noqa: E402

DAY = timedelta(days=1)
TARGET_MONTHS = (date(2026, 2, 1), date(2026, 3, 1), date(2026, 4, 1))
FORECAST_DAYS = (7, 14, 21)
HISTORY_DAYS = 70  # before the target month
WEEKDAY = (1.0, 1.08, 1.12, 1.05, 0.95, 0.45, 0.35)  # Mon … Sun
PRICES = [  # as bench/dashboard.py
    ("openai", "exact", "gpt-4o", "2.5", "10", "1.25"), ("openai", "exact", "gpt-4o-mini", "0.15", "0.6", "0.075"),
    ("openai", "exact", "text-embedding-3-small", "0.02", "0", None),
    ("anthropic", "prefix", "claude-sonnet-4", "3", "15", "0.3"), ("anthropic", "prefix", "claude-haiku-4", "1", "5", "0.1"),
    ("google", "exact", "gemini-2.5-flash", "0.3", "2.5", "0.075"), ("google", "exact", "gemini-2.5-pro", "1.25", "10", "0.31"),
]


def month_end(first: date) -> date:
    nxt = (first.replace(day=28) + timedelta(days=4)).replace(day=1)
    return nxt - DAY


def _pico(usd: float) -> int:
    return int(round(max(usd, 0.0) * PICO_PER_USD))  # generated data only; the forecast itself is exact


def generated(case: str, seed: int, first: date) -> dict[date, int]:
    """A daily history from HISTORY_DAYS before `first` to the end of its month."""
    rng = random.Random(f"{case}-{seed}-{first}")
    start, end = first - HISTORY_DAYS * DAY, month_end(first)
    level = rng.uniform(5, 200)  # USD a weekday
    out: dict[date, int] = {}
    spike_day = first + rng.randrange(0, 20) * DAY if case == "spike" else None
    born = first + 2 * DAY if case == "new_org" else start
    d, n = start, 0
    while d <= end:
        if d >= born:
            growth = (1 + 0.012) ** n if case == "trend" else 1.0  # ~ +45 % a month
            noise = rng.lognormvariate(0, 0.45 if case == "noisy" else 0.15)
            cost = level * growth * WEEKDAY[d.weekday()] * noise
            if d == spike_day:
                cost *= 8
            out[d] = _pico(cost)
        d += DAY
        n += 1
    return out


_BOOK: PriceBook | None = None


def _book() -> PriceBook:
    global _BOOK
    if _BOOK is None:
        rows = [ModelPrice(pk=i + 1, org=None, provider=p, match_kind=k, model_match=m, input_mtok=inp,
                           output_mtok=out, cached_input_mtok=cached) for i, (p, k, m, inp, out, cached) in enumerate(PRICES)]
        _BOOK = PriceBook(rows)
    return _BOOK


def demo(seed: int, first: date, days: int) -> dict[date, int]:
    """The demo org's history (analytics.demo, `days` long, ending with `first`'s month), priced in memory."""
    end = month_end(first) + DAY
    now = datetime(end.year, end.month, end.day, tzinfo=timezone.utc)
    out: dict[date, int] = defaultdict(int)
    for e in demo_events(now=now, seed=seed, days=days):
        at = datetime.fromisoformat(e["timestamp"].replace("Z", "+00:00"))
        if e.get("cost_usd"):
            cost = usd_to_pico(e["cost_usd"])
        else:
            priced = _book().price(org_id=None, provider=e["provider"], model=e["model"], at=at,
                                   input_tokens=e["input_tokens"], output_tokens=e["output_tokens"],
                                   cached_input_tokens=e.get("cached_input_tokens", 0),
                                   cache_write_tokens=e.get("cache_write_tokens", 0))
            cost = priced[1] if priced else 0
        out[at.date()] += cost
    return dict(out)


def backtest(history: dict[date, int], first: date, model: ForecastModel) -> list[tuple[float, bool]]:
    """(absolute % error, actual inside [low, high]) for the forecasts made on day 7, 14 and 21."""
    actual = sum(c for d, c in history.items() if first <= d <= month_end(first))
    results = []
    for day in FORECAST_DAYS:
        today = first.replace(day=day)
        daily = sorted((d, c) for d, c in history.items() if d < today)
        f = forecast_compute(daily=daily, today=today, today_so_far=history.get(today, 0) // 2,
                             elapsed=Fraction(1, 2), model=model)
        if actual:
            results.append((abs(f.projected_pico - actual) * 100 / actual, f.low_pico <= actual <= f.high_pico))
    return results


CASES = {
    "steady": lambda seed, first: generated("steady", seed, first),
    "trend": lambda seed, first: generated("trend", seed, first),
    "noisy": lambda seed, first: generated("noisy", seed, first),
    "spike": lambda seed, first: generated("spike", seed, first),
    "new_org": lambda seed, first: generated("new_org", seed, first),
    "demo_90d": lambda seed, first: demo(seed, first, 90),
    "demo_30d": lambda seed, first: demo(seed, first, month_end(first).day),  # load_demo's org: born on the 1st
}
DEMO_SEEDS = 4  # the demo history is slower to generate (events, priced one by one)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=20, help="generated histories per case and target month")
    parser.add_argument("--model", choices=sorted(MODELS), help="only this model (default: every candidate)")
    args = parser.parse_args()
    models = [MODELS[args.model]] if args.model else list(MODELS.values())

    histories: dict[str, list[tuple[dict[date, int], date]]] = {}
    for case, make in CASES.items():
        seeds = range(min(args.seeds, DEMO_SEEDS) if case.startswith("demo") else args.seeds)
        histories[case] = [(make(seed, first), first) for seed in seeds for first in TARGET_MONTHS]

    print(f"forecasts made at 12:00 UTC on day {', '.join(map(str, FORECAST_DAYS))} of "
          f"{', '.join(f'{m:%b %Y}' for m in TARGET_MONTHS)}; MAPE of the projection vs the actual month total, "
          f"and the share of actual totals inside [low, high]")
    header = f"{'model':<20}" + "".join(f"{case:>18}" for case in CASES) + f"{'overall':>18}"
    print(header)
    for model in models:
        cells, everything = [], []
        for case in CASES:
            results = [r for history, first in histories[case] for r in backtest(history, first, model)]
            everything += results
            cells.append(_cell(results))
        mark = " *" if model == DEFAULT_MODEL else ""
        print(f"{model.name + mark:<20}" + "".join(f"{c:>18}" for c in cells) + f"{_cell(everything):>18}")
    print("cell = MAPE % / inside-range %;  * = the model the endpoint uses (analytics.forecast.DEFAULT_MODEL)")
    print("\nby forecast day (default model, every case):")
    for day in FORECAST_DAYS:
        results = []
        for case in CASES:
            for history, first in histories[case]:
                results.append(backtest(history, first, DEFAULT_MODEL)[FORECAST_DAYS.index(day)])
        print(f"  day {day:>2}: MAPE {_mape(results):5.1f} %, inside range {_inside(results):5.1f} %")


def _mape(results: list[tuple[float, bool]]) -> float:
    return sum(r[0] for r in results) / len(results) if results else math.nan


def _inside(results: list[tuple[float, bool]]) -> float:
    return sum(1 for r in results if r[1]) * 100 / len(results) if results else math.nan


def _cell(results: list[tuple[float, bool]]) -> str:
    return f"{_mape(results):.1f} / {_inside(results):.0f}"


if __name__ == "__main__":
    main()
