"""Write-side reads: the state of the ingestion backlog (for /health and the admin), and which price priced a call."""

from __future__ import annotations

from datetime import datetime

from django.db.models import Q

from .models import ModelPrice, RawBatch


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
    """`{"source", "entry", "version", "variant", "synced_at"}` for one event's values, None when unpriced.

    `entry` names the price row (`provider/model_match`, or null once deleted); `version` is the price
    table's version when the call was priced; `synced_at` is when a registry row was last synced.
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
            "synced_at": synced_at}


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
