"""Write-side reads: the state of the ingestion backlog (for /health and the admin)."""

from __future__ import annotations

from datetime import datetime

from .models import RawBatch


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
