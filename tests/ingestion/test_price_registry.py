"""The genai-prices registry translation, and genai_prices.calc_price as an oracle for every synced model."""

import re
import warnings
from collections import Counter, defaultdict
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal

import genai_prices
import pytest
from django.core.management import call_command
from genai_prices import Usage
from genai_prices import types as gp
from genai_prices.data import providers as registry_providers

from ingestion.models import EPOCH, TraceEvent
from ingestion.price_registry import _periods, _translate_prices, match_rules, registry_load
from ingestion.price_units import BY_PRICE_KEY, REPORTABLE, UNITS
from ingestion.pricing import PriceBook, price_book_invalidate


# --- Translation ------------------------------------------------------------------------------------

def test_match_clauses_translate_to_exact_prefix_and_full_match_regexes():
    assert match_rules(gp.ClauseEquals(equals="GPT-4o")) == [("exact", "gpt-4o")]
    assert match_rules(gp.ClauseStartsWith(starts_with="gpt-4o-mini")) == [("prefix", "gpt-4o-mini")]
    assert match_rules(gp.ClauseOr(or_=[gp.ClauseEquals(equals="o1"), gp.ClauseStartsWith(starts_with="o1-")])) == [
        ("exact", "o1"), ("prefix", "o1-")]
    [(kind, contains)] = match_rules(gp.ClauseContains(contains="claude-3.5-sonnet"))
    assert kind == "regex"
    assert re.fullmatch(contains, "us.anthropic.claude-3.5-sonnet-v1:0", re.I)
    assert not re.fullmatch(contains, "claude-3x5-sonnet", re.I)  # the dot is literal
    [(_, ends)] = match_rules(gp.ClauseEndsWith(ends_with="titan-embed-text"))
    assert re.fullmatch(ends, "amazon.titan-embed-text") and not re.fullmatch(ends, "titan-embed-text-v2")
    [(_, searched)] = match_rules(gp.ClauseRegex(regex="gemini-3\\.5-flash-\\d"))
    assert re.fullmatch(searched, "google/gemini-3.5-flash-2-preview")  # the registry searches anywhere
    [(_, both)] = match_rules(gp.ClauseAnd(and_=[gp.ClauseStartsWith(starts_with="gemini-2.5-pro"),
                                                 gp.ClauseRegex(regex="^(?!.*-[tT][tT][sS](?:$|-))")]))
    assert re.fullmatch(both, "gemini-2.5-pro-preview-05-06", re.I)
    assert not re.fullmatch(both, "gemini-2.5-pro-preview-tts", re.I)


def test_tiered_prices_become_one_tier_per_threshold_with_every_price():
    price = gp.ModelPrice(
        input_mtok=gp.TieredPrices(base=Decimal("3"), tiers=[gp.Tier(start=200_000, price=Decimal("6"))]),
        output_mtok=gp.TieredPrices(base=Decimal("15"), tiers=[gp.Tier(start=200_000, price=Decimal("22.5"))]),
        cache_read_mtok=Decimal("0.3"),
        requests_kcount=Decimal("5"),
    )
    values, rounded = _translate_prices(price)
    assert not rounded
    assert values["input_mtok"] == Decimal("3") and values["cached_input_mtok"] == Decimal("0.3")
    assert values["per_request_usd"] == Decimal("0.005")
    assert values["tiers"] == [{"above": 200_000, "input_mtok": "6", "output_mtok": "22.5", "cached_input_mtok": "0.3"}]


def test_every_unit_a_registry_price_names_lands_in_a_column_or_unit_prices():
    values, _ = _translate_prices(gp.ModelPrice(input_mtok=Decimal("2.5"), web_searches_kcount=Decimal("10"),
                                                audio_hours=Decimal("0.36"), requests_kcount=Decimal("5")))
    assert values["input_mtok"] == Decimal("2.5") and values["per_request_usd"] == Decimal("0.005")
    assert values["unit_prices"] == {"web_searches_kcount": "10", "audio_hours": "0.36"}
    values, _ = _translate_prices(gp.ModelPrice())
    assert values["input_mtok"] == 0 and values["output_mtok"] == 0 and values["unit_prices"] == {}


def test_start_dates_become_price_history_and_time_of_day_prices_become_windows():
    base = gp.ModelPrice(input_mtok=Decimal("0.14"), output_mtok=Decimal("0.28"))
    raised = gp.ModelPrice(input_mtok=Decimal("0.22"), output_mtok=Decimal("0.66"))
    peak = gp.ModelPrice(input_mtok=Decimal("0.3"), output_mtok=Decimal("1.2"))
    peak_window = gp.ConditionalPrice(constraint=gp.TimeOfDateConstraint(start_time=time(1), end_time=time(4)),
                                      prices=peak)
    model = gp.ModelInfo(id="m", match=gp.ClauseEquals(equals="m"), prices=[
        gp.ConditionalPrice(constraint=None, prices=base),
        gp.ConditionalPrice(constraint=gp.StartDateConstraint(start_date=date(2026, 8, 17)), prices=raised),
        peak_window,
    ])
    assert _periods(model) == [(EPOCH, base, [peak_window]),
                               (datetime(2026, 8, 17, tzinfo=timezone.utc), raised, [peak_window])]


