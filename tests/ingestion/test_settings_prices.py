"""Settings → Prices: an org's overrides and discounts through the page, tenant isolation, effective dates,
and the re-price preview (exact figures) and apply."""

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
import time_machine
from django.urls import reverse

from accounts.models import Membership
from ingestion.models import ModelPrice, PriceDiscount, TraceEvent
from ingestion.price_services import discount_save, price_override_save
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 30, 23, 40, tzinfo=timezone.utc)  # a month end, late in the UTC day
GPT4O_LIST = 1000 * 2_500_000 + 200 * 10_000_000


@pytest.fixture
def clock():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def admin_client(client, org):
    client.force_login(MembershipFactory(org=org, role=Membership.Role.ADMIN).user)
    return client


def url(name, org, *args):
    return reverse(name, args=[org.slug, *args])


def ev(event_id, at, **fields):
    return {"event_id": event_id, "run_id": "r1", "provider": "openai", "model": "gpt-4o", "input_tokens": 1000,
            "output_tokens": 200, "timestamp": at.isoformat(), **fields}


def test_an_admin_adds_an_override_with_an_effective_date_and_new_calls_use_it_from_then(
        admin_client, org, prices, ingest_key, post_events, clock):
    response = admin_client.post(url("price_override_create", org), {
        "provider": "OpenAI ", "match_kind": "exact", "model_match": "gpt-4o", "input_mtok": "1.25",
        "output_mtok": "5", "effective_from": "2026-11-30 12:00"})
    assert response.status_code == 302
    [row] = ModelPrice.objects.for_org(org)
    assert (row.provider, row.input_mtok, row.effective_from) == ("openai", Decimal("1.25"),
                                                                  datetime(2026, 11, 30, 12, tzinfo=timezone.utc))
    post_events(ingest_key, [ev("before", NOW.replace(hour=11, minute=59)), ev("after", NOW.replace(hour=12))])
    stored = {e.event_id: e for e in TraceEvent.objects.for_org(org)}
    assert stored["before"].cost_pico == GPT4O_LIST and stored["before"].price_source == "admin"
    assert stored["after"].cost_pico == GPT4O_LIST // 2 and stored["after"].price_source == "override"
    page = admin_client.get(url("settings_prices", org)).content.decode()
    assert "gpt-4o" in page and "2026-11-30 12:00 UTC" in page and "1.25" in page

    response = admin_client.post(url("price_override_update", org, row.pk), {
        "provider": "openai", "match_kind": "exact", "model_match": "gpt-4o", "input_mtok": "2",
        "output_mtok": "5", "effective_from": "2026-11-30"})
    assert response.status_code == 302
    row.refresh_from_db()
    assert row.input_mtok == Decimal("2") and row.effective_from == datetime(2026, 11, 30, tzinfo=timezone.utc)
    assert ModelPrice.objects.for_org(org).count() == 1


def test_bad_input_is_a_400_with_the_reason_and_nothing_saved(admin_client, org):
    for data in ({"provider": "openai", "match_kind": "regex", "model_match": "gpt-(4", "input_mtok": "1",
                  "output_mtok": "1"},
                 {"provider": "openai", "match_kind": "exact", "model_match": "m", "input_mtok": "0.0000001",
                  "output_mtok": "1"},
                 {"provider": "openai", "match_kind": "exact", "model_match": "m", "input_mtok": "1",
                  "output_mtok": "1", "effective_from": "next tuesday"}):
        response = admin_client.post(url("price_override_create", org), data)
        assert response.status_code == 400
    assert "regular expression" in admin_client.post(url("price_override_create", org), {
        "provider": "openai", "match_kind": "regex", "model_match": "gpt-(4", "input_mtok": "1",
        "output_mtok": "1"}).content.decode()
    for percent in ("101", "-3", "abc", "1.23456"):
        response = admin_client.post(url("price_discount_create", org), {"provider": "openai", "match_kind": "prefix",
                                                                          "percent": percent})
        assert response.status_code == 400
    assert not ModelPrice.objects.for_org(org).exists() and not PriceDiscount.objects.for_org(org).exists()


def test_an_admin_cannot_see_or_touch_another_orgs_rows_or_global_rows(admin_client, org, other_org, prices):
    theirs = price_override_save(org=other_org, provider="openai", match_kind="exact", model_match="gpt-4o",
                                 input_mtok="0.4321", output_mtok="1")
    # Values no page text can hold by chance (an org named "Org 1033" held "33")
    their_discount = discount_save(org=other_org, provider="openai", percent=Decimal("37.25"))
    global_row = prices["gpt-4o"]
    page = admin_client.get(url("settings_prices", org)).content.decode()
    assert "0.4321" not in page and "37.25" not in page and "No overrides" in page and "No discounts" in page
    for row in (theirs, global_row):
        assert admin_client.get(url("settings_prices", org) + f"?edit={row.pk}").status_code == 404
        assert admin_client.post(url("price_override_update", org, row.pk), {
            "provider": "openai", "match_kind": "exact", "model_match": "gpt-4o", "input_mtok": "9",
            "output_mtok": "9"}).status_code == 404
        assert admin_client.post(url("price_override_delete", org, row.pk)).status_code == 404
    assert admin_client.post(url("price_discount_delete", org, their_discount.pk)).status_code == 404
    assert admin_client.get(url("settings_prices", org) + f"?edit_discount={their_discount.pk}").status_code == 404
    assert admin_client.post(url("price_discount_update", org, their_discount.pk), {
        "provider": "openai", "match_kind": "prefix", "percent": "90"}).status_code == 404
    theirs.refresh_from_db()
    global_row.refresh_from_db()
    assert theirs.input_mtok == Decimal("0.4321") and global_row.input_mtok == Decimal("2.5")
    assert list(PriceDiscount.objects.for_org(other_org).values_list("percent", flat=True)) == [Decimal("37.25")]
    # The other org's owner gets a 404 for this org's page, like a missing org.
    admin_client.force_login(MembershipFactory(org=other_org, role=Membership.Role.OWNER).user)
    assert admin_client.get(url("settings_prices", org)).status_code == 404


