"""Billing writes. The org's subscription state changes in exactly one place:
`subscription_sync_from_stripe`, which re-reads Stripe and calls accounts.services.org_subscription_set.
"""

from __future__ import annotations

import calendar
import logging
from dataclasses import dataclass
from datetime import datetime, timezone as dt_timezone

import stripe
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from accounts.models import Organization, User
from accounts.services import org_subscription_set

from .models import BillingCustomer, PromoCode, PromoRedemption
from .selectors import billing_customer_get, org_comp_until, price_id_current
from .stripe_api import BillingNotConfigured, livemode, stripe_options

logger = logging.getLogger(__name__)
Status = Organization.Subscription

# Stripe subscription status → the org's status. `unpaid` means Stripe stopped retrying: no access.
_STATUS_MAP = {
    "active": Status.ACTIVE,
    "trialing": Status.TRIALING,
    "past_due": Status.PAST_DUE,
    "unpaid": Status.CANCELED,
    "paused": Status.CANCELED,
    "canceled": Status.CANCELED,
    "incomplete_expired": Status.CANCELED,
    "incomplete": Status.NONE,
}
# Which of a customer's subscriptions decides the org's state: the best status, then the newest.
_STATUS_RANK = ["active", "trialing", "past_due", "unpaid", "incomplete", "paused", "canceled", "incomplete_expired"]
PAID_STATUSES = (Status.ACTIVE, Status.TRIALING, Status.PAST_DUE)


class BillingError(Exception):
    """A refusal with a message fit to show the user."""


def _ts(value) -> datetime | None:
    return datetime.fromtimestamp(int(value), tz=dt_timezone.utc) if value else None


# --- Customer, Checkout, portal -------------------------------------------------------------------

def customer_get_or_create(*, org: Organization, user: User | None = None) -> BillingCustomer:
    """The org's Stripe Customer, created once (org id in metadata) and reused for every checkout."""
    existing = billing_customer_get(org=org)
    if existing is not None and existing.livemode == livemode():
        return existing
    params = {
        "name": org.name,
        "metadata": {"org_id": str(org.pk), "org_slug": org.slug},
        # Two clicks racing create one customer: Stripe replays the first response for this key.
        "idempotency_key": f"llmobserve-org-{org.pk}-customer-{'live' if livemode() else 'test'}",
    }
    if user is not None and user.email:
        params["email"] = user.email
    customer = stripe.Customer.create(**params, **stripe_options())
    if existing is not None:
        # Switched between test and live mode: the other mode's customer means nothing here.
        existing.stripe_customer_id, existing.livemode = customer["id"], livemode()
        existing.stripe_subscription_id = existing.stripe_subscription_status = ""
        existing.cancel_at_period_end = False
        existing.save(update_fields=["stripe_customer_id", "livemode", "stripe_subscription_id",
                                     "stripe_subscription_status", "cancel_at_period_end"])
        return existing
    try:
        with transaction.atomic():
            return BillingCustomer.objects.create(org=org, stripe_customer_id=customer["id"], livemode=livemode())
    except IntegrityError:
        return BillingCustomer.objects.for_org(org).get()


def checkout_session_create(*, org: Organization, user: User, success_url: str, cancel_url: str) -> str:
    """Open a Stripe Checkout Session for the plan; returns the URL to send the user to."""
    if org.subscription_status in PAID_STATUSES:
        raise BillingError("This organisation already has a subscription: manage it in the billing portal.")
    price_id = price_id_current()
    if not price_id:
        raise BillingNotConfigured("No Stripe price: run `manage.py billing_setup` or set STRIPE_PRICE_ID.")
    customer = customer_get_or_create(org=org, user=user)
    metadata = {"org_id": str(org.pk), "org_slug": org.slug}
    subscription_data: dict = {"metadata": metadata}
    # A trial is for first subscriptions only, not for orgs coming back after cancelling.
    if settings.LLMOBSERVE_TRIAL_DAYS > 0 and org.subscription_status == Status.NONE and not customer.stripe_subscription_id:
        subscription_data["trial_period_days"] = settings.LLMOBSERVE_TRIAL_DAYS
    session = stripe.checkout.Session.create(
        mode="subscription",
        customer=customer.stripe_customer_id,
        client_reference_id=str(org.pk),
        line_items=[{"price": price_id, "quantity": 1}],
        success_url=success_url,
        cancel_url=cancel_url,
        allow_promotion_codes=True,
        metadata=metadata,
        subscription_data=subscription_data,
        **stripe_options(),
    )
    return session["url"]


def portal_session_create(*, org: Organization, return_url: str) -> str:
    """A Stripe customer-portal session (card, invoices, cancel); returns its URL."""
    customer = billing_customer_get(org=org)
    if customer is None:
        raise BillingError("This organisation has no Stripe customer yet: subscribe first.")
    session = stripe.billing_portal.Session.create(
        customer=customer.stripe_customer_id, return_url=return_url, **stripe_options()
    )
    return session["url"]


# --- Subscription state -----------------------------------------------------------------------------

