"""The staff console: its figures equal the rollups' and dj-stripe's, the window switch, the CSV, the retry action,
and a 404 for anyone who is not staff."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta, timezone

import pytest
import time_machine
from django.db.models import Sum

from accounts.models import ApiKey
from accounts.services import api_key_create
from ingestion.models import AgentDailyRollup, RawBatch
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory

NOW = datetime(2026, 3, 31, 23, 40, tzinfo=timezone.utc)  # a month's last evening, 20 minutes to midnight
COST_4O = 1000 * 2_500_000 + 200 * 10_000_000  # pico-USD of one gpt-4o call of 1000 in / 200 out tokens
COST_MINI = 1000 * 150_000 + 200 * 600_000


def call(event_id: str, at: datetime, model: str = "gpt-4o") -> dict:
    return {"event_id": event_id, "provider": "openai", "model": model, "input_tokens": 1000,
            "output_tokens": 200, "timestamp": at.isoformat()}


@pytest.fixture
def clock():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def seeded(clock, prices, post_events):
    """Three orgs: `busy` used today and two days ago, `quiet` ten days ago, `old` forty days ago."""
    orgs = {}
    plan = {
        "busy": [call(f"b{i}", NOW - timedelta(minutes=30 + i)) for i in range(3)]
        + [call(f"b2-{i}", NOW - timedelta(days=2), model="gpt-4o-mini") for i in range(2)],
        "quiet": [call(f"q{i}", NOW - timedelta(days=10)) for i in range(4)],
        "old": [call("o1", NOW - timedelta(days=40))],
    }
    for name, events in plan.items():
        org = OrganizationFactory(name=name.title(), slug=name)
        key = api_key_create(org=org, name="k", scope="ingest").raw_key
        response = post_events(key, events)
        assert response.status_code == 202 and response.json()["accepted"] == len(events)
        orgs[name] = org
    return orgs


def rollup_totals(start: datetime):
    return AgentDailyRollup.objects.unscoped().filter(day__gte=start).aggregate(events=Sum("calls"),
                                                                              cost=Sum("cost_pico"))


def test_usage_figures_equal_the_rollups_for_each_window(staff_client, seeded):
    expected = {7: (5, 3 * COST_4O + 2 * COST_MINI), 30: (9, 7 * COST_4O + 2 * COST_MINI),
                90: (10, 8 * COST_4O + 2 * COST_MINI)}
    for days, (events, cost) in expected.items():
        response = staff_client.get("/staff/", {"days": days})
        assert response.status_code == 200
        ctx = response.context
        start = datetime(2026, 3, 31, tzinfo=timezone.utc) - timedelta(days=days - 1)
        totals = rollup_totals(start)
        assert (ctx["events_total"], ctx["cost_total"]) == (events, cost) == (totals["events"], totals["cost"])
        assert len(ctx["usage"]) == days and ctx["usage"][-1].day.isoformat() == "2026-03-31"
        assert ctx["usage"][-1].events == 3 and ctx["usage"][-1].cost_pico == 3 * COST_4O
        assert ctx["active_orgs"] == 1  # only `busy` has events in the last 7 days
        assert f'data-testid="staff-window-{days}d" class="active"' in response.content.decode()
    ctx = staff_client.get("/staff/", {"days": 30}).context
    assert [(r.slug, r.events, r.cost_pico) for r in ctx["top_cost"]] == [
        ("quiet", 4, 4 * COST_4O), ("busy", 5, 3 * COST_4O + 2 * COST_MINI)]
    assert [r.slug for r in ctx["top_events"]] == ["busy", "quiet"]
    assert [(m.model, m.events) for m in ctx["models"]] == [("gpt-4o", 7), ("gpt-4o-mini", 2)]
    assert [(p.provider, p.events) for p in ctx["providers"]] == [("openai", 9)]


def test_signups_and_api_keys_per_day(staff_client, clock, db):
    for days_ago in (0, 0, 3, 45):
        UserFactory(date_joined=NOW - timedelta(days=days_ago, minutes=5))
    org = OrganizationFactory()
    for days_ago in (1, 1, 1, 20):
        ApiKey.objects.unscoped().filter(pk=api_key_create(org=org, name="k", scope="read").api_key.pk).update(
            created_at=NOW - timedelta(days=days_ago))
    ctx = staff_client.get("/staff/", {"days": 7}).context
    signups = dict(ctx["signups"])
    # (the staff user joined at the real time, outside the pinned window)
    assert signups[NOW.date()] == 2 and signups[(NOW - timedelta(days=3)).date()] == 1
    assert ctx["signups_total"] == 3 and staff_client.get("/staff/", {"days": 90}).context["signups_total"] == 4
    assert dict(ctx["keys"])[(NOW - timedelta(days=1)).date()] == 3 and ctx["keys_total"] == 3
    assert staff_client.get("/staff/", {"days": 90}).context["keys_total"] == 4


def _stripe_rows():
    """dj-stripe rows as its webhook sync would leave them (seeded directly, as in tests/billing)."""
    from djstripe.models import Customer, Price, Product, Subscription

    product = Product.objects.create(id="prod_team", name="LLMObserve Team", livemode=False, stripe_data={})
    Price.objects.create(id="price_month", product=product, active=True, currency="usd", livemode=False,
                         stripe_data={"unit_amount": 800, "recurring": {"interval": "month", "interval_count": 1}})
    Price.objects.create(id="price_year", product=product, active=True, currency="usd", livemode=False,
                         stripe_data={"unit_amount": 9600, "recurring": {"interval": "year", "interval_count": 1}})

    def sub(sid, status, price, *, started_days, ended_days=None, quantity=1):
        customer = Customer.objects.create(id=f"cus_{sid}", livemode=False, stripe_data={})
        data = {"status": status, "start_date": int((NOW - timedelta(days=started_days)).timestamp()),
                "ended_at": None if ended_days is None else int((NOW - timedelta(days=ended_days)).timestamp()),
                "items": {"data": [{"price": {"id": price}, "quantity": quantity}]}}
        Subscription.objects.create(id=f"sub_{sid}", customer=customer, livemode=False, stripe_data=data)

    sub("a", "active", "price_month", started_days=5)
    sub("b", "past_due", "price_year", started_days=5)
    sub("c", "trialing", "price_month", started_days=2)
    sub("d", "canceled", "price_month", started_days=60, ended_days=10)
    sub("e", "active", "price_month", started_days=60, quantity=2)
    sub("f", "canceled", "price_month", started_days=90, ended_days=45)  # gone before the churn window
    Subscription.objects.create(id="sub_live", customer=Customer.objects.create(id="cus_live", livemode=True),
                                livemode=True, stripe_data={"status": "active"})  # the other mode: not counted


def test_subscriptions_mrr_and_churn_come_from_dj_stripe(staff_client, clock, settings):
    settings.STRIPE_LIVE_MODE = False
    _stripe_rows()
    response = staff_client.get("/staff/")
    subs = response.context["subs"]
    assert subs.by_status == {"active": 2, "canceled": 2, "past_due": 1, "trialing": 1}
    # $8 + $96/12 + 2 × $8: active and past-due pay, the trial does not
    assert subs.mrr_pico == 32 * 10**12 and subs.paying == 3
    # live 30 days ago: d and e; d ended since
    assert (subs.active_at_start, subs.churned, subs.churn_rate) == (2, 1, 0.5)
    html = response.content.decode()
    assert 'data-testid="staff-mrr"' in html and "$32.00" in html and "50.0%" in html


def test_lag_backlog_stuck_batches_and_the_retry_action(staff_client, clock, org, django_capture_on_commit_callbacks):
    received = NOW - timedelta(hours=1)
    for seconds, count in ((1, 10), (2, 80), (30, 10)):
        RawBatch.objects.create(org=org, payload=b"[]", event_count=count, received_at=received,
                                processed_at=received + timedelta(seconds=seconds), attempts=1)
    RawBatch.objects.create(org=org, kind=RawBatch.Kind.FOLD, payload=b"", event_count=500, received_at=received,
                            processed_at=received, attempts=1)  # the worker's own second step: not a lag sample
    stuck = RawBatch.objects.create(org=org, payload=b"[]", event_count=1, received_at=NOW - timedelta(hours=2),
                                    attempts=5, quarantined_at=NOW - timedelta(hours=1), last_error="boom")
    ctx = staff_client.get("/staff/", {"days": 7}).context
    assert (ctx["lag"].p50_seconds, ctx["lag"].p95_seconds, ctx["lag"].events) == (2.0, 30.0, 100)
    assert (ctx["backlog"].pending, ctx["backlog"].quarantined) == (0, 1)
    assert [b.pk for b in ctx["stuck"]] == [stuck.pk]

    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post("/staff/batches/retry", {"all_quarantined": "1"})
    assert response.status_code == 302 and response["Location"].endswith("/staff/#batches")
    stuck.refresh_from_db()
    assert stuck.quarantined_at is None and stuck.processed_at is not None  # retried and (eagerly) processed
    assert staff_client.get("/staff/").context["backlog"].quarantined == 0
    assert staff_client.post("/staff/batches/retry", {"batch_id": "x"}).status_code == 400


def test_failing_alert_deliveries_are_listed(staff_client, org, db):
    from analytics.models import AlertDelivery

    failed = AlertDelivery.objects.create(org=org, channel="webhook", status="failed", attempts=3,
                                          last_error="webhook answered HTTP 500", digest_date=NOW.date())
    AlertDelivery.objects.create(org=org, channel="email", status="sent", digest_date=NOW.date())
    response = staff_client.get("/staff/")
    assert [d.pk for d in response.context["failing_alerts"]] == [failed.pk]
    assert "webhook answered HTTP 500" in response.content.decode()


def test_org_table_csv_is_complete_and_safe_from_spreadsheet_formulas(staff_client, seeded):
    seeded["quiet"].name = "=HYPERLINK(\"http://evil\")"
    seeded["quiet"].save(update_fields=["name"])
    response = staff_client.get("/staff/orgs.csv", {"days": 30})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert "llmobserve-orgs-30d-20260331.csv" in response["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows == [
        ["org_slug", "org_name", "events", "cost_usd", "unpriced_calls"],
        ["quiet", "'=HYPERLINK(\"http://evil\")", "4", "0.018", "0"],
        ["busy", "Busy", "5", "0.01404", "0"],
    ]


def test_bad_window_is_a_400(staff_client, db):
    for bad in ("0", "14", "abc", "-7"):
        assert staff_client.get("/staff/", {"days": bad}).status_code == 400
        assert staff_client.get("/staff/orgs.csv", {"days": bad}).status_code == 400


def test_anyone_but_staff_gets_404(client, db):
    member = MembershipFactory().user
    inactive_staff = UserFactory(is_staff=True, is_active=False)
    for user in (None, member, inactive_staff):
        client.logout()
        if user is not None:
            client.force_login(user)
        assert client.get("/staff/").status_code == 404
        assert client.get("/staff/orgs.csv").status_code == 404
        assert client.post("/staff/batches/retry", {"all_quarantined": "1"}).status_code == 404


def test_the_console_runs_a_bounded_number_of_queries(staff_client, seeded, django_assert_max_num_queries):
    with django_assert_max_num_queries(30):
        assert staff_client.get("/staff/", {"days": 90}).status_code == 200


def test_only_staff_see_the_console_link_in_their_menu(client, staff_user, org, member):
    client.force_login(member)
    assert 'data-testid="staff-console-link"' not in client.get(f"/o/{org.slug}/").content.decode()
    client.force_login(staff_user)
    assert 'href="/staff/" data-testid="staff-console-link"' in client.get("/staff/").content.decode()


def test_unpriced_calls_are_shown_as_unpriced_never_as_zero(staff_client, clock, prices, post_events, org,
                                                           ingest_key):
    assert post_events(ingest_key, [call("u1", NOW - timedelta(hours=1), model="mystery-model"),
                                    call("p1", NOW - timedelta(hours=1))]).json()["accepted"] == 2
    response = staff_client.get("/staff/", {"days": 7})
    [provider] = response.context["providers"]
    assert (provider.events, provider.cost_pico, provider.unpriced_calls) == (2, COST_4O, 1)
    assert {(m.model, m.unpriced_calls) for m in response.context["models"]} == {("gpt-4o", 0), ("mystery-model", 1)}
    assert response.content.decode().count("+1 unpriced") >= 3  # the org tables, the provider and the model rows
    rows = list(csv.reader(io.StringIO(b"".join(staff_client.get("/staff/orgs.csv", {"days": 7})
                                                .streaming_content).decode())))
    assert rows[1][2:] == ["2", "0.0045", "1"]
