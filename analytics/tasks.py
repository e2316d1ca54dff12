"""Thin Celery tasks for insights and alerts: ids in, one service call, bounded retries, idempotent."""

from __future__ import annotations

import logging

from accounts.models import Organization
from accounts.tasking import enqueue, house_task

from .insights import alerts, services

logger = logging.getLogger(__name__)


@house_task(name="analytics.tasks.insights_run_all", max_retries=0)
def insights_run_all() -> int:
    """Beat, hourly: one detector task per org, and a second chance for failed or lost alerts."""
    org_ids = list(Organization.objects.order_by("pk").values_list("pk", flat=True))
    for org_id in org_ids:
        enqueue("analytics.tasks.insights_run_org", org_id)
    alerts.alerts_requeue()
    return len(org_ids)


@house_task(name="analytics.tasks.insights_run_org", max_retries=3)
def insights_run_org(org_id: int) -> int:
    """Safe to repeat: open insights are refreshed, never duplicated, and alerts are queued once."""
    org = Organization.objects.filter(pk=org_id).first()
    if org is None:
        return 0
    return len(services.insights_run(org=org))


@house_task(name="analytics.tasks.alert_send", bind=True, max_retries=alerts.MAX_ATTEMPTS - 1)
def alert_send(self, delivery_id: int) -> str | None:
    """Send one alert delivery; a failure is recorded on the row, then retried with backoff (bounded).

    Idempotent: a delivery that is already sent (or being sent) is not sent again. In eager mode
    (no broker) a failure is not retried in-process; the hourly job re-queues it.
    """
    try:
        delivery = alerts.alert_deliver(delivery_id=delivery_id)
    except alerts.AlertDeliveryError as exc:
        if self.request.is_eager:
            logger.warning("alert delivery %s failed: %s", delivery_id, exc)
            return "failed"
        raise self.retry(exc=exc, countdown=min(600, 30 * 2 ** self.request.retries))
    return delivery.status if delivery else None


@house_task(name="analytics.tasks.alerts_digest", max_retries=0)
def alerts_digest() -> int:
    """Beat, daily: one digest per org that chose it (unique per day and channel, so a re-run sends nothing)."""
    queued = 0
    for org in Organization.objects.filter(alert_digest=True).order_by("pk"):
        queued += len(alerts.alerts_digest_queue(org=org))
    return queued
