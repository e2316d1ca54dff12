"""The detectors over histories ingested through POST /v1/events, their thresholds, dedupe and pages."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils.html import escape

from accounts.models import Membership
from analytics.insights import detectors
from analytics.insights.demo import demo_cap_set, insight_demo_events
from analytics.insights.services import alert_settings_update, insight_dismiss, insights_run
from analytics.models import Insight
from ingestion.money import pico_display
from tests.factories import MembershipFactory

from .insights_helpers import raise_detector_errors, GPT4O_IN, GPT4O_OUT, MINI_IN, MINI_OUT, NOW, at, daily, ev, post_all

pytestmark = pytest.mark.django_db
__all__ = ["raise_detector_errors"]  # autouse fixture

STEADY = "agent:support/step:answer"
CALL = 1000 * GPT4O_IN + 200 * GPT4O_OUT  # the default gpt-4o event: $0.0045


@pytest.fixture
def ingest(org, ingest_key, post_events, prices):
    def _ingest(events):
        post_all(post_events, ingest_key, events)
    return _ingest


def kinds(insights):
    return sorted(i.kind for i in insights)


def only(insights, kind):
    found = [i for i in insights if i.kind == kind]
    assert len(found) == 1, [i.title for i in insights]
    return found[0]


# --- section_spike ---------------------------------------------------------------------------

def test_section_spike_names_section_customer_model_and_the_extra_dollars(org, ingest):
    spiky = "agent:researcher/tool:search"
    ingest(daily(STEADY, 5, model="gpt-4o-mini")
           + daily(spiky, 2)
           + [ev(section=spiky, at=at(0, 1 + i / 20), customer="acme") for i in range(200)])

    insights = insights_run(org=org, now=NOW)

    spike = only(insights, "section_spike")
    assert spike.section == spiky and spike.customer_id == "acme" and spike.model == "gpt-4o"
    assert spike.amount_pico == 202 * CALL - 2 * CALL  # last 24 h minus the daily average
    assert spike.evidence["last_24h_usd"] == "0.909" and spike.evidence["daily_avg_usd"] == "0.009"
    assert spike.evidence["baseline_days"] == 7 and spike.evidence["ratio"] == 101.0
    assert spike.evidence["spike_min_usd"] == "0.5"
    assert "agent:researcher/tool:search" in spike.title and "+$0.90" in spike.title and "acme" in spike.title
    assert not [i for i in insights if i.section == STEADY]


def test_spike_below_the_minimum_extra_is_silent_until_the_org_lowers_it(org, ingest):
    spiky = "agent:writer"
    ingest(daily(spiky, 2) + [ev(section=spiky, at=at(0, 2)) for _ in range(40)])  # +$0.18, 21×
    assert "section_spike" not in kinds(insights_run(org=org, now=NOW))

    alert_settings_update(org=org, spike_min_usd="0.10")
    spike = only(insights_run(org=org, now=NOW), "section_spike")
    assert spike.amount_pico == 40 * CALL and spike.evidence["spike_min_usd"] == "0.1"


def test_spike_needs_more_than_twice_the_daily_average(org, ingest):
    big = {"input_tokens": 10000, "output_tokens": 2000}  # $0.045 a call
    ingest(daily("agent:busy", 25, days=range(1, 8), **big) + daily("agent:busy", 45, days=[0], **big))
    # +$0.90 is above the minimum, but 1.8× is not a spike.
    assert insights_run(org=org, now=NOW) == []


def test_spike_uses_the_history_there_is_when_shorter_than_seven_days(org, ingest):
    ingest(daily("agent:young", 10, days=range(1, 3)) + daily("agent:young", 130, days=[0]))
    spike = only(insights_run(org=org, now=NOW), "section_spike")
    assert spike.evidence["baseline_days"] == 2 and spike.evidence["daily_avg_usd"] == "0.045"


def test_no_spike_without_any_baseline_history(org, ingest):
    ingest(daily("agent:new", 300, days=[0]))
    assert "section_spike" not in kinds(insights_run(org=org, now=NOW))


# --- token_bloat -----------------------------------------------------------------------------

def test_token_bloat_names_section_model_ratio_and_cost_of_extra_tokens(org, ingest):
    ingest(daily(STEADY, 5, model="gpt-4o-mini")
           + daily("agent:writer/step:draft", 10, days=range(1, 8))
           + daily("agent:writer/step:draft", 10, days=[0], input_tokens=4000))

    insights = insights_run(org=org, now=NOW)

    assert kinds(insights) == ["token_bloat"]  # +$0.075 is below the spike minimum
    bloat = insights[0]
    assert bloat.section == "agent:writer/step:draft" and bloat.model == "gpt-4o"
    assert bloat.amount_pico == 10 * 3000 * GPT4O_IN
    assert bloat.evidence["avg_input_tokens_24h"] == 4000.0 and bloat.evidence["avg_input_tokens_7d"] == 1000.0
    assert bloat.evidence["ratio"] == 4.0 and bloat.evidence["extra_input_tokens"] == 30000
    assert bloat.evidence["extra_cost_usd"] == "0.075"


def test_token_growth_under_one_and_a_half_times_is_not_bloat(org, ingest):
    ingest(daily("agent:writer", 10, days=range(1, 8)) + daily("agent:writer", 10, days=[0], input_tokens=1450))
    assert insights_run(org=org, now=NOW) == []


# --- retry_loop ------------------------------------------------------------------------------

def _looping_run(run_id: str, section: str, day: int, calls: int = 5) -> list[dict]:
    """A failed call, then retries of the same endpoint in the same run."""
    return [ev(section=section, run_id=run_id, at=at(day, 3) + timedelta(seconds=i),
               output_tokens=0 if i == 0 else 200, status="error" if i == 0 else "ok") for i in range(calls)]


def test_retry_loop_names_section_endpoint_and_money_spent_on_repeats(org, ingest):
    section = "agent:planner/tool:fetch"
    ingest(daily(STEADY, 5, model="gpt-4o-mini")
           + [e for n in range(6) for e in _looping_run(f"loop-{n}", section, day=n % 3)])

    loop = only(insights_run(org=org, now=NOW), "retry_loop")

    # Six runs, each: a failed call (its input tokens still billed), then four full-price retries.
    assert loop.section == section and loop.amount_pico == 6 * 4 * CALL
    assert loop.evidence["endpoint"] == "/v1/chat/completions" and loop.evidence["p95_calls_per_run"] == 5
    assert loop.evidence["failed_calls"] == 6 and loop.evidence["repeated_calls"] == 24
    assert loop.evidence["looping_runs"] == 6 and loop.evidence["runs"] == 6
    assert "/v1/chat/completions" in loop.title and "5× per run at p95" in loop.title


def test_one_looping_run_out_of_twenty_is_not_a_pattern(org, ingest):
    section = "agent:planner"
    ingest(_looping_run("bad", section, day=1, calls=8) + daily(section, 3, days=range(0, 7)))  # 1 of 22 runs
    assert "retry_loop" not in kinds(insights_run(org=org, now=NOW))


def test_three_calls_per_run_is_not_a_loop(org, ingest):
    ingest([e for n in range(6) for e in _looping_run(f"r-{n}", "agent:planner", day=1, calls=3)])
    assert insights_run(org=org, now=NOW) == []


# --- model_inefficiency ----------------------------------------------------------------------

def _summaries(model: str, runs: int, status: str = "ok") -> list[dict]:
    return [ev(section="agent:summarizer", model=model, at=at(n % 4, 2 + n % 10), input_tokens=2000,
               output_tokens=400, status=status) for n in range(runs)]


def test_model_inefficiency_names_the_expensive_model_and_the_saving(org, ingest):
    ingest(daily(STEADY, 5, model="gpt-4o-mini") + _summaries("gpt-4o-mini", 4) + _summaries("gpt-4o", 10))

    waste = only(insights_run(org=org, now=NOW), "model_inefficiency")

    per_call_4o, per_call_mini = 2000 * GPT4O_IN + 400 * GPT4O_OUT, 2000 * MINI_IN + 400 * MINI_OUT
    assert waste.section == "agent:summarizer" and waste.model == "gpt-4o"
    assert waste.amount_pico == 10 * (per_call_4o - per_call_mini)
    assert waste.evidence["cheaper_model"] == "gpt-4o-mini" and waste.evidence["cheaper_success_rate"] == 1.0
    assert waste.evidence["expensive_calls"] == 10 and waste.evidence["estimated_saving_usd"] == "0.0846"
    assert "gpt-4o-mini succeeds" in waste.title


def test_a_cheaper_model_that_fails_is_no_alternative(org, ingest):
    ingest(_summaries("gpt-4o-mini", 4) + _summaries("gpt-4o-mini", 2, status="error") + _summaries("gpt-4o", 10))
    assert "model_inefficiency" not in kinds(insights_run(org=org, now=NOW))


# --- spend_cap -------------------------------------------------------------------------------

def test_spend_cap_warns_at_80_then_alerts_at_100_once_per_month(org, ingest, ingest_key, post_events):
    ingest(daily("agent:a", 20, days=[0, 1], customer="acme"))  # 40 × $0.0045 = $0.18 … this month
    ingest([ev(section="agent:a", at=datetime(2026, 2, 27, tzinfo=timezone.utc)) for _ in range(50)])  # last month
    alert_settings_update(org=org, spend_cap_usd="0.10", now=NOW)
    org.refresh_from_db()
    assert org.over_cap  # re-evaluated as soon as the cap is saved

    alert_settings_update(org=org, spend_cap_usd="0.20", now=NOW)
    org.refresh_from_db()
    assert not org.over_cap
    warning = only(insights_run(org=org, now=NOW), "spend_cap")
    assert warning.evidence["level_pct"] == 80 and warning.evidence["pct_of_cap"] == 90.0
    assert warning.evidence["month_to_date_usd"] == "0.18" and warning.period == "2026-03"
    assert warning.section == "agent:a" and warning.customer_id == "acme" and warning.amount_pico == 40 * CALL

    ingest(daily("agent:a", 10, days=[0]))  # $0.225 ≥ $0.20
    insights = insights_run(org=org, now=NOW)
    reached = [i for i in insights if i.kind == "spend_cap" and i.evidence["level_pct"] == 100]
    assert len(reached) == 1 and reached[0].is_new and "Spending cap reached" in reached[0].title
    org.refresh_from_db()
    assert org.over_cap
    response = post_events(ingest_key, [ev(section="agent:a", at=at(0))])
    assert response.status_code == 202 and response.json()["over_cap"] is True

    insight_dismiss(org=org, insight_id=reached[0].id)
    insights_run(org=org, now=NOW + timedelta(days=2))
    assert Insight.objects.for_org(org).filter(kind="spend_cap").count() == 2  # once per period

    april = datetime(2026, 4, 2, 12, tzinfo=timezone.utc)
    insights_run(org=org, now=april)  # a new month
    org.refresh_from_db()
    assert not org.over_cap
    assert post_events(ingest_key, [ev(section="agent:a", at=at(0))]).json()["over_cap"] is False

    ingest(daily("agent:a", 50, days=[0], now=april))
    april_cap = only(insights_run(org=org, now=april), "spend_cap")
    assert april_cap.is_new and april_cap.period == "2026-04" and april_cap.evidence["level_pct"] == 100


def test_no_cap_no_cap_insight(org, ingest):
    ingest(daily("agent:a", 20, days=[0]))
    assert insights_run(org=org, now=NOW) == []


# --- idempotence, dismissal, isolation ----------------------------------------------------------

def _spike_history(section="agent:researcher"):
    return daily(section, 2) + [ev(section=section, at=at(0, 2)) for _ in range(150)]


def test_rerun_refreshes_the_open_insight_instead_of_duplicating(org, ingest):
    ingest(_spike_history())
    first = only(insights_run(org=org, now=NOW), "section_spike")
    assert first.is_new

    ingest([ev(section="agent:researcher", at=at(0, 1)) for _ in range(10)])
    again = only(insights_run(org=org, now=NOW + timedelta(hours=1)), "section_spike")
    assert again.id == first.id and not again.is_new
    assert again.amount_pico > first.amount_pico and again.detected_at == first.detected_at
    assert Insight.objects.for_org(org).count() == 1


def test_a_dismissed_insight_stays_dismissed_for_its_period(org, ingest):
    ingest(_spike_history())
    spike = only(insights_run(org=org, now=NOW), "section_spike")
    insight_dismiss(org=org, insight_id=spike.id)
    assert insights_run(org=org, now=NOW + timedelta(minutes=30)) == []
    assert Insight.objects.for_org(org).get().status == "dismissed"


def test_insights_stay_in_their_org(org, other_org, ingest):
    ingest(_spike_history())
    assert insights_run(org=other_org, now=NOW) == []
    assert kinds(insights_run(org=org, now=NOW)) == ["section_spike"]
    assert not Insight.objects.for_org(other_org).exists()
    with pytest.raises(Exception):
        insight_dismiss(org=other_org, insight_id=Insight.objects.for_org(org).get().id)


def test_a_broken_detector_does_not_stop_the_others(org, ingest, settings, monkeypatch):
    settings.LLMOBSERVE_INSIGHTS_RAISE = False

    def broken(**kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(detectors, "DETECTORS", (broken, *detectors.DETECTORS))
    ingest(_spike_history())
    assert kinds(insights_run(org=org, now=NOW)) == ["section_spike"]


# --- demo -----------------------------------------------------------------------------------

def test_demo_history_triggers_every_detector_and_leaves_the_steady_agent_alone(org, ingest):
    now = NOW  # pinned: tests/analytics/test_clock.py runs the demo at many more instants
    ingest(insight_demo_events(now=now))
    cap = demo_cap_set(org=org, now=now)
    assert cap is not None

    insights = insights_run(org=org, now=now)

    assert set(kinds(insights)) == set(Insight.Kind.values)  # spend_forecast too: mid-month, the cap is ahead
    assert len(insights) == len(Insight.Kind.values)
    assert not [i for i in insights if i.kind != "spend_cap" and i.section.startswith("agent:support")]
    by_kind = {i.kind: i for i in insights}
    assert by_kind["section_spike"].customer_id == "acme"
    assert by_kind["model_inefficiency"].model == "gpt-4o"
    assert by_kind["spend_cap"].evidence["level_pct"] == 80
    errors = by_kind["error_spike"]
    assert errors.section == "agent:triage/step:classify" and errors.evidence["top_status"] == "rate_limited"
    assert errors.evidence["by_http_status"] == {"429": 4, "500": 2} and "HTTP 429 ×4" in errors.title
    latency = by_kind["latency_regression"]
    assert latency.evidence["p95_ms_24h"] == 1500 and latency.evidence["p95_ms_7d"] == pytest.approx(400, rel=0.02)


# --- management command ----------------------------------------------------------------------

def test_run_insights_command_prints_a_line_per_insight(org, ingest):
    ingest(_spike_history())
    out = StringIO()
    call_command("run_insights", "--org", org.slug, "--now", NOW.isoformat(), stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith(f"{org.slug}\tnew \tsection_spike\t$0.675\tSpend spike in agent:researcher")
    assert lines[-1] == "1 insight(s), 1 new"

    out = StringIO()
    call_command("run_insights", "--org", org.slug, "--now", NOW.isoformat(), stdout=out)
    assert "\tseen\t" in out.getvalue() and out.getvalue().endswith("1 insight(s), 0 new\n")

    with pytest.raises(CommandError):
        call_command("run_insights", "--org", "nope")


# --- pages ----------------------------------------------------------------------------------

@pytest.fixture
def spike(org, ingest):
    ingest(_spike_history())
    return only(insights_run(org=org, now=NOW), "section_spike")


def test_insights_page_lists_open_and_dismissed_tabs(member_client, org, spike, django_assert_max_num_queries):
    with django_assert_max_num_queries(8):
        response = member_client.get(f"/o/{org.slug}/insights/")
    body = response.content.decode()
    assert response.status_code == 200 and 'data-testid="insights"' in body
    assert escape(spike.title) in body and "Dismiss" in body and "<html" in body
    assert "HX-Request" in response["Vary"]

    dismissed = member_client.get(f"/o/{org.slug}/insights/?status=dismissed").content.decode()
    assert escape(spike.title) not in dismissed


def test_htmx_gets_only_the_list_fragment(member_client, org, spike):
    response = member_client.get(f"/o/{org.slug}/insights/", headers={"HX-Request": "true"})
    body = response.content.decode()
    assert "<html" not in body and body.strip().startswith('<div class="card" id="insights-list"')


def test_overview_panel_fragment_lists_top_open_insights(member_client, org, spike, django_assert_max_num_queries):
    with django_assert_max_num_queries(8):
        response = member_client.get(f"/o/{org.slug}/insights/panel/", headers={"HX-Request": "true"})
    body = response.content.decode().strip()
    assert response.status_code == 200 and body.startswith('<div class="card" data-testid="insights"')
    assert escape(spike.title) in body and "<html" not in body
    assert f"/o/{org.slug}/insights/{spike.id}/dismiss/" in body


def test_dismiss_with_htmx_removes_the_row(member_client, org, spike):
    response = member_client.post(f"/o/{org.slug}/insights/{spike.id}/dismiss/", headers={"HX-Request": "true"})
    assert response.status_code == 200 and response.content == b""
    spike.refresh_from_db()
    assert spike.status == "dismissed" and spike.dismissed_at is not None
    assert escape(spike.title) in member_client.get(f"/o/{org.slug}/insights/?status=dismissed").content.decode()


def test_dismiss_without_javascript_redirects(member_client, org, spike):
    response = member_client.post(f"/o/{org.slug}/insights/{spike.id}/dismiss/")
    assert response.status_code == 302 and response["Location"] == f"/o/{org.slug}/insights/"


def test_another_orgs_member_gets_404_everywhere(client, org, other_org, spike):
    stranger = MembershipFactory(org=other_org).user
    client.force_login(stranger)
    for url in (f"/o/{org.slug}/insights/", f"/o/{org.slug}/insights/panel/", f"/o/{org.slug}/settings/alerts/"):
        assert client.get(url).status_code == 404
    assert client.post(f"/o/{org.slug}/insights/{spike.id}/dismiss/").status_code == 404
    # Their own org's URL with our insight's id: 404 as well, and nothing changes.
    assert client.post(f"/o/{other_org.slug}/insights/{spike.id}/dismiss/").status_code == 404
    assert client.get(f"/o/{other_org.slug}/insights/").content.decode().count('data-testid="insight-row"') == 0
    spike.refresh_from_db()
    assert spike.status == "open"


def test_viewer_sees_insights_but_cannot_dismiss(client, org, spike):
    viewer = MembershipFactory(org=org, role=Membership.Role.VIEWER).user
    client.force_login(viewer)
    page = client.get(f"/o/{org.slug}/insights/").content.decode()
    assert escape(spike.title) in page and 'data-testid="insight-dismiss"' not in page
    assert client.post(f"/o/{org.slug}/insights/{spike.id}/dismiss/").status_code == 403


def test_alert_settings_page_saves_cap_and_channels(member_client, org, fake_dns):
    fake_dns["hooks.example.com"] = ["93.184.215.14"]  # a public address; nothing connects to it here
    url = f"/o/{org.slug}/settings/alerts/"
    assert member_client.get(url).status_code == 200
    response = member_client.post(url, {"spend_cap_usd": "250.5", "spike_min_usd": "2", "alert_email": "",
                                        "alert_webhook_url": "https://hooks.example.com/T000/B000",
                                        "alert_digest": "on"})
    assert response.status_code == 302
    org.refresh_from_db()
    assert org.spend_cap_pico == 250_500_000_000_000 and org.spike_min_pico == 2 * 10**12
    assert org.alert_email is False and org.alert_digest is True
    assert org.alert_webhook_url == "https://hooks.example.com/T000/B000"
    page = member_client.get(url).content.decode()
    assert 'value="250.5"' in page

    member_client.post(url, {"spend_cap_usd": "", "spike_min_usd": "", "alert_email": "on"})
    org.refresh_from_db()
    assert org.spend_cap_pico is None and org.spike_min_pico is None and org.alert_webhook_url == ""


def test_alert_settings_reject_bad_input(member_client, org):
    response = member_client.post(f"/o/{org.slug}/settings/alerts/", {"spend_cap_usd": "-5",
                                                                      "alert_webhook_url": "not a url at all"})
    assert response.status_code == 200 and b"errorlist" in response.content
    org.refresh_from_db()
    assert org.spend_cap_pico is None


@pytest.mark.parametrize("role", [Membership.Role.MEMBER, Membership.Role.VIEWER])
def test_alert_settings_are_for_owners_and_admins_only(client, org, role):
    user = MembershipFactory(org=org, role=role).user
    client.force_login(user)
    assert client.get(f"/o/{org.slug}/settings/alerts/").status_code == 403
    assert client.post(f"/o/{org.slug}/settings/alerts/", {"spend_cap_usd": "1"}).status_code == 403


def test_admin_can_change_alert_settings(client, org):
    client.force_login(MembershipFactory(org=org, role=Membership.Role.ADMIN).user)
    assert client.get(f"/o/{org.slug}/settings/alerts/").status_code == 200


def test_money_in_titles_is_rounded_but_exact_in_evidence():
    assert pico_display(900_000_000_000) == "$0.90"
    assert pico_display(1_234_567_000_000_000) == "$1,234.57"
    assert pico_display(9_000_000_000) == "$0.009" and pico_display(10**10) == "$0.01"
    assert pico_display(1) == "<$0.000001" and pico_display(None) == "unpriced" and pico_display(0) == "$0.00"
    assert detectors.percentile([1] * 19 + [9], 95) == 1 and detectors.percentile([1] * 18 + [9, 9], 95) == 9


# --- error_spike and latency_regression ----------------------------------------------------------------

FLAKY = "agent:triage/step:classify"


def _failing(day: int, n: int, status: str, code: int, **fields) -> list[dict]:
    return [{**ev(section=FLAKY, at=at(day, 2 + i / 4), status=status), "http_status": code, **fields}
            for i in range(n)]


@pytest.mark.parametrize("errors, fires", [(4, False), (5, True)])
def test_error_spike_needs_five_errors_and_names_statuses_and_codes(org, ingest, errors, fires):
    ingest(daily(FLAKY, 10) + daily(STEADY, 10) + _failing(1, 1, "error", 500)
           + _failing(0, errors - 1, "rate_limited", 429) + _failing(0, 1, "timeout", 504))
    found = [i for i in insights_run(org=org, now=NOW) if i.kind == "error_spike"]
    if not fires:
        assert found == []
        return
    # the section, and its provider (5 of 25 calls failed today, 1 of 140 before)
    assert sorted((i.evidence["dimension"], i.section) for i in found) == [("provider", ""), ("section", FLAKY)]
    spike = next(i for i in found if i.section == FLAKY)
    assert spike.evidence["by_status"] == {"rate_limited": 4, "timeout": 1}
    assert spike.evidence["by_http_status"] == {"429": 4, "504": 1}
    assert "4 rate_limited, 1 timeout" in spike.title and "HTTP 429 ×4" in spike.title
    assert spike.amount_pico == 5 * CALL  # the failed calls were billed
    # dedupe: a second run refreshes the open insight; a dismissed one stays dismissed for the day
    assert insights_run(org=org, now=NOW + timedelta(minutes=5))
    assert Insight.objects.for_org(org).filter(kind="error_spike").count() == 2
    insight_dismiss(org=org, insight_id=spike.pk)
    insights_run(org=org, now=NOW + timedelta(minutes=10))
    assert not Insight.objects.for_org(org).filter(kind="error_spike", section=FLAKY, status="open").exists()


def test_latency_regression_compares_p95_with_enough_calls_on_both_sides(org, ingest):
    fast = [{**e, "latency_ms": 400} for e in daily(FLAKY, 10, days=range(1, 8))]
    slow = [{**e, "latency_ms": 1500 if i % 2 else 400} for i, e in enumerate(daily(FLAKY, 10, days=[0]))]
    ingest(fast + slow)
    found = [i for i in insights_run(org=org, now=NOW) if i.kind == "latency_regression"]
    # the section and its provider (the only traffic) both slowed down
    assert sorted(i.evidence["dimension"] for i in found) == ["provider", "section"]
    section = next(i for i in found if i.evidence["dimension"] == "section")
    assert section.section == FLAKY and section.evidence["p95_ms_24h"] == 1500
    assert section.evidence["p95_ms_7d"] == pytest.approx(400, rel=0.02) and section.amount_pico is None


def test_latency_regression_stays_quiet_below_ten_calls(org, ingest):
    ingest([{**e, "latency_ms": 400} for e in daily(FLAKY, 10, days=range(1, 8))]
           + [{**e, "latency_ms": 5000} for e in daily(FLAKY, 9, days=[0])])
    assert not [i for i in insights_run(org=org, now=NOW) if i.kind == "latency_regression"]
