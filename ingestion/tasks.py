"""Thin Celery tasks: ids in, one service call, bounded retries. All are idempotent."""

from __future__ import annotations

import logging

from celery import shared_task

from . import services

logger = logging.getLogger(__name__)


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=5, retry_backoff=True,
             retry_backoff_max=120, name="ingestion.tasks.batch_process")
def batch_process_task(self, batch_id: int) -> int:
    try:
        return services.batch_process(batch_id=batch_id)
    except Exception as exc:
        services.batch_failed(batch_id=batch_id, error=repr(exc))
        if self.request.is_eager:
            raise
        raise self.retry(exc=exc)


@shared_task(name="ingestion.tasks.batches_sweep", acks_late=True)
def batches_sweep() -> int:
    """Beat, every minute: process batches whose queue message was lost (broker outage, crash)."""
    done = 0
    for batch_id in services.batches_pending():
        try:
            done += services.batch_process(batch_id=batch_id)
        except Exception as exc:
            logger.exception("sweep: batch %s failed", batch_id)
            services.batch_failed(batch_id=batch_id, error=repr(exc))
    return done


@shared_task(name="ingestion.tasks.events_reprice", acks_late=True, max_retries=3, retry_backoff=True)
def events_reprice(org_id: int | None = None) -> int:
    """After a price is added or changed: price the events that had none."""
    return services.events_reprice_unpriced(org_id=org_id)


@shared_task(name="ingestion.tasks.events_reprice_range", acks_late=True, max_retries=3, retry_backoff=True)
def events_reprice_range(since: str, until: str, org_id: int | None = None) -> int:
    """Admin action: re-price a time range with the current price table."""
    from datetime import datetime

    return services.events_reprice_range(since=datetime.fromisoformat(since), until=datetime.fromisoformat(until),
                                         org_id=org_id)
