"""Gating: inactive orgs see the subscribe wall and get 402 from the read API; ingestion never asks."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.models import Organization
from accounts.services import org_subscription_set, org_update

pytestmark = pytest.mark.django_db
Status = Organization.Subscription


@pytest.fixture
def billing_on(settings):
    settings.LLMOBSERVE_BILLING_ENABLED = True
    settings.LLMOBSERVE_PAST_DUE_GRACE_DAYS = 7


def test_with_billing_off_every_org_is_active_and_sees_its_pages(settings, member_client, org):
    settings.LLMOBSERVE_BILLING_ENABLED = False
    assert org.subscription_status == Status.NONE and org.is_active
    response = member_client.get(reverse("overview", args=[org.slug]))
    assert response.status_code == 200 and b"subscribe-wall" not in response.content


def test_an_org_without_subscription_sees_the_subscribe_wall(billing_on, member_client, org):
    response = member_client.get(reverse("overview", args=[org.slug]))
    assert response.status_code == 402
    page = response.content.decode()
    assert 'data-testid="subscribe-wall"' in page
    assert 'data-testid="subscribe-button"' in page  # `member` owns the org
    assert reverse("billing_checkout", args=[org.slug]) in page
    assert "keeps sending events" in page


def test_a_plain_member_is_told_to_ask_an_owner(billing_on, plain_member_client, org):
    response = plain_member_client.get(reverse("overview", args=[org.slug]))
    assert response.status_code == 402
    assert b'data-testid="subscribe-button"' not in response.content and b"Ask an owner" in response.content


def test_the_wall_never_leaks_to_non_members(billing_on, outsider_client, org):
    assert outsider_client.get(reverse("overview", args=[org.slug])).status_code == 404


def test_the_billing_page_stays_reachable_behind_the_wall(billing_on, member_client, org):
    response = member_client.get(reverse("billing", args=[org.slug]))
    assert response.status_code == 200 and b"subscribe-wall" not in response.content


@pytest.mark.parametrize("status", [Status.ACTIVE, Status.TRIALING])
def test_paying_orgs_see_their_pages(billing_on, member_client, org, status):
    org_subscription_set(org=org, status=status)
    response = member_client.get(reverse("overview", args=[org.slug]))
    assert response.status_code == 200 and b"subscribe-wall" not in response.content


def test_a_canceled_org_sees_the_wall(billing_on, member_client, org):
    org_subscription_set(org=org, status=Status.CANCELED)
    response = member_client.get(reverse("onboarding", args=[org.slug]))
    assert response.status_code == 402 and b"has ended" in response.content


def test_the_read_api_answers_402_for_an_inactive_org_and_200_once_it_pays(billing_on, api, read_key, org):
    response = api(read_key).get("/v1/stats/summary")
    assert response.status_code == 402
    assert "subscription" in response.json()["detail"]

    org_subscription_set(org=org, status=Status.ACTIVE)
    assert api(read_key).get("/v1/stats/summary").status_code == 200


def test_the_read_api_is_open_with_billing_off(settings, api, read_key):
    settings.LLMOBSERVE_BILLING_ENABLED = False
    assert api(read_key).get("/v1/stats/summary").status_code == 200


def test_ingestion_is_never_refused_for_billing(billing_on, api, ingest_key, org):
    org_subscription_set(org=org, status=Status.CANCELED)
    response = api(ingest_key).post("/v1/events", {"events": [{"provider": "openai", "model": "gpt-4o-mini"}]})
    assert response.status_code == 202 and response.json()["accepted"] == 1


def test_is_active_semantics(billing_on, org):
    """What the wall and the read API ask; ingestion never asks it, so no event is dropped for billing."""
    now = timezone.now()
    cases = [
        (dict(status=Status.NONE), False),
        (dict(status=Status.ACTIVE), True),
        (dict(status=Status.TRIALING), True),
        (dict(status=Status.CANCELED), False),
        (dict(status=Status.COMPED, comped_until=None), True),
        (dict(status=Status.COMPED, comped_until=now + timedelta(days=1)), True),
        (dict(status=Status.COMPED, comped_until=now - timedelta(seconds=1)), False),
    ]
    for kwargs, expected in cases:
        org_subscription_set(org=org, **kwargs)
        assert org.is_active is expected, kwargs

    org_subscription_set(org=org, status=Status.PAST_DUE)
    assert org.is_active  # grace period starts now
    org_update(org=org, past_due_since=now - timedelta(days=8))
    assert not org.is_active


def test_past_due_in_grace_shows_the_banner_with_the_deadline(billing_on, member_client, org):
    org_subscription_set(org=org, status=Status.PAST_DUE)
    response = member_client.get(reverse("overview", args=[org.slug]))
    assert response.status_code == 200
    page = response.content.decode()
    assert 'data-testid="past-due-banner"' in page
    deadline = org.past_due_since + timedelta(days=7)
    assert f"{deadline:%-d %b %Y}" in page and reverse("billing", args=[org.slug]) in page


def test_past_due_after_grace_shows_the_wall(billing_on, member_client, org):
    org_subscription_set(org=org, status=Status.PAST_DUE)
    org_update(org=org, past_due_since=timezone.now() - timedelta(days=30))
    response = member_client.get(reverse("overview", args=[org.slug]))
    assert response.status_code == 402 and b'data-testid="subscribe-wall"' in response.content
    assert b"Update payment method" in response.content


@pytest.mark.parametrize("billing_enabled,status", [(True, Status.ACTIVE), (False, Status.PAST_DUE)])
def test_no_banner_when_paid_or_billing_off(settings, member_client, org, billing_enabled, status):
    settings.LLMOBSERVE_BILLING_ENABLED = billing_enabled
    org_subscription_set(org=org, status=status)
    response = member_client.get(reverse("overview", args=[org.slug]))
    assert response.status_code == 200 and b"past-due-banner" not in response.content


def test_the_grace_period_is_a_setting(settings, member_client, org):
    settings.LLMOBSERVE_BILLING_ENABLED = True
    settings.LLMOBSERVE_PAST_DUE_GRACE_DAYS = 0
    org_subscription_set(org=org, status=Status.PAST_DUE)
    assert member_client.get(reverse("overview", args=[org.slug])).status_code == 402
