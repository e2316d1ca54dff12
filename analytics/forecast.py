"""Month-end spend forecast: a pure core over a daily cost series, and the selector that feeds it from the rollups.

The model (picked by `bench/forecast.py`, stated in `method` and in docs/forecast.md):

    projected = month-to-date + for each day left, the average spend of the same weekday over the last 28
    whole UTC days (the plain daily average while there are fewer than 14 days of history); the rest of today
    counts as the share of its day still to come. Range = projected ± (1.64·σ·√(d + d²/n) + |average of the
    last 7 days − the 28-day average| × d): σ the spread of those days around their weekday averages, d the
    days left, n the days of history; the second term widens it when spend is drifting.

Today (the partial UTC day) is explicit: what it has cost so far is in the month-to-date, and the forecast adds
`(1 - elapsed)` × today's expected spend, `elapsed` being the share of the UTC day gone at `now`. History starts
at the org's first day with spend: a new org is judged on the days it has, and with no whole day behind it the
projection is the month-to-date (low = high = projected).

Money stays integer pico-USD; the arithmetic is exact (`Fraction`, `Decimal` for the square root) and rounded
once, to the pico, at the end.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from fractions import Fraction
from typing import Any, Sequence

from accounts.models import Organization
from ingestion.models import ROLLUP_GRAINS
from ingestion.money import pico_to_usd

from .sums import rows_summed, sum_expressions

DAY = timedelta(days=1)


@dataclass(frozen=True)
class ForecastModel:
    """One way to expect a day's spend from the history before it.

    seasonal: "flat" (the average of the last `window_days`) or "weekday" (the average of the same weekday over
    the last `window_days`, once `min_seasonal_days` of history exist; the flat average before that).
    level_days: with "weekday", scale the weekday averages so that they average to the last `level_days` days
    (follows a trend faster); 0 = off.
    """

    name: str
    window_days: int
    seasonal: str = "weekday"
    level_days: int = 0
    z: Fraction = Fraction(164, 100)  # a 90 % two-sided normal range (if daily spend had no trend)
    min_seasonal_days: int = 14
    trend: bool = False  # a least-squares line through the window (+ weekday offsets) instead of averages
    drift_days: int = 0  # widen the range by |average of the last `drift_days` days − the window's| × days left

    def sentence(self, *, history_days: int) -> str:
        n = min(history_days, self.window_days)
        if history_days == 0:
            return ("month-to-date only: no whole day of history yet, so nothing is projected for the days left "
                    "(low = high = projected)")
        seasonal = self.seasonal == "weekday" and n >= self.min_seasonal_days
        if seasonal:
            per_day = f"the average spend of the same weekday over the last {n} whole UTC days"
            if self.level_days:
                per_day += f", scaled to the level of the last {self.level_days} days"
        elif n < self.window_days:
            per_day = (f"the average daily spend of the {n} whole UTC day{'s' if n != 1 else ''} of history "
                       f"(fewer than {self.window_days})")
        else:
            per_day = f"the average daily spend of the last {n} whole UTC days"
        z = f"{float(self.z):g}"
        drift = self.drift_days and n >= self.min_seasonal_days
        widen = (f" + |average of the last {self.drift_days} days − the {n}-day average| × d" if drift else "")
        return (f"month-to-date + for each day left, {per_day}; the rest of today counts pro rata of the UTC day "
                f"still to come. Range: ± ({z}·σ·√(d + d²/n){widen}), σ the daily spread around that expectation, "
                f"d the days left, n = {n} day{'s' if n != 1 else ''} of history")


# Candidates the bench compares; DEFAULT_MODEL is the one it picked (see docs/forecast.md for the figures).
MODELS: dict[str, ForecastModel] = {m.name: m for m in (
    ForecastModel("flat14", 14, seasonal="flat"),
    ForecastModel("flat28", 28, seasonal="flat"),
    ForecastModel("weekday14", 14),
    ForecastModel("weekday28", 28),
    ForecastModel("weekday28_level7", 28, level_days=7),
    ForecastModel("weekday28_level14", 28, level_days=14),
    ForecastModel("trend28", 28, trend=True),
    ForecastModel("weekday28_z128", 28, z=Fraction(128, 100)),
    ForecastModel("weekday28_drift7", 28, drift_days=7),
    ForecastModel("weekday28_drift7_z128", 28, drift_days=7, z=Fraction(128, 100)),
)}
DEFAULT_MODEL = MODELS["weekday28_drift7"]


@dataclass(frozen=True)
class Forecast:
    month: str  # YYYY-MM
    month_to_date_pico: int
    projected_pico: int
    low_pico: int
    high_pico: int
    cap_pico: int | None
    cap_hit_on: date | None
    history_days: int
    days_left: Fraction  # the rest of today + the whole days after it
    method: str

    @property
    def cap_reached(self) -> bool:
        return self.cap_pico is not None and self.month_to_date_pico >= self.cap_pico

    def as_api(self) -> dict[str, Any]:
        return {
            "month": self.month, "month_to_date_usd": pico_to_usd(self.month_to_date_pico),
            "projected_month_usd": pico_to_usd(self.projected_pico), "low_usd": pico_to_usd(self.low_pico),
            "high_usd": pico_to_usd(self.high_pico), "cap_usd": pico_to_usd(self.cap_pico),
            "cap_hit_on": self.cap_hit_on.isoformat() if self.cap_hit_on else None, "method": self.method,
        }


def _round_half_even(value: Fraction | Decimal) -> int:
    if isinstance(value, Decimal):
        return int(value.to_integral_value(rounding=ROUND_HALF_EVEN))
    return round(value)  # Fraction.__round__ is exact, half to even


def _sqrt(value: Fraction) -> Decimal:
    with localcontext() as ctx:
        ctx.prec = 50
        return (Decimal(value.numerator) / Decimal(value.denominator)).sqrt()


class _Expectation:
    """A day's expected spend from the training days (whole days, oldest first, ending yesterday)."""

    def __init__(self, model: ForecastModel, train: list[tuple[date, int]]):
        self.n = len(train)
        self.mean = Fraction(sum(c for _, c in train), self.n) if self.n else Fraction(0)
        self.seasonal = model.seasonal == "weekday" and self.n >= model.min_seasonal_days
        self.by_weekday: dict[int, Fraction] = {}
        if self.seasonal:
            groups: dict[int, list[int]] = {}
            for d, cost in train:
                groups.setdefault(d.weekday(), []).append(cost)
            self.by_weekday = {wd: Fraction(sum(v), len(v)) for wd, v in groups.items()}
        self.scale = Fraction(1)
        if self.seasonal and model.level_days and self.mean:
            recent = train[-model.level_days:]
            recent_expected = sum(self.by_weekday[d.weekday()] for d, _ in recent) / len(recent)
            recent_actual = Fraction(sum(c for _, c in recent), len(recent))
            self.scale = recent_actual / recent_expected if recent_expected else Fraction(1)
        self.groups = len(self.by_weekday) if self.seasonal else (1 if self.n else 0)
        self.line: tuple[date, Fraction, Fraction] | None = None
        self.offsets: dict[int, Fraction] = {}
        if model.trend and self.n >= model.min_seasonal_days:
            # least squares c = a + b·t over the window, t in days from its first day; then weekday offsets
            origin = train[0][0]
            ts = [Fraction((d - origin).days) for d, _ in train]
            t_mean = sum(ts) / self.n
            sxx = sum((t - t_mean) ** 2 for t in ts)
            sxy = sum((t - t_mean) * (c - self.mean) for t, (_, c) in zip(ts, train))
            b = sxy / sxx if sxx else Fraction(0)
            a = self.mean - b * t_mean
            self.line = (origin, a, b)
            groups: dict[int, list[Fraction]] = {}
            for t, (d, c) in zip(ts, train):
                groups.setdefault(d.weekday(), []).append(c - (a + b * t))
            self.offsets = {wd: sum(v) / len(v) for wd, v in groups.items()}
            self.seasonal = False
            self.groups = 2 + len(self.offsets)

    def fitted(self, day: date) -> Fraction:
        """In-sample fit (without the level scale): what the residual spread is measured against."""
        if self.line is not None:
            origin, a, b = self.line
            return max(Fraction(0), a + b * (day - origin).days + self.offsets.get(day.weekday(), Fraction(0)))
        return self.by_weekday.get(day.weekday(), self.mean) if self.seasonal else self.mean

    def expected(self, day: date) -> Fraction:
        return self.fitted(day) * self.scale


