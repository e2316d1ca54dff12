"""Read-side selectors: every number comes from the rollup and run-summary tables, scoped to one org."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator, Literal

from django.db.models import Q, Sum
from django.db.models.functions import Trunc
from django.http import Http404

from accounts.models import Organization
from ingestion.money import pico_avg_to_usd, pico_to_usd
from ingestion.models import ROLLUP_GRAINS, HourlyRollup, RunFacet, RunSummary, TraceEvent
from ingestion.selectors import price_provenance, price_provenance_text, price_rows_get

from .sums import sum_expressions, sums_of
from .windows import Window

Dimension = Literal["agent", "section", "provider", "model", "customer"]
DIMENSIONS: dict[str, str] = {
    "agent": "agent", "section": "section_path", "provider": "provider", "model": "model", "customer": "customer_id",
}
UNTRACKED = "Untracked"
NO_CUSTOMER = "(no customer)"


_SUMS = ("cost_pico", "calls", "unpriced_calls", "errors", "input_tokens", "output_tokens", "cached_input_tokens")


@dataclass(frozen=True)
class RollupRow:
    """The read side's one row type: the sums of a group of rollup rows. Dimensions it is not grouped by
    are None; sums are exact integers (see `_sum_expressions`)."""

    agent: str | None = None
    section_path: str | None = None
    provider: str | None = None
    model: str | None = None
    customer_id: str | None = None
    bucket: datetime | None = None
    cost_pico: int = 0
    calls: int = 0
    unpriced_calls: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0

    def plus(self, other: RollupRow) -> RollupRow:
        return replace(self, **{name: getattr(self, name) + getattr(other, name) for name in _SUMS})


def rows_regroup(rows: list[RollupRow], dims: tuple[str, ...]) -> list[RollupRow]:
    """The rows summed per value of `dims` (every other dimension dropped): a coarser grouping, in Python."""
    sums: dict[tuple, list[int]] = {}
    for row in rows:  # plain lists per key: a frozen row rebuilt per added row cost the 24 h overview a third
        key = tuple(getattr(row, d) for d in dims)
        values = [getattr(row, name) for name in _SUMS]
        acc = sums.get(key)
        if acc is None:
            sums[key] = values
        else:
            for i, value in enumerate(values):
                acc[i] += value
    return [RollupRow(**dict(zip(dims, key)), **dict(zip(_SUMS, values))) for key, values in sums.items()]


def _sum_expressions() -> dict[str, Sum]:
    """SUM per measure (as `<column>_sum`), exact past 2**63 on SQLite too (analytics/sums.py)."""
    return sum_expressions({f"{column}_sum": column for column in _SUMS})


def _sums_of(row: dict[str, Any]) -> dict[str, int]:
    sums = sums_of(row, [f"{column}_sum" for column in _SUMS])
    return {column: sums[f"{column}_sum"] for column in _SUMS}


def _floor_day(value: datetime) -> datetime:
    return value.replace(hour=0, minute=0, second=0, microsecond=0)


def rollup_grain(group: tuple[str, ...], *, customer_filter: bool) -> str:
    """The coarsest rollup grain whose dimensions hold `group` (and the customer filter, if any)."""
    needed = set(group) | ({"customer_id"} if customer_filter else set())
    # "endpoint" last: only the latency and error reads by endpoint group by it (it holds no model or agent)
    grains = ("customer", "section", "agent", "fine", "endpoint")
    return next(grain for grain in grains if needed <= set(ROLLUP_GRAINS[grain][0]))


MIN_DAILY_PART = timedelta(days=2)


def rollup_parts(window: Window, *, hourly_only: bool = False, grain: str = "fine"
                 ) -> list[tuple[type, str, datetime, datetime]]:
    """The window as (table, period column, start, end) parts: whole UTC days from the daily table, the
    partial days at either edge from the hourly one. A 30-day window reads ~24× fewer rows.

    A window holding fewer than two whole days is read from the hourly table alone: one day of hourly rows
    costs less than the extra query, and a 24-hour window is one query at any hour (at 00:xx its start is a
    midnight, so it holds a whole day).

    `grain`: "fine" (every dimension), "agent" (agent × provider × model), "customer" or "section".
    """
    _, hourly, daily = ROLLUP_GRAINS[grain]
    first_day = _floor_day(window.start)
    if first_day < window.start:
        first_day += timedelta(days=1)
    last_day = _floor_day(window.end)
    if hourly_only or last_day - first_day < MIN_DAILY_PART:
        return [(hourly, "hour", window.start, window.end)]
    parts: list[tuple[type, str, datetime, datetime]] = []
    if window.start < first_day:
        parts.append((hourly, "hour", window.start, first_day))
    parts.append((daily, "day", first_day, last_day))
    if last_day < window.end:
        parts.append((hourly, "hour", last_day, window.end))
    return parts


def rollup_sums(*, org: Organization, window: Window, group: tuple[str, ...] = (), customer_id: str | None = None,
                customer_in: list[str] | None = None, interval: str | None = None) -> list[RollupRow]:
    """Sums of cost, calls, unpriced, errors and tokens per `group` (+ `bucket` with an interval), over
    the window's rollup parts, merged. One grouped query per part (at most three)."""
    keys = group + (("bucket",) if interval else ())
    grain = rollup_grain(group, customer_filter=customer_id is not None or customer_in is not None)
    merged: dict[tuple, RollupRow] = {}
    for model, period, start, end in rollup_parts(window, hourly_only=interval == "hour", grain=grain):
        qs = model.objects.for_org(org).filter(**{f"{period}__gte": start, f"{period}__lt": end})
        if customer_id is not None:
            qs = qs.filter(customer_id=customer_id)
        if customer_in is not None:
            qs = qs.filter(customer_id__in=customer_in)
        if interval:
            qs = qs.annotate(bucket=Trunc(period, interval, tzinfo=timezone.utc))
        sums = _sum_expressions()
        rows = qs.values(*keys).annotate(**sums).order_by() if keys else [qs.aggregate(**sums)]
        for values in rows:
            key = tuple(values[k] for k in keys)
            row = RollupRow(**dict(zip(keys, key)), **_sums_of(values))
            acc = merged.get(key)
            merged[key] = row if acc is None else acc.plus(row)
    return list(merged.values()) if merged or keys else [RollupRow()]


