"""Month-end forecast: GET /v1/stats/forecast, the overview's month line and cap day, the spend_forecast insight.

Histories are posted through the real ingestion path with the clock pinned (time-machine) at awkward instants.
Each call costs exactly $1 (400,000 gpt-4o input tokens at $2.50 per 1M), so the expected figures are plain
arithmetic: in a "steady" history every weekday costs $2 and every Saturday and Sunday $1, the same each week,
so the daily spread σ is 0 and the range collapses onto the projection.
"""

from __future__ import annotations

import calendar
import itertools
from datetime import date, datetime, timedelta, timezone
from fractions import Fraction
from io import StringIO

import pytest
import time_machine
from django.core.management import call_command

from accounts.services import api_key_create
from analytics import tasks
from analytics.forecast import forecast_compute
from analytics.insights.services import alert_settings_update, insight_dismiss, insights_run
from analytics.models import AlertDelivery, Insight
from ingestion.models import DailyRollup, HourlyRollup
from ingestion.money import PICO_PER_USD, pico_to_usd
from tests.factories import MembershipFactory

from .insights_helpers import raise_detector_errors

pytestmark = pytest.mark.django_db
__all__ = ["raise_detector_errors"]  # autouse fixture

URL = "/v1/stats/forecast"
USD = PICO_PER_USD
_ids = itertools.count()


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


def steady_cost(day: date) -> int:
    """$2 on weekdays, $1 on Saturdays and Sundays (in whole dollars)."""
    return 1 if day.weekday() >= 5 else 2


def dollar_call(at: datetime) -> dict:
    n = next(_ids)
    return {"event_id": f"fc-{n}", "run_id": f"fc-run-{n}", "provider": "openai", "model": "gpt-4o",
            "input_tokens": 400_000, "output_tokens": 0, "timestamp": at.isoformat()}


def steady_events(now: datetime, *, days: int = 45, first: date | None = None) -> list[dict]:
    """The steady history from `days` days before `now` (or from `first`) up to `now`: each day's calls at
    00:01, 00:02 … UTC (before `now`, so today's are in by 00:05)."""
    today = now.date()
    day = first or today - timedelta(days=days)
    events = []
    while day <= today:
        midnight = datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
        events += [dollar_call(midnight + timedelta(minutes=1 + i)) for i in range(steady_cost(day))
                   if midnight + timedelta(minutes=1 + i) < now]
        day += timedelta(days=1)
    return events


@pytest.fixture
def post_at(post_events, ingest_key, prices):
    """Post events with the clock at `now` (the collector refuses events more than 1 h in the future)."""
    def _post(events: list[dict], now: datetime, key: str | None = None):
        with time_machine.travel(now, tick=False):
            for start in range(0, len(events), 1000):
                response = post_events(key or ingest_key, events[start:start + 1000])
                assert response.status_code == 202, response.content
                assert response.json()["rejected"] == []
    return _post


def get_forecast(api, key: str, now: datetime):
    with time_machine.travel(now, tick=False):
        return api(key).get(URL)


def expected_steady(now: datetime, history_from: date) -> dict:
    """The steady history's month, by hand: what was spent, plus each day left at its weekday's cost, plus the rest
    of today pro rata of the time left. σ = 0, so low = high = projected."""
    today = now.date()
    first = today.replace(day=1)
    last = today.replace(day=calendar.monthrange(today.year, today.month)[1])
    spent = sum(steady_cost(first + timedelta(days=k)) for k in range((today - first).days)
                if first + timedelta(days=k) >= history_from)
    midnight = datetime(today.year, today.month, today.day, tzinfo=timezone.utc)
    so_far = sum(1 for i in range(steady_cost(today)) if midnight + timedelta(minutes=1 + i) < now)
    elapsed = Fraction(int((now - midnight).total_seconds()), 86400)
    rest = (1 - elapsed) * steady_cost(today) + sum(steady_cost(today + timedelta(days=k))
                                                    for k in range(1, (last - today).days + 1))
    mtd = (spent + so_far) * USD
    projected = round(mtd + rest * USD)
    return {"month": today.strftime("%Y-%m"), "month_to_date_usd": pico_to_usd(mtd),
            "projected_month_usd": pico_to_usd(projected), "low_usd": pico_to_usd(projected),
            "high_usd": pico_to_usd(projected)}


# --- the endpoint ---------------------------------------------------------------------------------

