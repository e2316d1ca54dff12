"""The clock: `load_demo` and every detector give the same answers whatever the instant.

Pinned instants (time-machine): just after midnight UTC, 23:40 UTC (where `make demo` once found 4
insight kinds instead of 5), the first and the last day of a month, and daylight-saving changes with
the server in a non-UTC timezone. `now` is passed through every command (`--now`), service and
detector, so the same history judged at the same instant gives the same insights.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from io import StringIO

import pytest
import time_machine
from django.core.management import CommandError, call_command

from accounts.models import Organization
from analytics.forecast import forecast_get
from analytics.insights import detectors
from analytics.insights.demo import demo_cap_set, insight_demo_events
from analytics.insights.services import insights_run
from analytics.models import Insight
from ingestion.models import TraceEvent

from .insights_helpers import ev, post_all, raise_detector_errors

pytestmark = pytest.mark.django_db
__all__ = ["raise_detector_errors"]  # autouse fixture

KINDS = {"section_spike", "token_bloat", "retry_loop", "model_inefficiency", "spend_cap", "error_spike",
         "latency_regression"}
EXPECTED = {  # detector → (section, period kind)
    "section_spike": ("agent:researcher/tool:web_search", "day"),
    "token_bloat": ("agent:writer/step:rewrite", "day"),
    "retry_loop": ("agent:planner/tool:lookup", "week"),
    "model_inefficiency": ("agent:summarizer/step:summarize", "week"),
    "error_spike": ("agent:triage/step:classify", "day"),
    "latency_regression": ("agent:triage/step:classify", "day"),
}


def expected_kinds(org: Organization, now: datetime) -> set[str]:
    """The five kinds the demo plants, plus `spend_forecast` exactly when this month's projection crosses the cap
    still ahead (the demo cap sits at 85 % of the month-to-date: crossed on the 1st, not on the 30th at 23:40)."""
    forecast = forecast_get(org=org, now=now)
    return KINDS | ({"spend_forecast"} if forecast.cap_hit_on and not forecast.cap_reached else set())


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


# (instant, server timezone)
INSTANTS = [
    pytest.param(utc("2026-11-29T23:40:00"), "UTC", id="23:40-UTC"),
    pytest.param(utc("2026-11-29T23:48:00"), "UTC", id="23:48-UTC"),
    pytest.param(utc("2026-11-30T00:05:00"), "UTC", id="just-after-midnight"),
    pytest.param(utc("2026-11-30T23:50:00"), "UTC", id="last-day-of-month"),
    pytest.param(utc("2026-12-01T00:05:00"), "UTC", id="first-day-of-month-after-midnight"),
    pytest.param(utc("2027-01-01T12:00:00"), "UTC", id="first-day-of-year"),
    pytest.param(utc("2026-11-01T06:30:00"), "America/New_York", id="dst-ends-new-york"),
    pytest.param(utc("2026-03-29T01:30:00"), "Europe/Berlin", id="dst-starts-berlin"),
    pytest.param(utc("2026-10-25T00:30:00"), "Australia/Lord_Howe", id="half-hour-dst-lord-howe"),
]


@pytest.fixture
def server_timezone(settings):
    def _set(name: str):
        settings.TIME_ZONE = name  # Django sets TZ and calls tzset(): local time is that zone's
    return _set


@pytest.mark.parametrize("instant, tz", INSTANTS)
def test_load_demo_finds_all_five_insight_kinds_at_any_instant(prices, server_timezone, instant, tz):
    server_timezone(tz)
    with time_machine.travel(instant, tick=False):
        out = StringIO()
        call_command("load_demo", stdout=out)
    org = Organization.objects.get(slug="demo-co")
    insights = Insight.objects.for_org(org)
    assert set(insights.values_list("kind", flat=True)) == expected_kinds(org, instant), out.getvalue()
    for kind, (section, _period) in EXPECTED.items():  # each pattern found where it was planted
        assert insights.filter(kind=kind, section=section).count() == 1, list(insights.values_list("kind", "section"))
    # The steady agent stays silent (the cap insight names the month's top section, which it may be at 00:05).
    assert not insights.exclude(kind="spend_cap").filter(section__startswith="agent:support").exists()
    # Judged at the pinned instant: the day's insights carry the UTC day of `now`.
    assert insights.get(kind="token_bloat").period == instant.date().isoformat()
    assert insights.get(kind="spend_cap").period == instant.strftime("%Y-%m")
    latest = TraceEvent.objects.for_org(org).order_by("-timestamp").first().timestamp
    assert instant - timedelta(minutes=3) <= latest < instant
    assert out.getvalue().strip().splitlines()[-1] == "demo login: demo@llmobserve.dev llmobserve-demo"


def test_load_demo_now_option_builds_the_history_as_of_that_instant(prices):
    instant = utc("2026-11-29T23:40:00")
    with time_machine.travel(utc("2027-02-01T09:00:00"), tick=False):  # the wall clock is months later
        out = StringIO()
        call_command("load_demo", "--now", "2026-11-30T00:40:00+01:00", stdout=out)
    org = Organization.objects.get(slug="demo-co")
    assert set(Insight.objects.for_org(org).values_list("kind", flat=True)) == expected_kinds(org, instant) == KINDS
    latest = TraceEvent.objects.for_org(org).order_by("-timestamp").first().timestamp
    assert instant - timedelta(minutes=3) <= latest < instant
    assert ("insights: error_spike, latency_regression, model_inefficiency, retry_loop, section_spike, spend_cap, "
            "token_bloat") in out.getvalue()


@pytest.mark.parametrize("command", ["load_demo", "run_insights"])
@pytest.mark.parametrize("bad", ["yesterday", "2026-11-29T23:40:00", "2026-13-01T00:00:00Z", "2026-11-29T25:00Z"])
def test_commands_refuse_a_now_they_cannot_read(db, command, bad):
    with pytest.raises(CommandError, match="--now must be an ISO 8601 datetime with a timezone"):
        call_command(command, "--now", bad, stdout=StringIO())
    assert not Organization.objects.filter(slug="demo-co").exists()


# --- each detector, at each instant ---------------------------------------------------------------



@pytest.mark.parametrize("instant, tz", INSTANTS)
def test_each_detector_fires_once_on_the_demo_pattern_at_any_instant(org, ingest_key, post_events, prices,
                                                                     server_timezone, instant, tz):
    server_timezone(tz)
    with time_machine.travel(instant + timedelta(seconds=1), tick=False):  # the collector refuses future events
        post_all(post_events, ingest_key, insight_demo_events(now=instant))
    assert demo_cap_set(org=org, now=instant) is not None  # some spend this month, even a minute into it
    frame = detectors.Frame(now=instant)
    for detector in (detectors.section_spike, detectors.token_bloat, detectors.retry_loop,
                     detectors.model_inefficiency, detectors.error_spike, detectors.latency_regression):
        found = detector(org=org, now=instant)
        section, period_kind = EXPECTED[detector.__name__]
        assert [(f.kind, f.section) for f in found] == [(detector.__name__, section)], [f.title for f in found]
        assert (found[0].period, found[0].period_start) == getattr(frame, period_kind)
    cap = detectors.spend_cap(org=org, now=instant)
    assert [(f.kind, f.period, f.evidence["level_pct"]) for f in cap] == [("spend_cap", instant.strftime("%Y-%m"),
                                                                           80)]
    # Without `now`, the detectors read the clock: the same findings at the same instant.
    with time_machine.travel(instant, tick=False):
        assert sorted(f.dedupe_key for f in detectors.findings_detect(org=org)) == sorted(
            f.dedupe_key for f in detectors.findings_detect(org=org, now=instant))
        assert {i.kind for i in insights_run(org=org)} == expected_kinds(org, instant)


def test_run_insights_now_judges_as_of_that_instant(org, ingest_key, post_events, prices):
    instant = utc("2026-11-29T23:40:00")
    with time_machine.travel(instant, tick=False):
        post_all(post_events, ingest_key, insight_demo_events(now=instant))
    out = StringIO()
    with time_machine.travel(utc("2027-02-01T00:00:00"), tick=False):  # weeks later: nothing in any window
        call_command("run_insights", "--org", org.slug, stdout=out)
        assert out.getvalue().endswith("0 insight(s), 0 new\n")
        out = StringIO()
        call_command("run_insights", "--org", org.slug, "--now", "2026-11-29T23:40:00Z", stdout=out)
    assert out.getvalue().endswith("6 insight(s), 6 new\n")  # no cap set: the six pattern detectors


# --- token_bloat judges low volume by money, not by a call count ------------------------------------

NOW = utc("2026-03-18T12:30:00")


def _calls(section: str, day: int, n: int, input_tokens: int) -> list[dict]:
    return [ev(section=section, at=NOW - timedelta(days=day, hours=1 + 19 * (i + 0.5) / n), input_tokens=input_tokens,
               output_tokens=100) for i in range(n)]


def test_a_low_volume_section_whose_input_exploded_is_token_bloat(org, ingest_key, post_events, prices):
    # Two calls a day at 2,000 input tokens; in the last 24 h two calls at 150,000: +$0.74 on gpt-4o.
    section = "agent:nightly/step:report"
    events = [e for day in range(1, 8) for e in _calls(section, day, 2, 2_000)] + _calls(section, 0, 2, 150_000)
    post_all(post_events, ingest_key, events)
    found = detectors.token_bloat(org=org, now=NOW)
    assert [(f.section, f.amount_pico) for f in found] == [(section, 2 * 148_000 * 2_500_000)]
    assert found[0].evidence["low_volume"] is True and found[0].evidence["min_extra_usd"] == "0.5"
    assert found[0].evidence["calls_24h"] == 2


def test_a_low_volume_section_needs_the_spike_minimum_at_stake(org, ingest_key, post_events, prices):
    # Three calls: 4,000 → 30,000 tokens (7.5×) is only +$0.20: below the $0.50 a low-volume section needs.
    section = "agent:nightly/step:report"
    events = [e for day in range(1, 8) for e in _calls(section, day, 3, 4_000)] + _calls(section, 0, 3, 30_000)
    post_all(post_events, ingest_key, events)
    assert detectors.token_bloat(org=org, now=NOW) == []
    org.spike_min_pico = 10**11  # $0.10: the org's own spike minimum applies here too
    org.save(update_fields=["spike_min_pico"])
    assert [f.section for f in detectors.token_bloat(org=org, now=NOW)] == [section]


def test_a_busy_section_is_still_judged_by_the_insight_minimum(org, ingest_key, post_events, prices):
    # Ten calls a day at 1,500 tokens, then 10 at 6,000: +$0.11, above the $0.05 insight minimum.
    section = "agent:writer/step:draft"
    events = [e for day in range(1, 8) for e in _calls(section, day, 10, 1_500)] + _calls(section, 0, 10, 6_000)
    post_all(post_events, ingest_key, events)
    found = detectors.token_bloat(org=org, now=NOW)
    assert [(f.section, f.evidence["low_volume"], f.evidence["min_extra_usd"]) for f in found] == [
        (section, False, "0.05")]
