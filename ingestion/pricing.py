"""The pricing engine: which `ModelPrice` applies to a call, and what the call cost.

Money is integer pico-USD (1e-12 USD). A price of at most six decimals per 1M tokens is a whole
number of pico-USD per token (price × 10^6), so every cost is an exact integer sum; no float is
ever involved.

Resolution for (org, provider, model, at):

1. scopes: the org's overrides first, then the global prices;
2. within a scope, the provider chain: the provider as sent, then its aliases and the model's
   maker (`azure_openai` → `azure`, `openai`; `bedrock` → `aws`, then `anthropic` with the
   Bedrock id stripped to the plain model name; `vertex` → `google`, `anthropic`; `openrouter`
   `openai/gpt-4o` → `openai` `gpt-4o`; …);
3. within a provider, the match rules: an exact name beats any prefix or regex; among those the
   one with the longest literal text wins (prefix `gpt-4o-mini` beats prefix `gpt-4o` for
   `gpt-4o-mini-2024-07-18`); regexes are full matches; all matching is case-insensitive;
4. the first rule in that order with a version effective at `at` wins, and its latest version
   with `effective_from <= at` is the price.

`price_resolve` answers that with a few queries; `PriceBook` answers it from memory (the batch
path). Both go through `_Index.timeline`, so they cannot disagree.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from bisect import bisect_right
from dataclasses import dataclass
from datetime import date, datetime, timezone as dt_timezone
from decimal import Decimal
from fractions import Fraction
from typing import Iterable, NamedTuple

from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.db.models.functions import Lower
from django.utils import timezone

from accounts import metrics
from accounts.tasking import enqueue_on_commit
from ingestion.models import ModelPrice, PriceDiscount, PriceVersion
from ingestion.money import usd_to_pico
from ingestion.price_units import (BY_PRICE_KEY, CLASSIC_USAGE_KEYS, COLUMN_KEYS, COLUMN_PRICE_KEYS, UNITS,
                                   pico_per_count, price_key_canonical)

logger = logging.getLogger(__name__)

VERSION_CHECK_SECONDS = 1.0


# --- Cost ------------------------------------------------------------------------------------

SOURCE_REGISTRY = "genai-prices"


class Window(NamedTuple):
    """A time-of-day price: [start, end) in microseconds of the UTC day (end < start wraps midnight)."""

    start: int
    end: int
    entry: "Entry"

    def active(self, tod: int) -> bool:
        if self.end < self.start:
            return tod >= self.start or tod < self.end
        return self.start <= tod < self.end


class Variant(NamedTuple):
    """Partial prices selected by the call's context (`{"processing": "batch"}`), optionally from a date or in a
    time-of-day window. `prices` and `tiers` are in the row's shape (registry price keys)."""

    when: tuple[tuple[str, str], ...]
    from_date: date | None
    window: tuple[int, int] | None
    prices: dict
    tiers: tuple
    name: str

    def applies(self, at: datetime, context: dict) -> bool:
        for key, value in self.when:
            if context.get(key) != value:
                return False
        if self.from_date is not None and at.astimezone(dt_timezone.utc).date() < self.from_date:
            return False
        if self.window is not None and not Window(self.window[0], self.window[1], None).active(_tod(at)):
            return False
        return True


class Entry(NamedTuple):
    """One ModelPrice row (or one of its time windows / variants), precomputed for the hot path.

    Classic fields: integer pico-USD per token / per request / per unit, every fallback resolved (a missing
    cache price is the input price at the same tier, a missing 1-hour write price the 5-minute one); `tiers`
    is sorted by threshold, highest first: (above, input, output, cache_read, cache_write, cache_write_1h).
    `extra` names the usage keys priced beyond the classic ones; `plan` prices every priced unit by the
    registry's leaf decomposition and is used only when a call reports one of `extra`.
    """

    price_id: int
    input: int
    output: int
    cache_read: int
    cache_write: int
    tiers: tuple[tuple[int, int, int, int, int, int], ...]
    per_request: int
    per_unit: int
    cache_write_1h: int = 0
    unit_field: str = ""
    extra: frozenset = frozenset()
    plan: tuple = ()
    windows: tuple = ()
    variants: tuple = ()
    source: str = ""  # registry | admin | override
    label: str = ""  # which window / variant this is ("" = the row's own price)
    maps: tuple = ({}, ())  # (prices by registry price key, tiers): what windows and variants start from
    memo: dict | None = None


def _tod(at: datetime) -> int:
    t = at.astimezone(dt_timezone.utc) if at.utcoffset() else at
    return ((t.hour * 60 + t.minute) * 60 + t.second) * 1_000_000 + t.microsecond


def _clock(text: str) -> int:
    """"HH:MM" or "HH:MM:SS" (UTC) → microseconds of the day."""
    parts = [int(p) for p in str(text).split(":")]
    if len(parts) not in (2, 3) or not 0 <= parts[0] <= 24 or not 0 <= parts[1] < 60:
        raise ValueError(f"time {text!r} is not HH:MM")
    seconds = parts[0] * 3600 + parts[1] * 60 + (parts[2] if len(parts) == 3 else 0)
    if seconds > 86400:
        raise ValueError(f"time {text!r} is past 24:00")
    return seconds * 1_000_000


def _clock_text(us: int) -> str:
    minutes = us // 60_000_000
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _pico_per_token(value) -> int:
    """USD per 1M tokens (≤ 6 decimals) → integer pico-USD per token. Refuses anything inexact."""
    pico = pico_per_count(value, 1_000_000)
    if not isinstance(pico, int):  # pragma: no cover - a power of ten: pico_per_count refuses first
        raise ValueError(f"price {value} per 1M tokens has more than six decimals")
    return pico


def _pico(value) -> int:
    """USD (≤ 12 decimals) → integer pico-USD."""
    return 0 if value is None else usd_to_pico(value)


def _optional(value):
    return None if value is None or value == "" else value


def _canonical_prices(prices: dict, *, where: str) -> dict[str, object]:
    out = {}
    for key, value in (prices or {}).items():
        canon = price_key_canonical(key)
        if canon is None:
            raise KeyError(f"{where}: unknown price key {key!r}")
        if _optional(value) is not None:
            out[canon] = value
    return out


