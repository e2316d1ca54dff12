from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

import stripe

from billing.setup import billing_setup
from billing.stripe_api import BillingNotConfigured


class Command(BaseCommand):
    help = ("Find or create the Stripe Product 'LLMObserve Team' and its $8/month Price (or use STRIPE_PRICE_ID), "
            "and the dj-stripe webhook endpoint. Idempotent: run it on every deploy.")

    def add_arguments(self, parser):
        parser.add_argument("--base-url", default=settings.LLMOBSERVE_PUBLIC_URL,
                            help="Public URL Stripe posts webhooks to (default: LLMOBSERVE_PUBLIC_URL).")
        parser.add_argument("--no-webhook", action="store_true", help="Only set up the product and price.")

    def handle(self, *args, base_url, no_webhook, **options):
        try:
            result = billing_setup(base_url=base_url, webhook=not no_webhook)
        except BillingNotConfigured as exc:
            raise CommandError(str(exc)) from exc
        except stripe.StripeError as exc:
            raise CommandError(f"Stripe refused: {exc.user_message or exc}") from exc
        self.stdout.write(f"price: {result.price_id} ({'created' if result.price_created else 'existing'})")
        if result.webhook_url:
            state = "created" if result.webhook_created else "existing"
            self.stdout.write(f"webhook endpoint ({state}): {result.webhook_url}")
