"""The `genai-prices` registry (shipped offline inside the wheel) translated into ModelPrice rows.

One registry model becomes one row per match clause and price period:

- match: `equals` → exact, `starts_with` → prefix, `contains` / `ends_with` / `regex` / `and` → a
  regex (full match, case-insensitive), `or` → one row per branch. When two models of a provider
  translate to the same rule, the first one wins (the registry also takes the first match).
- prices: `input_mtok`, `output_mtok`, `cache_read_mtok` → cache read, `cache_write_mtok`,
  `cache_write_1h_mtok`, `requests_kcount` → per request. Tiered prices (`TieredPrices`) become
  the row's `tiers`, one entry per distinct threshold holding every price at that threshold.
- history: a list of `ConditionalPrice` becomes one row per start date (the first period from
  `EPOCH`, as the registry uses the first price before any start date); time-of-day prices
  (off-peak discounts) are skipped in favour of the unconstrained price; batch / priority
  `price_variants` are ignored (events do not say which tier served them).

Models priced only in units events do not carry (audio hours, pages, characters) are skipped
(an empty price set is a free model, synced at $0);
prices with more than six decimals (float artefacts such as 0.18000000000000002) are rounded to
the six decimals the schema stores, and reported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, time, timezone as dt_timezone
from decimal import ROUND_HALF_EVEN, Decimal

from ingestion.models import EPOCH

SOURCE = "genai-prices"
SIX_PLACES = Decimal("0.000001")
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
TIERED_FIELDS = ("input_mtok", "output_mtok", "cached_input_mtok", "cache_write_mtok", "cache_write_1h_mtok")


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

def _six(value: Decimal) -> tuple[Decimal, bool]:
    rounded = value.quantize(SIX_PLACES, rounding=ROUND_HALF_EVEN)
    return rounded.normalize() if rounded == rounded.to_integral() else rounded, rounded != value


def _plain(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text


def _translate_prices(model_price) -> tuple[dict, bool] | None:
    """ModelPrice field values for one registry price set; None when priced only in units we do not model."""
    from genai_prices import types as gp

    values: dict = {}
    tiered: dict[str, gp.TieredPrices] = {}
    rounded_any = False
    for key, target in TOKEN_PRICE_FIELDS.items():
        value = getattr(model_price, key, None)
        if value is None:
            continue
        if isinstance(value, gp.TieredPrices):
            tiered[target] = value
            value = value.base
        values[target], rounded = _six(value)
        rounded_any |= rounded
    requests_kcount = getattr(model_price, "requests_kcount", None)
    if requests_kcount is not None:
        values["per_request_usd"] = (requests_kcount / 1000).quantize(TWELVE_PLACES, rounding=ROUND_HALF_EVEN)
    if "input_mtok" not in values and "output_mtok" not in values and "per_request_usd" not in values:
        if any(v is not None for k, v in vars(model_price).items() if not k.startswith("_")):
            return None  # priced only in units events do not carry (audio hours, characters, pages)
        # An empty price set is a free model (e.g. OpenRouter's ":free" variants): $0, not unpriced.
    values.setdefault("input_mtok", Decimal(0))
    values.setdefault("output_mtok", Decimal(0))
    if tiered:
        tiers = []
        thresholds = sorted({t.start for tp in tiered.values() for t in tp.tiers})
        for threshold in thresholds:
            tier: dict = {"above": threshold}
            for target in TIERED_FIELDS:
                if target in tiered:
                    price = tiered[target].base
                    for t in tiered[target].tiers:  # ascending: the last one at or below the threshold
                        if t.start <= threshold:
                            price = t.price
                    price, rounded = _six(price)
                    rounded_any |= rounded
                    tier[target] = _plain(price)
                elif target in values:
                    tier[target] = _plain(values[target])
            tiers.append(tier)
        values["tiers"] = tiers
    return values, rounded_any


def _window_minutes(constraint) -> int:
    start = constraint.start_time.hour * 60 + constraint.start_time.minute
    end = constraint.end_time.hour * 60 + constraint.end_time.minute
    return (end - start) % (24 * 60)


def dominant_time_of_day(model):
    """The time-of-day price in force for more than half of each day (DeepSeek's daytime rate), if any.

    Our table has no time-of-day dimension, so such a price is synced as the model's price: the
    price of most calls, rather than the discount that applies only for a minority of the day.
    """
    from genai_prices import types as gp

    if isinstance(model.prices, gp.ModelPrice):
        return None
    minutes: dict[int, int] = {}
    by_id: dict[int, object] = {}
    for cp in model.prices:
        if isinstance(cp.constraint, gp.TimeOfDateConstraint):
            minutes[id(cp.prices)] = minutes.get(id(cp.prices), 0) + _window_minutes(cp.constraint)
            by_id[id(cp.prices)] = cp
    best = max(minutes, key=minutes.get, default=None)
    return by_id[best] if best is not None and minutes[best] > 12 * 60 else None


def registry_reference_time(model) -> time:
    """A time of day at which the registry charges what we sync (for comparing with its calc_price)."""
    dominant = dominant_time_of_day(model)
    if dominant is None:
        return time(23)  # outside DeepSeek's minority windows
    start = dominant.constraint.start_time
    return time((start.hour + 1) % 24, start.minute)


def _periods(model) -> list[tuple[datetime, object]]:
    """[(effective_from, registry ModelPrice)] as the registry would choose them by date."""
    from genai_prices import types as gp

    if isinstance(model.prices, gp.ModelPrice):
        return [(EPOCH, model.prices)]
    dated = [cp for cp in model.prices if not isinstance(cp.constraint, gp.TimeOfDateConstraint)]
    dominant = dominant_time_of_day(model)
    if dominant is not None:  # in force most of every day: it wins over the dated prices, as it does then
        dated.append(gp.ConditionalPrice(constraint=None, prices=dominant.prices))
    if not dated:
        return []
    first = dated[0]
    starts = sorted({cp.constraint.start_date for cp in dated if isinstance(cp.constraint, gp.StartDateConstraint)})
    instants = [EPOCH] + [datetime.combine(d, time(0), tzinfo=dt_timezone.utc) for d in starts]
    periods: list[tuple[datetime, object]] = []
    for instant in instants:
        chosen = first.prices
        for cp in reversed(dated):  # the last active price wins, as in ModelInfo.get_prices
            if cp.constraint is None or cp.constraint.active(instant):
                chosen = cp.prices
                break
        if not periods or periods[-1][1] is not chosen:
            periods.append((instant, chosen))
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
            for effective_from, model_price in _periods(model):
                translated = _translate_prices(model_price)
                if translated is not None:
                    periods.append((effective_from, translated))
            if not periods:
                skipped.append((provider.id, model.id, "priced only in units events do not carry"))
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
