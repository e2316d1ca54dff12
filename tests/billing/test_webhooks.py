"""Signed webhooks through dj-stripe's real endpoint set the org's state — idempotently, in Stripe's order."""

import time
from datetime import datetime, timedelta, timezone as dt_timezone

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.models import Organization
from accounts.services import org_subscription_set
from billing.models import BillingCustomer

pytestmark = pytest.mark.django_db
Status = Organization.Subscription


@pytest.fixture
def subscribed(stripe_fake, price_id, owner_client, org, webhook):
    """An owner went through Checkout and paid; returns (session, subscription, invoice) on Stripe's side."""
    owner_client.post(reverse("billing_checkout", args=[org.slug]))
    [session] = stripe_fake.of_type("checkout.session")
    return stripe_fake.checkout_complete(session["id"])


def _state(org):
    org.refresh_from_db()
    return org.subscription_status


def test_checkout_session_completed_activates_the_org(stripe_fake, subscribed, webhook, org):
    session, sub, invoice = subscribed
    response = webhook.send(stripe_fake.event("checkout.session.completed", session))

    assert response.status_code == 200
    org.refresh_from_db()
    assert org.subscription_status == Status.ACTIVE and org.is_active
    expected_end = sub["items"]["data"][0]["current_period_end"]
    assert org.subscription_period_end == datetime.fromtimestamp(expected_end, tz=dt_timezone.utc)
    link = BillingCustomer.objects.for_org(org).get()
    assert (link.stripe_subscription_id, link.stripe_subscription_status) == (sub["id"], "active")
    # dj-stripe mirrored the objects too (signature-verified trigger, event, session, subscription).
    from djstripe.models import Event, Session, Subscription, WebhookEventTrigger

    assert WebhookEventTrigger.objects.get().valid is True
    assert Event.objects.filter(type="checkout.session.completed").exists()
    assert Session.objects.get(id=session["id"]).subscription_id == sub["id"]
    assert Subscription.objects.get(id=sub["id"]).customer_id == session["customer"]


def test_subscription_created_sets_active(stripe_fake, subscribed, webhook, org):
    _, sub, _ = subscribed
    assert webhook.send(stripe_fake.event("customer.subscription.created", sub)).status_code == 200
    assert _state(org) == Status.ACTIVE


def test_trialing_subscription_sets_trialing_until_trial_end(stripe_fake, price_id, owner_client, org, webhook, settings):
    settings.LLMOBSERVE_TRIAL_DAYS = 14
    owner_client.post(reverse("billing_checkout", args=[org.slug]))
    [session] = stripe_fake.of_type("checkout.session")
    _, sub, _ = stripe_fake.checkout_complete(session["id"])
    assert sub["status"] == "trialing"

    webhook.send(stripe_fake.event("customer.subscription.created", sub))
    org.refresh_from_db()
    assert org.subscription_status == Status.TRIALING and org.is_active
    assert org.subscription_period_end == datetime.fromtimestamp(sub["trial_end"], tz=dt_timezone.utc)


def test_payment_failed_puts_the_org_past_due_with_grace_then_paid_recovers(stripe_fake, subscribed, webhook, org):
    _, sub, _ = subscribed
    webhook.send(stripe_fake.event("customer.subscription.created", sub))

    stripe_fake.subscription_update(sub["id"], status="past_due")
    failed = stripe_fake.invoice_create(sub["id"], status="open")
    assert webhook.send(stripe_fake.event("invoice.payment_failed", failed)).status_code == 200
    org.refresh_from_db()
    assert org.subscription_status == Status.PAST_DUE and org.past_due_since is not None
    assert org.is_active  # still inside the grace period

    stripe_fake.subscription_update(sub["id"], status="active")
    paid = stripe_fake.invoice_create(sub["id"], status="paid")
    assert webhook.send(stripe_fake.event("invoice.paid", paid)).status_code == 200
    org.refresh_from_db()
    assert org.subscription_status == Status.ACTIVE and org.past_due_since is None