def forecast_compute(*, daily: Sequence[tuple[date, int]], today: date, today_so_far: int, elapsed: Fraction,
                     cap_pico: int | None = None, model: ForecastModel = DEFAULT_MODEL) -> Forecast:
    """The month-end forecast for the month holding `today`.

    daily: the whole UTC days before today (date, cost in pico-USD), oldest first; days missing from it cost
    nothing; it must reach back to the 1st of the month (for the month-to-date) and should cover the model's
    window. Leading days without spend are not history (the org had not started).
    today_so_far: today's cost until now; elapsed: the share of today gone (0 ≤ elapsed ≤ 1).
    """
    if not 0 <= elapsed <= 1:
        raise ValueError("elapsed must be between 0 and 1")
    month_start = today.replace(day=1)
    month_end = today.replace(day=calendar.monthrange(today.year, today.month)[1])
    costs = {d: c for d, c in daily if d < today}
    first = min((d for d, c in costs.items() if c), default=None)
    yesterday = today - DAY
    history: list[tuple[date, int]] = []
    if first is not None:
        d = first
        while d <= yesterday:
            history.append((d, costs.get(d, 0)))
            d += DAY
    mtd = sum(c for d, c in costs.items() if month_start <= d) + today_so_far

    train = history[-model.window_days:]
    expect = _Expectation(model, train)
    full_days_left = (month_end - today).days
    rest_of_today = 1 - elapsed
    days_left = rest_of_today + full_days_left

    if not train:
        projected = Fraction(mtd)
        half = Decimal(0)
    else:
        projected = mtd + rest_of_today * expect.expected(today) + sum(
            (expect.expected(today + k * DAY) for k in range(1, full_days_left + 1)), Fraction(0))
        residuals = sum(((c - expect.fitted(d)) ** 2 for d, c in train), Fraction(0))
        dof = max(1, expect.n - expect.groups)
        variance = residuals / dof
        n = expect.n
        half = Decimal(model.z.numerator) / Decimal(model.z.denominator) * _sqrt(
            variance * (days_left + days_left * days_left / n))
        if model.drift_days and n >= model.min_seasonal_days:
            recent = train[-model.drift_days:]
            drift = abs(Fraction(sum(c for _, c in recent), len(recent)) - expect.mean) * days_left
            half += Decimal(drift.numerator) / Decimal(drift.denominator)
    projected_pico = _round_half_even(projected)
    low = max(mtd, _round_half_even(Decimal(projected_pico) - half))
    high = max(projected_pico, _round_half_even(Decimal(projected_pico) + half))

    cap_hit_on = None
    if cap_pico is not None:
        running = Fraction(0)
        d = month_start
        while d <= month_end:
            if d < today:
                running += costs.get(d, 0)
            elif d == today:
                running += today_so_far + (rest_of_today * expect.expected(d) if train else 0)
            elif train:
                running += expect.expected(d)
            if running >= cap_pico:
                cap_hit_on = d
                break
            d += DAY

    return Forecast(month=month_start.strftime("%Y-%m"), month_to_date_pico=mtd, projected_pico=projected_pico,
                    low_pico=low, high_pico=high, cap_pico=cap_pico, cap_hit_on=cap_hit_on,
                    history_days=len(history), days_left=days_left,
                    method=model.sentence(history_days=len(history)))


