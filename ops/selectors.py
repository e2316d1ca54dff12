"""Reads for the operators: the staff console's figures across all orgs, and the backlog gauges of /metrics.

Everything here is cross-tenant on purpose (`.unscoped()` spelled out) and reads summary tables: events
and cost per day come from the daily rollups, never from the events table. Every function takes `now`.
"""

from __future__ import annotations

from collections import Counter as Tally
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone as dt_timezone

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Count, Sum
from django.db.models.functions import TruncDate

from accounts.models import ApiKey, Organization
from analytics.models import AlertDelivery
from ingestion.models import AgentDailyRollup, RawBatch
from ingestion.selectors import batches_backlog, batches_oldest_pending_received_at

WINDOWS = (7, 30, 90)  # days the console can show
ACTIVE_DAYS = 7  # an org is active when it has events in the last 7 UTC days (today included)
CHURN_DAYS = 30
LAG_SAMPLE = 10_000  # the lag percentiles read at most this many of the window's latest processed batches
TOP_N = 20
PICO_PER_CENT = 10_000_000_000
PAID_STATUSES = ("active", "past_due")  # what MRR counts (a trial pays nothing yet)


def _midnight(moment: datetime) -> datetime:
    return moment.astimezone(dt_timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)


@dataclass(frozen=True)
class ConsoleWindow:
    """`days` whole UTC days ending with today (today's partial day included)."""

    days: int
    start: datetime
    end: datetime

    @classmethod
    def build(cls, *, days: int, now: datetime) -> ConsoleWindow:
        if days not in WINDOWS:
            raise ValueError(f"window must be one of {WINDOWS}")
        return cls(days=days, start=_midnight(now) - timedelta(days=days - 1), end=now)

    def dates(self) -> list[date]:
        first = self.start.date()
        return [first + timedelta(days=i) for i in range(self.days)]


def _series(window: ConsoleWindow, counts: dict[date, int]) -> list[tuple[date, int]]:
    return [(day, counts.get(day, 0)) for day in window.dates()]


def _day(value) -> date:
    return value.date() if isinstance(value, datetime) else value


def signups_per_day(*, window: ConsoleWindow) -> list[tuple[date, int]]:
    rows = (get_user_model().objects.filter(date_joined__gte=window.start, date_joined__lte=window.end)
            .annotate(d=TruncDate("date_joined", tzinfo=dt_timezone.utc)).values("d").annotate(n=Count("pk")))
    return _series(window, {_day(r["d"]): r["n"] for r in rows})


def api_keys_per_day(*, window: ConsoleWindow) -> list[tuple[date, int]]:
    rows = (ApiKey.objects.unscoped().filter(created_at__gte=window.start, created_at__lte=window.end)
            .annotate(d=TruncDate("created_at", tzinfo=dt_timezone.utc)).values("d").annotate(n=Count("pk")))
    return _series(window, {_day(r["d"]): r["n"] for r in rows})


def _rollups(window: ConsoleWindow):
    return AgentDailyRollup.objects.unscoped().filter(day__gte=window.start, day__lte=window.end)


@dataclass(frozen=True)
class DayUsage:
    day: date
    events: int
    cost_pico: int


def usage_per_day(*, window: ConsoleWindow) -> list[DayUsage]:
    """Events and cost tracked per UTC day across every org, from the daily rollups."""
    rows = _rollups(window).values("day").annotate(events=Sum("calls"), cost=Sum("cost_pico"))
    by_day = {_day(r["day"]): (r["events"] or 0, r["cost"] or 0) for r in rows}
    return [DayUsage(day, *by_day.get(day, (0, 0))) for day in window.dates()]


@dataclass(frozen=True)
class OrgUsage:
    org_id: int
    slug: str
    name: str
    events: int
    cost_pico: int
    unpriced_calls: int


def orgs_usage(*, window: ConsoleWindow, order: str = "cost", limit: int | None = TOP_N) -> list[OrgUsage]:
    """Orgs by cost (or events) over the window; `limit=None` for every org with usage (the CSV)."""
    key = "-cost" if order == "cost" else "-events"
    rows = (_rollups(window).values("org_id")
            .annotate(events=Sum("calls"), cost=Sum("cost_pico"), unpriced=Sum("unpriced_calls"))
            .order_by(key, "org_id"))
    rows = list(rows if limit is None else rows[:limit])
    orgs = Organization.objects.in_bulk([r["org_id"] for r in rows])
    return [OrgUsage(r["org_id"], orgs[r["org_id"]].slug, orgs[r["org_id"]].name, r["events"] or 0, r["cost"] or 0,
                     r["unpriced"] or 0) for r in rows if r["org_id"] in orgs]


