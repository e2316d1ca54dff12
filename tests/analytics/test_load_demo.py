"""load_demo: a realistic demo org through the real ingestion path, idempotent, login on the last line."""

from collections import Counter
from contextlib import nullcontext
from datetime import datetime, timezone
from io import StringIO

import pytest
import time_machine
from django.core.management import call_command
from django.db.models import Sum

from accounts.models import Membership, Organization, User
from analytics.demo import demo_events
from ingestion.models import HourlyRollup, RunSummary, TraceEvent

from .demo_support import demo_prices_create

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)


def test_demo_events_are_realistic_and_deterministic():
    events = demo_events(now=NOW)
    assert events == demo_events(now=NOW)
    assert 2500 <= len(events) <= 6000
    assert len({e["event_id"] for e in events}) == len(events)
    agents = Counter(e["section_path"].split("/")[0] for e in events)
    assert {"agent:researcher", "agent:writer", "agent:support", "agent:analyst", ""} <= set(agents)
    assert agents[""] / len(events) > 0.05  # an Untracked share
    assert any("/tool:" in e["section_path"] for e in events)
    assert {"openai", "anthropic", "google"} <= {e["provider"] for e in events}
    assert len({e.get("customer_id") for e in events} - {None}) >= 20
    assert sum(1 for e in events if e.get("cached_input_tokens")) > 100
    assert sum(1 for e in events if e.get("reasoning_tokens")) > 10
    assert sum(1 for e in events if e["status"] != "ok") > 10
    first = datetime.fromisoformat(events[0]["timestamp"].replace("Z", "+00:00"))
    assert (NOW - first).days >= 29 and events[-1]["timestamp"] < "2026-11-20T12:30"


def test_load_demo_ingests_through_the_real_path_and_is_idempotent(django_capture_on_commit_callbacks):
    demo_prices_create()
    out = StringIO()
    call_command("load_demo", stdout=out)
    lines = out.getvalue().strip().splitlines()
    assert lines[-1] == "demo login: demo@llmobserve.dev llmobserve-demo"
    org = Organization.objects.get(slug="demo-co")
    user = User.objects.get(email="demo@llmobserve.dev")
    assert user.check_password("llmobserve-demo")
    assert Membership.objects.for_org(org).get(user=user).role == "owner"
    stored = TraceEvent.objects.for_org(org).count()
    assert stored > 2500
    rollups = HourlyRollup.objects.for_org(org).aggregate(calls=Sum("calls"), unpriced=Sum("unpriced_calls"))
    assert rollups["calls"] == stored  # rollups built exactly like production
    assert 0 < rollups["unpriced"] < stored * 0.1  # the self-hosted model is unpriced, the rest priced
    assert RunSummary.objects.for_org(org).count() > 500
    assert TraceEvent.objects.for_org(org).filter(cost_source="client").exists()  # vector-db spans

    out = StringIO()
    call_command("load_demo", stdout=out)
    assert TraceEvent.objects.for_org(org).count() == stored
    assert out.getvalue().strip().splitlines()[-1].startswith("demo login: demo@llmobserve.dev ")
    assert Organization.objects.filter(slug="demo-co").count() == 1


def test_demo_org_overview_renders(client, django_assert_max_num_queries):
    demo_prices_create()
    call_command("load_demo", stdout=StringIO())
    client.login(email="demo@llmobserve.dev", password="llmobserve-demo")
    # Session, user, membership, org list, events check, then up to 3 rollup parts (hourly edges + daily)
    # for each of: the window at agent level, its customers, the previous period.
    with django_assert_max_num_queries(14):
        html = client.get("/o/demo-co/", {"window": "30d"}).content.decode()
    assert html.count('data-testid="breakdown-row"') == 8 and "Untracked" in html  # 7 agents + Untracked
    assert "unpriced call" in html


@pytest.mark.parametrize("instant", [None, "2026-12-01T00:03:00+00:00", "2026-11-30T23:40:00+00:00"])
def test_load_demo_history_triggers_every_detector(prices, capsys, instant):
    """Now, three minutes into a month (its month-to-date is minutes old) and in a month's last minutes."""
    from django.core.management import call_command

    from accounts.models import Organization
    from analytics.forecast import forecast_get
    from analytics.models import Insight

    with time_machine.travel(datetime.fromisoformat(instant), tick=False) if instant else nullcontext():
        call_command("load_demo")
    org = Organization.objects.get(slug="demo-co")
    kinds = set(Insight.objects.for_org(org).values_list("kind", flat=True))
    forecast = forecast_get(org=org, now=Insight.objects.for_org(org).first().detected_at)
    crossing_ahead = forecast.cap_hit_on is not None and not forecast.cap_reached  # the 1st: yes; the 30th: no
    assert kinds == {"section_spike", "token_bloat", "retry_loop", "model_inefficiency", "spend_cap", "error_spike",
                     "latency_regression"} | (
        {"spend_forecast"} if crossing_ahead else set())
    # the steady agent raises no anomaly (a spending cap names the month's top section, which minutes into a
    # month can be any agent)
    assert not Insight.objects.for_org(org).filter(section__startswith="agent:support").exclude(
        kind__in=("spend_cap", "spend_forecast")).exists()
    assert capsys.readouterr().out.strip().splitlines()[-1] == "demo login: demo@llmobserve.dev llmobserve-demo"
