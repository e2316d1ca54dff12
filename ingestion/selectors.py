"""Write-side reads: the state of the ingestion backlog (for /health and the admin), and which price priced a call."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from django.db.models import Q

from .models import ModelPrice, RawBatch
from .money import pico_to_usd


def batches_backlog() -> dict[str, int]:
    """Unprocessed batches across all orgs: waiting (queued or retrying) and quarantined.

    Both counts walk a partial index that holds only unprocessed rows, so they stay cheap.
    """
    unprocessed = RawBatch.objects.unscoped().filter(processed_at__isnull=True)
    return {
        "pending": unprocessed.filter(quarantined_at__isnull=True).count(),
        "quarantined": unprocessed.filter(quarantined_at__isnull=False).count(),
    }


def batches_oldest_pending_received_at() -> datetime | None:
    """When the oldest batch still waiting (not quarantined) was received: the first row of the partial index."""
    return (RawBatch.objects.unscoped().filter(processed_at__isnull=True, quarantined_at__isnull=True)
            .order_by("received_at").values_list("received_at", flat=True).first())


# --- price provenance (docs/pricing.md § Provenance) -------------------------------------------------

SOURCE_TEXT = {"registry": "registry", "admin": "admin price", "override": "org override", "client": "client-reported"}


def price_rows_get(*, org, ids) -> dict[int, ModelPrice]:
    """The price rows that priced an org's events: the global ones and the org's own overrides, one query."""
    ids = {i for i in ids if i is not None}
    if not ids:
        return {}
    rows = (ModelPrice.objects.unscoped().filter(pk__in=ids).filter(Q(org__isnull=True) | Q(org=org))
            .only("id", "org_id", "provider", "match_kind", "model_match", "display_name", "source", "updated_at"))
    return {row.pk: row for row in rows}


def price_provenance(*, values: dict, row: ModelPrice | None) -> dict | None:
    """`{"source", "entry", "version", "variant", "synced_at", "list_cost_usd", "discount_pct"}` for one event's
    values, None when unpriced.

    `entry` names the price row (`provider/model_match`, or null once deleted); `version` is the price
    table's version when the call was priced; `synced_at` is when a registry row was last synced;
    `list_cost_usd` and `discount_pct` the list price and the org's negotiated discount (null without one:
    the cost is then the list price).
    """
    if values.get("cost_pico") is None:
        return None
    source = values.get("price_source") or ("client" if values.get("cost_source") == "client" else "admin")
    entry = None
    synced_at = None
    if row is not None:
        entry = f"{row.provider}/{row.model_match}"
        if source == "registry":
            synced_at = row.updated_at.isoformat().replace("+00:00", "Z")
    return {"source": source, "entry": entry if source != "client" else None,
            "version": values.get("price_version"), "variant": values.get("price_variant") or None,
            "synced_at": synced_at, "list_cost_usd": pico_to_usd(values.get("list_cost_pico")),
            "discount_pct": None if values.get("discount_pct") is None else _decimal_text(values["discount_pct"])}


def price_provenance_text(provenance: dict | None, row: ModelPrice | None) -> str:
    """One line for a page: "gpt-4o · batch −50% · registry, synced 2026-11-29"."""
    if provenance is None:
        return "unpriced"
    parts = []
    if row is not None:
        parts.append(row.model_match if row.match_kind != ModelPrice.MatchKind.REGEX else
                     (row.display_name or row.model_match))
    if provenance["variant"]:
        parts.append(provenance["variant"])
    source = SOURCE_TEXT.get(provenance["source"], provenance["source"])
    if row is not None and provenance["source"] == "registry":
        source += f", synced {row.updated_at:%Y-%m-%d}"
    elif row is not None and provenance["source"] in ("admin", "override"):
        source += f", edited {row.updated_at:%Y-%m-%d}"
    parts.append(source)
    return " · ".join(parts)


# --- GET /v1/prices: which price would price a call (docs/pricing.md § Looking up a price) ---------------

def _decimal_text(value) -> str:
    """A price as a plain decimal string ("2.5", "0.000125"): exact, never in exponent form."""
    text = format(Decimal(str(value)), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


def _prices_text(prices: dict) -> dict[str, str]:
    return {key: _decimal_text(value) for key, value in sorted(prices.items())}


def price_lookup(*, org, provider: str, model: str, at: datetime, context: dict | None = None) -> dict | None:
    """What would price a call of `provider`/`model` at `at` with `context` (service_tier / processing / speed)
    for `org`: the row (the org's overrides first, as ingestion), the time window / variant in force, its unit
    prices (registry price keys, USD as decimal strings), the integer pico-USD per token of the classic units,
    its tiers, its source and date, and the org's discount then. None when no price matches."""
    from .pricing import entry_resolve, price_book_get

    book = price_book_get()
    entry = book.resolve(org_id=org.pk, provider=provider, model=model, at=at)
    if entry is None:
        return None
    resolved = entry_resolve(entry, at, context)  # the row's own prices when no window or variant applies
    row = price_rows_get(org=org, ids={entry.price_id}).get(entry.price_id)
    if row is None:  # pragma: no cover - the book is reloaded on every price write
        return None
    prices, tiers = resolved.maps
    stamp = row.updated_at.isoformat().replace("+00:00", "Z")
    discount = book.discount(org_id=org.pk, provider=provider, model=model, at=at)
    return {
        "provider": provider, "model": model, "at": at.isoformat().replace("+00:00", "Z"),
        "entry": f"{row.provider}/{row.model_match}", "match_kind": row.match_kind,
        "display_name": row.display_name or None,
        "source": resolved.source, "variant": resolved.label or None,
        "effective_from": row.effective_from.isoformat().replace("+00:00", "Z"),
        "synced_at": stamp if resolved.source == "registry" else None,
        "edited_at": stamp if resolved.source != "registry" else None,
        "version": book.version,
        "unit_prices": _prices_text(prices),
        "pico_per_token": {"input": resolved.input, "output": resolved.output, "cache_read": resolved.cache_read,
                           "cache_write": resolved.cache_write, "cache_write_1h": resolved.cache_write_1h},
        "per_request_pico": resolved.per_request or None,
        "tiers": [{"above": t["above"], **_prices_text({k: v for k, v in t.items() if k != "above"})}
                  for t in sorted(tiers, key=lambda t: t["above"])],
        "discount": None if discount is None else {
            "percent": _decimal_text(discount.percent), "model_match": discount.model_match or None,
            "match_kind": discount.match_kind if discount.model_match else None,
            "effective_from": discount.effective_from.isoformat().replace("+00:00", "Z")},
    }


# --- Settings → Prices ----------------------------------------------------------------------------

def org_price_overrides(*, org) -> list[ModelPrice]:
    """The org's own price rows (never a global row or another org's)."""
    return list(ModelPrice.objects.for_org(org).order_by("provider", "model_match", "-effective_from"))


def org_price_discounts(*, org) -> list:
    from .models import PriceDiscount

    return list(PriceDiscount.objects.for_org(org).order_by("provider", "model_match", "-effective_from"))
