"""The detectors: pure reads over one org's rollups and events that return findings.

Every detector judges by the events' own timestamps relative to `now` (not by when they were
ingested), so back-filled history counts and a run with a past `now` replays that moment.
Nothing here writes; `analytics.insights.services.insights_run` turns findings into insights.

Windows (all UTC, hour-aligned because the rollups are hourly):
- "last 24 h" = the 24 hourly buckets ending with the one that holds `now`;
- "previous 7 days" = the 7 × 24 buckets before those (fewer if the org's history is shorter,
  so a 3-day-old org compares with its 3-day average, not a diluted 7-day one);
- structural detectors (retry loops, model choice) look at the 7 days of events before `now`.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from decimal import Decimal
from typing import Any, Iterable

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Min, Q
from django.utils import timezone

from accounts.models import Organization
from ingestion.models import AgentHourlyRollup, HourlyRollup, SectionHourlyRollup, TraceEvent
from ingestion.money import pico_display as money
from ingestion.money import pico_to_usd as usd
from ingestion.money import usd_to_pico
from ingestion.pricing import price_book_get

from ..forecast import forecast_get
from ..performance import PerfRow, perf_grouped
from ..sums import rows_summed, sum_expressions, sums_of
from ..windows import floor_hour

logger = logging.getLogger(__name__)

DAY = timedelta(days=1)
BASELINE_DAYS = 7
LOOKBACK = timedelta(days=7)

SPIKE_RATIO = 2  # last 24 h > 2 × the daily average …
BLOAT_RATIO = Decimal("1.5")  # average input tokens per call > 1.5 × the 7-day average
BLOAT_MIN_CALLS = 5  # fewer calls on either side is "low volume": judged by the spike minimum instead
LOOP_MIN_CALLS = 3  # the same endpoint more than 3 times in one run …
LOOP_PERCENTILE = 95  # … at the p95 of the section's runs
LOOP_MIN_RUNS = 5
CHEAP_MIN_SUCCESS = Decimal("0.9")  # the cheaper model "succeeds": ≥ 90 % ok calls …
CHEAP_MIN_RUNS = 3  # … in at least 3 runs
EXPENSIVE_RATIO = 2  # "expensive": its calls cost ≥ 2 × what they would on the cheaper model
CAP_WARNING_PCT = 80
UNTRACKED = "Untracked"
_MODEL_SUMS = {"calls": "calls", "inp": "input_tokens", "out": "output_tokens", "cost": "cost_pico"}
_EVENT_SUMS = {"cost": "cost_pico", "inp": "input_tokens", "out": "output_tokens", "cached": "cached_input_tokens",
               "cw": "cache_write_tokens"}


def spike_min_pico(org: Organization) -> int:
    if org.spike_min_pico is not None:
        return org.spike_min_pico
    return usd_to_pico(settings.LLMOBSERVE_SPIKE_MIN_USD)


def insight_min_pico() -> int:
    return usd_to_pico(getattr(settings, "LLMOBSERVE_INSIGHT_MIN_USD", "0.05"))


def label(section_path: str) -> str:
    return section_path or UNTRACKED


def _ratio(a: Decimal | int, b: Decimal | int) -> float | None:
    return round(float(Decimal(a) / Decimal(b)), 2) if b else None


@dataclass
class Finding:
    kind: str
    key: tuple[str, ...]  # what makes two findings "the same" (section, model, endpoint, level…)
    period: str
    period_start: datetime
    title: str
    section: str = ""
    model: str = ""
    customer_id: str = ""
    amount_pico: int | None = None
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def dedupe_key(self) -> str:
        return hashlib.sha1("\x1f".join((self.kind, *self.key)).encode()).hexdigest()


@dataclass(frozen=True)
class Frame:
    now: datetime

    @property
    def cur_start(self) -> datetime:
        return floor_hour(self.now) - timedelta(hours=23)

    @property
    def base_start(self) -> datetime:
        return self.cur_start - BASELINE_DAYS * DAY

    @property
    def day(self) -> tuple[str, datetime]:
        start = self.now.astimezone(dt_timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
        return start.date().isoformat(), start

    @property
    def week(self) -> tuple[str, datetime]:
        day_start = self.day[1]
        start = day_start - timedelta(days=day_start.weekday())
        year, week, _ = start.isocalendar()
        return f"{year}-W{week:02d}", start

    @property
    def month(self) -> tuple[str, datetime]:
        start = self.day[1].replace(day=1)
        return start.strftime("%Y-%m"), start


def _frame(now: datetime | None) -> Frame:
    return Frame(now=(now or timezone.now()).astimezone(dt_timezone.utc))


def _baseline_days(org: Organization, frame: Frame) -> int:
    """Days of history inside the baseline window: 0 when the org has none before the last 24 h."""
    first = (HourlyRollup.objects.for_org(org).filter(hour__gte=frame.base_start, hour__lt=frame.cur_start)
             .aggregate(first=Min("hour"))["first"])
    if first is None:
        return 0
    return max(1, min(BASELINE_DAYS, math.ceil((frame.cur_start - first) / DAY)))


def _window_rollups(org: Organization, frame: Frame):
    return HourlyRollup.objects.for_org(org).filter(hour__gte=frame.base_start, hour__lte=frame.now)


def _split(metric: str, frame: Frame, suffix: str = "") -> dict:
    """`cur<suffix>` (last 24 h) and `base<suffix>` (before) sums of `metric`; read them with `rows_summed`.
    Every money/token SUM here goes through analytics/sums.py: exact past 2**63 on SQLite too."""
    return {**sum_expressions({f"cur{suffix}": metric}, filter=Q(hour__gte=frame.cur_start)),
            **sum_expressions({f"base{suffix}": metric}, filter=Q(hour__lt=frame.cur_start))}


def _top_contributor(org: Organization, frame: Frame, section: str, dim: str, days: int) -> tuple[str, int]:
    """The value of `dim` (customer_id, model) behind most of a section's increase, and its share of it."""
    rows = (_window_rollups(org, frame).filter(section_path=section).values(dim).annotate(**_split("cost_pico", frame)))
    best, best_delta, total = "", 0, 0
    for row in rows_summed(rows, ("cur", "base")):
        delta = row["cur"] - (row["base"] // days if days else 0)
        if delta > 0:
            total += delta
            if delta > best_delta:
                best, best_delta = row[dim], delta
    return best, (best_delta * 100 // total if total else 0)


# --- section_spike ----------------------------------------------------------------------------

def section_spike(*, org: Organization, now: datetime | None = None) -> list[Finding]:
    """A section whose last-24 h cost is > 2× its daily average and at least the spike minimum more."""
    frame = _frame(now)
    days = _baseline_days(org, frame)
    if not days:
        return []  # nothing to compare with yet: every section would look new
    minimum = spike_min_pico(org)
    period, period_start = frame.day
    rows = _window_rollups(org, frame).values("section_path").annotate(**_split("cost_pico", frame))
    findings = []
    for row in rows_summed(rows, ("cur", "base")):
        cur, base = row["cur"], row["base"]
        avg = base // days
        extra = cur - avg
        if cur <= SPIKE_RATIO * avg or extra < minimum:
            continue
        section = row["section_path"]
        customer, customer_share = _top_contributor(org, frame, section, "customer_id", days)
        model, model_share = _top_contributor(org, frame, section, "model", days)
        ratio = _ratio(cur, avg)
        times = f"{ratio}× its daily average of {money(avg)}" if avg else "with no spend in the previous days"
        title = f"Spend spike in {label(section)}: {money(cur)} in the last 24 h, {times} (+{money(extra)})"
        if customer and customer_share >= 50:
            title += f", mostly customer {customer}"
        findings.append(Finding(
            kind="section_spike", key=(section,), period=period, period_start=period_start, title=title[:400],
            section=section, model=model if model_share >= 50 else "",
            customer_id=customer if customer_share >= 50 else "", amount_pico=extra,
            evidence={"last_24h_usd": usd(cur), "daily_avg_usd": usd(avg), "baseline_days": days,
                      "baseline_total_usd": usd(base), "ratio": ratio, "extra_usd": usd(extra),
                      "threshold_ratio": SPIKE_RATIO, "spike_min_usd": usd(minimum),
                      "top_customer": customer or None, "top_customer_share_pct": customer_share,
                      "top_model": model or None, "top_model_share_pct": model_share,
                      "window_start": frame.cur_start.isoformat(), "window_end": frame.now.isoformat()},
        ))
    return findings


# --- token_bloat ------------------------------------------------------------------------------

def _price_tokens(book, org: Organization, provider: str, model: str, at: datetime, *, calls: int,
                  input_tokens: int, output_tokens: int = 0, cached: int = 0, cache_write: int = 0) -> int | None:
    """Cost of `calls` calls of the average shape at this model's price (tiers judged per call)."""
    if calls <= 0:
        return 0
    priced = book.price(org_id=org.pk, provider=provider, model=model, at=at,
                        input_tokens=round(input_tokens / calls), output_tokens=round(output_tokens / calls),
                        cached_input_tokens=round(cached / calls), cache_write_tokens=round(cache_write / calls))
    return None if priced is None else priced[1] * calls


def token_bloat(*, org: Organization, now: datetime | None = None, book=None) -> list[Finding]:
    """A section whose average input tokens per call rose > 1.5× against its 7-day average.

    The money on the extra tokens decides, not a call count: at least the insight minimum, or, for a
    low-volume section (fewer than 5 calls on either side, where one call moves the average), at
    least the spike minimum, the same bar a spend spike must clear.
    """
    frame = _frame(now)
    period, period_start = frame.day
    rows = (_window_rollups(org, frame).values("section_path")
            .annotate(**_split("input_tokens", frame, "_in"), **_split("calls", frame, "_calls")))
    findings = []
    for row in rows_summed(rows, ("cur_in", "base_in", "cur_calls", "base_calls")):
        if not row["cur_calls"] or not row["base_calls"] or not row["base_in"]:
            continue
        low_volume = row["cur_calls"] < BLOAT_MIN_CALLS or row["base_calls"] < BLOAT_MIN_CALLS
        minimum = max(spike_min_pico(org), insight_min_pico()) if low_volume else insight_min_pico()
        cur_avg = Decimal(row["cur_in"]) / row["cur_calls"]
        base_avg = Decimal(row["base_in"]) / row["base_calls"]
        if cur_avg <= BLOAT_RATIO * base_avg:
            continue
        section = row["section_path"]
        book = book or price_book_get()
        extra_cost, extra_tokens, top_model, top_model_extra = 0, 0, "", -1
        per_model = (HourlyRollup.objects.for_org(org)
                     .filter(section_path=section, hour__gte=frame.cur_start, hour__lte=frame.now)
                     .values("provider", "model")
                     .annotate(**sum_expressions(_MODEL_SUMS)))
        for m in rows_summed(per_model, _MODEL_SUMS):
            extra = int(m["inp"] - base_avg * m["calls"])
            if extra <= 0:
                continue
            extra_tokens += extra
            cost = _price_tokens(book, org, m["provider"], m["model"], frame.now, calls=m["calls"], input_tokens=extra)
            if cost is None:  # unpriced model: its share of the cost, by tokens
                total = m["inp"] + m["out"]
                cost = m["cost"] * extra // total if total else 0
            extra_cost += cost
            if extra > top_model_extra:
                top_model, top_model_extra = m["model"], extra
        if extra_cost < minimum:
            continue
        ratio = _ratio(cur_avg, base_avg)
        title = (f"Token bloat in {label(section)}: {int(cur_avg):,} input tokens per call in the last 24 h, "
                 f"{ratio}× the 7-day average of {int(base_avg):,} ({money(extra_cost)} on the extra tokens)")
        findings.append(Finding(
            kind="token_bloat", key=(section,), period=period, period_start=period_start, title=title[:400],
            section=section, model=top_model, amount_pico=extra_cost,
            evidence={"avg_input_tokens_24h": round(float(cur_avg), 1),
                      "avg_input_tokens_7d": round(float(base_avg), 1), "ratio": ratio,
                      "threshold_ratio": float(BLOAT_RATIO), "calls_24h": row["cur_calls"],
                      "calls_7d": row["base_calls"], "extra_input_tokens": extra_tokens,
                      "extra_cost_usd": usd(extra_cost), "low_volume": low_volume, "min_extra_usd": usd(minimum)},
        ))
    return findings


# --- retry_loop -------------------------------------------------------------------------------

def percentile(values: Iterable[int], pct: int) -> int:
    """Nearest-rank percentile (p95 of 20 runs is the 19th smallest): 0 for no values."""
    ordered = sorted(values)
    if not ordered:
        return 0
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


EXACT_REPEAT_RUNS = 2000  # beyond this many looping runs, the repeat cost is estimated, not summed call by call


def _repeat_cost(org: Organization, start: datetime, end: datetime, section: str, provider: str, endpoint: str,
                 looping: list[dict]) -> int:
    """What the calls after each looping run's first call cost (exact; estimated for very many runs)."""
    if len(looping) > EXACT_REPEAT_RUNS:
        return sum(r["cost"] * (r["n"] - 1) // r["n"] for r in looping)
    first_cost: dict[str, int] = {}
    calls = (TraceEvent.objects.for_org(org)
             .filter(timestamp__gte=start, timestamp__lte=end, section_path=section, provider=provider,
                     endpoint=endpoint, run_id__in=[r["run_id"] for r in looping])
             .order_by("run_id", "timestamp", "id").values_list("run_id", "cost_pico"))
    for run_id, cost in calls:
        first_cost.setdefault(run_id, cost or 0)
    return sum(r["cost"] - first_cost.get(r["run_id"], 0) for r in looping)


def retry_loop(*, org: Organization, now: datetime | None = None) -> list[Finding]:
    """The same endpoint called > 3 times within one run, at the p95 of a section's runs.

    Failed calls count (a failure followed by retries is the commonest loop). The money at
    stake is what the calls after the first cost, in the runs that looped.
    """
    frame = _frame(now)
    period, period_start = frame.week
    start = frame.now - LOOKBACK
    rows = (TraceEvent.objects.for_org(org).filter(timestamp__gte=start, timestamp__lte=frame.now)
            .values("section_path", "provider", "endpoint", "run_id")
            .annotate(n=Count("id"), failed=Count("id", filter=~Q(status="ok")),
                      **sum_expressions({"cost": "cost_pico"})))
    section_runs: dict[str, set[str]] = defaultdict(set)
    groups: dict[tuple[str, str, str], list[dict]] = defaultdict(list)
    for row in rows_summed(rows, ("cost",)):
        section_runs[row["section_path"]].add(row["run_id"])
        groups[(row["section_path"], row["provider"], row["endpoint"])].append(row)
    minimum = insight_min_pico()
    findings = []
    for (section, provider, endpoint), runs in groups.items():
        n_runs = len(section_runs[section])
        if n_runs < LOOP_MIN_RUNS:
            continue
        counts = [r["n"] for r in runs] + [0] * (n_runs - len(runs))
        p95 = percentile(counts, LOOP_PERCENTILE)
        if p95 <= LOOP_MIN_CALLS:
            continue
        looping = [r for r in runs if r["n"] > LOOP_MIN_CALLS]
        repeat_cost = _repeat_cost(org, start, frame.now, section, provider, endpoint, looping)
        repeats = sum(r["n"] - 1 for r in looping)
        failed = sum(r["failed"] for r in looping)
        if repeat_cost < minimum and failed == 0:
            continue
        where = endpoint or f"{provider or 'an API'} (no endpoint reported)"
        title = (f"Retry loop in {label(section)}: {where} called {p95}× per run at p95 "
                 f"({len(looping)} of {n_runs} runs, {money(repeat_cost)} on repeats)")
        worst = max(looping, key=lambda r: r["n"])
        findings.append(Finding(
            kind="retry_loop", key=(section, provider, endpoint), period=period, period_start=period_start,
            title=title[:400], section=section, amount_pico=repeat_cost,
            evidence={"endpoint": endpoint, "provider": provider, "p95_calls_per_run": p95,
                      "threshold_calls": LOOP_MIN_CALLS, "runs": n_runs, "looping_runs": len(looping),
                      "repeated_calls": repeats, "failed_calls": failed, "repeat_cost_usd": usd(repeat_cost),
                      "worst_run_id": worst["run_id"], "worst_run_calls": worst["n"],
                      "window_days": LOOKBACK.days},
        ))
    return findings


# --- model_inefficiency -----------------------------------------------------------------------

def model_inefficiency(*, org: Organization, now: datetime | None = None, book=None) -> list[Finding]:
    """A section using an expensive model where the same section succeeds with a cheaper one.

    "Succeeds": the cheaper model's calls in that section are ≥ 90 % ok, over ≥ 3 runs.
    The saving re-prices the expensive calls (average shape) at the cheaper model's price.
    """
    frame = _frame(now)
    period, period_start = frame.week
    start = frame.now - LOOKBACK
    rows = (TraceEvent.objects.for_org(org).filter(timestamp__gte=start, timestamp__lte=frame.now)
            .exclude(section_path="").exclude(model="")
            .values("section_path", "span_type", "provider", "model")
            .annotate(calls=Count("id"), ok=Count("id", filter=Q(status="ok")),
                      runs=Count("run_id", distinct=True), priced=Count("cost_pico"),
                      **sum_expressions(_EVENT_SUMS)))
    sections: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for row in rows_summed(rows, _EVENT_SUMS):
        if row["priced"]:
            row["avg"] = Decimal(row["cost"]) / row["priced"]
            sections[(row["section_path"], row["span_type"])].append(row)
    minimum = insight_min_pico()
    findings = []
    for (section, _span_type), models in sections.items():
        if len(models) < 2:
            continue
        succeeding = [m for m in models if m["runs"] >= CHEAP_MIN_RUNS and Decimal(m["ok"]) / m["calls"] >= CHEAP_MIN_SUCCESS]
        if not succeeding:
            continue
        cheap = min(succeeding, key=lambda m: m["avg"])
        for exp in models:
            if exp is cheap or exp["avg"] <= cheap["avg"]:
                continue
            book = book or price_book_get()
            # What the expensive calls (their own token counts) would have cost on the cheaper model:
            # judged on the same work, so a model that merely gets the short prompts does not look cheap.
            at_cheap = _price_tokens(book, org, cheap["provider"], cheap["model"], frame.now, calls=exp["priced"],
                                     input_tokens=exp["inp"], output_tokens=exp["out"], cached=exp["cached"],
                                     cache_write=exp["cw"])
            if at_cheap is None:
                at_cheap = int(cheap["avg"] * exp["priced"])
            saving = exp["cost"] - at_cheap
            if exp["cost"] < EXPENSIVE_RATIO * at_cheap or saving < minimum:
                continue
            title = (f"{label(section)} uses {exp['model']} where {cheap['model']} succeeds in other runs: "
                     f"~{money(saving)} saved over {LOOKBACK.days} days")
            findings.append(Finding(
                kind="model_inefficiency", key=(section, exp["provider"], exp["model"]), period=period,
                period_start=period_start, title=title[:400], section=section, model=exp["model"],
                amount_pico=saving,
                evidence={"expensive_model": exp["model"], "expensive_provider": exp["provider"],
                          "expensive_calls": exp["calls"], "expensive_cost_usd": usd(exp["cost"]),
                          "expensive_avg_cost_usd": usd(int(exp["avg"])),
                          "cheaper_model": cheap["model"], "cheaper_provider": cheap["provider"],
                          "cheaper_calls": cheap["calls"], "cheaper_runs": cheap["runs"],
                          "cheaper_avg_cost_usd": usd(int(cheap["avg"])),
                          "cheaper_success_rate": round(cheap["ok"] / cheap["calls"], 3),
                          "cost_at_cheaper_usd": usd(at_cheap), "estimated_saving_usd": usd(saving),
                          "window_days": LOOKBACK.days},
            ))
    return findings


# --- spend_cap --------------------------------------------------------------------------------

@dataclass(frozen=True)
class CapStatus:
    cap_pico: int | None
    month_to_date_pico: int
    period: str

    @property
    def over(self) -> bool:
        return self.cap_pico is not None and self.month_to_date_pico >= self.cap_pico

    @property
    def month_to_date_usd(self) -> str | None:
        return usd(self.month_to_date_pico)

    @property
    def cap_usd(self) -> str | None:
        return usd(self.cap_pico)

    @property
    def pct(self) -> float | None:
        return round(self.month_to_date_pico * 100 / self.cap_pico, 1) if self.cap_pico else None


def spend_cap_status(*, org: Organization, now: datetime | None = None) -> CapStatus:
    frame = _frame(now)
    period, start = frame.month
    mtd = sums_of(HourlyRollup.objects.for_org(org).filter(hour__gte=start, hour__lte=frame.now)
                  .aggregate(**sum_expressions({"total": "cost_pico"})), ["total"])["total"]
    return CapStatus(cap_pico=org.spend_cap_pico, month_to_date_pico=mtd, period=period)


def _month_top(org: Organization, frame: Frame, dim: str) -> str:
    _, start = frame.month
    rows = (HourlyRollup.objects.for_org(org).filter(hour__gte=start, hour__lte=frame.now).values(dim)
            .annotate(**sum_expressions({"cost": "cost_pico"})))
    # the largest in Python: ordering by an exact sum is not portable (SQLite sums in halves)
    best = max(rows_summed(rows, ("cost",)), key=lambda row: (row["cost"], row[dim]), default=None)
    return best[dim] if best else ""


def spend_cap(*, org: Organization, now: datetime | None = None) -> list[Finding]:
    """Month-to-date cost ≥ the cap (or ≥ 80 % of it): one insight per level per calendar month.

    The month is part of the key, so next month's cap is a new insight (and a new alert) even if
    this month's is still open.
    """
    frame = _frame(now)
    status = spend_cap_status(org=org, now=frame.now)
    if not status.cap_pico:
        return []
    mtd, cap = status.month_to_date_pico, status.cap_pico
    if mtd * 100 < cap * CAP_WARNING_PCT:
        return []
    period, period_start = frame.month
    level = "100" if status.over else str(CAP_WARNING_PCT)
    section = _month_top(org, frame, "section_path")
    model = _month_top(org, frame, "model")
    customer = _month_top(org, frame, "customer_id")
    if status.over:
        title = f"Spending cap reached: {money(mtd)} of {money(cap)} this month ({status.pct}%)"
    else:
        title = f"{CAP_WARNING_PCT}% of the monthly spending cap used: {money(mtd)} of {money(cap)} ({status.pct}%)"
    title += f"; top section {label(section)}"
    return [Finding(
        kind="spend_cap", key=(level, period), period=period, period_start=period_start, title=title[:400],
        section=section, model=model, customer_id=customer, amount_pico=mtd,
        evidence={"month": period, "month_to_date_usd": usd(mtd), "cap_usd": usd(cap), "pct_of_cap": status.pct,
                  "level_pct": int(level), "top_section": section or None, "top_model": model or None,
                  "top_customer": customer or None},
    )]


# --- error_spike and latency_regression (from the rollups' error counts and latency histograms) ---------------

ERROR_SPIKE_RATIO = 3  # a section's or provider's error rate in the last 24 h ≥ 3× its 7-day rate …
ERROR_SPIKE_MIN_ERRORS = 5  # … with at least 5 errors in the last 24 h …
ERROR_SPIKE_MIN_BASE_CALLS = 10  # … and a baseline to compare with
LATENCY_RATIO = Decimal("1.5")  # p95 in the last 24 h ≥ 1.5× the 7-day p95 …
LATENCY_MIN_CALLS = 10  # … with at least 10 calls with a latency on each side
# column → (its name in findings, the hourly rollup grain that holds it with the fewest rows)
_PERF_DIMS = {"section_path": ("section", SectionHourlyRollup), "provider": ("provider", AgentHourlyRollup)}


def _perf_split(org: Organization, frame: Frame, column: str):
    """Per value of `column`: (last 24 h, previous 7 days) latency and error figures, merged from the hourly
    rollups by the database (histograms add, like the sums): one grouped query per side."""
    table = _PERF_DIMS[column][1].objects.for_org(org)
    cur = perf_grouped(table.filter(hour__gte=frame.cur_start, hour__lte=frame.now), (column,))
    base = perf_grouped(table.filter(hour__gte=frame.base_start, hour__lt=frame.cur_start), (column,))
    return {key[0]: (cur.get(key) or PerfRow(), base.get(key) or PerfRow()) for key in cur.keys() | base.keys()}


def _where(column: str, value: str) -> str:
    return label(value) if column == "section_path" else f"provider {value or '(none)'}"


def error_spike(*, org: Organization, now: datetime | None = None) -> list[Finding]:
    """A section's or provider's error rate in the last 24 h ≥ 3× its 7-day rate, with ≥ 5 errors.

    The evidence names the statuses and HTTP codes of the last 24 h's failures; the money at stake is
    what those failed calls cost.
    """
    frame = _frame(now)
    period, period_start = frame.day
    findings = []
    for column, (dim, _) in _PERF_DIMS.items():
        for value, (cur, base) in _perf_split(org, frame, column).items():
            if cur.errors < ERROR_SPIKE_MIN_ERRORS or base.calls < ERROR_SPIKE_MIN_BASE_CALLS or not cur.calls:
                continue
            cur_rate, base_rate = Decimal(cur.errors) / cur.calls, Decimal(base.errors) / base.calls
            if cur_rate < ERROR_SPIKE_RATIO * base_rate:
                continue
            statuses = {k: n for k, n in cur.by_status.items() if n}
            codes = cur.top_http_codes()
            top_status = max(statuses, key=lambda k: (statuses[k], k)) if statuses else ""
            mix = ", ".join(f"{n} {k}" for k, n in sorted(statuses.items(), key=lambda kv: (-kv[1], kv[0])))
            codes_text = ", ".join(f"HTTP {c} ×{n}" for c, n in codes.items())
            ratio = _ratio(cur_rate, base_rate)
            times = f"{ratio}× its 7-day rate of {float(base_rate):.1%}" if base.errors else "with no errors in the previous days"
            title = (f"Error spike in {_where(column, value)}: {float(cur_rate):.1%} of {cur.calls} calls failed in "
                     f"the last 24 h, {times} ({mix}{'; ' + codes_text if codes_text else ''})")
            findings.append(Finding(
                kind="error_spike", key=(dim, value), period=period, period_start=period_start, title=title[:400],
                section=value if column == "section_path" else "", amount_pico=cur.failed_cost_pico,
                evidence={"dimension": dim, "value": value, "errors_24h": cur.errors, "calls_24h": cur.calls,
                          "error_rate_24h": round(float(cur_rate), 4), "errors_7d": base.errors,
                          "calls_7d": base.calls, "error_rate_7d": round(float(base_rate), 4), "ratio": ratio,
                          "threshold_ratio": ERROR_SPIKE_RATIO, "min_errors": ERROR_SPIKE_MIN_ERRORS,
                          "by_status": statuses, "top_status": top_status or None, "by_http_status": codes,
                          "failed_cost_usd": usd(cur.failed_cost_pico),
                          "window_start": frame.cur_start.isoformat(), "window_end": frame.now.isoformat()},
            ))
    return findings


def latency_regression(*, org: Organization, now: datetime | None = None) -> list[Finding]:
    """A section's or provider's p95 latency in the last 24 h ≥ 1.5× its 7-day p95, with ≥ 10 calls on each
    side (percentiles from the rollups' histograms, within 2%)."""
    frame = _frame(now)
    period, period_start = frame.day
    findings = []
    for column, (dim, _) in _PERF_DIMS.items():
        for value, (cur, base) in _perf_split(org, frame, column).items():
            if cur.latency_calls < LATENCY_MIN_CALLS or base.latency_calls < LATENCY_MIN_CALLS:
                continue
            cur_p95, base_p95 = cur.latency(95), base.latency(95)
            if not cur_p95 or not base_p95 or Decimal(str(cur_p95)) < LATENCY_RATIO * Decimal(str(base_p95)):
                continue
            ratio = round(cur_p95 / base_p95, 2)
            statuses = {k: n for k, n in cur.by_status.items() if n}
            title = (f"Latency regression in {_where(column, value)}: p95 {cur_p95:,.0f} ms in the last 24 h, "
                     f"{ratio}× the 7-day p95 of {base_p95:,.0f} ms")
            findings.append(Finding(
                kind="latency_regression", key=(dim, value), period=period, period_start=period_start,
                title=title[:400], section=value if column == "section_path" else "",
                evidence={"dimension": dim, "value": value, "p95_ms_24h": round(cur_p95, 1),
                          "p95_ms_7d": round(base_p95, 1), "p50_ms_24h": round(cur.latency(50) or 0, 1),
                          "p50_ms_7d": round(base.latency(50) or 0, 1), "ratio": ratio,
                          "threshold_ratio": float(LATENCY_RATIO), "calls_24h": cur.latency_calls,
                          "calls_7d": base.latency_calls, "max_ms_24h": cur.latency_ms_max,
                          "by_status_24h": statuses, "by_http_status_24h": cur.top_http_codes(),
                          "window_start": frame.cur_start.isoformat(), "window_end": frame.now.isoformat()},
            ))
    return findings


# --- spend_forecast ---------------------------------------------------------------------------

def spend_forecast(*, org: Organization, now: datetime | None = None) -> list[Finding]:
    """This month's projection (analytics.forecast) crosses the spending cap before the month ends, while the
    month-to-date is still under it (past the cap, `spend_cap` speaks): one insight per calendar month."""
    if not org.spend_cap_pico:
        return []
    frame = _frame(now)
    forecast = forecast_get(org=org, now=frame.now)
    if forecast.cap_hit_on is None or forecast.cap_reached:
        return []
    period, period_start = frame.month
    cap, day = forecast.cap_pico, forecast.cap_hit_on
    title = (f"At this pace you reach your {money(cap)} cap on {day:%b} {day.day}: {money(forecast.projected_pico)} "
             f"projected this month (range {money(forecast.low_pico)}–{money(forecast.high_pico)}), "
             f"{money(forecast.month_to_date_pico)} so far")
    return [Finding(
        kind="spend_forecast", key=(period,), period=period, period_start=period_start, title=title[:400],
        amount_pico=forecast.projected_pico - cap,
        evidence={**forecast.as_api(), "over_cap_by_usd": usd(forecast.projected_pico - cap),
                  "history_days": forecast.history_days},
    )]


DETECTORS = (section_spike, token_bloat, retry_loop, model_inefficiency, spend_cap, spend_forecast, error_spike,
             latency_regression)


def findings_detect(*, org: Organization, now: datetime | None = None) -> list[Finding]:
    now = _frame(now).now
    findings: list[Finding] = []
    for detector in DETECTORS:
        try:
            with transaction.atomic():  # a failing detector must not poison the others' reads
                findings.extend(detector(org=org, now=now))
        except Exception:
            if settings.DEBUG or getattr(settings, "LLMOBSERVE_INSIGHTS_RAISE", False):
                raise
            logger.exception("insight detector %s failed for org %s", detector.__name__, org.pk)
    return findings
