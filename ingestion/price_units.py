"""Usage units: the genai-prices registry's (`genai_prices.data_units`) plus the vendor units our price table defines.

A unit has a usage key (what an event counts: `web_searches`, `input_audio_tokens`), a price key (what a price
row prices: `web_searches_kcount`, `input_audio_mtok`, the unit and its `per` in one name) and dimensions. A unit
whose dimensions include another's is a part of it (`cache_audio_read_tokens` ⊂ `cache_read_tokens` ⊂
`input_tokens`): a call's count of a unit includes the counts of its parts, and each token is priced once, at the
most specific unit that has a price (the registry's "leaf" decomposition, `pricing`).

No database, no Django: the wire-format validation imports this.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from genai_prices.data_units import unit_data

# Units the registry does not define but our price table prices (Pinecone's read / write units).
VENDOR_UNITS: dict[str, dict] = {
    "read_units": {"per": 1_000_000, "price_key": "read_units_mcount", "dimensions": {"family": "read_units"}},
    "write_units": {"per": 1_000_000, "price_key": "write_units_mcount", "dimensions": {"family": "write_units"}},
}


@dataclass(frozen=True)
class Unit:
    usage_key: str
    price_key: str
    per: int
    dimensions: frozenset

    def contains(self, other: Unit) -> bool:
        """`other` is a part of this unit (strictly more specific)."""
        return other is not self and self.dimensions <= other.dimensions


UNITS: dict[str, Unit] = {
    key: Unit(usage_key=key, price_key=raw.get("price_key", key), per=int(raw["per"]),
              dimensions=frozenset(raw.get("dimensions", {}).items()))
    for key, raw in {**unit_data, **VENDOR_UNITS}.items()
}
BY_PRICE_KEY: dict[str, Unit] = {unit.price_key: unit for unit in UNITS.values()}
REQUESTS = "requests"  # priced once per call (count 1), never reported
REPORTABLE: frozenset[str] = frozenset(UNITS) - {REQUESTS}

# The classic wire fields and the units they are (docs/api.md). `reasoning_tokens` ⊂ `output_tokens`.
WIRE_UNITS: dict[str, str] = {
    "input_tokens": "input_tokens",
    "output_tokens": "output_tokens",
    "cached_input_tokens": "cache_read_tokens",
    "cache_write_tokens": "cache_write_tokens",
    "reasoning_tokens": "output_reasoning_tokens",
}
UNIT_WIRE_FIELDS: dict[str, str] = {unit: field for field, unit in WIRE_UNITS.items()}

# ModelPrice's typed columns and the price keys they are.
COLUMN_PRICE_KEYS: dict[str, str] = {
    "input_mtok": "input_mtok",
    "output_mtok": "output_mtok",
    "cached_input_mtok": "cache_read_mtok",
    "cache_write_mtok": "cache_write_mtok",
    "cache_write_1h_mtok": "cache_write_1h_mtok",
}
# Price keys with a typed column (or `per_request_usd`): `unit_prices` does not repeat them.
COLUMN_KEYS: frozenset[str] = frozenset(COLUMN_PRICE_KEYS.values()) | {"requests_kcount"}
CLASSIC_USAGE_KEYS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
                      "cache_write_1h_tokens")


def price_key_canonical(key: str) -> str | None:
    """The registry price key for a name a row, tier or variant may use (`cached_input_mtok` is ours)."""
    key = COLUMN_PRICE_KEYS.get(key, key)
    return key if key in BY_PRICE_KEY else None


def pico_per_count(value, per: int) -> int | Fraction:
    """USD per `per` units → pico-USD per unit: an int whenever it is one (always, for prices with at most
    12 − log10(per) decimals); a Fraction otherwise (a per-hour price per second), rounded only on the total.

    Raises ValueError for a price of a power-of-ten unit with more decimals than a whole pico-USD per unit allows.
    """
    exact = Fraction(Decimal(str(value))) * 10**12 / per
    if exact < 0:
        raise ValueError(f"price {value} is negative")
    if exact.denominator == 1:
        return int(exact)
    if 10 ** (len(str(per)) - 1) == per:  # per 1M tokens, per 1,000 searches: whole pico-USD per unit, or refused
        places = 12 - (len(str(per)) - 1)
        words = {6: "six", 9: "nine", 12: "twelve"}
        raise ValueError(f"price {value} per {per:,} has more than {words.get(places, places)} decimals")
    return exact