@dataclass(frozen=True)
class ModelUsage:
    provider: str
    model: str
    events: int
    cost_pico: int
    unpriced_calls: int


def models_usage(*, window: ConsoleWindow, limit: int = TOP_N) -> list[ModelUsage]:
    rows = (_rollups(window).values("provider", "model")
            .annotate(events=Sum("calls"), cost=Sum("cost_pico"), unpriced=Sum("unpriced_calls"))
            .order_by("-cost", "-events", "provider", "model")[:limit])
    return [ModelUsage(r["provider"], r["model"], r["events"] or 0, r["cost"] or 0, r["unpriced"] or 0) for r in rows]


def providers_usage(*, window: ConsoleWindow) -> list[ModelUsage]:
    rows = (_rollups(window).values("provider")
            .annotate(events=Sum("calls"), cost=Sum("cost_pico"), unpriced=Sum("unpriced_calls"))
            .order_by("-cost", "-events", "provider"))
    return [ModelUsage(r["provider"], "", r["events"] or 0, r["cost"] or 0, r["unpriced"] or 0) for r in rows]


def active_orgs_count(*, now: datetime) -> int:
    since = _midnight(now) - timedelta(days=ACTIVE_DAYS - 1)
    return (AgentDailyRollup.objects.unscoped().filter(day__gte=since, calls__gt=0)
            .values("org_id").distinct().count())


# --- ingestion health -------------------------------------------------------------------------------

@dataclass(frozen=True)
class IngestLag:
    p50_seconds: float | None
    p95_seconds: float | None
    batches: int
    events: int


def _weighted_percentile(samples: list[tuple[float, int]], q: float) -> float | None:
    """The smallest lag at or below which at least `q` of the events fall (each batch weighs its events)."""
    total = sum(weight for _, weight in samples)
    if not total:
        return None
    target, seen = q * total, 0
    for lag, weight in sorted(samples):
        seen += weight
        if seen >= target:
            return lag
    return samples[-1][0]  # pragma: no cover - unreachable: seen reaches total


def ingest_lag(*, window: ConsoleWindow) -> IngestLag:
    """Event lag (received → processed) p50/p95 over the window's latest processed batches, per event.

    Walks the primary key backwards (batches are received in id order), reading at most LAG_SAMPLE rows. Fold
    batches are left out: the worker writes them for its own second step (OTLP), nobody sent them.
    """
    rows = list(RawBatch.objects.unscoped().filter(processed_at__isnull=False, received_at__gte=window.start,
                                                   received_at__lte=window.end).exclude(kind=RawBatch.Kind.FOLD)
                .order_by("-pk").values_list("received_at", "processed_at", "event_count")[:LAG_SAMPLE])
    samples = [(max(0.0, (done - got).total_seconds()), n) for got, done, n in rows]
    return IngestLag(p50_seconds=_weighted_percentile(samples, 0.5), p95_seconds=_weighted_percentile(samples, 0.95),
                     batches=len(samples), events=sum(n for _, n in samples))


@dataclass(frozen=True)
class Backlog:
    pending: int
    quarantined: int
    oldest_pending_seconds: float


def backlog(*, now: datetime) -> Backlog:
    """The gauges /metrics exposes: both counts and the oldest row walk the partial indexes of unprocessed rows."""
    counts = batches_backlog()
    oldest = batches_oldest_pending_received_at()
    age = max(0.0, (now - oldest).total_seconds()) if oldest else 0.0
    return Backlog(pending=counts["pending"], quarantined=counts["quarantined"], oldest_pending_seconds=age)


def stuck_batches(*, limit: int = 50) -> list[RawBatch]:
    """Quarantined batches, then those waiting on a retry (failed at least once), oldest first."""
    unprocessed = RawBatch.objects.unscoped().filter(processed_at__isnull=True).defer("payload").select_related("org")
    quarantined = list(unprocessed.filter(quarantined_at__isnull=False).order_by("quarantined_at")[:limit])
    retrying = list(unprocessed.filter(quarantined_at__isnull=True, attempts__gt=0)
                    .order_by("received_at")[:max(0, limit - len(quarantined))])
    return quarantined + retrying


def alert_deliveries_failing(*, limit: int = 50) -> list[AlertDelivery]:
    return list(AlertDelivery.objects.unscoped().filter(status=AlertDelivery.Status.FAILED)
                .select_related("org").order_by("-attempted_at", "-pk")[:limit])


# --- subscriptions (dj-stripe's mirror of Stripe) ----------------------------------------------------

