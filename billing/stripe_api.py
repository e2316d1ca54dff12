"""The few things every Stripe call needs: the key and API version dj-stripe is configured with."""

from __future__ import annotations

from typing import Any

from djstripe.settings import djstripe_settings


class BillingNotConfigured(RuntimeError):
    """No Stripe key or no price: run `manage.py billing_setup` (see docs/billing.md)."""


def stripe_options() -> dict[str, Any]:
    """Request options for `stripe.X.create(..., **stripe_options())` (api_base is global, set in apps)."""
    api_key = djstripe_settings.STRIPE_SECRET_KEY
    if not api_key:
        raise BillingNotConfigured("No Stripe secret key: set STRIPE_TEST_SECRET_KEY or STRIPE_LIVE_SECRET_KEY.")
    return {"api_key": api_key, "stripe_version": djstripe_settings.STRIPE_API_VERSION}


def livemode() -> bool:
    return bool(djstripe_settings.STRIPE_LIVE_MODE)
