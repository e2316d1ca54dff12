from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import AbstractUser, BaseUserManager
from django.db import models
from django.utils import timezone


class UserManager(BaseUserManager):
    use_in_migrations = True

    def _create_user(self, email: str, password: str | None, **extra):
        if not email:
            raise ValueError("An email address is required")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email: str, password: str | None = None, **extra):
        extra.setdefault("is_staff", False)
        extra.setdefault("is_superuser", False)
        return self._create_user(email, password, **extra)

    def create_superuser(self, email: str, password: str | None = None, **extra):
        extra.setdefault("is_staff", True)
        extra.setdefault("is_superuser", True)
        return self._create_user(email, password, **extra)


class User(AbstractUser):
    """A person. Signs in with their email address; belongs to organisations through Membership."""

    username = None
    email = models.EmailField("email address", unique=True)

    USERNAME_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    objects = UserManager()

    def __str__(self) -> str:
        return self.email


class TenantQuerySet(models.QuerySet):
    def for_org(self, org: Organization | int):
        """The one way a request-serving query is scoped to a tenant."""
        org_id = org if isinstance(org, int) else org.pk
        if org_id is None:
            raise ValueError("for_org() needs a saved organisation")
        return self.filter(org_id=org_id)


class TenantManager(models.Manager.from_queryset(TenantQuerySet)):
    def unscoped(self):
        """All tenants' rows: spelled out so a reviewer sees the query is cross-tenant."""
        return super().get_queryset()


class Organization(models.Model):
    """The tenant and the billing unit. Its state is written only through accounts.services."""

    class Subscription(models.TextChoices):
        NONE = "none", "No subscription"
        TRIALING = "trialing", "Trialing"
        ACTIVE = "active", "Active"
        PAST_DUE = "past_due", "Past due"
        CANCELED = "canceled", "Canceled"
        COMPED = "comped", "Comped"

    name = models.CharField(max_length=120)
    slug = models.SlugField(max_length=60, unique=True)
    created_at = models.DateTimeField(default=timezone.now)

    # Subscription state, written by billing through accounts.services.org_subscription_set.
    subscription_status = models.CharField(max_length=16, choices=Subscription.choices, default=Subscription.NONE)
    subscription_period_end = models.DateTimeField(null=True, blank=True)
    past_due_since = models.DateTimeField(null=True, blank=True)
    comped_until = models.DateTimeField(null=True, blank=True, help_text="Empty with status comped = forever.")

    # Spending cap (pico-USD per calendar month, UTC) and the flag the insights job maintains.
    spend_cap_pico = models.BigIntegerField(null=True, blank=True)
    over_cap = models.BooleanField(default=False)
    spike_min_pico = models.BigIntegerField(null=True, blank=True, help_text="Per-org override of LLMOBSERVE_SPIKE_MIN_USD.")
    alert_email = models.BooleanField(default=True)
    alert_webhook_url = models.URLField(blank=True, max_length=500)
    alert_digest = models.BooleanField(default=False, help_text="Send one daily digest instead of one alert per insight.")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_active(self) -> bool:
        """May the org use the dashboard and the read API? Ingestion never asks this."""
        if not settings.LLMOBSERVE_BILLING_ENABLED:
            return True
        status = self.subscription_status
        now = timezone.now()
        if status in (self.Subscription.ACTIVE, self.Subscription.TRIALING):
            return True
        if status == self.Subscription.COMPED:
            return self.comped_until is None or self.comped_until > now
        if status == self.Subscription.PAST_DUE:
            grace = timezone.timedelta(days=getattr(settings, "LLMOBSERVE_PAST_DUE_GRACE_DAYS", 7))
            return self.past_due_since is None or now < self.past_due_since + grace
        return False


class Membership(models.Model):
    class Role(models.TextChoices):
        OWNER = "owner", "Owner"
        ADMIN = "admin", "Admin"
        MEMBER = "member", "Member"
        VIEWER = "viewer", "Viewer"

    MANAGER_ROLES = (Role.OWNER, Role.ADMIN)

    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(default=timezone.now)

    objects = TenantManager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["org", "user"], name="membership_unique_org_user")]
        ordering = ["created_at"]

    def __str__(self) -> str:
        return f"{self.user} in {self.org} ({self.role})"

    @property
    def can_manage(self) -> bool:
        return self.role in self.MANAGER_ROLES


class ApiKey(models.Model):
    """A secret `llmo_…` key. Only its SHA-256 and a short visible prefix are stored."""

    class Scope(models.TextChoices):
        INGEST = "ingest", "Ingest (events, ai-instrument)"
        READ = "read", "Read (ingest + read API)"

    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100, default="default")
    prefix = models.CharField(max_length=16, help_text="First characters of the key, shown to tell keys apart.")
    key_hash = models.CharField(max_length=64, unique=True)
    scope = models.CharField(max_length=10, choices=Scope.choices, default=Scope.INGEST)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = TenantManager()

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.name})"

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    @property
    def can_read(self) -> bool:
        return self.scope == self.Scope.READ


def _invitation_expiry():
    return timezone.now() + timezone.timedelta(days=14)


class Invitation(models.Model):
    """An invitation to join an org by email; accepted through a signed link (new or existing users)."""

    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField()
    role = models.CharField(max_length=10, choices=Membership.Role.choices, default=Membership.Role.MEMBER)
    token = models.CharField(max_length=64, unique=True)
    invited_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    accepted_at = models.DateTimeField(null=True, blank=True)
    expires = models.DateTimeField(default=_invitation_expiry)

    objects = TenantManager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["org", "email"], condition=models.Q(accepted_at__isnull=True),
                                               name="invitation_unique_pending_email")]

    def __str__(self) -> str:
        return f"{self.email} → {self.org} ({self.role})"

    @property
    def is_pending(self) -> bool:
        return self.accepted_at is None and self.expires > timezone.now()