def _canonical_tiers(tiers, *, where: str) -> tuple[dict, ...]:
    out = []
    for tier in tiers or ():
        item = {"above": int(tier["above"])}
        item.update(_canonical_prices({k: v for k, v in tier.items() if k != "above"}, where=where))
        out.append(item)
    return tuple(out)


def row_maps(price: ModelPrice) -> tuple[dict, tuple]:
    """A row's prices as (registry price key → value, tiers with registry keys): the typed columns mapped onto
    units (`cached_input_mtok` → `cache_read_mtok`, `per_request_usd` → `requests_kcount`) plus `unit_prices`."""
    prices: dict[str, object] = {"input_mtok": price.input_mtok or 0, "output_mtok": price.output_mtok or 0}
    for column, key in COLUMN_PRICE_KEYS.items():
        if column not in ("input_mtok", "output_mtok") and _optional(getattr(price, column)) is not None:
            prices[key] = getattr(price, column)
    if _optional(price.per_request_usd) is not None:
        prices["requests_kcount"] = Decimal(str(price.per_request_usd)) * 1000
    extra = _canonical_prices(price.unit_prices or {}, where="unit prices")
    for key in extra:
        if key in COLUMN_KEYS:
            raise KeyError(f"unit prices: {key!r} has its own column")
    prices.update(extra)
    return prices, _canonical_tiers(price.tiers, where="tiers")


def _source_kind(price: ModelPrice) -> str:
    if price.org_id is not None:
        return "override"
    return "registry" if price.source == SOURCE_REGISTRY else "admin"


def _compile(price_id: int, prices: dict, tiers: tuple, *, per_unit: int = 0, unit_field: str = "",
             source: str = "", label: str = "", windows: tuple = (), variants: tuple = ()) -> Entry:
    """(prices, tiers) in registry price keys → an Entry. A key a tier leaves out keeps the row's price; a cache
    price missing from both the tier and the row is the tier's input price (the 1-hour write: the 5-minute one)."""
    def get(src, key):
        value = src.get(key)
        return None if value is None else _pico_per_token(value)

    base_in = get(prices, "input_mtok") or 0
    base_out = get(prices, "output_mtok") or 0
    base_cr, base_cw, base_cw1h = get(prices, "cache_read_mtok"), get(prices, "cache_write_mtok"), \
        get(prices, "cache_write_1h_mtok")
    classic_tiers = []
    thresholds = sorted({t["above"] for t in tiers})
    for above in thresholds:
        tier: dict = {}
        for t in tiers:
            if t["above"] == above:
                tier.update(t)
        t_in, t_out = get(tier, "input_mtok"), get(tier, "output_mtok")
        tin = base_in if t_in is None else t_in
        tout = base_out if t_out is None else t_out
        t_cr, t_cw, t_cw1h = get(tier, "cache_read_mtok"), get(tier, "cache_write_mtok"), \
            get(tier, "cache_write_1h_mtok")
        tcr = t_cr if t_cr is not None else (base_cr if base_cr is not None else tin)
        tcw = t_cw if t_cw is not None else (base_cw if base_cw is not None else tin)
        tcw1h = t_cw1h if t_cw1h is not None else (base_cw1h if base_cw1h is not None else tcw)
        classic_tiers.append((above, tin, tout, tcr, tcw, tcw1h))
    classic_tiers.sort(key=lambda t: t[0], reverse=True)
    cache_read = base_in if base_cr is None else base_cr
    cache_write = base_in if base_cw is None else base_cw
    cache_write_1h = cache_write if base_cw1h is None else base_cw1h
    per_request = 0
    if prices.get("requests_kcount") is not None:
        per_request = pico_per_count(prices["requests_kcount"], 1000)
        if not isinstance(per_request, int):  # pragma: no cover - per 1,000 is a power of ten
            raise ValueError("request price is not a whole pico-USD")

    # Units beyond the classic ones: the generic plan prices every priced unit (the classic ones with their
    # fallbacks resolved, as above) by the registry's leaf decomposition.
    classic_keys = set(COLUMN_PRICE_KEYS.values()) | {"requests_kcount"}
    extra_keys = {k for k in prices if k not in classic_keys} | {k for t in tiers for k in t
                                                                   if k != "above" and k not in classic_keys}
    plan: tuple = ()
    extra = frozenset()
    if extra_keys:
        specs: dict[str, tuple] = {}
        rev = list(reversed(classic_tiers))  # ascending
        for i, usage_key in enumerate(CLASSIC_USAGE_KEYS):
            base = (base_in, base_out, cache_read, cache_write, cache_write_1h)[i]
            specs[usage_key] = (base, tuple((t[0], t[1 + i]) for t in rev))
        for key in sorted(extra_keys):
            unit = BY_PRICE_KEY[key]
            base = pico_per_count(prices[key], unit.per) if prices.get(key) is not None else 0
            steps = tuple((t["above"], pico_per_count(t[key], unit.per)) for t in sorted(tiers, key=lambda t: t["above"])
                          if t.get(key) is not None)
            specs[unit.usage_key] = (base, steps)
        priced = sorted((UNITS[k] for k in specs), key=lambda u: (-len(u.dimensions), u.usage_key))
        plan = tuple((u.usage_key, tuple(d.usage_key for d in priced if u.contains(d)), *specs[u.usage_key])
                     for u in priced)
        extra = frozenset(BY_PRICE_KEY[k].usage_key for k in extra_keys)
    return Entry(
        price_id=price_id, input=base_in, output=base_out, cache_read=cache_read, cache_write=cache_write,
        tiers=tuple(classic_tiers), per_request=per_request, per_unit=per_unit, cache_write_1h=cache_write_1h,
        unit_field=unit_field, extra=extra, plan=plan, windows=windows, variants=variants, source=source,
        label=label, maps=(prices, tiers), memo={} if variants else None,
    )


def _variant_name(when: dict) -> str:
    names = []
    for key, value in when.items():
        if key == "processing":
            names.append(value)
        elif key == "service_tier":
            names.append(f"{value} tier")
        elif key == "speed":
            names.append(f"{value} speed")
        else:
            names.append(f"{key} {value}")
    return " ".join(names)