def test_deepseek_off_peak_is_a_window_and_costs_what_the_registry_says(org, ingest_key, post_events):
    """deepseek-chat, 1M in + 1M out: $1.37 at 03:00 UTC (its 00:30–16:30 window) and $0.685 at 18:00 UTC."""
    call_command("sync_prices", verbosity=0)
    price_book_invalidate()
    day = datetime.now(timezone.utc).date() - timedelta(days=1)
    events = [{"event_id": f"ds-{hour}", "provider": "deepseek", "model": "deepseek-chat", "input_tokens": 10**6,
               "output_tokens": 10**6, "timestamp": datetime.combine(day, time(hour, minute), tzinfo=timezone.utc
                                                                      ).isoformat()}
              for hour, minute in ((3, 0), (18, 0), (0, 30), (16, 30), (0, 29))]
    assert post_events(ingest_key, events).json()["accepted"] == 5
    stored = {e.event_id: e for e in TraceEvent.objects.for_org(org)}
    assert stored["ds-3"].cost_pico == 1_370_000_000_000  # $1.37
    assert stored["ds-18"].cost_pico == 685_000_000_000  # $0.685
    assert stored["ds-0"].cost_pico == 1_370_000_000_000  # 00:30 is in the window …
    assert stored["ds-16"].cost_pico == 685_000_000_000  # … 16:30 is not
    assert stored["ds-3"].price_variant == "00:30–16:30 UTC"
    assert stored["ds-18"].price_variant == "outside 00:30–16:30 UTC"
    for event in stored.values():
        expected = genai_prices.calc_price(Usage(input_tokens=10**6, output_tokens=10**6), "deepseek-chat",
                                           provider_id="deepseek", genai_request_timestamp=event.timestamp)
        assert event.cost_pico == expected.total_price * 10**12


def test_batch_flex_and_web_searches_through_the_ingest_endpoint(org, ingest_key, post_events):
    call_command("sync_prices", verbosity=0)
    price_book_invalidate()
    at = datetime.now(timezone.utc) - timedelta(minutes=10)
    common = {"provider": "openai", "model": "gpt-4o", "input_tokens": 10_000, "output_tokens": 1_000,
              "timestamp": at.isoformat()}
    events = [
        {**common, "event_id": "standard"},
        {**common, "event_id": "batch", "processing": "batch"},
        {**common, "event_id": "priority", "service_tier": "priority"},
        {**common, "event_id": "search", "usage": {"web_searches": 3}},
        {**common, "event_id": "bad", "usage": {"web_searchez": 3}},
    ]
    response = post_events(ingest_key, events).json()
    assert response["accepted"] == 4
    assert response["rejected"] == [{"index": 4, "errors": {"usage": "unknown unit 'web_searchez'"}}]
    stored = {e.event_id: e for e in TraceEvent.objects.for_org(org)}
    contexts = {"standard": None, "batch": {"processing": "batch"}, "priority": {"service_tier": "priority"},
                "search": None}
    for event_id, context in contexts.items():
        usage = Usage(input_tokens=10_000, output_tokens=1_000,
                      web_searches=3 if event_id == "search" else None)
        expected = genai_prices.calc_price(usage, "gpt-4o", provider_id="openai", genai_request_timestamp=at,
                                           price_context=context)
        assert stored[event_id].cost_pico == expected.total_price * 10**12, event_id
    assert stored["batch"].cost_pico * 2 == stored["standard"].cost_pico
    assert stored["batch"].price_variant == "batch −50%" and stored["batch"].processing == "batch"
    assert stored["search"].usage == {"web_searches": 3}
    assert stored["search"].cost_pico == stored["standard"].cost_pico + 3 * 10**10  # $10 per 1,000 searches
    assert stored["standard"].price_source == "registry" and stored["standard"].billed_cost_pico == \
        stored["standard"].cost_pico


def test_the_registry_covers_the_major_providers():
    registry = registry_load()
    models = {(r.provider, r.registry_model_id) for r in registry.rows}
    per_provider = Counter(p for p, _ in models)
    assert len(models) >= 40
    for provider in ("openai", "anthropic", "google", "mistral", "cohere", "aws", "azure", "deepseek", "x-ai"):
        assert per_provider[provider] >= 3, provider
    keys = [r.key for r in registry.rows]
    assert len(keys) == len(set(keys))  # one row per (provider, kind, match, effective_from): sync can upsert


