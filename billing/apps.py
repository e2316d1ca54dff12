from django.apps import AppConfig


def stripe_api_base_apply(**kwargs) -> None:
    """Point the `stripe` library at settings.STRIPE_API_BASE (stripe-mock, a test fake), else Stripe."""
    import stripe
    from django.conf import settings

    setting = kwargs.get("setting")
    if setting not in (None, "STRIPE_API_BASE"):
        return
    stripe.api_base = (getattr(settings, "STRIPE_API_BASE", "") or stripe.DEFAULT_API_BASE).rstrip("/")


class BillingConfig(AppConfig):
    name = "billing"

    def ready(self):
        from django.test.signals import setting_changed

        from . import webhooks  # noqa: F401  (connects the dj-stripe webhook receivers)

        stripe_api_base_apply()
        setting_changed.connect(stripe_api_base_apply, dispatch_uid="billing.stripe_api_base")
