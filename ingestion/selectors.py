"""Write-side reads: the state of the ingestion backlog (for /health and the admin)."""

from __future__ import annotations

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