def entry_build(price: ModelPrice) -> Entry:
    """Precompute a price row with its time windows and variants (ValueError / KeyError on anything we cannot
    price exactly)."""
    prices, tiers = row_maps(price)
    per_unit = _pico(_optional(price.per_unit_usd))
    unit_field = (price.unit_field or "").strip()
    source = _source_kind(price)
    variants = []
    for i, raw in enumerate(price.variants or [], start=1):
        when = raw.get("when") or {}
        if not when or not all(isinstance(k, str) and isinstance(v, str) and v for k, v in when.items()):
            raise ValueError(f"variant {i}: \"when\" must map context keys to values")
        window = raw.get("window")
        variant_prices = _canonical_prices(raw.get("prices") or {}, where=f"variant {i}")
        variant_tiers = _canonical_tiers(raw.get("tiers"), where=f"variant {i}")
        for key, value in variant_prices.items():
            pico_per_count(value, BY_PRICE_KEY[key].per)  # refuses what cannot be priced exactly
        variants.append(Variant(
            when=tuple(sorted(when.items())),
            from_date=date.fromisoformat(raw["from"]) if raw.get("from") else None,
            window=(_clock(window[0]), _clock(window[1])) if window else None,
            prices=variant_prices, tiers=variant_tiers, name=_variant_name(when),
        ))
    variants_t = tuple(variants)
    windows = []
    for i, raw in enumerate(price.time_windows or [], start=1):
        start, end = _clock(raw["start"]), _clock(raw["end"])
        w_prices = _canonical_prices(raw.get("prices") or {}, where=f"time window {i}")
        w_tiers = _canonical_tiers(raw.get("tiers"), where=f"time window {i}")
        w_entry = _compile(price.pk, w_prices, w_tiers, per_unit=per_unit, unit_field=unit_field, source=source,
                           label=f"{_clock_text(start)}–{_clock_text(end)} UTC", variants=variants_t)
        windows.append(Window(start, end, w_entry))
    label = ""
    if windows:
        label = "outside " + ", ".join(w.entry.label.removesuffix(" UTC") for w in windows) + " UTC"
    return _compile(price.pk, prices, tiers, per_unit=per_unit, unit_field=unit_field, source=source, label=label,
                    windows=tuple(windows), variants=variants_t)


MEMO_PER_ENTRY = 4096  # resolved (window, variants) price sets kept per row before its memo starts over


def _pct(new, old) -> str:
    if not old:
        return ""
    change = (Fraction(new) / Fraction(old) - 1) * 100
    if change == 0:
        return ""
    rounded = round(change)
    text = f"{abs(rounded)}%" if rounded == change or abs(change) >= 1 else f"{abs(float(change)):.1f}%"
    return ("−" if change < 0 else "+") + text


def entry_resolve(entry: Entry, at: datetime, context: dict | None) -> Entry:
    """The prices in force for a call at `at` with `context`: the first active time window (else the row's own
    prices), then, price key by price key, the first variant whose context matches (genai-prices' get_prices)."""
    std = entry
    if entry.windows:
        tod = _tod(at)
        for window in entry.windows:
            if window.active(tod):
                std = window.entry
                break
    if not context or not entry.variants:
        return std
    if at.utcoffset():
        at = at.astimezone(dt_timezone.utc)
    memo = entry.memo
    # Variants depend on the context and (through `from`) the UTC day; one with a time window, on the time too.
    day_key = None
    if not any(v.window for v in entry.variants):
        day_key = (std.label, tuple(sorted(context.items())), at.toordinal())
        found = memo.get(day_key)
        if found is not None:
            return found
    applied = tuple(i for i, v in enumerate(entry.variants) if v.applies(at, context))
    if not applied:
        if day_key is not None and len(memo) < MEMO_PER_ENTRY:
            memo[day_key] = std
        return std
    memo_key = (std.label, applied)
    found = memo.get(memo_key)
    if found is not None:
        if day_key is not None and len(memo) < MEMO_PER_ENTRY:
            memo[day_key] = found
        return found
    base, tiers = std.maps
    prices = dict(base)
    tier_list = [dict(t) for t in tiers]
    claimed: set[str] = set()
    names = []
    for i in applied:
        variant = entry.variants[i]
        keys = (set(variant.prices) | {k for t in variant.tiers for k in t if k != "above"}) - claimed
        if not keys:
            continue
        claimed |= keys
        first = next((k for k in ("input_mtok", "output_mtok") if k in keys and k in variant.prices), None)
        change = _pct(Decimal(str(variant.prices[first])), Decimal(str(base.get(first, 0)))) if first else ""
        names.append(f"{variant.name} {change}".strip())
        for key in keys:
            if key in variant.prices:
                prices[key] = variant.prices[key]
            else:
                prices.pop(key, None)
            for t in tier_list:
                t.pop(key, None)
        for t in variant.tiers:
            extra = {k: v for k, v in t.items() if k in keys}
            if extra:
                tier_list.append({"above": t["above"], **extra})
    label = " · ".join(x for x in (std.label, ", ".join(names)) if x)
    tiers_t = tuple(t for t in tier_list if len(t) > 1)
    resolved = _compile(entry.price_id, prices, tiers_t, per_unit=entry.per_unit, unit_field=entry.unit_field,
                        source=entry.source, label=label)
    if len(memo) >= MEMO_PER_ENTRY:
        memo.clear()
    memo[memo_key] = resolved
    if day_key is not None:
        memo[day_key] = resolved
    return resolved


def _unit_cost(per_unit_pico, units) -> int:
    if isinstance(units, int) and isinstance(per_unit_pico, int):
        return per_unit_pico * units
    # Fractional units (e.g. seconds): exact, rounded half-even to the pico-USD.
    return _round(Fraction(per_unit_pico) * Fraction(Decimal(str(units))))


def _round(value) -> int:
    """An exact amount (int or Fraction) → whole pico-USD, half to even."""
    if isinstance(value, int):
        return value
    floor = value.numerator // value.denominator
    rest = value - floor
    if rest > Fraction(1, 2) or (rest == Fraction(1, 2) and floor % 2):
        return floor + 1
    return floor