def test_forecast_shape_and_figures_on_a_steady_history(api, read_key, post_at):
    now = utc("2026-03-18T12:00:00")  # a Wednesday, half-way through the UTC day
    post_at(steady_events(now), now)
    response = get_forecast(api, read_key, now)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"month", "month_to_date_usd", "projected_month_usd", "low_usd", "high_usd", "cap_usd",
                         "cap_hit_on", "method"}
    # March 1–17: 12 weekdays × $2 + 5 weekend days × $1 = $29, + today's $2 = $31 so far. Left: half of today ($1)
    # + March 19–31 (9 weekdays, 4 weekend days) = $22 → $54.
    assert body == {"month": "2026-03", "month_to_date_usd": "31", "projected_month_usd": "54", "low_usd": "54",
                    "high_usd": "54", "cap_usd": None, "cap_hit_on": None, "method": body["method"]}
    assert "same weekday over the last 28 whole UTC days" in body["method"]
    assert "rest of today" in body["method"]


def test_month_to_date_is_the_exact_sum_of_the_rollups(api, org, read_key, post_at):
    now = utc("2026-03-18T12:00:00")
    # Odd amounts: 1 … 400,000 input tokens at 2,500,000 pico-USD each, so pico-level sums must add up exactly.
    events = [dict(dollar_call(utc("2026-02-20T03:00:00") + timedelta(hours=7 * k)), input_tokens=1 + 9_973 * k)
              for k in range(90)]
    post_at(events, now)
    body = get_forecast(api, read_key, now).json()
    month_start = utc("2026-03-01T00:00:00")
    daily = sum(DailyRollup.objects.for_org(org).filter(day__gte=month_start, day__lt=utc("2026-03-18T00:00:00"))
                .values_list("cost_pico", flat=True))
    today = sum(HourlyRollup.objects.for_org(org).filter(hour__gte=utc("2026-03-18T00:00:00"), hour__lte=now)
                .values_list("cost_pico", flat=True))
    in_month = sum(e["input_tokens"] * 2_500_000 for e in events if e["timestamp"] >= month_start.isoformat())
    assert body["month_to_date_usd"] == pico_to_usd(daily + today) == pico_to_usd(in_month)
    with time_machine.travel(now, tick=False):
        summary = api(read_key).get("/v1/stats/summary", since="2026-03-01T00:00:00Z").json()
    assert summary["cost_usd"] == body["month_to_date_usd"]


AWKWARD = [
    pytest.param(utc("2026-02-28T23:40:00"), id="february-last-day-23:40"),
    pytest.param(utc("2026-03-31T23:40:00"), id="31-day-month-last-day-23:40"),
    pytest.param(utc("2026-04-30T23:59:59"), id="30-day-month-last-second"),
    pytest.param(utc("2026-04-01T00:05:00"), id="first-of-month-00:05"),
    pytest.param(utc("2026-03-01T12:00:00"), id="first-of-march-noon"),
    pytest.param(utc("2028-02-29T23:40:00"), id="leap-february-29-23:40"),
    pytest.param(utc("2026-11-29T23:40:00"), id="23:40"),
]


@pytest.mark.parametrize("now", AWKWARD)
def test_awkward_instants(api, read_key, post_at, now):
    history_from = now.date() - timedelta(days=45)
    post_at(steady_events(now, first=history_from), now)
    body = get_forecast(api, read_key, now).json()
    assert {k: v for k, v in body.items() if k not in ("cap_usd", "cap_hit_on", "method")} == expected_steady(
        now, history_from)


def test_last_minutes_of_the_month_add_only_the_rest_of_the_day(api, read_key, post_at):
    now = utc("2026-03-31T23:40:00")  # a Tuesday: $2 expected today, 20 of its 1,440 minutes left
    post_at(steady_events(now), now)
    body = get_forecast(api, read_key, now).json()
    mtd = int(body["month_to_date_usd"]) * USD
    assert body["projected_month_usd"] == pico_to_usd(mtd + round(Fraction(20, 1440) * 2 * USD))


def test_new_org_is_judged_on_the_days_it_has(api, read_key, post_at):
    now = utc("2026-03-18T12:00:00")
    post_at([dollar_call(utc(f"2026-03-{d}T09:00:00")) for d in (15, 15, 16, 16, 17, 17)]
            + [dollar_call(utc("2026-03-18T09:00:00"))], now)
    body = get_forecast(api, read_key, now).json()
    # 3 whole days at $2 a day: $7 so far + $2 × (½ + 13 days) = $34; too short for a weekday pattern.
    assert (body["month_to_date_usd"], body["projected_month_usd"]) == ("7", "34")
    assert "the 3 whole UTC days of history (fewer than 28)" in body["method"]
    assert body["low_usd"] == body["high_usd"] == "34"  # every day cost the same: no spread


