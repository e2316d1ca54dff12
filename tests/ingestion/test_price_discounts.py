"""Negotiated discounts (docs/pricing.md § Discounts): net cost at ingestion, list price and percent kept,
rollups / caps / the read API on net, re-pricing applies them too."""

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given, strategies as st
import time_machine

from analytics.insights.detectors import spend_cap_status
from analytics.insights.services import alert_settings_update
from ingestion.models import HourlyRollup, PriceDiscount, TraceEvent
from ingestion.price_services import discount_delete, discount_save
from ingestion.services import events_reprice_range

from ..conftest import make_price

pytestmark = pytest.mark.django_db

# A month end, late in the UTC day: the discount starts at noon.
NOW = datetime(2026, 10, 31, 23, 40, tzinfo=timezone.utc)
STARTS = datetime(2026, 10, 31, 12, 0, tzinfo=timezone.utc)
GPT4O_LIST = 1000 * 2_500_000 + 200 * 10_000_000  # 1000 in × $2.5/M + 200 out × $10/M, pico-USD


def ev(event_id, at, **fields):
    return {"event_id": event_id, "run_id": "r1", "provider": "openai", "model": "gpt-4o", "input_tokens": 1000,
            "output_tokens": 200, "timestamp": at.isoformat(), **fields}


@pytest.fixture
def clock():
    with time_machine.travel(NOW, tick=False):
        yield


def test_a_discount_prices_calls_from_its_date_at_net_and_keeps_list_and_percent(
        org, other_org, ingest_key, post_events, prices, api, read_key, clock):
    discount_save(org=org, provider="openai", percent=Decimal("20"), effective_from=STARTS)
    events = [ev("before", STARTS - timedelta(minutes=1)), ev("at", STARTS), ev("late", NOW - timedelta(minutes=5)),
              ev("claude", NOW - timedelta(minutes=5), provider="anthropic", model="claude-sonnet-4-5")]
    assert post_events(ingest_key, events).json()["accepted"] == 4
    stored = {e.event_id: e for e in TraceEvent.objects.for_org(org)}
    assert stored["before"].cost_pico == GPT4O_LIST and stored["before"].list_cost_pico is None
    assert stored["before"].discount_pct is None
    for name in ("at", "late"):
        assert stored[name].cost_pico == GPT4O_LIST * 80 // 100  # exact: 3_600_000_000
        assert stored[name].list_cost_pico == GPT4O_LIST
        assert stored[name].discount_pct == Decimal("20")
        assert stored[name].billed_cost_pico == stored[name].cost_pico  # the net is what was billed
    assert stored["claude"].discount_pct is None  # another provider: list price

    # Rollups (and everything read from them) are net.
    total = sum(HourlyRollup.objects.for_org(org).values_list("cost_pico", flat=True))
    net = GPT4O_LIST + 2 * GPT4O_LIST * 80 // 100 + stored["claude"].cost_pico
    assert total == net
    body = api(read_key).get("/v1/stats/summary", window="24h").json()
    assert body["cost_usd"] == format(Decimal(net) / 10**12, "f").rstrip("0")

    # The read API's price object carries the list price and the discount (null without one).
    run = api(read_key).get("/v1/runs/r1").json()
    by_id = {e["event_id"]: e for e in run["events"]}
    assert by_id["late"]["cost_usd"] == "0.0036"
    assert by_id["late"]["price"]["list_cost_usd"] == "0.0045"
    assert by_id["late"]["price"]["discount_pct"] == "20"
    assert by_id["before"]["price"]["list_cost_usd"] is None and by_id["before"]["price"]["discount_pct"] is None


def test_caps_use_the_net_cost(org, ingest_key, post_events, prices, clock):
    discount_save(org=org, provider="openai", percent=Decimal("20"), effective_from=STARTS)
    post_events(ingest_key, [ev("a", NOW - timedelta(hours=1), input_tokens=400_000, output_tokens=0)])  # list $1
    status = spend_cap_status(org=org, now=NOW)
    assert status.month_to_date_pico == 800_000_000_000  # $0.80 net
    alert_settings_update(org=org, spend_cap_usd="0.9", now=NOW)
    org.refresh_from_db()
    assert org.over_cap is False  # the list price ($1) would be over a $0.90 cap; the net is not
    alert_settings_update(org=org, spend_cap_usd="0.8", now=NOW)
    org.refresh_from_db()
    assert org.over_cap is True


def test_the_most_specific_discount_wins_and_a_zero_percent_version_ends_it(org, ingest_key, post_events, prices,
                                                                            clock):
    discount_save(org=org, provider="openai", percent=Decimal("10"))
    discount_save(org=org, provider="openai", match_kind="prefix", model_match="gpt-4o-mini",
                  percent=Decimal("12.5"))
    discount_save(org=org, provider="openai", percent=Decimal("0"), effective_from=STARTS)
    events = [ev("old", STARTS - timedelta(hours=1)), ev("new", STARTS + timedelta(hours=1)),
              ev("mini", STARTS + timedelta(hours=1), model="gpt-4o-mini-2024-07-18")]
    post_events(ingest_key, events)
    stored = {e.event_id: e for e in TraceEvent.objects.for_org(org)}
    assert stored["old"].discount_pct == Decimal("10") and stored["old"].cost_pico == GPT4O_LIST * 9 // 10
    assert stored["new"].discount_pct is None and stored["new"].cost_pico == GPT4O_LIST
    mini_list = 1000 * 150_000 + 200 * 600_000
    assert stored["mini"].discount_pct == Decimal("12.5")
    assert stored["mini"].cost_pico == mini_list * 875 // 1000