def _entry_cost(entry: Entry, input_tokens: int, output_tokens: int, cached_input_tokens: int,
                cache_write_tokens: int, units, cache_write_1h_tokens: int = 0, usage: dict | None = None) -> int:
    # The 1-hour writes are a part of the cache writes (Anthropic reports both, genai-prices counts so).
    one_hour = min(cache_write_1h_tokens, cache_write_tokens) if cache_write_1h_tokens > 0 else 0
    if usage and entry.extra and not entry.extra.isdisjoint(usage):
        cost = _plan_cost(entry, input_tokens, output_tokens, cached_input_tokens, cache_write_tokens, one_hour,
                          usage)
    else:
        p_in, p_out, p_cr, p_cw, p_cw1h = entry.input, entry.output, entry.cache_read, entry.cache_write, \
            entry.cache_write_1h
        for above, t_in, t_out, t_cr, t_cw, t_cw1h in entry.tiers:  # highest threshold first
            if input_tokens > above:
                p_in, p_out, p_cr, p_cw, p_cw1h = t_in, t_out, t_cr, t_cw, t_cw1h
                break
        uncached = input_tokens - cached_input_tokens - cache_write_tokens
        if uncached < 0:
            uncached = 0
        cost = (uncached * p_in + cached_input_tokens * p_cr + (cache_write_tokens - one_hour) * p_cw
                + one_hour * p_cw1h + output_tokens * p_out + entry.per_request)
    if units and entry.per_unit:
        cost += _unit_cost(entry.per_unit, units)
    return cost


def _plan_cost(entry: Entry, input_tokens: int, output_tokens: int, cached: int, cache_write: int, one_hour: int,
               usage: dict) -> int:
    """Every priced unit by the registry's leaf decomposition: a unit pays for its count minus what its priced
    parts already paid for; each unit at the tier the call's input tokens reach."""
    counts = dict(usage)
    counts["input_tokens"] = input_tokens
    counts["output_tokens"] = output_tokens
    counts["cache_read_tokens"] = cached
    counts["cache_write_tokens"] = cache_write
    counts["cache_write_1h_tokens"] = one_hour
    leaves: dict[str, int] = {}
    total = entry.per_request
    for key, parts, base, steps in entry.plan:
        count = counts.get(key, 0)
        for part in parts:
            count -= leaves[part]
        if count < 0:
            count = 0  # more of the parts than the whole: the registry refuses such usage; nothing is charged twice
        leaves[key] = count
        if count:
            price = base
            for above, step in reversed(steps):
                if input_tokens > above:
                    price = step
                    break
            total += price * count
    return _round(total)


def cost_compute(*, price: ModelPrice, input_tokens: int, output_tokens: int, cached_input_tokens: int = 0,
                 cache_write_tokens: int = 0, units=None, cache_write_1h_tokens: int = 0, usage: dict | None = None,
                 at: datetime | None = None, context: dict | None = None) -> int:
    """The cost of one call in integer pico-USD.

    ((input − cached − cache_write) × in + cached × cache_read + (cache_write − 1h) × cache_write_price
    + 1h × cache_write_1h_price + output × out) / 10^6 at the request's tier (the highest tier whose
    `above` the input exceeds prices every token), plus `per_request_usd` once and `per_unit_usd × units`;
    with `usage` (further units: `web_searches`, `input_audio_tokens`, …) every unit the row prices, each token
    once at its most specific priced unit. `at` and `context` select the time window and variants.
    """
    entry = entry_build(price)
    if at is not None:
        entry = entry_resolve(entry, at, context)
    return _entry_cost(entry, input_tokens, output_tokens, cached_input_tokens, cache_write_tokens, units,
                       cache_write_1h_tokens, usage)


# The metadata keys the collector reads usage from (docs/api.md, docs/pricing.md).
META_CACHE_WRITE_1H = "cache_write_1h_tokens"
META_UNITS = "units"


MAX_METADATA_COUNT = 10**12  # more units or tokens than this in one call is not a count: ignored