# --- the selector --------------------------------------------------------------------------------

def forecast_get(*, org: Organization, now: datetime, model: ForecastModel = DEFAULT_MODEL) -> Forecast:
    """This month's forecast for the org at `now`, from the daily rollups: one grouped query over the agent-grain
    daily table (`AgentDailyRollup`), from the earlier of the 1st of the month and `window_days` before today,
    through today's row (which the ingestion fold keeps current: today's spend so far)."""
    now = now.astimezone(timezone.utc)
    today = now.date()
    today_start = datetime(today.year, today.month, today.day, tzinfo=timezone.utc)
    start = min(today_start.replace(day=1), today_start - model.window_days * DAY)
    _, _, daily_table = ROLLUP_GRAINS["agent"]
    rows = (daily_table.objects.for_org(org).filter(day__gte=start, day__lte=today_start).values("day")
            .annotate(**sum_expressions({"cost": "cost_pico"})).order_by())
    by_day = {row["day"].astimezone(timezone.utc).date(): row["cost"] for row in rows_summed(rows, ("cost",))}
    elapsed = Fraction(int((now - today_start) / timedelta(microseconds=1)), int(DAY / timedelta(microseconds=1)))
    return forecast_compute(daily=sorted((d, c) for d, c in by_day.items() if d < today), today=today,
                            today_so_far=by_day.get(today, 0), elapsed=elapsed, cap_pico=org.spend_cap_pico,
                            model=model)
