"""Read-side selectors for latency and errors: every figure from the rollups' histograms and error counts.

A rollup row holds, besides the cost sums, a latency histogram and a time-to-first-token histogram
(`ingestion.histograms`), their exact maxima and sums, calls per non-ok status and HTTP status class,
a {code: calls} map of HTTP codes ≥ 400 and the cost of the failed calls. A read fetches the window's
rollup rows (hourly rows for the partial days at the edges, daily rows for the whole days, at the coarsest
grain holding the grouping), one grouped query per table: the database adds the counts and the histograms
(`histograms.CountsSum`: on PostgreSQL `sum()` of packed numerics, in C, whatever their fill), maxima take the
larger; here the tables' rows are added per key, the latency and TTFT histograms as dense lists
(`histograms.dense`), so Python's work depends on the number of keys × tables, never on the number of events
or how many buckets they fill. Each figure is read at the grouping it is shown at, so Python merges little.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, Iterable, Literal

from django.db import connection
from django.db.models import Max, Q, Sum
from django.db.models.functions import Trunc

from accounts.models import Organization
from ingestion import histograms
from ingestion.models import ROLLUP_GRAINS, RollupHistograms
from ingestion.money import pico_to_usd
from ingestion.rollups import sqlite_functions_register

from .selectors import DIMENSIONS, UNTRACKED, _buckets_step, label_of, rollup_grain, rollup_parts
from .sums import sum_expressions, sums_of
from .windows import Window

STATUSES = ("error", "rate_limited", "timeout", "cancelled")
_SUMMED = ("calls", "errors", "cost_pico", "latency_calls", "latency_ms_sum", "ttft_calls", "ttft_ms_sum",
           "status_error", "status_rate_limited", "status_timeout", "status_cancelled", "http_4xx", "http_5xx",
           "failed_cost_pico")
_MAXED = ("latency_ms_max", "ttft_ms_max")
_HISTS = ("latency_hist", "ttft_hist")
_MAPS = (*_HISTS, "http_codes")
_FLOAT_SUMMED = ("latency_ms_sum", "ttft_ms_sum")
_COLUMNS = _SUMMED + _MAXED + _MAPS
_summed_of = operator.attrgetter(*_SUMMED)
LATENCY_PERCENTILES = (50, 90, 95, 99)
NO_ENDPOINT = "(no endpoint)"
# The latency and error breakdowns' `by`: the cost dimensions plus the endpoint (the URL path of the call,
# read from the (provider, endpoint) grain).
PERF_DIMENSIONS: tuple[str, ...] = (*DIMENSIONS, "endpoint")
TOP_HTTP_CODES = 10


@dataclass
class PerfRow:
    """The merged latency and error figures of one key (and time bucket)."""

    key: tuple = ()
    calls: int = 0
    errors: int = 0
    cost_pico: int = 0
    latency_calls: int = 0
    latency_ms_sum: float = 0.0
    ttft_calls: int = 0
    ttft_ms_sum: float = 0.0
    status_error: int = 0
    status_rate_limited: int = 0
    status_timeout: int = 0
    status_cancelled: int = 0
    http_4xx: int = 0
    http_5xx: int = 0
    failed_cost_pico: int = 0
    latency_ms_max: float | None = None
    ttft_ms_max: float | None = None
    latency_hist: list[int] = field(default_factory=list)  # dense (histograms.dense): merged in C
    ttft_hist: list[int] = field(default_factory=list)
    http_codes: dict[int, int] = field(default_factory=dict)

    def add(self, values: dict[str, Any]) -> None:
        self.__dict__.update(zip(_SUMMED, map(operator.add, _summed_of(self), (values[n] or 0 for n in _SUMMED))))
        self._maxes_take(values[name] for name in _MAXED)
        for name in _HISTS:
            value = values[name]
            if value:
                setattr(self, name, histograms.dense_add(getattr(self, name), histograms.dense(value)))
        value = values["http_codes"]
        if value:
            histograms.counts_add(self.http_codes, histograms.decode(value))

    def _maxes_take(self, values: Iterable[float | None]) -> None:
        """Each maximum (`_MAXED`, in order) takes the larger of its own and the given one (None: no value)."""
        for name, value in zip(_MAXED, values):
            mine = getattr(self, name)
            if value is not None and (mine is None or value > mine):
                setattr(self, name, value)

    def merge(self, other: PerfRow) -> None:
        """Add another row's figures (its histograms are dense already: added without decoding; the sums in C,
        attrgetter + map)."""
        self.__dict__.update(zip(_SUMMED, map(operator.add, _summed_of(self), _summed_of(other))))
        self._maxes_take(getattr(other, name) for name in _MAXED)
        self.latency_hist = histograms.dense_add(self.latency_hist, other.latency_hist)
        self.ttft_hist = histograms.dense_add(self.ttft_hist, other.ttft_hist)
        if other.http_codes:
            histograms.counts_add(self.http_codes, other.http_codes)

    def latency(self, p: float) -> float | None:
        return histograms.percentile(self.latency_hist, p, max_ms=self.latency_ms_max)

    def ttft(self, p: float) -> float | None:
        return histograms.percentile(self.ttft_hist, p, max_ms=self.ttft_ms_max)

    # For templates (no arguments there): the percentiles in ms, None without latencies.
    @property
    def p50(self) -> float | None:
        return self.latency(50)

    @property
    def p95(self) -> float | None:
        return self.latency(95)

    @property
    def p99(self) -> float | None:
        return self.latency(99)

    @property
    def mean_ms(self) -> float | None:
        return self.latency_ms_sum / self.latency_calls if self.latency_calls else None

    @property
    def ttft_p50(self) -> float | None:
        return self.ttft(50)

    @property
    def ttft_p95(self) -> float | None:
        return self.ttft(95)

    @property
    def status_mix(self) -> list[tuple[str, int]]:
        """Non-ok statuses with calls, the most frequent first."""
        return sorted(((s, n) for s, n in self.by_status.items() if n), key=lambda kv: (-kv[1], kv[0]))

    @property
    def error_rate(self) -> float:
        return round(self.errors / self.calls, 4) if self.calls else 0.0

    @property
    def by_status(self) -> dict[str, int]:
        return {s: getattr(self, f"status_{s}") for s in STATUSES}

    def top_http_codes(self, limit: int = TOP_HTTP_CODES) -> dict[str, int]:
        top = sorted(self.http_codes.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
        return {str(code): n for code, n in top}


def perf_columns() -> tuple[str, ...]:
    """The rollup columns a `PerfRow` merges."""
    return _COLUMNS


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


_INT_SUMMED = tuple(c for c in _SUMMED if c not in _FLOAT_SUMMED)


def _merge_expressions() -> dict[str, Any]:
    """One aggregate per merged column, named `m_<column>`: exact SUMs (analytics.sums), MAX, and the count maps'
    sums (in the database)."""
    return {**sum_expressions({f"m_{c}": c for c in _INT_SUMMED}), **{f"m_{c}": Sum(c) for c in _FLOAT_SUMMED},
            **{f"m_{c}": Max(c) for c in _MAXED}, **{f"m_{c}": histograms.CountsSum(c) for c in _MAPS}}


def _merged_of(values: dict[str, Any]) -> dict[str, Any]:
    """A row annotated with `_merge_expressions` as {column: merged value} (what `PerfRow.add` takes)."""
    sums = sums_of(values, [f"m_{c}" for c in _INT_SUMMED])
    return {c: sums[f"m_{c}"] if c in _INT_SUMMED else values[f"m_{c}"] for c in _COLUMNS}


def perf_rows(*, org: Organization, window: Window, group: tuple[str, ...] = (), interval: str | None = None,
              model_in: list[str] | None = None, grain: str | None = None) -> dict[tuple, PerfRow]:
    """The window's rollup rows merged per value of `group` (+ the time bucket with an interval), from the
    coarsest grain holding `group` (or `grain`, if it holds it) — one that keeps histograms
    (ingestion.models.RollupHistograms). `model_in`: only these models' calls.

    One grouped query per table (the hourly one for both partial days at the window's edges, the daily one for
    the whole days): the database adds the counts and histograms (`histograms.CountsSum`), so Python decodes
    one histogram per key and table, not one per rollup row."""
    needed = group + (("model",) if model_in is not None else ())
    grain = grain or rollup_grain(needed, customer_filter=False)
    if not set(needed) <= set(ROLLUP_GRAINS[grain][0]) or not issubclass(ROLLUP_GRAINS[grain][1], RollupHistograms):
        raise ValueError(f"no rollup grain with histograms holds {needed}")
    keys = group + (("bucket",) if interval else ())
    merged: dict[tuple, PerfRow] = {}
    tables: dict[type, tuple[str, Q]] = {}
    for model, period, start, end in rollup_parts(window, hourly_only=interval == "hour", grain=grain):
        span = Q(**{f"{period}__gte": start, f"{period}__lt": end})
        tables[model] = (period, tables[model][1] | span if model in tables else span)
    for model, (period, spans) in tables.items():
        qs = model.objects.for_org(org).filter(spans)
        if model_in is not None:
            qs = qs.filter(model__in=model_in)
        if interval:
            qs = qs.annotate(bucket=Trunc(period, interval, tzinfo=timezone.utc))
        perf_grouped(qs, keys, into=merged)
    return merged


def perf_grouped(qs, keys: tuple[str, ...], *, into: dict[tuple, PerfRow] | None = None) -> dict[tuple, PerfRow]:
    """The rollup rows of `qs` merged per value of `keys` by the database (one grouped query), added to `into`'s
    rows. No keys: one row (none if `qs` holds no calls)."""
    if connection.vendor == "sqlite":
        sqlite_functions_register()
    merged = {} if into is None else into
    rows = qs.values(*keys).annotate(**_merge_expressions()).order_by() if keys else \
        [qs.aggregate(**_merge_expressions())]
    for values in rows:
        merged_values = _merged_of(values)
        if not keys and not merged_values["calls"]:  # nothing in the window
            continue
        key = tuple(values[k] for k in keys)
        row = merged.get(key)
        if row is None:
            row = merged[key] = PerfRow(key=key)
        row.add(merged_values)
    return merged


def _label(by: str, value: str | None) -> tuple[str | None, str]:
    key = value or None
    return key, label_of(by, key)


def latency_as_api(row: PerfRow) -> dict[str, Any]:
    latency = None
    if row.latency_calls:
        latency = {f"p{p}": _ms(row.latency(p)) for p in LATENCY_PERCENTILES}
        latency["max"] = _ms(row.latency_ms_max)
        latency["mean"] = _ms(row.latency_ms_sum / row.latency_calls)
    ttft = None
    if row.ttft_calls:
        ttft = {"calls": row.ttft_calls, **{f"p{p}": _ms(row.ttft(p)) for p in (50, 95, 99)}}
    return {"calls": row.calls, "latency_ms": latency, "ttft_ms": ttft}


def errors_as_api(row: PerfRow) -> dict[str, Any]:
    return {"calls": row.calls, "errors": row.errors, "error_rate": row.error_rate, "by_status": row.by_status,
            "by_http_status": row.top_http_codes(), "cost_of_failed_calls_usd": pico_to_usd(row.failed_cost_pico)}


@dataclass(frozen=True)
class PerfEntry:
    key: str | None
    label: str
    row: PerfRow


def _endpoint_entries(rows: dict[tuple, PerfRow]) -> list[PerfEntry]:
    """(provider, endpoint) rows as entries: key = the endpoint, label = "provider endpoint"; the calls
    without an endpoint, whatever their provider, in one entry (key None, label "(no endpoint)")."""
    entries, none = [], PerfRow(key=("", ""))
    for (provider, endpoint), row in rows.items():
        if endpoint:
            entries.append(PerfEntry(key=endpoint, label=f"{provider} {endpoint}" if provider else endpoint, row=row))
        else:
            none.merge(row)
    if none.calls:
        entries.append(PerfEntry(key=None, label=NO_ENDPOINT, row=none))
    return entries


def perf_breakdown(*, org: Organization, by: str, window: Window, order: Literal["calls", "errors", "p95"] = "calls",
                   limit: int | None = None) -> list[PerfEntry]:
    """Latency and error figures per key of the dimension (Untracked / no customer / no endpoint: key None)."""
    if by == "endpoint":
        entries = _endpoint_entries(perf_rows(org=org, window=window, group=("provider", "endpoint")))
    else:
        rows = perf_rows(org=org, window=window, group=(DIMENSIONS[by],))
        entries = [PerfEntry(*_label(by, key[0]), row=row) for key, row in rows.items()]
    if order == "errors":
        entries.sort(key=lambda e: (-e.row.errors, -e.row.error_rate, -e.row.calls, e.label))
    elif order == "p95":
        entries.sort(key=lambda e: (-(e.row.latency(95) or 0), -e.row.calls, e.label))
    else:
        entries.sort(key=lambda e: (-e.row.calls, e.label))
    return entries[:limit] if limit else entries


def latency_breakdown(*, org: Organization, by: str, window: Window) -> list[dict[str, Any]]:
    return [{"key": e.key, "label": e.label, **latency_as_api(e.row)}
            for e in perf_breakdown(org=org, by=by, window=window)]


def errors_breakdown(*, org: Organization, by: str, window: Window) -> list[dict[str, Any]]:
    return [{"key": e.key, "label": e.label, **errors_as_api(e.row)}
            for e in perf_breakdown(org=org, by=by, window=window, order="errors")]


METRICS = ("cost", "calls", "latency_p50", "latency_p95", "latency_p99", "error_rate")


def metric_of(row: PerfRow, metric: str) -> Any:
    if metric == "calls":
        return row.calls
    if metric == "error_rate":
        return row.error_rate
    value = row.latency(float(metric.removeprefix("latency_p")))
    return _ms(value)


def metric_timeseries(*, org: Organization, window: Window, metric: str, interval: str = "day",
                      by: str = "provider") -> list[dict[str, Any]]:
    """Every bucket of the window (empty ones as {}), values = the metric per key (calls, ms or a rate)."""
    column = DIMENSIONS[by]
    rows = perf_rows(org=org, window=window, group=(column,), interval=interval)
    by_bucket: dict[datetime, dict[str, PerfRow]] = {}
    for (value, bucket), row in rows.items():
        bucket_rows = by_bucket.setdefault(bucket, {})
        name = value or UNTRACKED
        if name in bucket_rows:
            bucket_rows[name].merge(row)
        else:
            bucket_rows[name] = row
    out = []
    for t, label in _buckets_step(window, interval):
        values = {name: metric_of(row, metric) for name, row in by_bucket.get(t, {}).items()}
        values = {k: v for k, v in values.items() if v is not None}
        out.append({"t": label, "values": dict(sorted(values.items(), key=lambda kv: (-kv[1], kv[0])))})
    return out


# --- the Performance page ------------------------------------------------------------------------------------

def _regroup(rows: dict[tuple, PerfRow], key_of) -> dict[tuple, PerfRow]:
    """`rows` merged per `key_of(key)`: a new key's first row is copied, never changed (rows are shared)."""
    out: dict[tuple, PerfRow] = {}
    for key, row in rows.items():
        new_key = key_of(key)
        acc = out.get(new_key)
        if acc is None:
            out[new_key] = replace(row, key=new_key, http_codes=dict(row.http_codes))  # hists: never changed in place
        else:
            acc.merge(row)
    return out