def _count(value, *, whole: bool):
    """A usage count from metadata: a non-negative number (whole for tokens), else None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value if 0 <= value <= MAX_METADATA_COUNT else None
    if not whole and isinstance(value, float) and 0 <= value <= MAX_METADATA_COUNT:
        return value
    return None


def metadata_usage(entry: Entry, metadata: dict | None, usage: dict | None = None) -> tuple[object, int]:
    """(units, 1-hour cache-write tokens) an event carries for this price row: from its `usage`, else its metadata.

    Units are read from the row's `unit_field` (e.g. Pinecone `read_units`), or `units` when the
    row names none; anything but a non-negative number is ignored (the call is priced without it).
    """
    units = None
    one_hour = 0
    if usage:
        if entry.per_unit:
            units = usage.get(entry.unit_field or META_UNITS)
        one_hour = usage.get(META_CACHE_WRITE_1H) or 0
    if metadata and isinstance(metadata, dict):
        if entry.per_unit and units is None:
            units = _count(metadata.get(entry.unit_field or META_UNITS), whole=False)
        if not one_hour:
            one_hour = _count(metadata.get(META_CACHE_WRITE_1H), whole=True) or 0
    return units, one_hour


# --- Provider aliases and model-name normalisation --------------------------------------------

# Names an event may carry → the providers whose prices apply, in order (before the maker).
PROVIDER_ALIASES: dict[str, tuple[str, ...]] = {
    "azure_openai": ("azure",),
    "azure_ai": ("azure",),
    "bedrock": ("aws",),
    "aws_bedrock": ("aws",),
    "amazon_bedrock": ("aws",),
    "vertex": ("google",),
    "vertex_ai": ("google",),
    "google_vertex": ("google",),
    "gemini": ("google",),
    "google_genai": ("google",),
    "google_ai": ("google",),
    "xai": ("x-ai",),
    "grok": ("x-ai",),
    "mistralai": ("mistral",),
    "together_ai": ("together",),
    "togetherai": ("together",),
    "fireworks_ai": ("fireworks",),
    "moonshot": ("moonshotai",),
    "amazon": ("aws",),
}
# Resellers: after their own prices, the maker's (guessed from the model name) apply.
RESELLERS = frozenset({"azure_openai", "azure", "azure_ai", "bedrock", "aws", "aws_bedrock", "amazon_bedrock",
                       "vertex", "vertex_ai", "google_vertex", "google", "openrouter", "litellm"})

_MAKERS: tuple[tuple[re.Pattern, str], ...] = tuple((re.compile(p), m) for p, m in (
    (r"^claude", "anthropic"),
    (r"^(gpt|o\d|chatgpt|text-embedding-(ada|3)|dall-e|whisper|tts-|davinci|babbage|codex|omni-moderation|computer-use)",
     "openai"),
    (r"^(gemini|gemma|imagen|veo|text-embedding-00|text-multilingual-embedding|embedding-00)", "google"),
    (r"^(mistral|mixtral|codestral|pixtral|ministral|magistral|devstral|voxtral|open-mistral|open-mixtral)", "mistral"),
    (r"^(command|embed-|rerank|c4ai|aya)", "cohere"),
    (r"^(llama|meta-llama)", "meta"),
    (r"^(titan|nova)", "aws"),
    (r"^deepseek", "deepseek"),
    (r"^grok", "x-ai"),
    (r"^(kimi|moonshot)", "moonshotai"),
))
# Bedrock ids: optional ARN, optional region prefix, "<vendor>.", the name, "-vN[:M]".
_BEDROCK_ARN = re.compile(r"^arn:aws[^/]*/")
_BEDROCK_REGION = re.compile(r"^(us|eu|apac|ap|ca|jp|au|global|us-gov)\.")
_BEDROCK_VENDOR = re.compile(r"^(anthropic|meta|amazon|mistral|cohere|ai21|deepseek|openai|qwen|writer)\.")
_BEDROCK_VERSION = re.compile(r"-v\d+(:\d+)?$|:\d+$")
_BEDROCK_VENDOR_PROVIDER = {"amazon": "aws", "ai21": "ai21"}
_VERTEX_DATE = re.compile(r"@(\d{8})$")
_VERTEX_PATH = re.compile(r"^(projects/[^/]+/locations/[^/]+/)?publishers/([^/]+)/models/")
_COMPACT_DATE = re.compile(r"(-)(20\d{2})(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])(?=-|:|$)")


def _provider_key(provider: str) -> str:
    return (provider or "").strip().lower().replace("-", "_") if provider else ""


def _maker(model: str) -> str | None:
    for pattern, maker in _MAKERS:
        if pattern.search(model):
            return maker
    return None


def _compact_date_dashed(model: str) -> str:
    """`gpt-5.2-20251211` → `gpt-5.2-2025-12-11` (how the registry spells dated OpenAI names)."""
    def repl(m: re.Match) -> str:
        try:
            date(int(m.group(2)), int(m.group(3)), int(m.group(4)))
        except ValueError:
            return m.group(0)
        return f"-{m.group(2)}-{m.group(3)}-{m.group(4)}"
    return _COMPACT_DATE.sub(repl, model)


def lookup_chain(provider: str, model: str) -> list[tuple[str, str]]:
    """The (provider, model name) pairs to try, in order. Names are lower-case."""
    raw_provider = (provider or "").strip().lower()
    key = _provider_key(raw_provider)
    m = (model or "").strip().lower()
    chain: list[tuple[str, str]] = [(raw_provider, m)]
    for alias in PROVIDER_ALIASES.get(key, ()):
        chain.append((alias, m))

    maker_model = m
    maker = None
    if key in {"bedrock", "aws", "aws_bedrock", "amazon_bedrock", "amazon"}:
        stripped = _BEDROCK_ARN.sub("", m)
        stripped = _BEDROCK_REGION.sub("", stripped)
        vendor = _BEDROCK_VENDOR.match(stripped)
        if vendor:
            maker = _BEDROCK_VENDOR_PROVIDER.get(vendor.group(1), vendor.group(1))
            stripped = stripped[vendor.end():]
        maker_model = _BEDROCK_VERSION.sub("", stripped)
        if maker_model != m:
            chain.append(("aws", maker_model))
    elif key in {"vertex", "vertex_ai", "google_vertex", "google", "gemini", "google_genai"}:
        path = _VERTEX_PATH.match(m)
        if path:  # projects/…/publishers/<maker>/models/<name>
            maker = path.group(2)
            m_short = m[path.end():]
            chain.append(("google", m_short))
            maker_model = m_short
        maker_model = _VERTEX_DATE.sub(r"-\1", maker_model)
        if maker_model not in {c[1] for c in chain}:
            chain.append(("google", maker_model))
    elif key in {"openrouter", "litellm"} and "/" in m:
        vendor, _, rest = m.partition("/")
        maker = "meta" if vendor == "meta-llama" else PROVIDER_ALIASES.get(_provider_key(vendor), (vendor,))[0]
        maker_model = rest

    if key in RESELLERS or raw_provider in RESELLERS:
        maker = maker or _maker(maker_model)
        if maker:
            chain.append((maker, maker_model))
            if maker == "meta":
                chain.append(("aws", maker_model))

    dashed = [(p, _compact_date_dashed(mm)) for p, mm in chain]
    for item in dashed:
        if item not in chain:
            chain.append(item)
    seen: set[tuple[str, str]] = set()
    return [c for c in chain if not (c in seen or seen.add(c))]


# --- Match rules -------------------------------------------------------------------------------

def _literal_length(pattern: str) -> int:
    """How much fixed text a regex pins down: its literal characters (the specificity of a regex)."""
    try:
        from re import _parser  # type: ignore[attr-defined]
        parsed = _parser.parse(pattern)
    except Exception:  # noqa: BLE001 - an odd pattern falls back to its length
        return len(pattern)

    def count(items) -> int:
        total = 0
        for op, arg in items:
            name = str(op)
            if name == "LITERAL":
                total += 1
            elif name == "SUBPATTERN":
                total += count(arg[-1])
            elif name == "BRANCH":
                total += min((count(b) for b in arg[1]), default=0)
            elif name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
                low, _high, sub = arg
                total += min(low, 64) * count(sub)
            elif name == "ASSERT":
                total += count(arg[1])
            elif name == "ATOMIC_GROUP":
                total += count(arg)
        return total

    return count(parsed)


@dataclass
class _Rule:
    """All versions of one (scope, provider, kind, match): [(effective_from, entry)], oldest first."""

    kind: str
    match: str
    versions: list[tuple[datetime, Entry]]
    specificity: int = 0
    regex: re.Pattern | None = None

    @property
    def start(self) -> datetime:
        return self.versions[0][0]

    def at(self, when: datetime) -> Entry | None:
        i = bisect_right(self.versions, when, key=lambda v: v[0]) - 1
        return self.versions[i][1] if i >= 0 else None


@dataclass
class _ProviderRules:
    exact: dict[str, _Rule]
    prefix: dict[str, _Rule]
    regex: list[_Rule]
    max_prefix: int = 0

    def matching(self, model: str) -> list[_Rule]:
        """Rules that match `model`, best first: exact, then the longest literal text, prefix before regex."""
        found: list[tuple[tuple, _Rule]] = []
        rule = self.exact.get(model)
        if rule is not None:
            found.append(((0, 0, 0, ""), rule))
        for n in range(min(len(model), self.max_prefix), 0, -1):
            rule = self.prefix.get(model[:n])
            if rule is not None:
                found.append(((1, -n, 0, rule.match), rule))
        for rule in self.regex:
            if rule.regex.fullmatch(model):
                found.append(((1, -rule.specificity, 1, rule.match), rule))
        found.sort(key=lambda f: f[0])
        return [r for _, r in found]


class _Index:
    """Rows grouped by scope (org id or None) → provider → match rules."""

    def __init__(self, rows: Iterable[ModelPrice]):
        grouped: dict[tuple, list[tuple[datetime, int, Entry]]] = {}
        for row in rows:
            try:
                entry = entry_build(row)
            except (ValueError, KeyError, TypeError, ArithmeticError):
                logger.warning("ModelPrice %s has an invalid price; ignored", row.pk, exc_info=True)
                continue
            match = row.model_match.strip()
            if row.match_kind != ModelPrice.MatchKind.REGEX:
                match = match.lower()  # regexes keep their case (\Z, \D…) and compile case-insensitively
            key = (row.org_id, row.provider.strip().lower(), row.match_kind, match)
            grouped.setdefault(key, []).append((row.effective_from, row.pk, entry))
        self.scopes: dict[int | None, dict[str, _ProviderRules]] = {}
        for (org_id, provider, kind, match), versions in grouped.items():
            versions.sort(key=lambda v: (v[0], v[1]))
            deduped: list[tuple[datetime, Entry]] = []
            for eff, _pk, entry in versions:  # same instant twice: the later row wins
                if deduped and deduped[-1][0] == eff:
                    deduped[-1] = (eff, entry)
                else:
                    deduped.append((eff, entry))
            rule = _Rule(kind=kind, match=match, versions=deduped)
            rules = self.scopes.setdefault(org_id, {}).setdefault(provider, _ProviderRules({}, {}, []))
            if kind == ModelPrice.MatchKind.EXACT:
                rules.exact[match] = rule
            elif kind == ModelPrice.MatchKind.PREFIX:
                rule.specificity = len(match)
                rules.prefix[match] = rule
                rules.max_prefix = max(rules.max_prefix, len(match))
            else:
                try:
                    rule.regex = re.compile(match, re.IGNORECASE)
                except re.error:
                    logger.warning("ModelPrice regex %r does not compile; ignored", match)
                    continue
                rule.specificity = _literal_length(match)
                rules.regex.append(rule)

    def rules(self, org_id: int | None, provider: str, model: str) -> list[_Rule]:
        ordered: list[_Rule] = []
        seen: set[int] = set()
        scopes = (org_id, None) if org_id is not None else (None,)
        chain = lookup_chain(provider, model)
        for scope in scopes:
            by_provider = self.scopes.get(scope)
            if not by_provider:
                continue
            for prov, name in chain:
                rules = by_provider.get(prov)
                if rules is None:
                    continue
                for rule in rules.matching(name):
                    if id(rule) not in seen:
                        seen.add(id(rule))
                        ordered.append(rule)
        return ordered

    def timeline(self, org_id: int | None, provider: str, model: str) -> tuple[list[datetime], list[Entry]]:
        """The price in force over time: at t, the first rule (best first) that has started, at its latest version."""
        rules = self.rules(org_id, provider, model)
        if not rules:
            return [], []
        instants = sorted({eff for rule in rules for eff, _ in rule.versions})
        times: list[datetime] = []
        entries: list[Entry] = []
        for instant in instants:
            for rule in rules:
                if rule.start <= instant:
                    entry = rule.at(instant)
                    break
            else:  # pragma: no cover - every instant is some rule's version
                continue
            if not entries or entries[-1] is not entry:
                times.append(instant)
                entries.append(entry)
        return times, entries


def _at(timeline: tuple[list[datetime], list[Entry]], at: datetime) -> Entry | None:
    times, entries = timeline
    i = bisect_right(times, at) - 1
    return entries[i] if i >= 0 else None


# --- Single lookups ----------------------------------------------------------------------------

def price_resolve(*, org_id: int | None, provider: str, model: str, at: datetime) -> ModelPrice | None:
    """The price for one call, or None. See the module docstring for the order of precedence."""
    chain = lookup_chain(provider, model)
    providers = {p for p, _ in chain}
    names = {n for _, n in chain}
    prefixes = {n[:i] for n in names for i in range(1, len(n) + 1)}
    scope = Q(org__isnull=True) | Q(org_id=org_id) if org_id is not None else Q(org__isnull=True)
    rows = list(
        ModelPrice.objects.unscoped()
        .annotate(match_lower=Lower("model_match"))
        .filter(scope, provider__in=providers, effective_from__lte=at)
        .filter(Q(match_kind=ModelPrice.MatchKind.EXACT, match_lower__in=names)
                | Q(match_kind=ModelPrice.MatchKind.PREFIX, match_lower__in=prefixes)
                | Q(match_kind=ModelPrice.MatchKind.REGEX))
    )
    entry = _at(_Index(rows).timeline(org_id, provider, model), at)
    if entry is None:
        return None
    return next(row for row in rows if row.pk == entry.price_id)


# --- Negotiated discounts (docs/pricing.md § Discounts) ------------------------------------------------

class Discount(NamedTuple):
    """One version of an org's discount rule: `percent` off the list price from `effective_from`."""

    percent: Decimal
    match_kind: str
    model_match: str  # "" = every model of the provider
    effective_from: datetime
    discount_id: int = 0
    keep: int | None = None  # (100 − percent) / 100 in millionths (`_keep_millionths`)