# --- The oracle -----------------------------------------------------------------------------------------

# (input, cache read, cache write, of which 1-hour writes, output): no cache, cache read, cache write, both,
# > 200k input, tiny; 1-hour cache writes alone, mixed with 5-minute ones, and beyond 200k input.
USAGES = [(1_000, 0, 0, 0, 500), (5_000, 3_000, 0, 0, 200), (5_000, 0, 2_000, 0, 100), (5_000, 1_000, 1_000, 0, 100),
          (250_000, 50_000, 0, 0, 1_000), (250_000, 0, 10_000, 0, 2_000), (1_200_000, 0, 0, 0, 10), (10, 0, 0, 0, 0),
          (5_000, 0, 2_000, 2_000, 100), (5_000, 1_000, 3_000, 1_000, 100), (250_000, 10_000, 40_000, 30_000, 1_000)]
# Under a variant's context: fewer shapes, still every kind of token and both sides of a tier.
CONTEXT_USAGES = [USAGES[0], USAGES[3], USAGES[9], USAGES[10]]
CLASSIC_UNITS = {"input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "cache_write_1h_tokens"}


def _example_names(model: gp.ModelInfo) -> set[str]:
    """Names that reach the model: every literal of its clauses, or its id for a pure regex."""
    names: set[str] = set()

    def walk(clause):
        if isinstance(clause, gp.ClauseOr):
            for sub in clause.or_:
                walk(sub)
        elif isinstance(clause, gp.ClauseEquals):
            names.add(clause.equals.lower())
        elif isinstance(clause, gp.ClauseStartsWith):
            names.update({clause.starts_with.lower(), clause.starts_with.lower() + "-2099-01-01"})
        elif isinstance(clause, gp.ClauseContains):
            names.add(clause.contains.lower())
        elif isinstance(clause, gp.ClauseEndsWith):
            names.add(clause.ends_with.lower())
        elif model.match.is_match(model.id):
            names.add(model.id.lower())

    walk(model.match)
    return {name for name in names if model.match.is_match(name)}


def _price_sets(model: gp.ModelInfo) -> list:
    sets = [model.prices] if isinstance(model.prices, gp.ModelPrice) else [cp.prices for cp in model.prices]
    return sets + [v.prices for v in model.price_variants or ()]


def _extra_units(model: gp.ModelInfo) -> list[str]:
    """The usage keys (beyond the classic token ones) any price of the model names."""
    keys = {BY_PRICE_KEY[k].usage_key for ps in _price_sets(model) for k, v in vars(ps).items()
            if v is not None and not k.startswith("_") and k in BY_PRICE_KEY}
    return sorted(keys - CLASSIC_UNITS - {"requests"})


def _unit_usage(unit: str, input_tokens: int) -> tuple[tuple, dict]:
    """A call reporting `unit` (and, as the registry requires, every larger unit it belongs to), on top of tokens.

    Counts make the registry's own total a whole pico-USD: hours in whole hours, pixels in megapixels.
    """
    target = UNITS[unit]
    count = {3600: 7200, 60: 120, 10**9: 3 * 10**6}.get(target.per, 1_000 if "tokens" in unit else 3)
    extra = {unit: count}
    for other in UNITS.values():
        if other.contains(target) and other.usage_key not in CLASSIC_UNITS and other.usage_key in REPORTABLE:
            extra[other.usage_key] = 2 * count
    return (input_tokens, 10_000, 0, 0, 2_000), extra


def _times(model: gp.ModelInfo) -> list[time]:
    """Every window's first instant, its last and its end (exclusive), and an instant outside every window."""
    windows = [cp.constraint for cp in (model.prices if isinstance(model.prices, list) else [])
               if isinstance(cp.constraint, gp.TimeOfDateConstraint)]
    windows += [v.constraint for v in model.price_variants or () if isinstance(v.constraint, gp.TimeOfDateConstraint)]
    times = []
    for w in windows:
        start, end = w.start_time.replace(tzinfo=None), w.end_time.replace(tzinfo=None)
        last = (datetime.combine(date(2000, 1, 2), end) - timedelta(microseconds=1)).time()
        times += [start, last, end]
    for candidate in (time(23, 40), time(12), time(18), time(5)):
        if not any(w.active(datetime.combine(date(2026, 1, 1), candidate, tzinfo=timezone.utc)) for w in windows):
            times.append(candidate)
            break
    return sorted(set(times))


def _contexts(model: gp.ModelInfo) -> list[dict | None]:
    seen = []
    for variant in model.price_variants or ():
        if variant.when not in seen:
            seen.append(dict(variant.when))
    return [None] + seen


@pytest.mark.django_db
def test_every_unit_variant_and_time_window_costs_exactly_what_genai_prices_says():
    """Our cost, to the pico-USD, equals genai_prices.calc_price for every synced model, on every name literal of
    its match clauses, at every date its price (or one of its variants) changes, at every edge of its time
    windows and outside them, in every context its variants name, for a spread of token usages and, for each
    unit beyond tokens any of its prices names (web searches, audio / image / video tokens, audio hours, pages,
    characters, …), a call that reports it (below and above a 200k-token tier).

    Exclusions, and why:
    - models with a price of more decimals than a whole pico-USD per unit in the registry (float artefacts
      such as 0.18000000000000002, 0.0833333333333333 on OpenRouter / Hugging Face): our schema stores whole
      pico-USD per unit, so the row is rounded and the registry's own total is not a whole pico-USD;
    - usages the registry itself refuses (ValueError, e.g. more image tokens than input tokens) or names it
      does not reach (LookupError);
    - a call reporting none of the units of a model priced only in units (audio hours): the registry says $0,
      we leave it unpriced (docs/pricing.md), and check that we do.
    """
    call_command("sync_prices", verbosity=0)
    price_book_invalidate()
    book = PriceBook.load()
    registry = registry_load()
    synced = defaultdict(list)
    for row in registry.rows:
        synced[(row.provider, row.registry_model_id)].append(row)
    by_id = {(p.id, m.id): m for p in registry_providers for m in p.models}

    compared_models: Counter = Counter()
    cases: Counter = Counter()
    excluded_rounded = 0
    mismatches = []
    for (provider_id, model_id), rows in synced.items():
        if any(r.rounded for r in rows):
            excluded_rounded += 1
            continue
        model = by_id[(provider_id, model_id)]
        unit_only = all(not (r.input_mtok or r.output_mtok or r.per_request_usd or r.cached_input_mtok)
                        for r in rows) and _extra_units(model)
        dates = sorted({r.effective_from.date() for r in rows}
                       | {v.constraint.start_date for v in model.price_variants or ()
                          if isinstance(v.constraint, gp.StartDateConstraint)})
        shapes = {None: [(u, {}) for u in USAGES], "context": [(u, {}) for u in CONTEXT_USAGES]}
        for unit in _extra_units(model):
            for inp in (50_000, 250_000):
                shapes[None].append(_unit_usage(unit, inp))
                shapes["context"].append(_unit_usage(unit, inp))
        compared = False
        for name in sorted(_example_names(model)):
            for day in dates:
                for clock in _times(model):
                    at = datetime.combine(day, clock, tzinfo=timezone.utc)
                    for context in _contexts(model):
                        for (inp, read, write, write_1h, out), extra in shapes[None if context is None else "context"]:
                            with warnings.catch_warnings():
                                warnings.simplefilter("ignore")
                                try:
                                    theirs = genai_prices.calc_price(
                                        Usage(input_tokens=inp, cache_read_tokens=read, cache_write_tokens=write,
                                              cache_write_1h_tokens=write_1h or None, output_tokens=out, **extra),
                                        name, provider_id=provider_id, genai_request_timestamp=at,
                                        price_context=context)
                                except LookupError:
                                    break  # the registry itself does not reach this model by that literal
                                except ValueError:
                                    cases["refused by the registry"] += 1
                                    continue
                            expected = theirs.total_price * 10**12
                            if expected != expected.to_integral_value():
                                cases["not a whole pico-USD in the registry"] += 1
                                continue
                            # The 1-hour writes reach us as the SDK sends them: in the event's metadata.
                            ours = book.price(org_id=None, provider=provider_id, model=name, at=at, input_tokens=inp,
                                              output_tokens=out, cached_input_tokens=read, cache_write_tokens=write,
                                              metadata={"cache_write_1h_tokens": write_1h} if write_1h else None,
                                              usage=extra or None, context=context)
                            compared = True
                            if ours is None and unit_only and expected == 0 and not extra:
                                cases["unit-only model, no unit reported: unpriced"] += 1
                                continue
                            cases["extra units" if extra else "tokens"] += 1
                            if context:
                                cases["in a variant's context"] += 1
                            if ours is None or ours[1] != int(expected):
                                mismatches.append((provider_id, name, at, context, (inp, read, write, write_1h, out),
                                                   extra, int(expected), ours))
        if compared:
            compared_models[provider_id] += 1

    total = cases["tokens"] + cases["extra units"]
    print(f"\nregistry oracle: {total} cases compared ({dict(cases)}) over {sum(compared_models.values())} models")
    assert mismatches == [], mismatches[:20]
    assert excluded_rounded < 45
    assert sum(compared_models.values()) == len(synced) - excluded_rounded  # nothing else left out
    for provider in ("openai", "anthropic", "google", "mistral", "cohere", "aws", "azure", "deepseek"):
        assert compared_models[provider] >= 3, provider
    assert cases["extra units"] > 1000 and cases["in a variant's context"] > 1000
