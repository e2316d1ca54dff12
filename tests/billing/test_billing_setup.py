"""`manage.py billing_setup` against the fake Stripe API: creates once, then finds what it made."""

import pytest
from django.core.management import CommandError, call_command

from billing.plan import PRICE_LOOKUP_KEY, WEBHOOK_EVENTS
from billing.selectors import price_id_current

pytestmark = pytest.mark.django_db


def _run(capsys, *args):
    call_command("billing_setup", "--base-url", "https://llmobserve.example.com", *args)
    return capsys.readouterr().out.strip().splitlines()


def test_billing_setup_creates_product_price_and_webhook_then_is_idempotent(stripe_fake, capsys):
    from djstripe.models import Price, WebhookEndpoint

    first = _run(capsys)
    second = _run(capsys)

    [product] = stripe_fake.of_type("product")
    [price] = stripe_fake.of_type("price")
    [endpoint] = stripe_fake.of_type("webhook_endpoint")
    assert product["name"] == "LLMObserve Team"
    assert (price["unit_amount"], price["currency"], price["recurring"]["interval"]) == (800, "usd", "month")
    assert price["lookup_key"] == PRICE_LOOKUP_KEY and price["product"] == product["id"]
    assert sorted(endpoint["enabled_events"]) == sorted(WEBHOOK_EVENTS)

    local = WebhookEndpoint.objects.get()
    assert local.secret.startswith("whsec_") and local.id == endpoint["id"]
    assert endpoint["url"] == local.url == f"https://llmobserve.example.com/stripe/webhook/{local.djstripe_uuid}/"
    assert Price.objects.get().id == price["id"] == price_id_current()

    assert first[0] == f"price: {price['id']} (created)" and second[0] == f"price: {price['id']} (existing)"
    assert first[-1].endswith(local.url) and "(created)" in first[-1]
    assert second[-1].endswith(local.url) and "(existing)" in second[-1]
    assert len(stripe_fake.calls("POST", "/v1/prices")) == 1
    assert len(stripe_fake.calls("POST", "/v1/webhook_endpoints")) == 1


def test_billing_setup_reuses_the_product_when_only_the_price_is_missing(stripe_fake, capsys):
    _run(capsys, "--no-webhook")
    stripe_fake.of_type("price")[0]["active"] = False  # archived in the dashboard
    _run(capsys, "--no-webhook")
    assert len(stripe_fake.of_type("product")) == 1 and len(stripe_fake.of_type("price")) == 2
    assert stripe_fake.of_type("webhook_endpoint") == []


def test_billing_setup_uses_stripe_price_id_when_set(stripe_fake, settings, capsys):
    import stripe

    from billing.stripe_api import stripe_options

    product = stripe.Product.create(name="Existing plan", **stripe_options())
    price = stripe.Price.create(product=product["id"], unit_amount=800, currency="usd",
                                recurring={"interval": "month"}, **stripe_options())
    settings.STRIPE_PRICE_ID = price["id"]

    out = _run(capsys, "--no-webhook")
    assert out[0] == f"price: {price['id']} (existing)"
    assert len(stripe_fake.of_type("product")) == 1 and price_id_current() == price["id"]


def test_billing_setup_without_a_key_says_what_to_set(stripe_fake, settings):
    settings.STRIPE_TEST_SECRET_KEY = ""
    with pytest.raises(CommandError, match="STRIPE_TEST_SECRET_KEY"):
        call_command("billing_setup")


def test_billing_setup_reports_stripe_errors(stripe_fake, settings):
    settings.STRIPE_PRICE_ID = "price_missing"
    with pytest.raises(CommandError, match="No such price"):
        call_command("billing_setup", "--no-webhook")