def _ts(value) -> datetime | None:
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        return value
    return datetime.fromtimestamp(int(value), tz=dt_timezone.utc)


_MONTHS_PER = {"day": (12, 365), "week": (12, 52), "month": (1, 1), "year": (12, 1)}  # (divide, multiply)


def _monthly_pico(*, unit_amount: int, quantity: int, interval: str, interval_count: int) -> int:
    """A recurring price per month, in pico-USD: a yearly $96 is $8 a month; a weekly one × 52 / 12."""
    divide, multiply = _MONTHS_PER.get(interval, (1, 1))
    return unit_amount * quantity * PICO_PER_CENT * multiply // (divide * max(1, interval_count))


@dataclass
class SubscriptionStats:
    by_status: dict[str, int] = field(default_factory=dict)
    mrr_pico: int = 0
    paying: int = 0
    other_currency: int = 0  # paid subscriptions in another currency: counted, not in MRR
    active_at_start: int = 0
    churned: int = 0

    @property
    def churn_rate(self) -> float | None:
        return self.churned / self.active_at_start if self.active_at_start else None


def subscriptions_stats(*, now: datetime) -> SubscriptionStats:
    """Subscriptions by status, MRR of the paid ones, and churn over the last 30 days.

    MRR: every item of an active or past-due subscription, at its price's amount × quantity, per month.
    Churn: of the subscriptions live 30 days ago, the share that ended since.
    """
    from djstripe.models import Price, Subscription

    livemode = bool(settings.STRIPE_LIVE_MODE)
    subs = list(Subscription.objects.filter(livemode=livemode).values_list("stripe_data", flat=True))
    item_price_ids = {(item.get("price") or {}).get("id") if isinstance(item.get("price"), dict) else item.get("price")
                      for data in subs for item in ((data or {}).get("items") or {}).get("data") or []}
    prices = {p.id: p.stripe_data for p in Price.objects.filter(id__in=[i for i in item_price_ids if i])}
    stats = SubscriptionStats()
    tally: Tally[str] = Tally()
    churn_start = now - timedelta(days=CHURN_DAYS)
    for data in subs:
        data = data or {}
        status = data.get("status") or "unknown"
        tally[status] += 1
        started, ended = _ts(data.get("start_date") or data.get("created")), _ts(data.get("ended_at"))
        if started is not None and started <= churn_start and (ended is None or ended > churn_start):
            stats.active_at_start += 1
            if ended is not None and ended <= now:
                stats.churned += 1
        if status not in PAID_STATUSES:
            continue
        stats.paying += 1
        for item in (data.get("items") or {}).get("data") or []:
            embedded = item.get("price") if isinstance(item.get("price"), dict) else {}
            price = prices.get(embedded.get("id") if embedded else item.get("price")) or embedded
            recurring = price.get("recurring") or {}
            if (price.get("currency") or "usd").lower() != "usd":
                stats.other_currency += 1
                continue
            stats.mrr_pico += _monthly_pico(unit_amount=int(price.get("unit_amount") or 0),
                                            quantity=int(item.get("quantity") or 1),
                                            interval=recurring.get("interval", "month"),
                                            interval_count=int(recurring.get("interval_count") or 1))
    stats.by_status = dict(sorted(tally.items(), key=lambda kv: (-kv[1], kv[0])))
    return stats


@dataclass(frozen=True)
class Console:
    """Everything the staff console shows for one window (a fixed number of queries, whatever the org count)."""

    window: ConsoleWindow
    signups: list[tuple[date, int]]
    api_keys: list[tuple[date, int]]
    usage: list[DayUsage]
    active_orgs: int
    subscriptions: SubscriptionStats
    top_cost: list[OrgUsage]
    top_events: list[OrgUsage]
    models: list[ModelUsage]
    providers: list[ModelUsage]
    lag: IngestLag
    backlog: Backlog
    stuck: list[RawBatch]
    failing_alerts: list[AlertDelivery]


def console_get(*, window: ConsoleWindow) -> Console:
    now = window.end
    return Console(
        window=window, signups=signups_per_day(window=window), api_keys=api_keys_per_day(window=window),
        usage=usage_per_day(window=window), active_orgs=active_orgs_count(now=now),
        subscriptions=subscriptions_stats(now=now), top_cost=orgs_usage(window=window, order="cost"),
        top_events=orgs_usage(window=window, order="events"), models=models_usage(window=window),
        providers=providers_usage(window=window), lag=ingest_lag(window=window), backlog=backlog(now=now),
        stuck=stuck_batches(), failing_alerts=alert_deliveries_failing(),
    )