def change_pct(current: int, previous: int) -> float | None:
    """Percent change against the previous period, one decimal; None when there was no previous spend."""
    if not previous:
        return None
    return round((current - previous) * 100 / previous, 1)


def label_of(dimension: str, key: str | None) -> str:
    if key is None or key == "":
        return NO_CUSTOMER if dimension == "customer" else UNTRACKED
    if dimension == "agent":
        return key.split(":", 1)[1] if ":" in key else key
    return key


@dataclass(frozen=True)
class Summary:
    cost_pico: int
    calls: int
    unpriced_calls: int
    errors: int
    input_tokens: int
    output_tokens: int
    previous_cost_pico: int

    @property
    def change_pct(self) -> float | None:
        return change_pct(self.cost_pico, self.previous_cost_pico)

    def as_api(self) -> dict[str, Any]:
        return {
            "cost_usd": pico_to_usd(self.cost_pico), "calls": self.calls,
            "avg_cost_usd": pico_avg_to_usd(self.cost_pico, self.calls),
            "previous_cost_usd": pico_to_usd(self.previous_cost_pico), "change_pct": self.change_pct,
            "unpriced_calls": self.unpriced_calls,
        }


def cost_summary(*, org: Organization, window: Window, customer_id: str | None = None) -> Summary:
    totals = rollup_sums(org=org, window=window, customer_id=customer_id)[0]
    previous = rollup_sums(org=org, window=window.previous, customer_id=customer_id)[0].cost_pico
    return _summary_of(totals, previous)


def _summary_of(totals: RollupRow, previous_cost_pico: int) -> Summary:
    return Summary(cost_pico=totals.cost_pico, calls=totals.calls, unpriced_calls=totals.unpriced_calls,
                   errors=totals.errors, input_tokens=totals.input_tokens, output_tokens=totals.output_tokens,
                   previous_cost_pico=previous_cost_pico)


@dataclass(frozen=True)
class BreakdownRow:
    key: str | None
    label: str
    cost_pico: int
    calls: int
    unpriced_calls: int
    share: float

    def as_api(self) -> dict[str, Any]:
        return {"key": self.key, "label": self.label, "cost_usd": pico_to_usd(self.cost_pico), "calls": self.calls,
                "share": self.share}


def cost_breakdown(*, org: Organization, by: Dimension, window: Window, limit: int | None = None,
                   customer_id: str | None = None) -> list[BreakdownRow]:
    """Every key of the dimension in the window, by cost (then calls). Unlabelled rows: key None."""
    column = DIMENSIONS[by]
    return _breakdown(rollup_sums(org=org, window=window, group=(column,), customer_id=customer_id), by, limit)


