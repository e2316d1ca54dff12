"""dj-stripe webhook receivers: thin — find the Stripe customer the event is about, then let
services.subscription_sync_from_stripe re-read Stripe. dj-stripe has already verified the signature
and skips an event id it has processed before."""

from __future__ import annotations

import logging

from django.dispatch import receiver
from djstripe.models import Event
from djstripe.signals import WEBHOOK_SIGNALS

from .plan import WEBHOOK_EVENTS
from .services import subscription_sync_from_stripe

logger = logging.getLogger(__name__)


def _customer_id(value) -> str | None:
    if isinstance(value, str):
        return value or None
    if value is not None:
        return value.get("id")
    return None


@receiver([WEBHOOK_SIGNALS[name] for name in WEBHOOK_EVENTS], sender=Event, dispatch_uid="billing.subscription_sync")
def subscription_event_received(sender, event: Event, **kwargs) -> None:
    obj = (event.data or {}).get("object") or {}
    if event.type == "checkout.session.completed" and obj.get("mode") != "subscription":
        return
    customer_id = _customer_id(obj.get("customer"))
    if not customer_id:
        logger.info("Stripe event %s (%s) names no customer; ignored", event.id, event.type)
        return
    org_hint = obj.get("client_reference_id") if event.type == "checkout.session.completed" else None
    subscription_sync_from_stripe(customer_id=customer_id, org_hint=org_hint)
