"""Thin Celery tasks: ids in, one service call. All are idempotent; `house_task` retries outages."""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone

from accounts.tasking import house_task

from . import partitions, retention, services


@house_task(name="ingestion.tasks.batch_process")
def batch_process_task(batch_id: int, org_id: int | None = None, kind: str = "") -> int:
    """Bad data never raises here (the service isolates and quarantines it); an outage is retried. With `org_id`
    and `kind`: the drain of that org's pending batches of the kind (ingestion.queueing)."""
    return services.batch_process(batch_id=batch_id, org_id=org_id, kind=kind)


@house_task(name="ingestion.tasks.batches_sweep", max_retries=0)
def batches_sweep() -> int:
    """Beat, every minute: batches whose queue message was lost (broker outage, crash) and due retries.

    Not retried itself: the next minute's sweep starts over.
    """
    return services.batches_sweep()


@house_task(name="ingestion.tasks.otlp_resolve", max_retries=0)
def otlp_resolve() -> int:
    """Beat, every 10 s: OTLP call spans whose ancestors did not arrive within the wait, and pruning.

    Not retried itself: the next run starts over (emitting is idempotent).
    """
    return services.otlp_resolve_due()


@house_task(name="ingestion.tasks.events_reprice")
def events_reprice(org_id: int | None = None) -> int:
    """After a price is added or changed: price the events that had none."""
    return services.events_reprice_unpriced(org_id=org_id)


@house_task(name="ingestion.tasks.events_reprice_range")
def events_reprice_range(since: str, until: str, org_id: int | None = None) -> int:
    """Admin action: re-price a time range with the current price table."""
    return services.events_reprice_range(since=datetime.fromisoformat(since), until=datetime.fromisoformat(until),
                                         org_id=org_id)


@house_task(name="ingestion.tasks.event_partitions_ensure", max_retries=0)
def event_partitions_ensure() -> list[str]:
    """Beat, every 6 hours: PostgreSQL's monthly event partitions exist for this month and the next two."""
    return partitions.event_partitions_ensure(now=timezone.now())


@house_task(name="ingestion.tasks.events_prune", max_retries=0)
def events_prune() -> int:
    """Beat, daily: raw events past their org's retention are removed (rollups and run summaries stay).

    Not retried itself: it is idempotent and tomorrow's run finishes what an outage interrupted.
    """
    report = retention.events_prune(now=timezone.now())
    return sum(rows for _, rows in report.partitions_dropped) + sum(rows for _, _, rows in report.rows_deleted)