def _breakdown(rows: list[RollupRow], by: Dimension, limit: int | None = None) -> list[BreakdownRow]:
    """Rows grouped by the dimension's column, as breakdown rows by cost (then calls, then key)."""
    column = DIMENSIONS[by]
    rows = sorted(rows, key=lambda r: (-r.cost_pico, -r.calls, getattr(r, column) or ""))
    total = sum(r.cost_pico for r in rows)
    out = []
    for r in rows[:limit] if limit else rows:
        key = getattr(r, column) or None
        out.append(BreakdownRow(key=key, label=label_of(by, key), cost_pico=r.cost_pico, calls=r.calls,
                                unpriced_calls=r.unpriced_calls,
                                share=round(r.cost_pico / total, 4) if total else 0.0))
    return out


def cost_timeseries(*, org: Organization, window: Window, interval: Literal["day", "hour"] = "day",
                    by: Literal["provider", "model", "agent"] = "provider", customer_id: str | None = None
                    ) -> list[dict[str, Any]]:
    """Every bucket of the window (empty ones as {}), values = cost per key as plain decimal strings."""
    column = DIMENSIONS[by]
    rows = rollup_sums(org=org, window=window, group=(column,), customer_id=customer_id, interval=interval)
    return _timeseries(window, interval, rows, column)


def _timeseries(window: Window, interval: str, rows: list[RollupRow], column: str) -> list[dict[str, Any]]:
    by_bucket: dict[datetime, dict[str, int]] = {}
    for r in rows:
        key = getattr(r, column) or UNTRACKED
        bucket = by_bucket.setdefault(r.bucket, {})
        bucket[key] = bucket.get(key, 0) + r.cost_pico
    return _buckets_fill(window, interval, by_bucket)


def _buckets_step(window: Window, interval: str) -> Iterator[tuple[datetime, str]]:
    """Each bucket of the window: (its start, its label)."""
    step = timedelta(days=1) if interval == "day" else timedelta(hours=1)
    t = window.start.replace(hour=0) if interval == "day" else window.start
    while t < window.end:
        yield t, t.strftime("%Y-%m-%d") if interval == "day" else t.strftime("%Y-%m-%dT%H:00:00Z")
        t += step


def _buckets_fill(window: Window, interval: str, by_bucket: dict[datetime, dict[str, int]]) -> list[dict[str, Any]]:
    out = []
    for t, label in _buckets_step(window, interval):
        ordered = sorted(by_bucket.get(t, {}).items(), key=lambda kv: -kv[1])
        out.append({"t": label, "values": {k: pico_to_usd(v) for k, v in ordered}})
    return out


# --- runs ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RunFilters:
    customer_id: str = ""
    section: str = ""
    status: str = ""
    model: str = ""
    agent: str = ""
    untracked: bool = False  # only runs with at least one call without a section label


def _encode_cursor(run: RunSummary) -> str:
    raw = f"{run.started_at.isoformat()}|{run.pk}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, int] | None:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        started, pk = raw.rsplit("|", 1)
        position = datetime.fromisoformat(started), int(pk)
    except (ValueError, UnicodeDecodeError):
        return None
    return position if position[0].tzinfo and 0 <= position[1] < 2**63 else None


def runs_list(*, org: Organization, window: Window, filters: RunFilters = RunFilters(), cursor: str = "",
              limit: int = 50) -> tuple[list[RunSummary], str | None]:
    """Newest first, keyset-paginated on (started_at, id); filters go through the run facets."""
    qs = RunSummary.objects.for_org(org).filter(started_at__gte=window.start, started_at__lt=window.end)
    facets = RunFacet.objects.for_org(org)
    if filters.status == "ok":
        qs = qs.filter(errors=0)
    for kind, value, prefix in (
        (RunFacet.Kind.CUSTOMER, filters.customer_id, False), (RunFacet.Kind.MODEL, filters.model, False),
        (RunFacet.Kind.STATUS, "" if filters.status == "ok" else filters.status, False),
        (RunFacet.Kind.SECTION, filters.section, True),
    ):
        if value:
            match = facets.filter(kind=kind, **({"value__startswith": value} if prefix else {"value": value}))
            qs = qs.filter(run_id__in=match.values("run_id"))
    if filters.agent:
        # One equality on the facet index: the agent (first path segment) has its own facet rows.
        agent_runs = facets.filter(kind=RunFacet.Kind.AGENT, value=filters.agent)
        qs = qs.filter(run_id__in=agent_runs.values("run_id"))
    if filters.untracked:  # the empty agent facet: a run with at least one call without a section label
        qs = qs.filter(run_id__in=facets.filter(kind=RunFacet.Kind.AGENT, value="").values("run_id"))
    position = _decode_cursor(cursor) if cursor else None
    if position is not None:
        started, pk = position
        qs = qs.filter(Q(started_at__lt=started) | Q(started_at=started, pk__lt=pk))
    runs = list(qs.order_by("-started_at", "-pk")[: limit + 1])
    next_cursor = _encode_cursor(runs[limit - 1]) if len(runs) > limit else None
    return runs[:limit], next_cursor


