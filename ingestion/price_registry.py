"""The `genai-prices` registry (shipped offline inside the wheel) translated into ModelPrice rows.

One registry model becomes one row per match clause and price period:

- match: `equals` → exact, `starts_with` → prefix, `contains` / `ends_with` / `regex` / `and` → a
  regex (full match, case-insensitive), `or` → one row per branch. When two models of a provider
  translate to the same rule, the first one wins (the registry also takes the first match).
- prices: `input_mtok`, `output_mtok`, `cache_read_mtok` → cache read, `cache_write_mtok`,
  `cache_write_1h_mtok` in their columns, `requests_kcount` → per request, every other unit
  (`web_searches_kcount`, `input_audio_mtok`, `audio_hours`, …) in `unit_prices` under its registry price key.
  Tiered prices (`TieredPrices`) become the row's `tiers`, one entry per distinct threshold holding every
  price at that threshold.
- history: a list of `ConditionalPrice` becomes one row per start date (the first period from `EPOCH`, as
  the registry uses the first price before any start date); time-of-day prices (DeepSeek's) become the
  period's `time_windows`, tried in the registry's order before the row's own price.
- `price_variants` (batch, service tiers, speed, route …) become the row's `variants`, with their start date
  or time window.

Prices with more decimals than a whole pico-USD per unit allows (float artefacts such as 0.18000000000000002
per 1M tokens) are rounded to what the schema stores, and reported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, time, timezone as dt_timezone
from decimal import ROUND_HALF_EVEN, Decimal

from ingestion.models import EPOCH
from ingestion.price_units import BY_PRICE_KEY

SOURCE = "genai-prices"
TWELVE_PLACES = Decimal("0.000000000001")
MAX_MATCH_LENGTH = 256

# Registry price key → ModelPrice field.
TOKEN_PRICE_FIELDS = {
    "input_mtok": "input_mtok",
    "output_mtok": "output_mtok",
    "cache_read_mtok": "cached_input_mtok",
    "cache_write_mtok": "cache_write_mtok",
    "cache_write_1h_mtok": "cache_write_1h_mtok",
}


@dataclass
class RegistryPrice:
    """One would-be global ModelPrice row."""

    provider: str
    match_kind: str
    model_match: str
    display_name: str
    effective_from: datetime
    input_mtok: Decimal = Decimal(0)
    output_mtok: Decimal = Decimal(0)
    cached_input_mtok: Decimal | None = None
    cache_write_mtok: Decimal | None = None
    cache_write_1h_mtok: Decimal | None = None
    tiers: list[dict] = field(default_factory=list)
    per_request_usd: Decimal | None = None
    unit_prices: dict = field(default_factory=dict)
    time_windows: list[dict] = field(default_factory=list)
    variants: list[dict] = field(default_factory=list)
    registry_model_id: str = ""
    rounded: bool = False

    @property
    def key(self) -> tuple[str, str, str, datetime]:
        return self.provider, self.match_kind, self.model_match, self.effective_from

    def values(self) -> dict:
        """The ModelPrice field values this row sets."""
        return {
            "display_name": self.display_name,
            "input_mtok": self.input_mtok,
            "output_mtok": self.output_mtok,
            "cached_input_mtok": self.cached_input_mtok,
            "cache_write_mtok": self.cache_write_mtok,
            "cache_write_1h_mtok": self.cache_write_1h_mtok,
            "tiers": self.tiers,
            "per_request_usd": self.per_request_usd,
            "per_unit_usd": None,
            "unit_field": "",
            "unit_prices": self.unit_prices,
            "time_windows": self.time_windows,
            "variants": self.variants,
        }


@dataclass
class Registry:
    rows: list[RegistryPrice]
    skipped: list[tuple[str, str, str]]  # (provider, model id, reason)
    version: str

    @property
    def providers(self) -> set[str]:
        return {r.provider for r in self.rows}


# --- Match clauses ---------------------------------------------------------------------------

def _escape(text: str) -> str:
    """re.escape, minus the needless `\\-` (outside a character class a hyphen is literal): readable in the admin."""
    return re.escape(text).replace("\\-", "-")


def _clause_regex(clause) -> str:
    """A regex that full-matches exactly the (lower-cased) names the clause matches."""
    from genai_prices import types as gp

    if isinstance(clause, gp.ClauseEquals):
        return _escape(clause.equals.lower())
    if isinstance(clause, gp.ClauseStartsWith):
        return _escape(clause.starts_with.lower()) + ".*"
    if isinstance(clause, gp.ClauseEndsWith):
        return ".*" + _escape(clause.ends_with.lower())
    if isinstance(clause, gp.ClauseContains):
        return ".*" + _escape(clause.contains.lower()) + ".*"
    if isinstance(clause, gp.ClauseRegex):
        pattern = clause.regex
        if pattern.startswith("^") and pattern.endswith("$") and "|" not in pattern and not pattern.endswith("\\$"):
            return pattern[1:-1]
        return f".*(?:{pattern}).*"  # the registry searches; we full-match
    if isinstance(clause, gp.ClauseOr):
        return "(?:" + "|".join(_clause_regex(c) for c in clause.or_) + ")"
    if isinstance(clause, gp.ClauseAnd):
        return "".join(f"(?=(?:{_clause_regex(c)})\\Z)" for c in clause.and_) + ".*"
    raise TypeError(f"unknown match clause {clause!r}")


def match_rules(clause) -> list[tuple[str, str]]:
    """[(match_kind, model_match)] for a model's match logic; `or` gives several rules."""
    from genai_prices import types as gp

    if isinstance(clause, gp.ClauseOr):
        return [rule for sub in clause.or_ for rule in match_rules(sub)]
    if isinstance(clause, gp.ClauseEquals):
        return [("exact", clause.equals.lower())]
    if isinstance(clause, gp.ClauseStartsWith):
        return [("prefix", clause.starts_with.lower())]
    return [("regex", _clause_regex(clause))]