def _keep_millionths(percent: Decimal) -> int | None:
    """(100 − percent) / 100 in millionths, or None when `percent` has more than four decimals."""
    scaled = Decimal(percent) * 10_000
    return 1_000_000 - int(scaled) if scaled == scaled.to_integral_value() else None


def _net(list_cost: int, keep: int) -> int:
    quotient, rest = divmod(list_cost * keep, 1_000_000)
    if rest > 500_000 or (rest == 500_000 and quotient % 2):
        quotient += 1
    return quotient


def discount_apply(list_cost: int, percent: Decimal) -> int:
    """The net cost of a call listed at `list_cost` pico-USD with `percent` off: exact, rounded once, half to even.

    `percent` has at most four decimals (the model's field), so list × (100 − percent) / 100 is
    list × (10^6 − percent × 10^4) / 10^6 exactly, in integers; the one rounding is to the whole pico-USD.
    """
    keep = _keep_millionths(percent)
    if keep is None:  # more decimals than the model stores: still exact
        return _round(Fraction(list_cost) * (100 - Fraction(Decimal(percent))) / 100)
    return _net(list_cost, keep)


class _DiscountIndex:
    """Discount rules by org → provider: [(order key, kind, match, regex, versions oldest first)].

    A call's discount: among the org's rules for the call's provider (as the call reports it, lower-cased) that
    match its model, the most specific first (an exact name, then the longest prefix, then a regex by its literal
    length, then the provider-wide rule); the first one with a version effective at the call's time wins, at its
    latest such version. A 0% version ends a discount."""

    def __init__(self, rows: Iterable[PriceDiscount]):
        grouped: dict[tuple, list[Discount]] = {}
        for row in rows:
            match = (row.model_match or "").strip()
            kind = row.match_kind if match else ""
            if kind != ModelPrice.MatchKind.REGEX:
                match = match.lower()
            grouped.setdefault((row.org_id, row.provider.strip().lower(), kind, match), []).append(
                Discount(Decimal(row.percent), kind, match, row.effective_from, row.pk,
                         _keep_millionths(Decimal(row.percent))))
        self.scopes: dict[int, dict[str, list[tuple]]] = {}
        for (org_id, provider, kind, match), versions in grouped.items():
            versions.sort(key=lambda d: (d.effective_from, d.discount_id))
            regex = None
            if kind == ModelPrice.MatchKind.EXACT:
                order = (0, 0)
            elif kind == ModelPrice.MatchKind.PREFIX:
                order = (1, -len(match))
            elif kind == ModelPrice.MatchKind.REGEX:
                try:
                    regex = re.compile(match, re.IGNORECASE)
                except re.error:
                    logger.warning("PriceDiscount regex %r does not compile; ignored", match)
                    continue
                order = (2, -_literal_length(match))
            else:
                order = (3, 0)
            self.scopes.setdefault(org_id, {}).setdefault(provider, []).append((order, kind, match, regex, versions))
        for by_provider in self.scopes.values():
            for rules in by_provider.values():
                rules.sort(key=lambda r: (r[0], r[2]))

    def rules(self, org_id: int | None, provider: str, model: str) -> list[list[Discount]]:
        by_provider = self.scopes.get(org_id)
        if not by_provider:
            return []
        name = model.lower()
        found = []
        for _order, kind, match, regex, versions in by_provider.get(provider.strip().lower(), ()):
            if (kind == "" or (kind == ModelPrice.MatchKind.EXACT and name == match)
                    or (kind == ModelPrice.MatchKind.PREFIX and name.startswith(match))
                    or (regex is not None and regex.fullmatch(model))):
                found.append(versions)
        return found


