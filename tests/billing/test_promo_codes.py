"""Promo codes are admin data: redeeming one comps the org for its months (or forever), within limits."""

from datetime import timedelta
from pathlib import Path

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.models import Membership, Organization
from accounts.services import org_subscription_set
from billing.models import PromoCode, PromoRedemption
from billing.services import BillingError, _add_months, promo_redeem
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db
Status = Organization.Subscription


@pytest.fixture(autouse=True)
def billing_on(settings):
    settings.LLMOBSERVE_BILLING_ENABLED = True


def _redeem(client, org, code):
    return client.post(reverse("billing_redeem", args=[org.slug]), {"code": code}, follow=True)


def test_a_valid_code_comps_the_org_for_its_months(member_client, org):
    promo = PromoCode.objects.create(code="LAUNCH3", months=3, max_redemptions=10)
    before = timezone.now()
    response = _redeem(member_client, org, "launch3")

    assert response.status_code == 200 and b"Promo code applied" in response.content
    org.refresh_from_db()
    assert org.subscription_status == Status.COMPED and org.is_active
    assert _add_months(before, 3) <= org.comped_until <= _add_months(timezone.now(), 3)
    promo.refresh_from_db()
    assert promo.redemptions_count == 1
    assert PromoRedemption.objects.for_org(org).get().comped_until == org.comped_until
    assert member_client.get(reverse("overview", args=[org.slug])).status_code == 200
    assert b"Complimentary until" in member_client.get(reverse("billing", args=[org.slug])).content


def test_a_forever_code_comps_with_no_end(member_client, org):
    PromoCode.objects.create(code="FRIENDS", months=None)
    _redeem(member_client, org, " friends ")
    org.refresh_from_db()
    assert org.subscription_status == Status.COMPED and org.comped_until is None and org.is_active
    assert b"no end date" in member_client.get(reverse("billing", args=[org.slug])).content


def test_an_expired_code_is_refused(member_client, org):
    promo = PromoCode.objects.create(code="OLD", months=1, expires_at=timezone.now() - timedelta(minutes=1))
    response = _redeem(member_client, org, "OLD")
    assert b"has expired" in response.content
    org.refresh_from_db()
    assert org.subscription_status == Status.NONE
    promo.refresh_from_db()
    assert promo.redemptions_count == 0


def test_an_exhausted_code_is_refused(org, other_org):
    promo = PromoCode.objects.create(code="ONLYONE", months=1, max_redemptions=1)
    promo_redeem(org=other_org, code="ONLYONE")
    with pytest.raises(BillingError, match="maximum number"):
        promo_redeem(org=org, code="ONLYONE")
    promo.refresh_from_db()
    assert promo.redemptions_count == 1
    org.refresh_from_db()
    assert org.subscription_status == Status.NONE


@pytest.mark.parametrize("code", ["", "NOPE", "DISABLED"])
def test_unknown_or_disabled_codes_are_not_valid(member_client, org, code):
    PromoCode.objects.create(code="DISABLED", months=1, active=False)
    response = _redeem(member_client, org, code)
    assert b"not valid" in response.content
    assert not PromoRedemption.objects.for_org(org).exists()


def test_an_org_redeems_a_code_once_and_other_orgs_each_get_their_own(org, other_org):
    promo = PromoCode.objects.create(code="SHARED", months=2, max_redemptions=5)
    promo_redeem(org=org, code="SHARED")
    with pytest.raises(BillingError, match="already redeemed"):
        promo_redeem(org=org, code="shared")
    promo_redeem(org=other_org, code="SHARED")

    promo.refresh_from_db()
    assert promo.redemptions_count == 2
    assert PromoRedemption.objects.for_org(org).count() == 1
    assert PromoRedemption.objects.for_org(other_org).count() == 1


def test_another_orgs_member_cannot_redeem_for_this_org(outsider_client, org):
    PromoCode.objects.create(code="CROSS", months=1)
    assert outsider_client.post(reverse("billing_redeem", args=[org.slug]), {"code": "CROSS"}).status_code == 404
    assert not PromoRedemption.objects.unscoped().exists()
    org.refresh_from_db()
    assert org.subscription_status == Status.NONE


def test_a_second_code_stacks_on_the_current_comp(org):
    PromoCode.objects.create(code="ONE", months=1)
    PromoCode.objects.create(code="TWO", months=2)
    first = promo_redeem(org=org, code="ONE").comped_until
    second = promo_redeem(org=org, code="TWO").comped_until
    assert second == _add_months(first, 2)


def test_an_expired_comp_shows_the_wall_again(member_client, org):
    PromoCode.objects.create(code="SHORT", months=1)
    promo_redeem(org=org, code="SHORT")
    org_subscription_set(org=org, status=Status.COMPED, comped_until=timezone.now() - timedelta(days=1))
    PromoRedemption.objects.for_org(org).update(comped_until=timezone.now() - timedelta(days=1))
    assert member_client.get(reverse("overview", args=[org.slug])).status_code == 402


def test_a_paying_org_is_pointed_to_checkout_promotion_codes(org):
    PromoCode.objects.create(code="LATE", months=1)
    org_subscription_set(org=org, status=Status.ACTIVE)
    with pytest.raises(BillingError, match="Checkout"):
        promo_redeem(org=org, code="LATE")


def test_admins_can_redeem(client, org):
    admin = MembershipFactory(org=org, role=Membership.Role.ADMIN).user
    client.force_login(admin)
    PromoCode.objects.create(code="ADMINOK", months=1)
    response = client.post(reverse("billing_redeem", args=[org.slug]), {"code": "ADMINOK"})
    assert response.status_code == 303
    org.refresh_from_db()
    assert org.subscription_status == Status.COMPED


def test_codes_are_unique_regardless_of_case():
    from django.db import IntegrityError, transaction

    PromoCode.objects.create(code="Upper", months=1)
    with pytest.raises(IntegrityError), transaction.atomic():
        PromoCode.objects.create(code="UPPER", months=1)


def test_promo_codes_live_in_the_admin(admin_client):
    PromoCode.objects.create(code="ADMINLIST", months=6, max_redemptions=3)
    response = admin_client.get(reverse("admin:billing_promocode_changelist"))
    assert response.status_code == 200 and b"ADMINLIST" in response.content
    assert admin_client.get(reverse("admin:billing_promocode_add")).status_code == 200


def test_month_arithmetic_clamps_to_the_month_end():
    start = timezone.datetime(2026, 1, 31, 12, tzinfo=timezone.get_current_timezone())
    assert _add_months(start, 1).date().isoformat() == "2026-02-28"
    assert _add_months(start, 13).date().isoformat() == "2027-02-28"


def test_no_promo_code_is_hard_coded_in_billing():
    """Codes are data: billing's code never compares against a literal code."""
    source = "\n".join(p.read_text() for p in Path("billing").rglob("*.py") if "migrations" not in p.parts)
    assert "code ==" not in source and 'code="' not in source