# --- Prices ----------------------------------------------------------------------------------

def _places(per: int) -> int | None:
    """Decimals a price per `per` units may have to be a whole pico-USD per unit (None: not a power of ten)."""
    digits = len(str(per)) - 1
    return 12 - digits if 10**digits == per else None


def _rounded(value: Decimal, per: int) -> tuple[Decimal, bool]:
    places = _places(per)
    if places is None:
        return value, False
    rounded = value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)
    return (rounded.normalize() if rounded == rounded.to_integral() else rounded), rounded != value


def _six(value: Decimal) -> tuple[Decimal, bool]:
    return _rounded(value, 1_000_000)


def _plain(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text


def price_map(model_price) -> tuple[dict[str, str], list[dict], bool, list[str]]:
    """A registry price set → (registry price key → decimal string, tiers, rounded?, unknown price keys).

    Tiers: one dict per distinct threshold holding every tiered price at that threshold (and the flat token
    prices, so a tier is complete), keyed by the registry's price keys.
    """
    from genai_prices import types as gp

    prices: dict[str, str] = {}
    tiered: dict[str, object] = {}
    rounded_any = False
    unknown = []
    for key, value in vars(model_price).items():
        if key.startswith("_") or value is None:
            continue
        unit = BY_PRICE_KEY.get(key)
        if unit is None:
            unknown.append(key)
            continue
        if isinstance(value, gp.TieredPrices):
            tiered[key] = value
            value = value.base
        value, rounded = _rounded(Decimal(value), unit.per)
        rounded_any |= rounded
        prices[key] = _plain(value)
    tiers = []
    for threshold in sorted({t.start for tp in tiered.values() for t in tp.tiers}):
        tier: dict = {"above": threshold}
        for key in prices:
            if key in tiered:
                price = tiered[key].base
                for t in tiered[key].tiers:  # ascending: the last one at or below the threshold
                    if t.start <= threshold:
                        price = t.price
                price, rounded = _rounded(Decimal(price), BY_PRICE_KEY[key].per)
                rounded_any |= rounded
                tier[key] = _plain(price)
            elif key in TOKEN_KEYS:
                tier[key] = prices[key]
        tiers.append(tier)
    return prices, tiers, rounded_any, unknown


TOKEN_KEYS = frozenset(TOKEN_PRICE_FIELDS)


def _translate_prices(model_price) -> tuple[dict, bool] | None:
    """ModelPrice field values for one registry price set: token prices in their columns, a request price per
    request, every other unit in `unit_prices`; None when it names a price key no unit defines."""
    prices, tiers, rounded_any, unknown = price_map(model_price)
    if unknown:
        return None
    values: dict = {}
    unit_prices: dict[str, str] = {}
    for key, text in prices.items():
        if key in TOKEN_PRICE_FIELDS:
            values[TOKEN_PRICE_FIELDS[key]] = Decimal(text)
        elif key == "requests_kcount":
            values["per_request_usd"] = (Decimal(text) / 1000).quantize(TWELVE_PLACES, rounding=ROUND_HALF_EVEN)
        else:
            unit_prices[key] = text
    # An empty price set is a free model (e.g. OpenRouter's ":free" variants): $0, not unpriced.
    values.setdefault("input_mtok", Decimal(0))
    values.setdefault("output_mtok", Decimal(0))
    values["unit_prices"] = unit_prices
    if tiers:
        values["tiers"] = [{TOKEN_PRICE_FIELDS.get(k, k): v for k, v in tier.items()} for tier in tiers]
    return values, rounded_any


def _clock(value) -> str:
    """A registry time of day (UTC-aware or naive UTC) → "HH:MM" or "HH:MM:SS" UTC."""
    if value.tzinfo is not None:
        value = datetime.combine(datetime(1970, 1, 1).date(), value).astimezone(dt_timezone.utc).time()
    return value.strftime("%H:%M:%S" if value.second else "%H:%M")


def _window(cp) -> tuple[dict, bool] | None:
    prices, tiers, rounded, unknown = price_map(cp.prices)
    if unknown:
        return None
    window = {"start": _clock(cp.constraint.start_time), "end": _clock(cp.constraint.end_time), "prices": prices}
    if tiers:
        window["tiers"] = tiers
    return window, rounded


def variants_translate(model) -> tuple[list[dict], bool, list[str]]:
    """A model's `price_variants` → the row's `variants` (partial prices in registry price keys)."""
    from genai_prices import types as gp

    out: list[dict] = []
    rounded_any = False
    unknown_all: list[str] = []
    for variant in model.price_variants or ():
        prices, tiers, rounded, unknown = price_map(variant.prices)
        unknown_all += unknown
        rounded_any |= rounded
        item: dict = {"when": dict(variant.when), "prices": prices}
        if tiers:
            item["tiers"] = tiers
        if isinstance(variant.constraint, gp.StartDateConstraint):
            item["from"] = variant.constraint.start_date.isoformat()
        elif isinstance(variant.constraint, gp.TimeOfDateConstraint):
            item["window"] = [_clock(variant.constraint.start_time), _clock(variant.constraint.end_time)]
        out.append(item)
    return out, rounded_any, unknown_all


def _periods(model) -> list[tuple[datetime, object, list]]:
    """[(effective_from, registry ModelPrice, [time-of-day ConditionalPrice, …])] as the registry chooses them.

    The registry tries its conditional prices last to first and takes the first active one (else the first).
    Within a period between start dates every start-date constraint is either active or not; only time-of-day
    constraints vary, so a period is: the time windows met before the first price always active then (in that
    order, first active wins), else that price.
    """
    from genai_prices import types as gp

    if isinstance(model.prices, gp.ModelPrice):
        return [(EPOCH, model.prices, [])]
    if not model.prices:
        return []
    starts = sorted({cp.constraint.start_date for cp in model.prices
                     if isinstance(cp.constraint, gp.StartDateConstraint)})
    instants = [EPOCH] + [datetime.combine(d, time(0), tzinfo=dt_timezone.utc) for d in starts]
    periods: list[tuple[datetime, object, list]] = []
    for instant in instants:
        windows = []
        chosen = model.prices[0].prices
        for cp in reversed(model.prices):
            if isinstance(cp.constraint, gp.TimeOfDateConstraint):
                windows.append(cp)
            elif cp.constraint is None or cp.constraint.active(instant):
                chosen = cp.prices
                break
        if periods and periods[-1][1] is chosen and [w.prices for w in periods[-1][2]] == [w.prices for w in windows] \
                and [w.constraint for w in periods[-1][2]] == [w.constraint for w in windows]:
            continue
        periods.append((instant, chosen, windows))
    return periods


def registry_load() -> Registry:
    """Every price of the installed genai-prices registry as RegistryPrice rows (no database access)."""
    import genai_prices
    from genai_prices.data import providers

    rows: list[RegistryPrice] = []
    skipped: list[tuple[str, str, str]] = []
    for provider in providers:
        seen: set[tuple] = set()
        for model in provider.models:
            rules = []
            for kind, match in match_rules(model.match):
                if len(match) > MAX_MATCH_LENGTH:
                    skipped.append((provider.id, model.id, f"match too long: {match[:40]}…"))
                    continue
                rules.append((kind, match))
            periods = []
            problem = None
            variants, variants_rounded, unknown = variants_translate(model)
            if unknown:
                problem = f"unknown price keys {sorted(set(unknown))}"
            for effective_from, model_price, windows in _periods(model):
                translated = _translate_prices(model_price)
                if translated is None:
                    problem = "unknown price keys"
                    break
                values, rounded = translated
                time_windows = []
                for cp in windows:
                    window = _window(cp)
                    if window is None:
                        problem = "unknown price keys in a time window"
                        break
                    time_windows.append(window[0])
                    rounded |= window[1]
                values["time_windows"] = time_windows
                values["variants"] = variants
                periods.append((effective_from, (values, rounded or variants_rounded)))
            if problem or not periods:
                skipped.append((provider.id, model.id, problem or "no prices"))
                continue
            for kind, match in rules:
                if (kind, match) in seen:
                    continue  # an earlier model already claims this rule (the registry's first match)
                seen.add((kind, match))
                for effective_from, (values, rounded) in periods:
                    rows.append(RegistryPrice(
                        provider=provider.id, match_kind=kind, model_match=match,
                        display_name=model.name or model.id, effective_from=effective_from,
                        registry_model_id=model.id, rounded=rounded, **values,
                    ))
    return Registry(rows=rows, skipped=skipped, version=genai_prices.__version__)
