"""Insights found by the detectors, and the alert deliveries they cause.

Money is integer pico-USD, like the rollups it is computed from.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from accounts.models import Organization, TenantManager, TenantModel
from ingestion.money import usd_to_pico

from ingestion.money import pico_to_usd


class Insight(TenantModel):
    """One finding: what changed, who or what caused it, and the money at stake.

    `dedupe_key` (a hash of kind + section/model/customer/endpoint) and `period` make a re-run
    idempotent: at most one *open* insight per key, and a dismissed one stays dismissed for the
    rest of its period (a day for spikes and bloat, an ISO week for loops and model choice, the
    calendar month for the spending cap and the spend forecast).
    """

    class Kind(models.TextChoices):
        SECTION_SPIKE = "section_spike", "Section spend spike"
        TOKEN_BLOAT = "token_bloat", "Token bloat"
        RETRY_LOOP = "retry_loop", "Retry loop"
        MODEL_INEFFICIENCY = "model_inefficiency", "Model inefficiency"
        SPEND_CAP = "spend_cap", "Spending cap"
        SPEND_FORECAST = "spend_forecast", "Spend forecast"
        ERROR_SPIKE = "error_spike", "Error spike"
        LATENCY_REGRESSION = "latency_regression", "Latency regression"

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        DISMISSED = "dismissed", "Dismissed"

    id = models.BigAutoField(primary_key=True)
    org = models.ForeignKey(Organization, on_delete=models.CASCADE, db_index=False)
    kind = models.CharField(max_length=24, choices=Kind.choices)
    title = models.CharField(max_length=400)
    section = models.CharField(max_length=1024, blank=True, help_text="Section path; '' = none or Untracked.")
    model = models.CharField(max_length=256, blank=True)
    customer_id = models.CharField(max_length=256, blank=True)
    amount_pico = models.BigIntegerField(null=True, blank=True, help_text="Money at stake, pico-USD.")
    evidence = models.JSONField(default=dict, blank=True, help_text="The numbers the detector compared.")
    dedupe_key = models.CharField(max_length=40)
    period = models.CharField(max_length=16)
    detected_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    dismissed_at = models.DateTimeField(null=True, blank=True)
    alerted_at = models.DateTimeField(null=True, blank=True,
                                      help_text="When its alert (or the digest holding it) was queued.")

    objects = TenantManager()

    class Meta:
        ordering = ["-detected_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["org", "kind", "dedupe_key"], condition=models.Q(status="open"),
                                    name="insight_one_open_per_key"),
            models.UniqueConstraint(fields=["org", "kind", "dedupe_key", "period"], name="insight_once_per_period"),
        ]
        indexes = [models.Index(fields=["org", "status", "-id"], name="insight_org_status_idx")]

    def __str__(self) -> str:
        return self.title

    @property
    def amount_exact_pico(self) -> int | None:
        """The money at stake, exact: past the bigint column (≈ $9.2M) the stored amount is capped and the exact
        one is in the evidence (analytics.insights.services)."""
        exact = (self.evidence or {}).get("amount_usd")
        return usd_to_pico(exact) if exact else self.amount_pico

    @property
    def amount_usd(self) -> str | None:
        return pico_to_usd(self.amount_exact_pico)


class AlertDelivery(TenantModel):
    """One message on one channel: for an insight, or a daily digest of several.

    Unique per (insight, channel) and per (org, digest day, channel), so queuing twice never
    sends twice; `status` moves pending → sending → sent | failed (retried, bounded).
    """

    class Channel(models.TextChoices):
        EMAIL = "email", "Email"
        WEBHOOK = "webhook", "Webhook"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"
        SKIPPED = "skipped", "Skipped (channel turned off)"

    id = models.BigAutoField(primary_key=True)
    org = models.ForeignKey(Organization, on_delete=models.CASCADE, db_index=False)
    insight = models.ForeignKey(Insight, null=True, blank=True, on_delete=models.CASCADE, related_name="deliveries")
    digest_date = models.DateField(null=True, blank=True, help_text="Set for a daily digest.")
    digest_insight_ids = models.JSONField(default=list, blank=True)
    channel = models.CharField(max_length=8, choices=Channel.choices)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    attempted_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    objects = TenantManager()

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["insight", "channel"], condition=models.Q(insight__isnull=False),
                                    name="alertdelivery_once_per_insight"),
            models.UniqueConstraint(fields=["org", "digest_date", "channel"],
                                    condition=models.Q(digest_date__isnull=False), name="alertdelivery_once_per_digest"),
        ]
        indexes = [models.Index(fields=["org", "-id"], name="alertdelivery_org_idx")]

    def __str__(self) -> str:
        what = f"insight {self.insight_id}" if self.insight_id else f"digest {self.digest_date}"
        return f"{self.channel} for {what}: {self.status}"
