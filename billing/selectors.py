"""Reads for billing: the org's Stripe customer, the price, comps, and what the Billing page shows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from accounts.models import Organization
from ingestion.money import PICO_PER_USD, pico_display

from .models import BillingCustomer, PromoRedemption
from .plan import PLAN_AMOUNT_CENTS, PLAN_CURRENCY, PLAN_INTERVAL, PLAN_NAME, PRICE_LOOKUP_KEY
from .stripe_api import livemode

Status = Organization.Subscription


def billing_customer_get(*, org: Organization) -> BillingCustomer | None:
    return BillingCustomer.objects.for_org(org).first()


def price_id_current() -> str | None:
    """STRIPE_PRICE_ID, else the active price billing_setup recorded (dj-stripe's Price table)."""
    if settings.STRIPE_PRICE_ID:
        return settings.STRIPE_PRICE_ID
    from djstripe.models import Price

    price = (
        Price.objects.filter(lookup_key=PRICE_LOOKUP_KEY, active=True, livemode=livemode())
        .order_by("-created").first()
    )
    return price.id if price else None


def org_comp_until(*, org: Organization, now: datetime | None = None) -> tuple[bool, datetime | None]:
    """Is the org comped right now, and until when (None = forever)?

    A comp comes from a promo redemption, or from an operator setting status `comped` in the admin.
    """
    now = now or timezone.now()
    best: tuple[bool, datetime | None] = (False, None)
    for redemption in PromoRedemption.objects.for_org(org).only("comped_until"):
        if redemption.comped_until is None:
            return True, None
        if redemption.comped_until > now and (not best[0] or redemption.comped_until > best[1]):
            best = (True, redemption.comped_until)
    if org.subscription_status == Status.COMPED:
        if org.comped_until is None:
            return True, None
        if org.comped_until > now and (not best[0] or org.comped_until > best[1]):
            best = (True, org.comped_until)
    return best


def grace_ends_at(*, org: Organization) -> datetime | None:
    if org.subscription_status != Status.PAST_DUE or org.past_due_since is None:
        return None
    return org.past_due_since + timedelta(days=settings.LLMOBSERVE_PAST_DUE_GRACE_DAYS)


@dataclass(frozen=True)
class BillingOverview:
    org: Organization
    billing_enabled: bool
    plan_name: str
    plan_price: str
    status: str
    status_label: str
    is_active: bool
    has_customer: bool
    has_paid_subscription: bool
    next_invoice_at: datetime | None
    ends_at: datetime | None
    comped_until: datetime | None
    comped_forever: bool
    grace_ends_at: datetime | None
    redemptions: list[PromoRedemption]


def billing_overview(*, org: Organization) -> BillingOverview:
    customer = billing_customer_get(org=org)
    status = org.subscription_status
    paid = status in (Status.ACTIVE, Status.TRIALING, Status.PAST_DUE)
    cancel_at_end = bool(customer and customer.cancel_at_period_end)
    comped, comp_until = org_comp_until(org=org)
    return BillingOverview(
        org=org,
        billing_enabled=settings.LLMOBSERVE_BILLING_ENABLED,
        plan_name=PLAN_NAME,
        plan_price=f"{pico_display(PLAN_AMOUNT_CENTS * PICO_PER_USD // 100)} {PLAN_CURRENCY.upper()} / {PLAN_INTERVAL}",
        status=status,
        status_label=Status(status).label,
        is_active=org.is_active,
        has_customer=customer is not None,
        has_paid_subscription=paid,
        next_invoice_at=org.subscription_period_end if paid and not cancel_at_end else None,
        ends_at=org.subscription_period_end if paid and cancel_at_end else None,
        comped_until=comp_until if comped else None,
        comped_forever=comped and comp_until is None,
        grace_ends_at=grace_ends_at(org=org),
        redemptions=list(PromoRedemption.objects.for_org(org).select_related("promo_code")[:20]),
    )


def status_banner(*, org: Organization | None) -> dict | None:
    """What the past-due banner says, or None: only with billing on and the org past due."""
    if org is None or not settings.LLMOBSERVE_BILLING_ENABLED:
        return None
    if org.subscription_status != Status.PAST_DUE:
        return None
    ends = grace_ends_at(org=org)
    return {"org": org, "grace_ends_at": ends, "in_grace": org.is_active}