def run_as_api(run: RunSummary) -> dict[str, Any]:
    return {
        "run_id": run.run_id, "started_at": run.started_at.isoformat().replace("+00:00", "Z"),
        "ended_at": run.ended_at.isoformat().replace("+00:00", "Z"), "calls": run.calls,
        "cost_usd": pico_to_usd(run.cost_pico) if run.unpriced_calls < run.calls or run.cost_pico else None,
        "input_tokens": run.input_tokens, "output_tokens": run.output_tokens,
        "unpriced_calls": run.unpriced_calls, "errors": run.errors,
    }


@dataclass
class SectionNode:
    path: str
    name: str
    cost_pico: int = 0
    calls: int = 0
    unpriced_calls: int = 0
    children: dict[str, SectionNode] = field(default_factory=dict)

    def as_api(self) -> dict[str, Any]:
        return {"path": self.path, "name": self.name, "cost_usd": pico_to_usd(self.cost_pico), "calls": self.calls,
                "children": [c.as_api() for c in self.sorted_children()]}

    def sorted_children(self) -> list[SectionNode]:
        return sorted(self.children.values(), key=lambda n: (-n.cost_pico, n.path))


def section_tree(events: list[TraceEvent]) -> list[SectionNode]:
    """Cost and calls rolled up per path node; untracked calls sit in a root node with path ''."""
    roots: dict[str, SectionNode] = {}
    for event in events:
        cost = event.cost_pico or 0
        unpriced = 1 if event.cost_pico is None else 0
        if not event.section_path:
            node = roots.setdefault("", SectionNode(path="", name=UNTRACKED))
            node.cost_pico += cost
            node.calls += 1
            node.unpriced_calls += unpriced
            continue
        level, path = roots, ""
        for segment in event.section_path.split("/"):
            path = f"{path}/{segment}" if path else segment
            node = level.setdefault(path, SectionNode(path=path, name=segment))
            node.cost_pico += cost
            node.calls += 1
            node.unpriced_calls += unpriced
            level = node.children
    return sorted(roots.values(), key=lambda n: (-n.cost_pico, n.path))


def run_get(*, org: Organization, run_id: str) -> RunSummary:
    if "\x00" in run_id:  # no stored label holds NUL, and PostgreSQL refuses it even in a query
        raise Http404("No such run")
    run = RunSummary.objects.for_org(org).filter(run_id=run_id).first()
    if run is None:
        raise Http404("No such run")
    return run


def run_past_retention(*, org: Organization, run: RunSummary) -> bool:
    """Were some of the run's calls pruned (older than the org's retention when the prune job last ran)? Its
    summary, section rollups and totals stay; only the raw calls are gone (ingestion.retention)."""
    return org.events_pruned_before is not None and run.started_at < org.events_pruned_before


def run_events(*, org: Organization, run_id: str) -> list[TraceEvent]:
    return list(TraceEvent.objects.for_org(org).filter(run_id=run_id).order_by("timestamp", "id"))


# --- events (export) ---------------------------------------------------------------------------

WIRE_FIELDS = (
    "event_id", "run_id", "span_id", "parent_span_id", "section", "section_path", "span_type", "provider", "model",
    "endpoint", "input_tokens", "output_tokens", "cached_input_tokens", "cache_write_tokens", "reasoning_tokens",
    "latency_ms", "ttft_ms", "status", "http_status", "customer_id", "stream", "timestamp", "cost_usd",
    "metadata", "service_tier", "processing", "speed", "usage", "source", "reported_cost_usd",
)
# `source`: "sdk", or "otlp:<instrumentation scope>"; `reported_cost_usd`: what an OTLP instrumentation reported
# (kept beside our price; null when none was reported).
# After the wire fields: the first cost computed (kept when a re-price changes cost_usd) and what priced the call.
PRICED_FIELDS = ("billed_cost_usd", "price")