def test_a_member_reads_the_page_without_forms(client, org):
    discount_save(org=org, provider="openai", percent=Decimal("12.5"), note="2026 contract")
    client.force_login(MembershipFactory(org=org, role=Membership.Role.MEMBER).user)
    page = client.get(url("settings_prices", org) + "?since=2026-11-01&until=2026-12-01").content.decode()
    assert "−12.5%" in page and "2026 contract" in page
    assert 'data-testid="discount-form"' not in page and 'data-testid="override-form"' not in page
    assert 'data-testid="reprice-preview"' not in page


def test_the_repricing_preview_shows_exact_old_and_new_totals_then_apply_reprices_the_org_only(
        admin_client, org, other_org, prices, ingest_key, post_events, clock):
    from accounts.services import api_key_create

    other_key = api_key_create(org=other_org, name="i", scope="ingest").raw_key
    calls = [ev(f"c{i}", NOW - timedelta(hours=i + 1)) for i in range(3)]
    post_events(ingest_key, calls + [ev("mini", NOW - timedelta(hours=1), model="gpt-4o-mini")])
    post_events(other_key, calls)
    discount_save(org=org, provider="openai", match_kind="exact", model_match="gpt-4o", percent=Decimal("20"))

    page = admin_client.get(url("settings_prices", org) + "?since=2026-11-30&until=2026-12-01").content.decode()
    assert 'data-testid="reprice-preview"' in page
    old = 3 * GPT4O_LIST + (1000 * 150_000 + 200 * 600_000)
    new = 3 * GPT4O_LIST * 8 // 10 + (1000 * 150_000 + 200 * 600_000)
    assert f'data-testid="reprice-old">${Decimal(old) / 10**12:f}'.rstrip("0") in page
    assert f'data-testid="reprice-new">${Decimal(new) / 10**12:f}'.rstrip("0") in page
    assert "3 of 4 calls would change" in page
    assert TraceEvent.objects.for_org(org).get(event_id="c0").cost_pico == GPT4O_LIST  # nothing written

    response = admin_client.post(url("prices_reprice", org), {"since": "2026-11-30 00:00:00",
                                                              "until": "2026-12-01 00:00:00"})
    assert response.status_code == 302
    assert sorted(TraceEvent.objects.for_org(org).values_list("cost_pico", flat=True)) == sorted(
        [GPT4O_LIST * 8 // 10] * 3 + [1000 * 150_000 + 200 * 600_000])
    assert set(TraceEvent.objects.for_org(other_org).values_list("cost_pico", flat=True)) == {GPT4O_LIST}
    assert admin_client.post(url("prices_reprice", org), {"since": "2026-12-01", "until": "2026-11-30"}
                             ).status_code == 400


def test_deleting_an_override_goes_back_to_the_registry_price(admin_client, org, prices, ingest_key, post_events,
                                                                clock):
    row = price_override_save(org=org, provider="openai", match_kind="exact", model_match="gpt-4o",
                              input_mtok="1.25", output_mtok="5")
    assert admin_client.post(url("price_override_delete", org, row.pk)).status_code == 302
    post_events(ingest_key, [ev("a", NOW - timedelta(minutes=1))])
    assert TraceEvent.objects.for_org(org).get().cost_pico == GPT4O_LIST


def test_an_admin_adds_then_edits_a_discount_and_new_calls_are_priced_net(admin_client, org, prices, ingest_key,
                                                                           post_events, clock):
    assert admin_client.post(url("price_discount_create", org), {
        "provider": "OpenAI", "match_kind": "prefix", "model_match": "", "percent": "20",
        "effective_from": "2026-11-30 12:00", "note": "MSA"}).status_code == 302
    [discount] = PriceDiscount.objects.for_org(org)
    page = admin_client.get(url("settings_prices", org) + f"?edit_discount={discount.pk}").content.decode()
    assert 'value="20"' in page and "2026-11-30 12:00" in page
    assert admin_client.post(url("price_discount_update", org, discount.pk), {
        "provider": "openai", "match_kind": "prefix", "percent": "25", "effective_from": "2026-11-30 12:00",
        "note": "MSA v2"}).status_code == 302
    discount.refresh_from_db()
    assert (discount.percent, discount.note) == (Decimal("25"), "MSA v2")
    post_events(ingest_key, [ev("before", NOW.replace(hour=11)), ev("after", NOW.replace(hour=13))])
    stored = {e.event_id: e for e in TraceEvent.objects.for_org(org)}
    assert stored["before"].cost_pico == GPT4O_LIST and stored["before"].discount_pct is None
    assert stored["after"].cost_pico == GPT4O_LIST * 3 // 4 and stored["after"].list_cost_pico == GPT4O_LIST