def _customer_org(*, customer_id: str, org_hint: str | None = None) -> Organization | None:
    """The org a Stripe customer belongs to: our link, else the org id Stripe carries in metadata."""
    link = BillingCustomer.objects.unscoped().select_related("org").filter(stripe_customer_id=customer_id).first()
    if link is not None:
        return link.org
    org_id = org_hint
    if not org_id:
        customer = stripe.Customer.retrieve(customer_id, **stripe_options())
        if customer.get("deleted"):
            return None
        org_id = (customer.get("metadata") or {}).get("org_id")
    org = Organization.objects.filter(pk=org_id).first() if org_id and str(org_id).isdigit() else None
    if org is None:
        logger.warning("Stripe customer %s belongs to no organisation; ignored", customer_id)
        return None
    if billing_customer_get(org=org) is not None:
        # The org is linked to another customer already; never let a second one take it over silently.
        logger.warning("Stripe customer %s names org %s, which has another customer; ignored", customer_id, org.pk)
        return None
    BillingCustomer.objects.create(org=org, stripe_customer_id=customer_id, livemode=livemode())
    return org


def _subscription_pick(subscriptions: list) -> dict | None:
    def key(sub):
        status = sub.get("status")
        rank = _STATUS_RANK.index(status) if status in _STATUS_RANK else len(_STATUS_RANK)
        return (rank, -int(sub.get("created") or 0))

    return min(subscriptions, key=key) if subscriptions else None


def _period_end(sub) -> datetime | None:
    """Current period end: on the items since Stripe API 2025-03-31, on the subscription before."""
    items = (sub.get("items") or {}).get("data") or []
    ends = [item.get("current_period_end") for item in items if item.get("current_period_end")]
    return _ts(max(ends) if ends else sub.get("current_period_end"))


@transaction.atomic
def subscription_sync_from_stripe(*, customer_id: str, org_hint: str | None = None) -> Organization | None:
    """Set the org's subscription state to what Stripe says now for this customer.

    Every webhook lands here and re-reads the customer's subscriptions, so the same event twice
    changes nothing and an old event arriving late still yields Stripe's latest state.
    A valid comp (promo code, admin) outlives a lapsed subscription.
    """
    org = _customer_org(customer_id=customer_id, org_hint=org_hint)
    if org is None:
        return None
    # Serialise syncs of one org: the later one reads Stripe later, so it wins with fresher data.
    org = Organization.objects.select_for_update().get(pk=org.pk)
    listing = stripe.Subscription.list(customer=customer_id, status="all", limit=100, **stripe_options())
    sub = _subscription_pick(list(listing.get("data") or []))
    status = _STATUS_MAP.get(sub.get("status"), Status.CANCELED) if sub else Status.NONE
    period_end = _period_end(sub) if sub else None
    if sub and status == Status.TRIALING and sub.get("trial_end"):
        period_end = _ts(sub.get("trial_end"))
    if status == Status.CANCELED:
        period_end = _ts(sub.get("ended_at")) or period_end

    comped, comped_until = org_comp_until(org=org)
    if status not in PAID_STATUSES and comped:
        org_subscription_set(org=org, status=Status.COMPED, comped_until=comped_until)
    elif status == Status.NONE and org.subscription_status == Status.COMPED:
        pass  # an expired comp stays visible as such; nothing from Stripe replaces it
    else:
        org_subscription_set(org=org, status=status, period_end=period_end)

    link = BillingCustomer.objects.for_org(org).get()
    link.stripe_subscription_id = sub["id"] if sub else ""
    link.stripe_subscription_status = sub.get("status", "") if sub else ""
    link.cancel_at_period_end = bool(sub and (sub.get("cancel_at_period_end") or sub.get("cancel_at")))
    link.synced_at = timezone.now()
    link.save(update_fields=["stripe_subscription_id", "stripe_subscription_status", "cancel_at_period_end", "synced_at"])
    return org


# --- Promo codes ----------------------------------------------------------------------------------

def _add_months(start: datetime, months: int) -> datetime:
    month_index = start.month - 1 + months
    year, month = start.year + month_index // 12, month_index % 12 + 1
    day = min(start.day, calendar.monthrange(year, month)[1])
    return start.replace(year=year, month=month, day=day)


@dataclass(frozen=True)
class Redeemed:
    redemption: PromoRedemption
    comped_until: datetime | None  # None = forever


@transaction.atomic
def promo_redeem(*, org: Organization, code: str, user: User | None = None) -> Redeemed:
    """Redeem a promo code for the org: it is comped for the code's months (stacking on a current comp)."""
    code = (code or "").strip()
    promo = PromoCode.objects.select_for_update().filter(code__iexact=code).first() if code else None
    now = timezone.now()
    if promo is None or not promo.active:
        raise BillingError("That promo code is not valid.")
    if promo.expires_at is not None and promo.expires_at <= now:
        raise BillingError("That promo code has expired.")
    if promo.max_redemptions is not None and promo.redemptions_count >= promo.max_redemptions:
        raise BillingError("That promo code has already been used the maximum number of times.")
    org = Organization.objects.select_for_update().get(pk=org.pk)
    if PromoRedemption.objects.for_org(org).filter(promo_code=promo).exists():
        raise BillingError("This organisation has already redeemed that code.")
    if org.subscription_status in PAID_STATUSES:
        raise BillingError("This organisation already has a paid subscription. "
                           "Promotion codes for subscriptions are entered at Stripe Checkout.")
    comped, current_until = org_comp_until(org=org, now=now)
    if comped and current_until is None:
        raise BillingError("This organisation is already comped with no end date.")
    if promo.months is None:
        until = None
    else:
        until = _add_months(current_until if comped else now, promo.months)
    redemption = PromoRedemption.objects.create(org=org, promo_code=promo, redeemed_by=user, redeemed_at=now,
                                                comped_until=until)
    PromoCode.objects.filter(pk=promo.pk).update(redemptions_count=F("redemptions_count") + 1)
    org_subscription_set(org=org, status=Status.COMPED, comped_until=until)
    return Redeemed(redemption=redemption, comped_until=until)
