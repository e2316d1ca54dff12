"""Billing pages. Exempt from the subscribe wall (they are how an org gets past it);
the POSTs are for owners and admins."""

from __future__ import annotations

import logging

import stripe
from django.contrib import messages
from django.http import HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from accounts.decorators import org_member_required

from .selectors import billing_customer_get, billing_overview
from .services import (PAID_STATUSES, BillingError, checkout_session_create, portal_session_create, promo_redeem,
                       subscription_sync_from_stripe)
from .stripe_api import BillingNotConfigured

logger = logging.getLogger(__name__)

_STRIPE_DOWN = "Stripe could not be reached; please try again in a minute."


class _SeeOther(HttpResponseRedirect):
    status_code = 303


def _billing_url(request, **query) -> str:
    url = request.build_absolute_uri(reverse("billing", args=[request.org.slug]))
    if query:
        url += "?" + "&".join(f"{key}={value}" for key, value in query.items())
    return url


@require_GET
@org_member_required(billing_exempt=True)
def billing_page(request):
    if request.GET.get("checkout") == "success" and request.org.subscription_status not in PAID_STATUSES:
        # Back from Checkout: the webhook may still be in flight, so ask Stripe now (idempotent).
        customer = billing_customer_get(org=request.org)
        if customer is not None:
            try:
                subscription_sync_from_stripe(customer_id=customer.stripe_customer_id)
                request.org.refresh_from_db()
            except (stripe.StripeError, BillingNotConfigured):
                logger.warning("Could not sync org %s after checkout", request.org.pk, exc_info=True)
    overview = billing_overview(org=request.org)
    context = {"org": request.org, "membership": request.membership, "billing": overview,
               "checkout_result": request.GET.get("checkout", "")}
    return render(request, "billing/billing.html", context)


def _to_stripe(request, what: str, create) -> HttpResponseRedirect:
    """303 to the Stripe page `create()` opens; on a billing or Stripe error, back to the billing page."""
    try:
        url = create()
    except (BillingError, BillingNotConfigured) as exc:
        messages.error(request, str(exc))
        return _SeeOther(reverse("billing", args=[request.org.slug]))
    except stripe.StripeError:
        logger.exception("%s session for org %s failed", what, request.org.pk)
        messages.error(request, _STRIPE_DOWN)
        return _SeeOther(reverse("billing", args=[request.org.slug]))
    return _SeeOther(url)


@require_POST
@org_member_required(manage=True, billing_exempt=True)
def checkout(request):
    return _to_stripe(request, "Checkout", lambda: checkout_session_create(
        org=request.org, user=request.user,
        success_url=_billing_url(request, checkout="success"),
        cancel_url=_billing_url(request, checkout="canceled"),
    ))


@require_POST
@org_member_required(manage=True, billing_exempt=True)
def portal(request):
    return _to_stripe(request, "Portal", lambda: portal_session_create(org=request.org,
                                                                       return_url=_billing_url(request)))


@require_POST
@org_member_required(manage=True, billing_exempt=True)
def redeem(request):
    try:
        result = promo_redeem(org=request.org, code=request.POST.get("code", ""), user=request.user)
    except BillingError as exc:
        messages.error(request, str(exc))
    else:
        until = result.comped_until
        messages.success(request, "Promo code applied: this organisation is comped "
                         + (f"until {until:%d %b %Y}." if until else "with no end date."))
    return _SeeOther(reverse("billing", args=[request.org.slug]))
