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
from datetime import date, datetime
from decimal import Decimal
from typing import Iterable, NamedTuple

from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.db.models.functions import Lower
from django.utils import timezone

from accounts import metrics
from accounts.tasking import enqueue_on_commit
from ingestion.models import ModelPrice, PriceVersion
from ingestion.money import usd_to_pico

logger = logging.getLogger(__name__)

VERSION_CHECK_SECONDS = 1.0
_MTOK_TO_PICO_PER_TOKEN = Decimal(10**6)  # USD per 1M tokens × 10^12 / 10^6
_TIER_PRICE_KEYS = ("input_mtok", "output_mtok", "cached_input_mtok", "cache_write_mtok")


# --- Cost ------------------------------------------------------------------------------------

class Entry(NamedTuple):
    """One ModelPrice row, precomputed: integer pico-USD per token / per request / per unit.

    `tiers` is sorted by threshold, highest first: (above, input, output, cache_read, cache_write,
    cache_write_1h). `unit_field` is the metadata key holding the unit count ("" = "units").
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


def _pico_per_token(value) -> int:
    """USD per 1M tokens (≤ 6 decimals) → integer pico-USD per token. Refuses anything inexact."""
    pico = Decimal(str(value)) * _MTOK_TO_PICO_PER_TOKEN
    if pico != pico.to_integral_value():
        raise ValueError(f"price {value} per 1M tokens has more than six decimals")
    return int(pico)


def _pico(value) -> int:
    """USD (≤ 12 decimals) → integer pico-USD."""
    return 0 if value is None else usd_to_pico(value)


def _optional(value):
    return None if value is None or value == "" else value


def entry_build(price: ModelPrice) -> Entry:
    """Precompute a price row. A missing cache price is the input price (at the same tier); a missing
    1-hour cache-write price is the 5-minute one (at the same tier)."""
    base_in = _pico_per_token(price.input_mtok or 0)
    base_out = _pico_per_token(price.output_mtok or 0)
    base_cr = None if _optional(price.cached_input_mtok) is None else _pico_per_token(price.cached_input_mtok)
    base_cw = None if _optional(price.cache_write_mtok) is None else _pico_per_token(price.cache_write_mtok)
    base_cw1h = (None if _optional(price.cache_write_1h_mtok) is None
                 else _pico_per_token(price.cache_write_1h_mtok))
    tiers = []
    for tier in price.tiers or []:
        t_in = tier.get("input_mtok")
        t_out = tier.get("output_mtok")
        t_cr = _optional(tier.get("cached_input_mtok"))
        t_cw = _optional(tier.get("cache_write_mtok"))
        t_cw1h = _optional(tier.get("cache_write_1h_mtok"))
        tin = base_in if _optional(t_in) is None else _pico_per_token(t_in)
        tout = base_out if _optional(t_out) is None else _pico_per_token(t_out)
        # A key a tier leaves out keeps the row's value; a cache price missing on both is the input price.
        tcr = _pico_per_token(t_cr) if t_cr is not None else (base_cr if base_cr is not None else tin)
        tcw = _pico_per_token(t_cw) if t_cw is not None else (base_cw if base_cw is not None else tin)
        tcw1h = _pico_per_token(t_cw1h) if t_cw1h is not None else (base_cw1h if base_cw1h is not None else tcw)
        tiers.append((int(tier["above"]), tin, tout, tcr, tcw, tcw1h))
    tiers.sort(key=lambda t: t[0], reverse=True)
    cache_write = base_in if base_cw is None else base_cw
    return Entry(
        price_id=price.pk,
        input=base_in,
        output=base_out,
        cache_read=base_in if base_cr is None else base_cr,
        cache_write=cache_write,
        tiers=tuple(tiers),
        per_request=_pico(_optional(price.per_request_usd)),
        per_unit=_pico(_optional(price.per_unit_usd)),
        cache_write_1h=cache_write if base_cw1h is None else base_cw1h,
        unit_field=(price.unit_field or "").strip(),
    )


def _entry_cost(entry: Entry, input_tokens: int, output_tokens: int, cached_input_tokens: int,
                cache_write_tokens: int, units, cache_write_1h_tokens: int = 0) -> int:
    p_in, p_out, p_cr, p_cw, p_cw1h = entry.input, entry.output, entry.cache_read, entry.cache_write, \
        entry.cache_write_1h
    for above, t_in, t_out, t_cr, t_cw, t_cw1h in entry.tiers:  # highest threshold first
        if input_tokens > above:
            p_in, p_out, p_cr, p_cw, p_cw1h = t_in, t_out, t_cr, t_cw, t_cw1h
            break
    uncached = input_tokens - cached_input_tokens - cache_write_tokens
    if uncached < 0:
        uncached = 0
    # The 1-hour writes are a part of the cache writes (Anthropic reports both, genai-prices counts so).
    one_hour = min(cache_write_1h_tokens, cache_write_tokens) if cache_write_1h_tokens > 0 else 0
    cost = (uncached * p_in + cached_input_tokens * p_cr + (cache_write_tokens - one_hour) * p_cw
            + one_hour * p_cw1h + output_tokens * p_out + entry.per_request)
    if units and entry.per_unit:
        cost += _unit_cost(entry.per_unit, units)
    return cost


def _unit_cost(per_unit_pico: int, units) -> int:
    if isinstance(units, int):
        return per_unit_pico * units
    # Fractional units (e.g. seconds): exact Decimal, rounded half-even to the pico-USD.
    return int((Decimal(per_unit_pico) * Decimal(str(units))).to_integral_value())


def cost_compute(*, price: ModelPrice, input_tokens: int, output_tokens: int, cached_input_tokens: int = 0,
                 cache_write_tokens: int = 0, units=None, cache_write_1h_tokens: int = 0) -> int:
    """The cost of one call in integer pico-USD.

    ((input − cached − cache_write) × in + cached × cache_read + (cache_write − 1h) × cache_write_price
    + 1h × cache_write_1h_price + output × out) / 10^6 at the request's tier (the highest tier whose
    `above` the input exceeds prices every token), plus `per_request_usd` once and `per_unit_usd × units`.
    `cache_write_1h_tokens` is the part of `cache_write_tokens` written to the 1-hour cache.
    """
    return _entry_cost(entry_build(price), input_tokens, output_tokens, cached_input_tokens,
                       cache_write_tokens, units, cache_write_1h_tokens)


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


def metadata_usage(entry: Entry, metadata: dict | None) -> tuple[object, int]:
    """(units, 1-hour cache-write tokens) an event's metadata carries for this price row.

    Units are read from the row's `unit_field` (e.g. Pinecone `read_units`), or `units` when the
    row names none; anything but a non-negative number is ignored (the call is priced without it).
    """
    if not metadata or not isinstance(metadata, dict):
        return None, 0
    units = None
    if entry.per_unit:
        units = _count(metadata.get(entry.unit_field or META_UNITS), whole=False)
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


# --- The in-memory price book (the batch path) ---------------------------------------------------

class PriceBook:
    """Every ModelPrice in memory, with a per-(org, provider, model) memo of the price timeline.

    Pricing a repeated model is a dict lookup and a bisect on time. Build it with
    `price_book_get()`, which reloads it when `price_book_invalidate()` has run anywhere.
    """

    MEMO_LIMIT = 200_000  # distinct (org, provider, model) timelines kept before the memo starts over

    def __init__(self, rows: Iterable[ModelPrice]):
        self._index = _Index(rows)
        self._memo: dict[tuple[int | None, str, str], tuple[list[datetime], list[Entry]]] = {}

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
        return cls(ModelPrice.objects.unscoped().all())

    def resolve(self, *, org_id: int | None, provider: str, model: str, at: datetime) -> Entry | None:
        return _at(self._timeline(org_id, provider, model), at)

    def price(self, *, org_id: int | None, provider: str, model: str, at: datetime, input_tokens: int,
              output_tokens: int, cached_input_tokens: int = 0, cache_write_tokens: int = 0,
              units=None, cache_write_1h_tokens: int = 0, metadata: dict | None = None) -> tuple[int, int] | None:
        """(price_id, cost in pico-USD), or None when no price matches.

        With `metadata` (an event's), the units under the matched row's `unit_field` and the
        1-hour cache writes (`cache_write_1h_tokens`) are read from it unless given explicitly.
        """
        times, entries = self._timeline(org_id, provider, model)
        if not times:
            return None
        i = bisect_right(times, at) - 1
        if i < 0:
            return None
        entry = entries[i]
        if metadata:
            meta_units, meta_1h = metadata_usage(entry, metadata)
            units = meta_units if units is None else units
            cache_write_1h_tokens = cache_write_1h_tokens or meta_1h
        if units is None and entry.per_unit and not (entry.input or entry.output or entry.per_request):
            return None  # a row that prices only units cannot price a call reporting none: unpriced, not $0
        return entry.price_id, _entry_cost(entry, input_tokens, output_tokens, cached_input_tokens,
                                           cache_write_tokens, units, cache_write_1h_tokens)


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
