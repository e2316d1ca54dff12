"""Reads of insights, always scoped to one org."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, F, QuerySet

from accounts.models import Organization

from ..models import Insight


def insights_list(*, org: Organization, status: str = Insight.Status.OPEN) -> QuerySet[Insight]:
    return Insight.objects.for_org(org).filter(status=status).order_by("-id")


def insights_page(*, org: Organization, status: str, after_id: int | None = None,
                  limit: int = 50) -> tuple[list[Insight], int | None]:
    """Newest first, keyset-paginated on id; returns (page, id to continue after, or None)."""
    qs = insights_list(org=org, status=status)
    if after_id is not None:
        qs = qs.filter(id__lt=after_id)
    rows = list(qs[: limit + 1])
    if len(rows) > limit:
        return rows[:limit], rows[limit - 1].id
    return rows, None


def insights_top(*, org: Organization, limit: int = 5) -> list[Insight]:
    """The open insights with the most money at stake (then the newest): the overview panel."""
    return list(insights_list(org=org).order_by(F("amount_pico").desc(nulls_last=True), "-id")[:limit])


def insight_counts(*, org: Organization) -> dict[str, int]:
    counts = {s: 0 for s in Insight.Status.values}
    for row in Insight.objects.for_org(org).order_by().values("status").annotate(n=Count("id")):
        counts[row["status"]] = row["n"]
    return counts


def insight_as_api(insight: Insight) -> dict[str, Any]:
    """GET /v1/insights item (DESIGN §4b); empty section/model/customer are null."""
    return {
        "id": insight.id,
        "kind": insight.kind,
        "title": insight.title,
        "section": insight.section or None,
        "model": insight.model or None,
        "customer_id": insight.customer_id or None,
        "amount_usd": insight.amount_usd,
        "evidence": insight.evidence,
        "detected_at": insight.detected_at.isoformat().replace("+00:00", "Z"),
        "status": insight.status,
    }