def _discount_at(rules: list[list[Discount]], at: datetime) -> Discount | None:
    for versions in rules:
        i = bisect_right(versions, at, key=lambda d: d.effective_from) - 1
        if i >= 0:
            return versions[i]
    return None


# --- The in-memory price book (the batch path) ---------------------------------------------------

class PriceBook:
    """Every ModelPrice in memory, with a per-(org, provider, model) memo of the price timeline.

    Pricing a repeated model is a dict lookup and a bisect on time. Build it with
    `price_book_get()`, which reloads it when `price_book_invalidate()` has run anywhere.
    """

    MEMO_LIMIT = 200_000  # distinct (org, provider, model) timelines kept before the memo starts over
    version: int | None = None  # the price table's version it was loaded at (stored on the calls it prices)

    def __init__(self, rows: Iterable[ModelPrice], discounts: Iterable[PriceDiscount] = ()):
        self._index = _Index(rows)
        self._memo: dict[tuple[int | None, str, str], tuple[list[datetime], list[Entry]]] = {}
        self._discounts = _DiscountIndex(discounts)
        self._discount_memo: dict[tuple[int | None, str, str], list[list[Discount]]] = {}

    def _timeline(self, org_id: int | None, provider: str, model: str) -> tuple[list[datetime], list[Entry]]:
        if org_id not in self._index.scopes:
            org_id = None  # an org without overrides shares the global timelines
        key = (org_id, provider, model)
        timeline = self._memo.get(key)
        if timeline is None:
            if len(self._memo) >= self.MEMO_LIMIT:
                self._memo.clear()
            timeline = self._memo[key] = self._index.timeline(org_id, provider, model)
        return timeline

    @classmethod
    def load(cls) -> PriceBook:
        return cls(ModelPrice.objects.unscoped().all(), PriceDiscount.objects.unscoped().all())

    def discount(self, *, org_id: int | None, provider: str, model: str, at: datetime) -> Discount | None:
        """The org's discount in force for such a call at `at` (None: none, or a 0% one)."""
        if org_id not in self._discounts.scopes:
            return None
        key = (org_id, provider, model)
        rules = self._discount_memo.get(key)
        if rules is None:
            if len(self._discount_memo) >= self.MEMO_LIMIT:
                self._discount_memo.clear()
            rules = self._discount_memo[key] = self._discounts.rules(org_id, provider, model)
        found = _discount_at(rules, at)
        return found if found is not None and found.percent else None

    def resolve(self, *, org_id: int | None, provider: str, model: str, at: datetime) -> Entry | None:
        return _at(self._timeline(org_id, provider, model), at)

    def quote(self, *, org_id: int | None, provider: str, model: str, at: datetime, input_tokens: int,
              output_tokens: int, cached_input_tokens: int = 0, cache_write_tokens: int = 0, units=None,
              cache_write_1h_tokens: int = 0, metadata: dict | None = None, usage: dict | None = None,
              context: dict | None = None, reasoning_tokens: int = 0) -> Quote | None:
        """What prices the call and what it costs, or None when no price matches.

        `usage` holds the units beyond the token fields (`web_searches`, `input_audio_tokens`, …); `context`
        the call's `service_tier` / `processing` / `speed` (variants); `at` also picks the time window. The
        row's `unit_field` units and the 1-hour cache writes are read from `usage`, else from `metadata`,
        unless given explicitly.
        """
        entry = _at(self._timeline(org_id, provider, model), at)
        if entry is None:
            return None
        if entry.windows or (context and entry.variants):  # most calls: no window, no variant to pick
            entry = entry_resolve(entry, at, context)
        if metadata or usage:
            meta_units, meta_1h = metadata_usage(entry, metadata, usage)
            units = meta_units if units is None else units
            cache_write_1h_tokens = cache_write_1h_tokens or meta_1h
        if reasoning_tokens and entry.extra and "output_reasoning_tokens" in entry.extra:
            usage = {**(usage or {}), "output_reasoning_tokens": reasoning_tokens}
        if not (entry.input or entry.output or entry.per_request):
            # A row that prices only units (Pinecone read units, audio hours) cannot price a call that reports
            # none of them: unpriced, never $0. A row with no price at all is a free model.
            has_units = units is not None and bool(entry.per_unit)
            has_extra = bool(usage) and any(usage.get(k) for k in entry.extra)
            if (entry.per_unit or entry.extra) and not (has_units or has_extra):
                return None
        cost = _entry_cost(entry, input_tokens, output_tokens, cached_input_tokens, cache_write_tokens, units,
                           cache_write_1h_tokens, usage)
        discount = self.discount(org_id=org_id, provider=provider, model=model, at=at) if org_id is not None else None
        if discount is not None:
            net = _net(cost, discount.keep) if discount.keep is not None else discount_apply(cost, discount.percent)
            return Quote(entry.price_id, net, entry.label, entry.source, cost, discount.percent)
        return Quote(entry.price_id, cost, entry.label, entry.source)

    def price(self, *, org_id: int | None, provider: str, model: str, at: datetime, input_tokens: int,
              output_tokens: int, cached_input_tokens: int = 0, cache_write_tokens: int = 0,
              units=None, cache_write_1h_tokens: int = 0, metadata: dict | None = None, usage: dict | None = None,
              context: dict | None = None) -> tuple[int, int] | None:
        """(price_id, cost in pico-USD), or None when no price matches (see `quote`)."""
        quote = self.quote(org_id=org_id, provider=provider, model=model, at=at, input_tokens=input_tokens,
                           output_tokens=output_tokens, cached_input_tokens=cached_input_tokens,
                           cache_write_tokens=cache_write_tokens, units=units,
                           cache_write_1h_tokens=cache_write_1h_tokens, metadata=metadata, usage=usage,
                           context=context)
        return None if quote is None else (quote.price_id, quote.cost)