def event_as_api(values: dict[str, Any], rows: dict | None = None) -> dict[str, Any]:
    """An event's wire fields, its cost, billed cost and price provenance. `rows`: price rows by id
    (`ingestion.selectors.price_rows_get`)."""
    out = {name: values.get(name) for name in WIRE_FIELDS}
    out["timestamp"] = values["timestamp"].isoformat().replace("+00:00", "Z")
    out["cost_usd"] = pico_to_usd(values["cost_pico"])
    for name in ("service_tier", "processing", "speed"):
        out[name] = values.get(name) or None
    out["usage"] = values.get("usage") or {}
    out["reported_cost_usd"] = pico_to_usd(values.get("reported_cost_pico"))
    out["billed_cost_usd"] = pico_to_usd(values.get("billed_cost_pico",
    "reported_cost_pico"))
    out["price"] = price_provenance(values=values, row=(rows or {}).get(values.get("price_id")))
    return out


_EVENT_VALUES = tuple(f for f in WIRE_FIELDS if f not in ("cost_usd", "reported_cost_usd")) + (
    "cost_pico", "cost_source", "price_id", "price_source", "price_variant", "price_version", "billed_cost_pico",
    "reported_cost_pico", "list_cost_pico", "discount_pct")


def events_iter(*, org: Organization, window: Window, filters: RunFilters = RunFilters(),
                chunk_size: int = 2000) -> Iterator[dict[str, Any]]:
    """Events of the window, oldest first, streamed from the database in chunks (server-side cursor on PG)."""
    qs = TraceEvent.objects.for_org(org).filter(timestamp__gte=window.start, timestamp__lt=window.end)
    if filters.customer_id:
        qs = qs.filter(customer_id=filters.customer_id)
    if filters.section:
        qs = qs.filter(section_path__startswith=filters.section)
    if filters.agent:
        qs = qs.filter(Q(section_path=filters.agent) | Q(section_path__startswith=filters.agent + "/"))
    if filters.untracked:
        qs = qs.filter(section_path="")
    if filters.status:
        qs = qs.filter(status=filters.status)
    if filters.model:
        qs = qs.filter(model=filters.model)
    rows: dict = {}
    chunk: list[dict[str, Any]] = []

    def flush():
        missing = {v["price_id"] for v in chunk if v["price_id"] is not None and v["price_id"] not in rows}
        if missing:  # one query per chunk at most: a window's calls share a few price rows
            found = price_rows_get(org=org, ids=missing)
            rows.update({i: found.get(i) for i in missing})
        out = [event_as_api(v, rows) for v in chunk]
        chunk.clear()
        return out

    for values in qs.order_by("timestamp", "id").values(*_EVENT_VALUES).iterator(chunk_size=chunk_size):
        chunk.append(values)
        if len(chunk) >= chunk_size:
            yield from flush()
    if chunk:
        yield from flush()


def run_events_priced(*, org: Organization, events: list[TraceEvent]) -> list[dict[str, Any]]:
    """A run's events as the read API shows them (with their price provenance): one query for the price rows."""
    rows = price_rows_get(org=org, ids={e.price_id for e in events})
    return [event_as_api(e.__dict__, rows) for e in events]


def run_price_labels(*, org: Organization, events: list[TraceEvent]) -> dict[int, str]:
    """Per event id, the run page's line on what priced it ("gpt-4o · batch −50% · registry, synced 2026-11-29")."""
    rows = price_rows_get(org=org, ids={e.price_id for e in events})
    labels = {}
    for e in events:
        row = rows.get(e.price_id)
        labels[e.pk] = price_provenance_text(price_provenance(values=e.__dict__, row=row), row)
    return labels


def org_has_events(*, org: Organization) -> bool:
    return HourlyRollup.objects.for_org(org).exists()




# --- dashboard reads -----------------------------------------------------------------------------

@dataclass(frozen=True)
class ModelRow:
    provider: str
    model: str
    cost_pico: int
    calls: int
    unpriced_calls: int
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int
    share: float


def model_breakdown(*, org: Organization, window: Window, customer_id: str | None = None) -> list[ModelRow]:
    """Cost per (provider, model), by cost: one grouped query over the rollups."""
    return _models(rollup_sums(org=org, window=window, group=("provider", "model"), customer_id=customer_id))