@dataclass(frozen=True)
class PerfPage:
    totals: PerfRow
    models: list[PerfEntry]  # key: "provider/model"
    sections: list[PerfEntry]
    failing_sections: list[PerfEntry]
    failing_endpoints: list[PerfEntry]  # key: the endpoint (None: calls without one), label "provider endpoint"
    buckets: list[tuple[str, PerfRow]]  # (label, the window's calls in that bucket), every bucket
    model_p95: dict[str, list[float | None]]  # the busiest models' p95 per bucket


def performance_get(*, org: Organization, window: Window, interval: str = "day", chart_models: int = 6) -> PerfPage:
    """Everything the Performance page shows, each figure read at the grouping it is shown at (the database
    merges, so Python merges next to nothing whatever the events): provider × model at the agent grain; the
    time buckets at the endpoint grain (the fewest rows per bucket); the busiest models × bucket for the chart;
    sections at the section grain; provider × endpoint at the endpoint grain."""
    per_model = perf_rows(org=org, window=window, group=("provider", "model"))
    per_bucket = perf_rows(org=org, window=window, interval=interval, grain="endpoint")
    by_section = perf_rows(org=org, window=window, group=("section_path",))
    endpoints = _endpoint_entries(perf_rows(org=org, window=window, group=("provider", "endpoint")))
    totals = _regroup(per_bucket, lambda key: ()).get((), PerfRow())
    models = sorted((PerfEntry(key=model or None, label=f"{provider or '(none)'} / {model or '(none)'}", row=row)
                     for (provider, model), row in per_model.items()), key=lambda e: (-e.row.calls, e.label))
    sections = sorted((PerfEntry(*_label("section", key[0]), row=row) for key, row in by_section.items()),
                      key=lambda e: (-e.row.calls, e.label))
    by_errors = lambda e: (-e.row.errors, -e.row.error_rate, e.label)  # noqa: E731
    busiest = [e.key for e in models[:chart_models]]
    per_model_bucket = perf_rows(org=org, window=window, group=("model",), interval=interval,
                                 model_in=sorted({m or "" for m in busiest})) if busiest else {}
    buckets, model_p95 = [], {m or "(none)": [] for m in busiest}
    for t, label in _buckets_step(window, interval):
        buckets.append((label, per_bucket.get((t,), PerfRow())))
        for model in busiest:
            row = per_model_bucket.get((model or "", t))
            model_p95[model or "(none)"].append(_ms(row.latency(95)) if row else None)
    return PerfPage(totals=totals, models=models, sections=sections,
                    failing_sections=sorted((e for e in sections if e.row.errors), key=by_errors)[:10],
                    failing_endpoints=sorted((e for e in endpoints if e.row.errors), key=by_errors)[:10],
                    buckets=buckets, model_p95=model_p95)


@dataclass(frozen=True)
class RunPerf:
    status_mix: list[tuple[str, int]]  # non-ok statuses, the most frequent first
    http_codes: dict[str, int]  # codes ≥ 400
    ttft_calls: int
    ttft_ms_median: float | None  # over the run's streamed calls (exact: a run's events are at hand)


def run_perf(*, events: list) -> RunPerf:
    """A run's status mix, failing HTTP codes and median time to first token, from its events."""
    statuses: dict[str, int] = {}
    codes: dict[int, int] = {}
    ttfts = sorted(e.ttft_ms for e in events if e.ttft_ms is not None)
    for e in events:
        if e.status != "ok":
            statuses[e.status] = statuses.get(e.status, 0) + 1
        if e.http_status is not None and e.http_status >= 400:
            codes[e.http_status] = codes.get(e.http_status, 0) + 1
    median = ttfts[(len(ttfts) - 1) // 2] if ttfts else None
    return RunPerf(status_mix=sorted(statuses.items(), key=lambda kv: (-kv[1], kv[0])),
                   http_codes={str(c): n for c, n in sorted(codes.items(), key=lambda kv: (-kv[1], kv[0]))},
                   ttft_calls=len(ttfts), ttft_ms_median=median)
