"""Reads of auto-instrument metering, always scoped to one org."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.db.models import Sum
from django.utils import timezone

from accounts.models import Organization

from .models import InstrumentUsage


@dataclass(frozen=True)
class UsageSummary:
    days: list[InstrumentUsage]
    requests: int
    claude_calls: int
    input_tokens: int
    output_tokens: int
    fallbacks: int
    cost_pico: int  # integer pico-USD; show it with the `money` filter (ingestion/money.py)


def usage_summary(*, org: Organization, days: int = 30) -> UsageSummary:
    """The org's last `days` days of auto-instrument use (UTC), newest first, with totals."""
    since = timezone.now().date() - timedelta(days=days - 1)
    rows = InstrumentUsage.objects.for_org(org).filter(day__gte=since).order_by("-day")
    totals = rows.aggregate(requests=Sum("requests"), claude_calls=Sum("claude_calls"),
                            input_tokens=Sum("input_tokens"), output_tokens=Sum("output_tokens"),
                            fallbacks=Sum("fallbacks"), cost_pico=Sum("cost_pico"))
    return UsageSummary(
        days=list(rows), requests=totals["requests"] or 0, claude_calls=totals["claude_calls"] or 0,
        input_tokens=totals["input_tokens"] or 0, output_tokens=totals["output_tokens"] or 0,
        fallbacks=totals["fallbacks"] or 0, cost_pico=totals["cost_pico"] or 0,
    )

