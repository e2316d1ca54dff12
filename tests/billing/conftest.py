"""Billing fixtures: the fake Stripe server, Stripe settings pointing at it, and signed webhooks."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time

import pytest
from django.urls import reverse

from accounts.models import Membership
from billing.setup import plan_price_ensure, webhook_endpoint_ensure
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory

from .stripe_server import FakeStripe

logging.getLogger("stripe").setLevel(logging.WARNING)  # the library logs every request at INFO

TEST_SECRET_KEY = "sk_test_" + "51LLMObserveFakeKey" + "0" * 12


@pytest.fixture(scope="session")
def fake_stripe_server():
    server = FakeStripe().start()
    yield server
    server.stop()


@pytest.fixture
def stripe_fake(fake_stripe_server, settings):
    """The fake Stripe API, empty, with the app configured to use it and billing turned on."""
    fake_stripe_server.reset()
    settings.STRIPE_API_BASE = fake_stripe_server.url
    settings.STRIPE_TEST_SECRET_KEY = TEST_SECRET_KEY
    settings.STRIPE_LIVE_MODE = False
    settings.STRIPE_PRICE_ID = ""
    settings.LLMOBSERVE_BILLING_ENABLED = True
    settings.LLMOBSERVE_TRIAL_DAYS = 0
    return fake_stripe_server


@pytest.fixture
def price_id(stripe_fake, db):
    return plan_price_ensure()[0]


@pytest.fixture
def webhook(stripe_fake, db, client):
    """The dj-stripe endpoint billing_setup registered, and a way to deliver signed events to it."""
    from djstripe.models import WebhookEndpoint

    url, _ = webhook_endpoint_ensure(base_url="http://testserver")
    endpoint = WebhookEndpoint.objects.get(url=url)

    class Webhook:
        def __init__(self):
            self.endpoint = endpoint
            self.path = reverse("djstripe:djstripe_webhook_by_uuid", kwargs={"uuid": endpoint.djstripe_uuid})

        def sign(self, payload: str, *, secret: str | None = None, timestamp: int | None = None) -> str:
            ts = int(time.time()) if timestamp is None else timestamp
            mac = hmac.new((secret or endpoint.secret).encode(), f"{ts}.{payload}".encode(), hashlib.sha256)
            return f"t={ts},v1={mac.hexdigest()}"

        def send(self, event: dict, *, signature: str | None = None, **sign_kwargs):
            payload = json.dumps(event)
            header = signature if signature is not None else self.sign(payload, **sign_kwargs)
            return client.post(self.path, data=payload, content_type="application/json",
                               headers={"Stripe-Signature": header})

    return Webhook()


@pytest.fixture
def owner(org):
    return MembershipFactory(org=org, role=Membership.Role.OWNER).user


@pytest.fixture
def owner_client(client, owner):
    client.force_login(owner)
    return client


@pytest.fixture
def plain_member_client(client, org):
    user = MembershipFactory(org=org, role=Membership.Role.MEMBER).user
    client.force_login(user)
    return client


@pytest.fixture
def outsider_client(client):
    """Owner of another org, not a member of `org`."""
    user = UserFactory()
    MembershipFactory(org=OrganizationFactory(), user=user, role=Membership.Role.OWNER)
    client.force_login(user)
    return client
