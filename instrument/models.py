"""Metering of the AI auto-instrument endpoint: one row per organisation and UTC day."""

from __future__ import annotations

from django.db import models

from accounts.models import Organization, TenantManager, TenantModel


class InstrumentUsage(TenantModel):
    """What an org's auto-instrument requests cost us. Written only by instrument.services.usage_record."""

    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="instrument_usage")
    day = models.DateField()
    requests = models.PositiveIntegerField(default=0)
    claude_calls = models.PositiveIntegerField(default=0)
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    cost_pico = models.BigIntegerField(default=0, help_text="Our Anthropic cost, integer pico-USD (1e-12 USD).")
    fallbacks = models.PositiveIntegerField(
        default=0, help_text="Requests the static engine answered because Claude failed or was over its global rate.")

    objects = TenantManager()

    class Meta:
        ordering = ["-day"]
        verbose_name = "auto-instrument usage"
        verbose_name_plural = "auto-instrument usage"
        constraints = [models.UniqueConstraint(fields=["org", "day"], name="instrumentusage_unique_org_day")]

    def __str__(self) -> str:
        return f"{self.org} {self.day}: {self.requests} requests"
