"""Subscribe through Checkout, manage in the portal: owners/admins only, 303 to Stripe."""

import pytest
from django.urls import reverse

from accounts.models import Membership
from accounts.services import org_subscription_set
from billing.models import BillingCustomer
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db


def test_checkout_creates_customer_and_session_then_answers_303(stripe_fake, price_id, owner, owner_client, org):
    response = owner_client.post(reverse("billing_checkout", args=[org.slug]))

    assert response.status_code == 303
    [session] = stripe_fake.of_type("checkout.session")
    assert response["Location"] == session["url"] and session["url"].startswith("https://checkout.stripe.com/")
    [customer] = stripe_fake.of_type("customer")
    assert customer["id"].startswith("cus_") and customer["metadata"] == {"org_id": str(org.pk), "org_slug": org.slug}
    assert customer["email"] == owner.email and customer["name"] == org.name
    assert session["id"].startswith("cs_test_")
    assert session["mode"] == "subscription" and session["customer"] == customer["id"]
    assert session["client_reference_id"] == str(org.pk)
    assert session["_line_items"] == [{"price": price_id, "quantity": 1}]
    assert session["allow_promotion_codes"] is True
    assert session["success_url"] == f"http://testserver/o/{org.slug}/billing/?checkout=success"
    assert session["cancel_url"] == f"http://testserver/o/{org.slug}/billing/?checkout=canceled"
    assert session["_subscription_data"] == {"metadata": {"org_id": str(org.pk), "org_slug": org.slug}}
    assert BillingCustomer.objects.for_org(org).get().stripe_customer_id == customer["id"]


def test_checkout_reuses_the_orgs_customer(stripe_fake, price_id, owner_client, org):
    owner_client.post(reverse("billing_checkout", args=[org.slug]))
    owner_client.post(reverse("billing_checkout", args=[org.slug]))

    assert len(stripe_fake.of_type("customer")) == 1
    assert len(stripe_fake.calls("POST", "/v1/customers")) == 1
    sessions = stripe_fake.of_type("checkout.session")
    assert len(sessions) == 2 and sessions[0]["customer"] == sessions[1]["customer"]


def test_checkout_offers_the_trial_from_settings(stripe_fake, price_id, owner_client, org, settings):
    settings.LLMOBSERVE_TRIAL_DAYS = 14
    owner_client.post(reverse("billing_checkout", args=[org.slug]))
    [session] = stripe_fake.of_type("checkout.session")
    assert session["_subscription_data"]["trial_period_days"] == 14


def test_admin_can_start_checkout(stripe_fake, price_id, client, org):
    admin = MembershipFactory(org=org, role=Membership.Role.ADMIN).user
    client.force_login(admin)
    assert client.post(reverse("billing_checkout", args=[org.slug])).status_code == 303


def test_checkout_without_a_price_explains_instead_of_failing(stripe_fake, owner_client, org):
    response = owner_client.post(reverse("billing_checkout", args=[org.slug]), follow=True)
    assert b"billing_setup" in response.content
    assert stripe_fake.of_type("checkout.session") == []


def test_checkout_is_refused_for_an_org_that_already_pays(stripe_fake, price_id, owner_client, org):
    org_subscription_set(org=org, status="active")
    response = owner_client.post(reverse("billing_checkout", args=[org.slug]))
    assert response.status_code == 303 and response["Location"] == reverse("billing", args=[org.slug])
    assert stripe_fake.of_type("checkout.session") == []


def test_portal_answers_303_to_the_stripe_portal(stripe_fake, price_id, owner_client, org):
    owner_client.post(reverse("billing_checkout", args=[org.slug]))
    response = owner_client.post(reverse("billing_portal", args=[org.slug]))

    assert response.status_code == 303
    [portal] = stripe_fake.of_type("billing_portal.session")
    assert portal["id"].startswith("bps_") and response["Location"] == portal["url"]
    assert portal["customer"] == BillingCustomer.objects.for_org(org).get().stripe_customer_id
    assert portal["return_url"] == f"http://testserver/o/{org.slug}/billing/"


def test_portal_without_a_customer_says_subscribe_first(stripe_fake, owner_client, org):
    response = owner_client.post(reverse("billing_portal", args=[org.slug]), follow=True)
    assert b"subscribe first" in response.content
    assert stripe_fake.requests == []


@pytest.mark.parametrize("role", [Membership.Role.MEMBER, Membership.Role.VIEWER])
@pytest.mark.parametrize("name", ["billing_checkout", "billing_portal", "billing_redeem"])
def test_members_and_viewers_cannot_change_billing(stripe_fake, price_id, client, org, role, name):
    user = MembershipFactory(org=org, role=role).user
    client.force_login(user)
    before = len(stripe_fake.requests)
    assert client.post(reverse(name, args=[org.slug]), {"code": "X"}).status_code == 403
    assert len(stripe_fake.requests) == before


def test_members_can_see_the_billing_page_without_buttons(stripe_fake, plain_member_client, org):
    response = plain_member_client.get(reverse("billing", args=[org.slug]))
    assert response.status_code == 200
    assert b'data-testid="billing-status"' in response.content
    assert b'data-testid="subscribe-button"' not in response.content


@pytest.mark.parametrize("name", ["billing", "billing_checkout", "billing_portal", "billing_redeem"])
def test_another_orgs_member_gets_404(stripe_fake, price_id, outsider_client, org, name):
    method = outsider_client.get if name == "billing" else outsider_client.post
    assert method(reverse(name, args=[org.slug])).status_code == 404
    assert stripe_fake.of_type("customer") == []


def test_get_on_checkout_is_not_allowed(stripe_fake, owner_client, org):
    assert owner_client.get(reverse("billing_checkout", args=[org.slug])).status_code == 405


def test_anonymous_is_sent_to_login(stripe_fake, client, org):
    response = client.post(reverse("billing_checkout", args=[org.slug]))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_a_customer_from_the_other_stripe_mode_is_replaced(stripe_fake, price_id, owner_client, org):
    BillingCustomer.objects.create(org=org, stripe_customer_id="cus_fromlivemode", livemode=True,
                                   stripe_subscription_id="sub_live", stripe_subscription_status="active")
    owner_client.post(reverse("billing_checkout", args=[org.slug]))
    [customer] = stripe_fake.of_type("customer")
    link = BillingCustomer.objects.for_org(org).get()
    assert (link.stripe_customer_id, link.livemode, link.stripe_subscription_id) == (customer["id"], False, "")
    assert stripe_fake.of_type("checkout.session")[0]["customer"] == customer["id"]


def test_a_stripe_outage_at_checkout_explains_and_charges_nothing(stripe_fake, price_id, owner_client, org):
    stripe_fake.outage = True
    response = owner_client.post(reverse("billing_checkout", args=[org.slug]), follow=True)
    assert response.status_code == 200 and b"Stripe could not be reached" in response.content
    assert not BillingCustomer.objects.for_org(org).exists()