def test_a_spread_gives_a_range_around_the_projection(api, read_key, post_at):
    now = utc("2026-03-10T12:00:00")
    calls = {1: 1, 2: 3, 3: 1, 4: 3, 5: 1, 6: 3, 7: 1, 8: 3, 9: 1}  # day of March → calls
    post_at([dollar_call(utc(f"2026-03-{d:02d}T09:00:00")) for d, n in calls.items() for _ in range(n)], now)
    body = get_forecast(api, read_key, now).json()
    low, projected, high = (Fraction(body[k]) for k in ("low_usd", "projected_month_usd", "high_usd"))
    assert Fraction(body["month_to_date_usd"]) == 17 <= low < projected < high
    # mean $17/9 a day over 21.5 days left; σ² = Σ(c - mean)² / 8; half = 1.64·σ·√(d + d²/9)
    mean, d = Fraction(17, 9), Fraction(43, 2)
    assert abs(projected - (17 + mean * d)) <= Fraction(1, 10**12)  # rounded to the pico-USD
    variance = sum((c - mean) ** 2 for c in calls.values()) / 8
    half = (Fraction(164, 100) ** 2 * variance * (d + d * d / 9))
    assert abs((high - projected) ** 2 - half) < Fraction(1, 10**6)
    assert abs(low - max(17, 2 * projected - high)) <= Fraction(1, 10**12)  # never below what is spent


def test_no_history_projects_the_month_to_date(api, read_key, post_at):
    now = utc("2026-03-18T12:00:00")
    post_at([dollar_call(utc("2026-03-18T08:00:00"))] * 1, now)
    body = get_forecast(api, read_key, now).json()
    assert body["month_to_date_usd"] == body["projected_month_usd"] == body["low_usd"] == body["high_usd"] == "1"
    assert "no whole day of history" in body["method"]


def test_an_org_with_nothing_gets_zeros(api, read_key):
    body = get_forecast(api, read_key, utc("2026-03-18T12:00:00")).json()
    assert (body["month_to_date_usd"], body["projected_month_usd"], body["low_usd"], body["high_usd"],
            body["cap_hit_on"]) == ("0", "0", "0", "0", None)


def test_cap_day_is_when_the_projection_crosses_the_cap(api, org, read_key, post_at):
    now = utc("2026-03-18T12:00:00")
    post_at(steady_events(now), now)
    alert_settings_update(org=org, spend_cap_usd="40", now=now)
    body = get_forecast(api, read_key, now).json()
    # $29 by the 17th; the 18th ends at $32, then 34 (Thu), 36 (Fri), 37, 38 (weekend), 40 on Monday the 23rd.
    assert (body["cap_usd"], body["cap_hit_on"]) == ("40", "2026-03-23")
    alert_settings_update(org=org, spend_cap_usd="54.000000000001", now=now)
    assert get_forecast(api, read_key, now).json()["cap_hit_on"] is None  # never this month
    alert_settings_update(org=org, spend_cap_usd="30", now=now)  # already reached: the day it happened
    assert get_forecast(api, read_key, now).json()["cap_hit_on"] == "2026-03-18"


def test_forecast_is_tenant_scoped(api, org, read_key, other_read_key, other_org, post_at):
    now = utc("2026-03-18T12:00:00")
    post_at(steady_events(now), now)
    other_ingest = api_key_create(org=other_org, name="i", scope="ingest").raw_key
    post_at([dollar_call(utc("2026-03-18T08:00:00"))], now, key=other_ingest)
    assert get_forecast(api, read_key, now).json()["month_to_date_usd"] == "31"
    assert get_forecast(api, other_read_key, now).json()["month_to_date_usd"] == "1"


def test_forecast_needs_a_read_key(api, ingest_key):
    now = utc("2026-03-18T12:00:00")
    assert get_forecast(api, ingest_key, now).status_code == 403
    assert get_forecast(api, None, now).status_code == 401


def test_forecast_is_in_the_openapi_schema(client):
    assert "/v1/stats/forecast:" in client.get("/v1/schema").content.decode()


def test_the_pure_core_refuses_an_impossible_elapsed_share():
    with pytest.raises(ValueError):
        forecast_compute(daily=[], today=date(2026, 3, 1), today_so_far=0, elapsed=Fraction(3, 2))


# --- the overview ---------------------------------------------------------------------------------

def test_overview_shows_the_projection_and_the_cap_day(member_client, org, post_at):
    now = utc("2026-03-18T12:00:00")
    post_at(steady_events(now), now)
    with time_machine.travel(now, tick=False):
        html = member_client.get(f"/o/{org.slug}/").content.decode()
        assert 'data-testid="month-forecast"' in html
        assert "$31.00" in html and "projected <strong>$54.00</strong>" in html
        assert 'data-testid="cap-forecast"' not in html  # no cap
        alert_settings_update(org=org, spend_cap_usd="40", now=now)
        html = member_client.get(f"/o/{org.slug}/").content.decode()
        assert "At this pace you reach your $40.00 cap on Mar 23." in html
        # the window switch (htmx) re-renders the panels only: the month line is not part of them
        partial = member_client.get(f"/o/{org.slug}/", {"window": "7d"}, headers={"HX-Request": "true"})
        assert 'data-testid="month-forecast"' not in partial.content.decode()
    how = member_client.get("/docs/forecast/")  # the line's "how" link: the model in one sentence, the backtest
    assert how.status_code == 200 and "Month-end spend forecast" in how.content.decode()


