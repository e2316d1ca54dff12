"""Billing rows. Subscription *state* lives on accounts.Organization (written via accounts.services);
these rows hold what only billing needs: the org's Stripe customer, and promo codes."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models.functions import Upper
from django.utils import timezone

from accounts.models import Organization, TenantManager, TenantModel


class BillingCustomer(TenantModel):
    """The org's Stripe Customer (one per org and mode). Mirrors what webhooks last told us."""

    org = models.OneToOneField(Organization, on_delete=models.CASCADE, related_name="billing_customer")
    stripe_customer_id = models.CharField(max_length=255, unique=True)
    livemode = models.BooleanField(default=False)
    # The subscription the org's state was last derived from, and whether it ends at period end.
    stripe_subscription_id = models.CharField(max_length=255, blank=True)
    stripe_subscription_status = models.CharField(max_length=32, blank=True)
    cancel_at_period_end = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)
    synced_at = models.DateTimeField(null=True, blank=True)

    objects = TenantManager()

    def __str__(self) -> str:
        return f"{self.org} → {self.stripe_customer_id}"


class PromoCode(models.Model):
    """A code an org redeems on its Billing page to be comped. Created in the admin, never in code."""

    code = models.CharField(max_length=64, help_text="What the customer types; matched case-insensitively.")
    months = models.PositiveIntegerField(null=True, blank=True, help_text="Months comped per redemption; empty = forever.")
    max_redemptions = models.PositiveIntegerField(null=True, blank=True, help_text="Across all orgs; empty = unlimited.")
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Cannot be redeemed after this moment.")
    redemptions_count = models.PositiveIntegerField(default=0, editable=False)
    active = models.BooleanField(default=True)
    note = models.CharField(max_length=200, blank=True, help_text="Internal: who it is for, which campaign.")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(Upper("code"), name="promo_code_unique_ci")]

    def __str__(self) -> str:
        return self.code


class PromoRedemption(TenantModel):
    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="promo_redemptions")
    promo_code = models.ForeignKey(PromoCode, on_delete=models.PROTECT, related_name="redemptions")
    redeemed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    redeemed_at = models.DateTimeField(default=timezone.now)
    comped_until = models.DateTimeField(null=True, blank=True, help_text="Empty = forever.")

    objects = TenantManager()

    class Meta:
        ordering = ["-redeemed_at"]
        constraints = [models.UniqueConstraint(fields=["org", "promo_code"], name="promo_redemption_once_per_org")]

    def __str__(self) -> str:
        return f"{self.promo_code} by {self.org}"
