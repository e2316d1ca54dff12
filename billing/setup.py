"""Idempotent Stripe setup used by `manage.py billing_setup`: the plan's Product and Price, and the
dj-stripe WebhookEndpoint. Safe to run on every deploy."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import stripe
from django.conf import settings
from django.urls import reverse
from djstripe.models import Price, Product, WebhookEndpoint

from .plan import (PLAN_AMOUNT_CENTS, PLAN_CURRENCY, PLAN_INTERVAL, PLAN_NAME, PRICE_LOOKUP_KEY, PRODUCT_METADATA_KEY,
                   PRODUCT_METADATA_VALUE, WEBHOOK_EVENTS)
from .stripe_api import livemode, stripe_options


@dataclass(frozen=True)
class SetupResult:
    price_id: str
    price_created: bool
    webhook_url: str
    webhook_created: bool


def _product_find_or_create() -> tuple[dict, bool]:
    for product in stripe.Product.list(active=True, limit=100, **stripe_options()).auto_paging_iter():
        if (product.get("metadata") or {}).get(PRODUCT_METADATA_KEY) == PRODUCT_METADATA_VALUE:
            return product, False
    product = stripe.Product.create(
        name=PLAN_NAME, description="All features, unlimited members, per organisation.",
        metadata={PRODUCT_METADATA_KEY: PRODUCT_METADATA_VALUE}, **stripe_options(),
    )
    return product, True


def plan_price_ensure() -> tuple[str, bool]:
    """STRIPE_PRICE_ID if set, else our price found by lookup key, else a new Product/Price. Synced into dj-stripe."""
    created = False
    if settings.STRIPE_PRICE_ID:
        price = stripe.Price.retrieve(settings.STRIPE_PRICE_ID, **stripe_options())
    else:
        found = stripe.Price.list(lookup_keys=[PRICE_LOOKUP_KEY], active=True, limit=1, **stripe_options())
        prices = list(found.get("data") or [])
        if prices:
            price = prices[0]
        else:
            product, _ = _product_find_or_create()
            price = stripe.Price.create(
                product=product["id"], unit_amount=PLAN_AMOUNT_CENTS, currency=PLAN_CURRENCY,
                recurring={"interval": PLAN_INTERVAL}, lookup_key=PRICE_LOOKUP_KEY, nickname=f"{PLAN_NAME} monthly",
                # An archived price may still hold the lookup key; Stripe moves it only when asked.
                transfer_lookup_key=True,
                **stripe_options(),
            )
            created = True
    api_key = stripe_options()["api_key"]
    product_id = price["product"] if isinstance(price["product"], str) else price["product"]["id"]
    Product.sync_from_stripe_data(stripe.Product.retrieve(product_id, **stripe_options()), api_key=api_key)
    Price.sync_from_stripe_data(price, api_key=api_key)
    return price["id"], created


def webhook_endpoint_ensure(*, base_url: str) -> tuple[str, bool]:
    """The dj-stripe WebhookEndpoint for `base_url`: reused when we hold its secret, else created on Stripe."""
    base_url = base_url.rstrip("/")
    for endpoint in WebhookEndpoint.objects.filter(livemode=livemode()).exclude(secret="").order_by("-created"):
        if endpoint.url == base_url + reverse("djstripe:djstripe_webhook_by_uuid", kwargs={"uuid": endpoint.djstripe_uuid}):
            return endpoint.url, False
    endpoint_uuid = uuid.uuid4()
    url = base_url + reverse("djstripe:djstripe_webhook_by_uuid", kwargs={"uuid": endpoint_uuid})
    data = stripe.WebhookEndpoint.create(
        url=url, enabled_events=WEBHOOK_EVENTS, api_version=stripe_options()["stripe_version"],
        metadata={"djstripe_uuid": str(endpoint_uuid)}, description="LLMObserve billing (dj-stripe)",
        **stripe_options(),
    )
    # The secret is only in this create response; dj-stripe stores it for signature checks.
    endpoint = WebhookEndpoint.sync_from_stripe_data(data, api_key=stripe_options()["api_key"])
    return endpoint.url, True


def billing_setup(*, base_url: str, webhook: bool = True) -> SetupResult:
    price_id, price_created = plan_price_ensure()
    webhook_url, webhook_created = ("", False)
    if webhook:
        webhook_url, webhook_created = webhook_endpoint_ensure(base_url=base_url)
    return SetupResult(price_id=price_id, price_created=price_created, webhook_url=webhook_url,
                       webhook_created=webhook_created)
