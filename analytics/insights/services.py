"""Writes for insights: run the detectors into Insight rows, dismiss, and change alert settings."""

from __future__ import annotations

import logging
from datetime import datetime
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.http import Http404
from django.utils import timezone

from accounts.models import Organization
from accounts.services import org_over_cap_set, org_update
from ingestion.money import pico_to_usd, usd_to_pico

from ..models import Insight
from . import detectors, webhooks
from .alerts import alerts_queue
from .detectors import Finding

logger = logging.getLogger(__name__)

_REFRESHED_FIELDS = ["title", "section", "model", "customer_id", "amount_pico", "evidence", "last_seen_at"]


_STORED_PICO_MAX = 2**63 - 1  # amount_pico is a bigint column


def _stored_amount(finding: Finding) -> None:
    """An amount past the bigint column (≈ $9.2M at stake) is stored at its maximum; the exact amount stays in
    the evidence (`amount_usd`) and the title."""
    if finding.amount_pico is not None and finding.amount_pico > _STORED_PICO_MAX:
        finding.evidence = {**finding.evidence, "amount_usd": pico_to_usd(finding.amount_pico)}
        finding.amount_pico = _STORED_PICO_MAX


def _insight_record(*, org: Organization, finding: Finding, now: datetime) -> tuple[Insight | None, bool]:
    """(insight, created). Refreshes the open insight with the same key; a dismissal holds for its period."""
    _stored_amount(finding)
    qs = Insight.objects.for_org(org).filter(kind=finding.kind, dedupe_key=finding.dedupe_key)
    existing = qs.filter(status=Insight.Status.OPEN).first()
    if existing is not None:
        for name in _REFRESHED_FIELDS[:-1]:
            setattr(existing, name, getattr(finding, name))
        existing.last_seen_at = now
        existing.save(update_fields=_REFRESHED_FIELDS)
        return existing, False
    dismissed_this_period = qs.filter(
        Q(period=finding.period) | Q(dismissed_at__gte=finding.period_start), status=Insight.Status.DISMISSED,
    ).exists()
    if dismissed_this_period:
        return None, False
    try:
        with transaction.atomic():
            insight = Insight.objects.create(
                org=org, kind=finding.kind, dedupe_key=finding.dedupe_key, period=finding.period,
                title=finding.title, section=finding.section, model=finding.model,
                customer_id=finding.customer_id, amount_pico=finding.amount_pico, evidence=finding.evidence,
                detected_at=now, last_seen_at=now,
            )
    except IntegrityError:  # a concurrent run recorded it first
        return None, False
    return insight, True


def insights_run(*, org: Organization, now: datetime | None = None) -> list[Insight]:
    """Run every detector for one org; record new insights, refresh open ones, queue alerts.

    Returns the insights found this run; new ones carry `is_new = True`. Idempotent: running
    twice at the same `now` creates nothing the second time. `over_cap` follows the cap status.
    """
    now = now or timezone.now()
    findings = detectors.findings_detect(org=org, now=now)
    found: list[Insight] = []
    created: list[Insight] = []
    with transaction.atomic():
        for finding in findings:
            insight, is_new = _insight_record(org=org, finding=finding, now=now)
            if insight is None:
                continue
            insight.is_new = is_new
            found.append(insight)
            if is_new:
                created.append(insight)
        over_cap_sync(org=org, now=now)
        if created:
            alerts_queue(org=org, insights=created, now=now)
    return found


def over_cap_sync(*, org: Organization, now: datetime | None = None) -> bool:
    """Set or clear the org's `over_cap` flag from its month-to-date cost; the ingestion response reports it."""
    over = detectors.spend_cap_status(org=org, now=now).over
    if org.over_cap != over:
        org_over_cap_set(org=org, over_cap=over)
    return over


def insight_get(*, org: Organization, insight_id: int) -> Insight:
    """Another org's insight is a 404, exactly like a missing one."""
    insight = Insight.objects.for_org(org).filter(pk=insight_id).first()
    if insight is None:
        raise Http404("No such insight")
    return insight


def insight_dismiss(*, org: Organization, insight_id: int) -> Insight:
    insight = insight_get(org=org, insight_id=insight_id)
    if insight.status != Insight.Status.DISMISSED:
        insight.status = Insight.Status.DISMISSED
        insight.dismissed_at = timezone.now()
        insight.save(update_fields=["status", "dismissed_at"])
    return insight


def _amount_pico(value: Decimal | str | None) -> int | None:
    """A settings amount in USD → pico-USD (None when blank); negative amounts are refused."""
    if value is None or value == "":
        return None
    pico = usd_to_pico(value)
    if pico < 0:
        raise ValueError("amounts cannot be negative")
    return pico


_UNSET = object()


def alert_settings_update(*, org: Organization, spend_cap_usd=_UNSET, spike_min_usd=_UNSET, alert_email=_UNSET,
                          alert_webhook_url=_UNSET, alert_digest=_UNSET, now: datetime | None = None) -> Organization:
    """Store the spending cap, spike minimum and alert channels on the org (through accounts).

    Only the arguments given change. An empty cap or spike minimum clears it (no cap; the site
    default minimum). `over_cap` is re-evaluated at once, so raising the cap releases a budget
    guard without waiting for the hourly run. A webhook URL that the SSRF guard refuses raises
    ValueError and nothing is saved.
    """
    fields: dict = {}
    if spend_cap_usd is not _UNSET:
        fields["spend_cap_pico"] = _amount_pico(spend_cap_usd)
    if spike_min_usd is not _UNSET:
        fields["spike_min_pico"] = _amount_pico(spike_min_usd)
    if alert_email is not _UNSET:
        fields["alert_email"] = bool(alert_email)
    if alert_webhook_url is not _UNSET:
        url = (alert_webhook_url or "").strip()
        if url:
            try:
                webhooks.webhook_url_validate(url)  # checked again at every delivery
            except webhooks.WebhookError as exc:
                raise ValueError(str(exc)) from None
        fields["alert_webhook_url"] = url
    if alert_digest is not _UNSET:
        fields["alert_digest"] = bool(alert_digest)
    with transaction.atomic():
        org_update(org=org, **fields)
        over_cap_sync(org=org, now=now)
    return org