def _models(rows: list[RollupRow]) -> list[ModelRow]:
    rows = sorted(rows, key=lambda r: (-r.cost_pico, -r.calls, r.provider, r.model))
    total = sum(r.cost_pico for r in rows)
    return [ModelRow(provider=r.provider, model=r.model, cost_pico=r.cost_pico, calls=r.calls,
                     unpriced_calls=r.unpriced_calls, input_tokens=r.input_tokens, output_tokens=r.output_tokens,
                     cached_input_tokens=r.cached_input_tokens, share=round(r.cost_pico / total, 4) if total else 0.0)
            for r in rows]


@dataclass(frozen=True)
class CustomerRow:
    key: str | None
    label: str
    cost_pico: int
    calls: int
    unpriced_calls: int
    share: float
    previous_cost_pico: int

    @property
    def change_pct(self) -> float | None:
        return change_pct(self.cost_pico, self.previous_cost_pico)


def customers_trend(*, org: Organization, window: Window, limit: int | None = None) -> list[CustomerRow]:
    """Cost per customer in the window with its cost in the previous period of the same length (2 queries)."""
    current = cost_breakdown(org=org, by="customer", window=window, limit=limit)
    keys = [r.key or "" for r in current]
    previous = {r.customer_id: r.cost_pico for r in rollup_sums(
        org=org, window=window.previous, group=("customer_id",), customer_in=keys)} if keys else {}
    return [CustomerRow(key=r.key, label=r.label, cost_pico=r.cost_pico, calls=r.calls,
                        unpriced_calls=r.unpriced_calls, share=r.share,
                        previous_cost_pico=previous.get(r.key or "", 0) or 0) for r in current]


@dataclass(frozen=True)
class TimelineRow:
    event: TraceEvent
    offset_ms: float
    duration_ms: float
    left_pct: float
    width_pct: float
    price: str = ""  # what priced the call, one line (`run_price_labels`)


def run_timeline(*, run: RunSummary, events: list[TraceEvent], price_labels: dict[int, str] | None = None
                 ) -> list[TimelineRow]:
    """Each call placed on the run's time axis (start offset and latency, as % of the run's duration)."""
    total_ms = max((run.ended_at - run.started_at).total_seconds() * 1000, 1.0)
    rows = []
    for event in events:
        offset = max((event.timestamp - run.started_at).total_seconds() * 1000, 0.0)
        duration = event.latency_ms or 0.0
        left = min(offset / total_ms * 100, 100.0)
        width = max(min(duration / total_ms * 100, 100.0 - left), 0.5)
        rows.append(TimelineRow(event=event, offset_ms=offset, duration_ms=duration, left_pct=round(left, 3),
                                width_pct=round(width, 3), price=(price_labels or {}).get(event.pk, "")))
    return rows


def customer_has_events(*, org: Organization, customer_id: str) -> bool:
    """Has this customer id ever been seen? One lookup on the run-facet unique index."""
    if "\x00" in customer_id:  # no stored label holds NUL, and PostgreSQL refuses it even in a query
        return False
    return RunFacet.objects.for_org(org).filter(kind=RunFacet.Kind.CUSTOMER, value=customer_id).exists()


@dataclass(frozen=True)
class Overview:
    summary: Summary
    agents: list[BreakdownRow]
    models: list[ModelRow]
    customers: list[BreakdownRow]
    timeseries: list[dict[str, Any]]


def overview_get(*, org: Organization, window: Window, interval: Literal["day", "hour"] = "day",
                 customer_id: str | None = None, customers_limit: int = 8) -> Overview:
    """Everything the overview shows: one grouped read of the window's rollup parts (agent × provider ×
    model × bucket, at the agent grain unless a customer is picked), regrouped here into the summary and
    each breakdown; plus the previous period's total and, unfiltered, the customer list."""
    group = ("agent", "provider", "model") + (("customer_id",) if customer_id is not None else ())
    rows = rollup_sums(org=org, window=window, group=group, customer_id=customer_id, interval=interval)
    total = rows_regroup(rows, ())
    previous = rollup_sums(org=org, window=window.previous, customer_id=customer_id)[0].cost_pico
    summary = _summary_of(total[0] if total else RollupRow(), previous)
    customers = (_breakdown(rows_regroup(rows, ("customer_id",)), "customer", customers_limit)
                 if customer_id is not None else cost_breakdown(org=org, by="customer", window=window,
                                                                limit=customers_limit))
    return Overview(summary=summary, agents=_breakdown(rows_regroup(rows, ("agent",)), "agent"),
                    models=_models(rows_regroup(rows, ("provider", "model"))), customers=customers,
                    timeseries=_timeseries(window, interval, rows_regroup(rows, ("bucket", "provider")), "provider"))
