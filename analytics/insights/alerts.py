"""Alert delivery: email to owners/admins and a Slack-compatible webhook, exactly once per insight.

Queuing creates one AlertDelivery per (insight, channel) — or per (digest day, channel) — under a
unique constraint, then hands its id to a Celery task after commit. Delivery claims the row
(pending/failed → sending) before it sends, so two workers never send the same message; a
failure is recorded on the row and raised for Celery to retry (bounded). Nothing here ever
blocks the detectors: a dead webhook costs a task, not a run.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.urls import reverse
from django.utils import timezone

from accounts import metrics
from accounts.models import Membership, Organization
from accounts.tasking import enqueue_on_commit
from ingestion.money import pico_display

from ..models import AlertDelivery, Insight
from . import webhooks
from .selectors import insight_as_api

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 6  # the first try and five Celery retries
STALE_CLAIM = timedelta(minutes=10)  # a "sending" row older than this died with its worker
REQUEUE_AFTER = timedelta(hours=1)  # the hourly job re-queues failed or lost deliveries this old
IMMEDIATE_KINDS = {Insight.Kind.SPEND_CAP}  # never held back for the daily digest


class AlertDeliveryError(Exception):
    """A send failed; the delivery row records why and Celery may retry."""


def alert_recipients(*, org: Organization) -> list[str]:
    return list(
        Membership.objects.for_org(org).filter(role__in=Membership.MANAGER_ROLES, user__is_active=True)
        .exclude(user__email="").order_by("user__email").values_list("user__email", flat=True)
    )


def alert_channels(*, org: Organization) -> list[str]:
    channels = []
    if org.alert_email:
        channels.append(AlertDelivery.Channel.EMAIL)
    if org.alert_webhook_url:
        channels.append(AlertDelivery.Channel.WEBHOOK)
    return channels


def _enqueue_after_commit(delivery_ids: list[int]) -> None:
    """A dead broker loses nothing: the hourly job re-queues unsent deliveries."""
    for delivery_id in delivery_ids:
        enqueue_on_commit("analytics.tasks.alert_send", delivery_id)


def _create_delivery(**fields) -> AlertDelivery | None:
    try:
        with transaction.atomic():
            return AlertDelivery.objects.create(**fields)
    except IntegrityError:  # already queued: exactly once
        return None


def alerts_queue(*, org: Organization, insights: list[Insight], now: datetime | None = None) -> list[AlertDelivery]:
    """One delivery per new insight and channel, unless the org chose the daily digest."""
    now = now or timezone.now()
    due = [i for i in insights if i.alerted_at is None and (not org.alert_digest or i.kind in IMMEDIATE_KINDS)]
    if not due:
        return []
    deliveries = []
    channels = alert_channels(org=org)
    for insight in due:
        for channel in channels:
            delivery = _create_delivery(org=org, insight=insight, channel=channel, created_at=now)
            if delivery is not None:
                deliveries.append(delivery)
    Insight.objects.for_org(org).filter(pk__in=[i.pk for i in due]).update(alerted_at=now)
    for insight in due:
        insight.alerted_at = now
    _enqueue_after_commit([d.pk for d in deliveries])
    return deliveries


def alerts_digest_queue(*, org: Organization, now: datetime | None = None) -> list[AlertDelivery]:
    """The daily digest: every open insight not yet alerted, in one message per channel."""
    now = now or timezone.now()
    with transaction.atomic():
        pending = list(Insight.objects.for_org(org).filter(status=Insight.Status.OPEN, alerted_at__isnull=True)
                       .order_by(F("amount_pico").desc(nulls_last=True), "-id").values_list("pk", flat=True))
        if not pending:
            return []
        deliveries = []
        for channel in alert_channels(org=org):
            delivery = _create_delivery(org=org, digest_date=now.date(), digest_insight_ids=pending, channel=channel,
                                        created_at=now)
            if delivery is not None:
                deliveries.append(delivery)
        Insight.objects.for_org(org).filter(pk__in=pending).update(alerted_at=now)
        _enqueue_after_commit([d.pk for d in deliveries])
    return deliveries


def alerts_requeue(*, now: datetime | None = None) -> list[int]:
    """Deliveries that failed (Celery's retries exhausted or eager mode) or whose message was lost."""
    now = now or timezone.now()
    cutoff = now - REQUEUE_AFTER
    ids = list(
        AlertDelivery.objects.unscoped()
        .filter(Q(status=AlertDelivery.Status.FAILED, attempted_at__lt=cutoff)
                | Q(status=AlertDelivery.Status.PENDING, created_at__lt=cutoff)
                | Q(status=AlertDelivery.Status.SENDING, attempted_at__lt=now - STALE_CLAIM),
                attempts__lt=MAX_ATTEMPTS)
        .order_by("id").values_list("pk", flat=True)[:500]
    )
    _enqueue_after_commit(ids)
    return ids


# --- delivery -------------------------------------------------------------------------------

def _claim(delivery_id: int, now: datetime) -> bool:
    """pending/failed (or a stale sending) → sending, attempts + 1; False if someone else has it or it is done."""
    claimable = (Q(status__in=[AlertDelivery.Status.PENDING, AlertDelivery.Status.FAILED])
                 | Q(status=AlertDelivery.Status.SENDING, attempted_at__lt=now - STALE_CLAIM))
    return bool(AlertDelivery.objects.unscoped().filter(claimable, pk=delivery_id, attempts__lt=MAX_ATTEMPTS)
                .update(status=AlertDelivery.Status.SENDING, attempts=F("attempts") + 1, attempted_at=now))


def _insights_url(org: Organization) -> str:
    return settings.LLMOBSERVE_PUBLIC_URL.rstrip("/") + reverse("insights", kwargs={"slug": org.slug})


def _insight_lines(insight: Insight) -> list[str]:
    lines = [insight.title, f"Money at stake: {pico_display(insight.amount_exact_pico)} (exact: ${insight.amount_usd})"]
    for name, value in (("Section", insight.section), ("Model", insight.model), ("Customer", insight.customer_id)):
        if value:
            lines.append(f"{name}: {value}")
    return lines


_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


def header_safe(text: str) -> str:
    """One line for a mail header: CR, LF and other control characters (from labels, org names) become spaces.

    Django refuses a subject with a newline (BadHeaderError), which would make an alert undeliverable forever.
    """
    return _CONTROL_CHARS.sub(" ", text).strip()


def slack_escape(text: str) -> str:
    """Slack's mrkdwn escaping: labels cannot form <!channel> mentions or <http://…|links>."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def alert_message(*, delivery: AlertDelivery) -> tuple[str, str, list[Insight]]:
    """(subject, plain text, insights) of a delivery; the text is Slack-friendly too."""
    org = delivery.org
    if delivery.insight_id:
        insights = [delivery.insight]
        insight = delivery.insight
        subject = header_safe(f"[LLMObserve] {org.name}: {insight.title}")[:250]
        body = _insight_lines(insight)
        body.append("Evidence: " + ", ".join(f"{k}={v}" for k, v in insight.evidence.items() if v is not None))
    else:
        by_id = {i.pk: i for i in Insight.objects.for_org(org).filter(pk__in=delivery.digest_insight_ids)}
        insights = [by_id[pk] for pk in delivery.digest_insight_ids if pk in by_id]
        subject = header_safe(f"[LLMObserve] {org.name}: daily digest, "
                              f"{len(insights)} new insight{'s' if len(insights) != 1 else ''}")
        body = [f"{len(insights)} new insight(s) for {org.name} on {delivery.digest_date}:", ""]
        for insight in insights:
            body.append(f"• {insight.title} — {pico_display(insight.amount_exact_pico)} at stake")
    body += ["", f"See and dismiss them: {_insights_url(org)}"]
    return subject, "\n".join(body), insights


def webhook_post(*, url: str, payload: dict) -> None:
    """POST to a webhook through the SSRF guard (webhooks.py): validated URL, pinned address, no body echoed."""
    try:
        webhooks.webhook_post(url=url, payload=payload)
    except webhooks.WebhookError as exc:
        raise AlertDeliveryError(str(exc)) from None


def alert_deliver(*, delivery_id: int, now: datetime | None = None) -> AlertDelivery | None:
    """Send one delivery once. Raises AlertDeliveryError (after recording it) when the send failed."""
    now = now or timezone.now()
    if not _claim(delivery_id, now):
        return AlertDelivery.objects.unscoped().filter(pk=delivery_id).first()
    delivery = AlertDelivery.objects.unscoped().select_related("org", "insight").get(pk=delivery_id)
    org = delivery.org
    try:
        subject, text, insights = alert_message(delivery=delivery)
        if delivery.channel == AlertDelivery.Channel.EMAIL:
            recipients = alert_recipients(org=org)
            if not org.alert_email or not recipients:
                return _finish(delivery, AlertDelivery.Status.SKIPPED, "email alerts off or no owner/admin address")
            send_mail(subject, text, None, recipients, fail_silently=False)
        else:
            url = org.alert_webhook_url
            if not url:
                return _finish(delivery, AlertDelivery.Status.SKIPPED, "webhook removed")
            webhook_post(url=url, payload={
                "text": slack_escape(text),
                "llmobserve": {"org": org.slug, "digest_date": str(delivery.digest_date or "") or None,
                               "insights": [insight_as_api(i) for i in insights]},
            })
    except Exception as exc:  # recorded, then re-raised for a bounded retry
        error = str(exc) if isinstance(exc, AlertDeliveryError) else f"{exc.__class__.__name__}: {exc}"
        _finish(delivery, AlertDelivery.Status.FAILED, error)
        raise AlertDeliveryError(error) from exc
    return _finish(delivery, AlertDelivery.Status.SENT, "", sent_at=timezone.now())


def _finish(delivery: AlertDelivery, status: str, error: str, sent_at: datetime | None = None) -> AlertDelivery:
    delivery.status, delivery.last_error, delivery.sent_at = status, error[:2000], sent_at
    delivery.save(update_fields=["status", "last_error", "sent_at"])
    metrics.alert_sent(channel=delivery.channel, outcome=status)
    return delivery


def alert_test_send(*, org: Organization) -> dict[str, str | None]:
    """Send a test message on every configured channel now; {channel: error or None}. Records nothing."""
    text = (f"Test alert from LLMObserve for {org.name}: alerts reach this channel.\n"
            f"Insights: {_insights_url(org)}")
    results: dict[str, str | None] = {}
    if org.alert_email:
        recipients = alert_recipients(org=org)
        try:
            if not recipients:
                raise AlertDeliveryError("no owner or admin has an email address")
            send_mail(header_safe(f"[LLMObserve] {org.name}: test alert"), text, None, recipients, fail_silently=False)
            results[AlertDelivery.Channel.EMAIL] = None
        except Exception as exc:
            results[AlertDelivery.Channel.EMAIL] = str(exc)
    if org.alert_webhook_url:
        try:
            webhook_post(url=org.alert_webhook_url,
                         payload={"text": slack_escape(text), "llmobserve": {"org": org.slug, "test": True}})
            results[AlertDelivery.Channel.WEBHOOK] = None
        except AlertDeliveryError as exc:
            results[AlertDelivery.Channel.WEBHOOK] = str(exc)
    return results