def test_net_cost_rounds_half_to_even_once(org, ingest_key, post_events, clock):
    make_price(provider="tiny", model_match="t", input_mtok="0.000001", output_mtok="0")  # 1 pico-USD a token
    discount_save(org=org, provider="tiny", percent=Decimal("50"))
    events = [ev(f"n{n}", NOW - timedelta(minutes=1), provider="tiny", model="t", input_tokens=n, output_tokens=0)
              for n in (1, 3, 5)]
    post_events(ingest_key, events)
    stored = {e.event_id: e.cost_pico for e in TraceEvent.objects.for_org(org)}
    assert stored == {"n1": 0, "n3": 2, "n5": 2}  # 0.5 → 0, 1.5 → 2, 2.5 → 2


def test_another_orgs_discount_does_not_apply(org, other_org, ingest_key, post_events, prices, clock):
    discount_save(org=other_org, provider="openai", percent=Decimal("50"))
    post_events(ingest_key, [ev("a", NOW - timedelta(minutes=1))])
    [event] = TraceEvent.objects.for_org(org)
    assert event.cost_pico == GPT4O_LIST and event.discount_pct is None


def test_repricing_applies_a_discount_recorded_later_and_keeps_the_billed_cost(org, ingest_key, post_events, prices,
                                                                              clock):
    post_events(ingest_key, [ev("a", NOW - timedelta(hours=2))])
    discount = discount_save(org=org, provider="openai", percent=Decimal("20"))
    [event] = TraceEvent.objects.for_org(org)
    assert event.cost_pico == GPT4O_LIST  # stored calls keep their cost until re-priced
    assert events_reprice_range(since=NOW - timedelta(days=1), until=NOW, org_id=org.pk) == 1
    event.refresh_from_db()
    assert (event.cost_pico, event.list_cost_pico, event.discount_pct) == (GPT4O_LIST * 8 // 10, GPT4O_LIST,
                                                                          Decimal("20"))
    assert event.billed_cost_pico == GPT4O_LIST
    assert sum(HourlyRollup.objects.for_org(org).values_list("cost_pico", flat=True)) == GPT4O_LIST * 8 // 10
    assert events_reprice_range(since=NOW - timedelta(days=1), until=NOW, org_id=org.pk) == 0  # idempotent
    discount_delete(org=org, discount_id=discount.pk)
    assert events_reprice_range(since=NOW - timedelta(days=1), until=NOW, org_id=org.pk) == 1
    event.refresh_from_db()
    assert (event.cost_pico, event.list_cost_pico, event.discount_pct) == (GPT4O_LIST, None, None)


def test_a_discount_is_validated(org):
    from django.core.exceptions import ValidationError

    for bad in ({"percent": Decimal("100.5")}, {"percent": Decimal("-1")}, {"percent": Decimal("1.23456")},
                {"percent": Decimal("5"), "provider": ""},
                {"percent": Decimal("5"), "match_kind": "regex", "model_match": "gpt-(4"}):
        with pytest.raises(ValidationError):
            discount_save(org=org, **{"provider": "openai", **bad})
    assert not PriceDiscount.objects.for_org(org).exists()


def test_the_run_page_shows_list_price_discount_and_net_per_call(org, member_client, ingest_key, post_events, prices,
                                                                  clock):
    from django.urls import reverse

    discount_save(org=org, provider="openai", percent=Decimal("20"), effective_from=STARTS)
    post_events(ingest_key, [ev("before", STARTS - timedelta(hours=1)), ev("after", NOW - timedelta(minutes=5))])
    page = member_client.get(reverse("run_detail", args=[org.slug, "r1"])).content.decode()
    assert page.count('data-testid="call-discount"') == 1
    assert "list $0.0045 · −20% · net $0.0036" in page


@given(list_cost=st.integers(min_value=0, max_value=10**18),
       percent=st.integers(min_value=0, max_value=1_000_000).map(lambda n: Decimal(n) / 10_000))
def test_the_net_cost_is_the_exact_fraction_rounded_half_to_even(list_cost, percent):
    from fractions import Fraction

    from ingestion.pricing import discount_apply

    exact = Fraction(list_cost) * (100 - Fraction(percent)) / 100
    floor = exact.numerator // exact.denominator
    rest = exact - floor
    assert discount_apply(list_cost, percent) == floor + (rest > Fraction(1, 2) or (rest == Fraction(1, 2)
                                                                                     and floor % 2 == 1))