def test_subscription_updated_to_cancel_at_period_end_keeps_access_and_says_when_it_ends(
        stripe_fake, subscribed, webhook, org, owner_client):
    _, sub, _ = subscribed
    snapshot = stripe_fake.subscription_update(sub["id"], cancel_at_period_end=True)
    webhook.send(stripe_fake.event("customer.subscription.updated", snapshot,
                                   previous_attributes={"cancel_at_period_end": False}))

    assert _state(org) == Status.ACTIVE
    assert BillingCustomer.objects.for_org(org).get().cancel_at_period_end is True
    page = owner_client.get(reverse("billing", args=[org.slug])).content.decode()
    assert "access ends on" in page and 'data-testid="next-invoice"' not in page


def test_subscription_deleted_cancels_and_shows_the_wall(stripe_fake, subscribed, webhook, org, owner_client):
    _, sub, _ = subscribed
    webhook.send(stripe_fake.event("customer.subscription.created", sub))
    deleted = stripe_fake.subscription_update(sub["id"], status="canceled")
    assert webhook.send(stripe_fake.event("customer.subscription.deleted", deleted)).status_code == 200

    org.refresh_from_db()
    assert org.subscription_status == Status.CANCELED and not org.is_active
    response = owner_client.get(reverse("overview", args=[org.slug]))
    assert response.status_code == 402 and b'data-testid="subscribe-wall"' in response.content


def test_the_same_event_twice_changes_nothing(stripe_fake, subscribed, webhook, org):
    _, sub, _ = subscribed
    event = stripe_fake.event("customer.subscription.created", sub)
    assert webhook.send(event).status_code == 200
    org.refresh_from_db()
    first = (org.subscription_status, org.subscription_period_end, org.past_due_since)
    reads = len(stripe_fake.calls("GET", "/v1/subscriptions"))

    # Meanwhile Stripe moved on; a redelivery of the old event must not re-apply anything.
    stripe_fake.subscription_update(sub["id"], status="past_due")
    assert webhook.send(event).status_code == 200

    org.refresh_from_db()
    assert (org.subscription_status, org.subscription_period_end, org.past_due_since) == first
    assert len(stripe_fake.calls("GET", "/v1/subscriptions")) == reads  # dj-stripe skipped the known event id
    from djstripe.models import Event

    assert Event.objects.filter(id=event["id"]).count() == 1


def test_an_old_update_arriving_after_the_delete_keeps_stripes_latest_state(stripe_fake, subscribed, webhook, org):
    _, sub, _ = subscribed
    stale_update = stripe_fake.event("customer.subscription.updated", sub)  # snapshot: active
    deleted = stripe_fake.subscription_update(sub["id"], status="canceled")
    delete_event = stripe_fake.event("customer.subscription.deleted", deleted)

    webhook.send(delete_event)
    assert _state(org) == Status.CANCELED
    assert webhook.send(stale_update).status_code == 200
    assert _state(org) == Status.CANCELED


def test_an_old_cancel_arriving_after_resubscribing_keeps_the_new_subscription(
        stripe_fake, subscribed, webhook, org, owner_client):
    _, old_sub, _ = subscribed
    deleted = stripe_fake.subscription_update(old_sub["id"], status="canceled")
    old_cancel = stripe_fake.event("customer.subscription.deleted", deleted)
    webhook.send(old_cancel)
    assert _state(org) == Status.CANCELED

    owner_client.post(reverse("billing_checkout", args=[org.slug]))
    session = [s for s in stripe_fake.of_type("checkout.session") if s["status"] == "open"][0]
    session, new_sub, _ = stripe_fake.checkout_complete(session["id"])
    new_sub["created"] = old_sub["created"] + 1
    webhook.send(stripe_fake.event("checkout.session.completed", session))
    assert _state(org) == Status.ACTIVE

    # Stripe retries the old delete with a new delivery of a *different* event about the old subscription.
    webhook.send(stripe_fake.event("customer.subscription.updated", deleted))
    assert _state(org) == Status.ACTIVE
    assert BillingCustomer.objects.for_org(org).get().stripe_subscription_id == new_sub["id"]