class Quote(NamedTuple):
    price_id: int
    cost: int  # pico-USD: the net cost (after the org's discount, if any)
    variant: str  # the time window / variant that priced the call ("" = the row's own price)
    source: str  # registry | admin | override
    list_cost: int | None = None  # with a discount: the list price (pico-USD); else None
    discount_pct: Decimal | None = None  # with a discount: the percent off; else None


_book_lock = threading.Lock()
_book: PriceBook | None = None
_book_version: int | None = None
_book_checked_at = 0.0


def price_version_get() -> int:
    """The price table's change counter (one primary-key read)."""
    row = PriceVersion.objects.filter(pk=1).values_list("version", flat=True).first()
    return row or 0


def price_book_get() -> PriceBook:
    """This process's PriceBook, reloaded when the price table's version row has changed (checked ≤ 1/s).

    The version lives in the database, not in a cache: a price written by any process (the admin,
    `sync_prices`, a shell, on any cache backend) reaches every running process within a second.
    """
    global _book, _book_version, _book_checked_at
    now = time.monotonic()
    book = _book
    if book is not None and now - _book_checked_at < VERSION_CHECK_SECONDS:
        return book
    with _book_lock:
        version = price_version_get()  # read before the rows: a write in between is seen next time
        if _book is None or version != _book_version:
            _book = PriceBook.load()
            _book.version = version
            _book_version = version
            metrics.price_book_reloaded()
        _book_checked_at = now
        return _book


def price_book_invalidate() -> None:
    """Make every process reload its PriceBook: this one at once, the others within a second.

    The version bump is part of the caller's transaction: other processes reload when it commits.
    """
    global _book
    updated = PriceVersion.objects.filter(pk=1).update(version=F("version") + 1, changed_at=timezone.now())
    if not updated:
        try:
            with transaction.atomic():
                PriceVersion.objects.create(pk=1, version=1)
        except IntegrityError:  # another process created it first
            PriceVersion.objects.filter(pk=1).update(version=F("version") + 1, changed_at=timezone.now())
    with _book_lock:
        _book = None


def prices_changed() -> None:
    """After any price write: reload the price books, and (after commit) price unpriced events.

    Only the price services (`ingestion.price_services`) call this; write prices through them.
    """
    price_book_invalidate()
    enqueue_on_commit("ingestion.tasks.events_reprice")