def test_overview_shows_a_range_and_a_reached_cap(member_client, org, post_at):
    now = utc("2026-03-10T12:00:00")
    post_at([dollar_call(utc(f"2026-03-{d:02d}T09:00:00")) for d in range(1, 10) for _ in range(1 + 2 * (d % 2))],
            now)
    alert_settings_update(org=org, spend_cap_usd="10", now=now)
    with time_machine.travel(now, tick=False):
        html = member_client.get(f"/o/{org.slug}/").content.decode()
    assert " – $" in html  # low – high next to the projection
    assert "You reached your $10.00 monthly spending cap on Mar 5." in html  # $3, 4, 7, 8, then $11 on the 5th


# --- the spend_forecast insight ---------------------------------------------------------------------

@pytest.fixture
def managers(org, member):
    MembershipFactory(org=org, role="admin")
    return member


def test_cap_crossing_fires_one_insight_a_month_with_an_alert(org, managers, post_at, mailoutbox,
                                                               django_capture_on_commit_callbacks):
    now = utc("2026-03-18T12:00:00")
    post_at(steady_events(now), now)
    alert_settings_update(org=org, spend_cap_usd="40", now=now)

    def beat(at: datetime):  # the hourly beat job, as Celery beat runs it (tasks eager in tests)
        with time_machine.travel(at, tick=False), django_capture_on_commit_callbacks(execute=True):
            tasks.insights_run_all()

    beat(now)
    [insight] = Insight.objects.for_org(org).filter(kind="spend_forecast")
    assert insight.period == "2026-03"
    assert insight.title.startswith("At this pace you reach your $40.00 cap on Mar 23: $54.00 projected")
    assert insight.amount_usd == "14"
    assert insight.evidence["cap_hit_on"] == "2026-03-23" and insight.evidence["projected_month_usd"] == "54"
    [delivery] = AlertDelivery.objects.for_org(org).filter(insight=insight)
    assert (delivery.channel, delivery.status) == ("email", "sent")
    assert len([m for m in mailoutbox if "At this pace" in m.subject]) == 1

    post_at(steady_events(now + timedelta(days=1), first=date(2026, 3, 19)), now + timedelta(days=1))
    beat(now + timedelta(hours=1))
    beat(now + timedelta(days=1))  # still crossing later in the month: the same insight, no second alert
    assert Insight.objects.for_org(org).filter(kind="spend_forecast").count() == 1
    assert len([m for m in mailoutbox if "At this pace" in m.subject]) == 1

    with time_machine.travel(now + timedelta(days=1, hours=1), tick=False):
        insight_dismiss(org=org, insight_id=insight.pk)
    beat(now + timedelta(days=1, hours=2))  # dismissed: stays dismissed for the month
    assert Insight.objects.for_org(org).filter(kind="spend_forecast", status="open").count() == 0

    april = utc("2026-04-02T12:00:00")  # a new month that crosses again: a new insight and a new alert
    post_at(steady_events(april, first=date(2026, 3, 20)), april)
    beat(april)
    assert list(Insight.objects.for_org(org).filter(kind="spend_forecast", status="open")
                .values_list("period", flat=True)) == ["2026-04"]
    assert len([m for m in mailoutbox if "At this pace" in m.subject]) == 2


def test_no_insight_without_a_cap_below_it_or_once_it_is_reached(org, post_at):
    now = utc("2026-03-18T12:00:00")
    post_at(steady_events(now), now)
    assert not [i for i in insights_run(org=org, now=now) if i.kind == "spend_forecast"]  # no cap
    alert_settings_update(org=org, spend_cap_usd="100", now=now)
    assert not [i for i in insights_run(org=org, now=now) if i.kind == "spend_forecast"]  # $54 < $100
    alert_settings_update(org=org, spend_cap_usd="20", now=now)
    kinds = {i.kind for i in insights_run(org=org, now=now)}
    assert "spend_cap" in kinds and "spend_forecast" not in kinds  # reached: the spend_cap insight speaks


def test_run_insights_command_finds_the_forecast(org, post_at):
    now = utc("2026-03-18T12:00:00")
    post_at(steady_events(now), now)
    alert_settings_update(org=org, spend_cap_usd="40", now=now)
    out = StringIO()
    call_command("run_insights", "--org", org.slug, "--now", now.isoformat(), stdout=out)
    assert "spend_forecast" in out.getvalue()


def test_overview_of_an_org_without_events_has_no_month_line(member_client, org):
    html = member_client.get(f"/o/{org.slug}/").content.decode()
    assert "No events yet" in html and 'data-testid="month-forecast"' not in html