@pytest.mark.parametrize("how", ["wrong-secret", "tampered", "too-old", "garbage", "missing"])
def test_a_bad_signature_is_400_and_changes_nothing(stripe_fake, subscribed, webhook, org, how):
    _, sub, _ = subscribed
    event = stripe_fake.event("customer.subscription.created", sub)
    if how == "wrong-secret":
        response = webhook.send(event, secret="whsec_not_the_endpoint_secret")
    elif how == "tampered":
        import json

        signature = webhook.sign(json.dumps(event))
        event["data"]["object"]["status"] = "active"
        event["id"] = event["id"] + "x"
        response = webhook.send(event, signature=signature)
    elif how == "too-old":
        response = webhook.send(event, timestamp=int(time.time()) - 3600)
    elif how == "garbage":
        response = webhook.send(event, signature="t=1,v1=deadbeef")
    else:
        from django.test import Client

        response = Client().post(webhook.path, data="{}", content_type="application/json")

    assert response.status_code == 400
    org.refresh_from_db()
    assert org.subscription_status == Status.NONE
    from djstripe.models import Event

    assert not Event.objects.exists()


def test_unknown_webhook_endpoint_uuid_is_404(stripe_fake, webhook, client):
    response = client.post("/stripe/webhook/00000000-0000-0000-0000-000000000000/", data="{}",
                           content_type="application/json", headers={"Stripe-Signature": "t=1,v1=x"})
    assert response.status_code == 404


def test_an_event_for_a_customer_of_no_org_is_accepted_and_ignored(stripe_fake, price_id, webhook, org, other_org):
    import stripe

    from billing.stripe_api import stripe_options

    stranger = stripe.Customer.create(email="someone@example.com", **stripe_options())
    session = stripe.checkout.Session.create(mode="subscription", customer=stranger["id"],
                                             line_items=[{"price": price_id, "quantity": 1}],
                                             success_url="https://example.com", **stripe_options())
    _, sub, _ = stripe_fake.checkout_complete(session["id"])
    assert webhook.send(stripe_fake.event("customer.subscription.created", sub)).status_code == 200
    assert _state(org) == Status.NONE and _state(other_org) == Status.NONE


def test_a_comped_org_stays_comped_when_its_old_subscription_ends(stripe_fake, subscribed, webhook, org):
    _, sub, _ = subscribed
    org_subscription_set(org=org, status=Status.COMPED, comped_until=timezone.now() + timedelta(days=30))
    deleted = stripe_fake.subscription_update(sub["id"], status="canceled")
    webhook.send(stripe_fake.event("customer.subscription.deleted", deleted))
    org.refresh_from_db()
    assert org.subscription_status == Status.COMPED and org.is_active


def test_returning_from_checkout_syncs_even_before_the_webhook(stripe_fake, price_id, owner_client, org):
    owner_client.post(reverse("billing_checkout", args=[org.slug]))
    [session] = stripe_fake.of_type("checkout.session")
    stripe_fake.checkout_complete(session["id"])

    response = owner_client.get(reverse("billing", args=[org.slug]), {"checkout": "success"})
    assert response.status_code == 200 and b"Your subscription is active" in response.content
    assert _state(org) == Status.ACTIVE


def test_a_stripe_outage_during_a_webhook_is_a_500_and_stripes_retry_applies_it(
        stripe_fake, subscribed, webhook, org, client):
    from djstripe.models import Event

    _, sub, _ = subscribed
    event = stripe_fake.event("customer.subscription.created", sub)
    client.raise_request_exception = False
    stripe_fake.outage = True
    assert webhook.send(event).status_code == 500
    assert _state(org) == Status.NONE and not Event.objects.exists()

    stripe_fake.outage = False
    assert webhook.send(event).status_code == 200  # Stripe redelivers the same event
    assert _state(org) == Status.ACTIVE


def test_the_billing_page_stays_within_a_few_queries(stripe_fake, subscribed, webhook, org, owner_client,
                                                     django_assert_max_num_queries):
    session, _, _ = subscribed
    webhook.send(stripe_fake.event("checkout.session.completed", session))
    with django_assert_max_num_queries(12):
        assert owner_client.get(reverse("billing", args=[org.slug])).status_code == 200
