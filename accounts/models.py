from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar

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


class UnscopedQueryError(RuntimeError):
    """A tenant queryset was evaluated without `.for_org(org)` or `.unscoped()`: a bug, never a user error."""


# Set only while Django validates a tenant row's unique constraints, or while `dumpdata` exports every
# tenant: the two places where Django itself reads tenant tables through the default manager and the
# read is cross-tenant by nature. Nothing else may set it, and no setting turns the guard off.
_all_tenants_reads: ContextVar[bool] = ContextVar("llmobserve_all_tenants_reads", default=False)


@contextmanager
def _reads_across_tenants():
    token = _all_tenants_reads.set(True)
    try:
        yield
    finally:
        _all_tenants_reads.reset(token)


class TenantQuerySet(models.QuerySet):
    """A queryset over a tenant table that fails closed.

    It may only be evaluated once it says whose rows it reads: `.for_org(org)` (one tenant) or
    `.unscoped()` (every tenant, spelled out for the reviewer). Otherwise iterating it, `len`,
    `bool`, `count`, `exists`, `aggregate`, `get`, `first`, `update`, `delete`, `iterator`,
    `in_bulk`, `get_or_create`, … raise `UnscopedQueryError`. Building it (`filter`, `order_by`,
    `values`, …) and `create`/`bulk_create` (no read) are always allowed. The flag survives
    chaining, so `Model.objects.filter(...).for_org(org)` works as well as the other order.
    """

    SCOPE_ORG = "org"
    SCOPE_ALL = "all"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._tenant_scope: str | None = None

    # --- declaring the scope --------------------------------------------------------------------

    def for_org(self, org: Organization | int):
        """The one way a request-serving query is scoped to a tenant."""
        org_id = org if isinstance(org, int) else org.pk
        if org_id is None:
            raise ValueError("for_org() needs a saved organisation")
        return self.filter(org_id=org_id)._tenant_scoped(self.SCOPE_ORG)

    def unscoped(self):
        """All tenants' rows: spelled out so a reviewer sees the query is cross-tenant."""
        return self._chain()._tenant_scoped(self.SCOPE_ALL)

    def none(self):
        # An empty result reads nobody's rows.
        return super().none()._tenant_scoped(self.SCOPE_ALL)

    def _tenant_scoped(self, scope: str):
        if self._tenant_scope != self.SCOPE_ORG:  # for_org() wins over unscoped()
            self._tenant_scope = scope
        return self

    def _clone(self):
        clone = super()._clone()
        clone._tenant_scope = self._tenant_scope
        return clone

    def _tenant_check(self, action: str) -> None:
        if self._tenant_scope is None:
            raise UnscopedQueryError(
                f"{self.model._meta.label} queryset evaluated ({action}) without a tenant scope: "
                f"call .for_org(org) to read one organisation's rows, or .unscoped() for a deliberate "
                f"cross-tenant query (admin, sweepers, management commands)."
            )

    # --- every way a queryset reaches the database ----------------------------------------------

    def _fetch_all(self):
        # iteration, len, bool, list, get, first/last, [i], values()/values_list() rows, in_bulk
        if self._result_cache is None:
            self._tenant_check("fetch")
        super()._fetch_all()

    def iterator(self, *args, **kwargs):
        self._tenant_check("iterator")
        return super().iterator(*args, **kwargs)

    def aiterator(self, *args, **kwargs):
        self._tenant_check("aiterator")
        return super().aiterator(*args, **kwargs)

    def count(self):
        if self._result_cache is None:
            self._tenant_check("count")
        return super().count()

    def exists(self):
        if self._result_cache is None:
            self._tenant_check("exists")
        return super().exists()

    def contains(self, obj):
        if self._result_cache is None:
            self._tenant_check("contains")
        return super().contains(obj)

    def aggregate(self, *args, **kwargs):
        self._tenant_check("aggregate")
        return super().aggregate(*args, **kwargs)

    def update(self, **kwargs):
        self._tenant_check("update")
        return super().update(**kwargs)

    def _update(self, values):
        self._tenant_check("update")
        return super()._update(values)

    def bulk_update(self, objs, fields, batch_size=None):
        self._tenant_check("bulk_update")  # before Django opens its transaction
        return super().bulk_update(objs, fields, batch_size=batch_size)

    def delete(self):
        self._tenant_check("delete")
        return super().delete()

    def _raw_delete(self, using):
        self._tenant_check("delete")
        return super()._raw_delete(using)

    def explain(self, *args, **kwargs):
        self._tenant_check("explain")
        return super().explain(*args, **kwargs)

    def raw(self, *args, **kwargs):
        # Raw SQL ignores the queryset's filters: only an explicitly unscoped manager may run it.
        if self._tenant_scope != self.SCOPE_ALL:
            raise UnscopedQueryError(f"{self.model._meta.label}: raw() SQL is cross-tenant; call .unscoped().raw(…) "
                                     f"and filter by org_id in the SQL.")
        return super().raw(*args, **kwargs)

    def resolve_expression(self, *args, **kwargs):
        # Used as a subquery (`filter(x__in=qs)`): the inner query must be scoped too.
        self._tenant_check("subquery")
        return super().resolve_expression(*args, **kwargs)

    # --- combining querysets: OR / XOR / UNION may only widen to rows the parts already allow ----

    def _combined_scope(self, other) -> str | None:
        scopes = {self._tenant_scope, getattr(other, "_tenant_scope", self.SCOPE_ALL)}
        if None in scopes:
            return None
        return self.SCOPE_ALL if self.SCOPE_ALL in scopes else self.SCOPE_ORG

    def _with_scope(self, combined, other, scope):
        # An operand returned as is (x | none()) keeps its own scope; a new queryset gets `scope`.
        if isinstance(combined, TenantQuerySet) and combined is not self and combined is not other:
            combined._tenant_scope = scope
        return combined

    def __or__(self, other):
        return self._with_scope(super().__or__(other), other, self._combined_scope(other))

    def __xor__(self, other):
        return self._with_scope(super().__xor__(other), other, self._combined_scope(other))

    def __and__(self, other):
        # An AND keeps every filter of a scoped operand, so it is scoped if either operand is.
        scopes = {self._tenant_scope, getattr(other, "_tenant_scope", None)} - {None}
        scope = self.SCOPE_ORG if self.SCOPE_ORG in scopes else self.SCOPE_ALL if scopes else None
        return self._with_scope(super().__and__(other), other, scope)

    def _combinator_query(self, combinator, *other_qs, all=False):
        clone = super()._combinator_query(combinator, *other_qs, all=all)
        for other in other_qs:
            clone._tenant_scope = clone._combined_scope(other) if clone._tenant_scope else None
        return clone

    def __repr__(self):
        if self._tenant_scope is None and self._result_cache is None:
            return f"<{type(self).__name__} {self.model._meta.label} (no tenant scope: not evaluated)>"
        return super().__repr__()


class TenantManager(models.Manager.from_queryset(TenantQuerySet)):
    """The default manager of every tenant model (see TenantQuerySet: it fails closed).

    A reverse relation from an organisation (`org.api_keys`, `org.memberships`, …) is filtered by
    `org_id` and therefore scoped; any other reverse relation (`user.memberships`,
    `insight.deliveries`) must say `.for_org(org)` or `.unscoped()` like `Model.objects` does.
    Not used in migrations: historical models get a plain manager (data migrations are cross-tenant).
    Django's cascade deletion, `save()` and `refresh_from_db()` use `_base_manager`, a plain manager.
    """

    def get_queryset(self):
        qs = super().get_queryset()
        field = getattr(self, "field", None)  # set on the related manager of a reverse foreign key
        if field is not None and getattr(self, "instance", None) is not None and field.name == "org" \
                and field.related_model is Organization:
            qs._tenant_scope = TenantQuerySet.SCOPE_ORG
        elif _all_tenants_reads.get():
            qs._tenant_scope = TenantQuerySet.SCOPE_ALL
        return qs


class TenantModel(models.Model):
    """Base of every tenant-owned model: a row carries `org` and its default manager fails closed.

    Django's own uniqueness validation (`full_clean`, ModelForms, the admin) reads the table through
    the default manager to find a conflicting row in *any* tenant (an API key hash is unique across
    all of them); those reads are allowed, and only those.
    """

    objects = TenantManager()

    class Meta:
        abstract = True

    def validate_unique(self, exclude=None):
        with _reads_across_tenants():
            super().validate_unique(exclude=exclude)

    def validate_constraints(self, exclude=None):
        with _reads_across_tenants():
            super().validate_constraints(exclude=exclude)


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
    # Raw-event retention (docs/self-hosting.md § Retention), set by the operator per plan in the admin; rollups,
    # run summaries and insights are kept. `events_pruned_before` is written by the prune job before it deletes.
    event_retention_days = models.PositiveIntegerField(
        null=True, blank=True, help_text="Days raw events are kept. Empty: LLMOBSERVE_EVENT_RETENTION_DAYS (90).")
    events_pruned_before = models.DateTimeField(
        null=True, blank=True, help_text="Raw events before this instant were pruned (set by events_prune).")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def retention_days(self) -> int:
        """Days this org's raw events are kept: its own setting, else the installation's default."""
        return self.event_retention_days or settings.LLMOBSERVE_EVENT_RETENTION_DAYS

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


class Membership(TenantModel):
    class Role(models.TextChoices):
        OWNER = "owner", "Owner"
        ADMIN = "admin", "Admin"
        MEMBER = "member", "Member"
        VIEWER = "viewer", "Viewer"

    MANAGER_ROLES = (Role.OWNER, Role.ADMIN)  # manage keys, members, invitations, billing, caps and alerts
    EDITOR_ROLES = (Role.OWNER, Role.ADMIN, Role.MEMBER)  # also change shared state (dismiss insights)

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

    @property
    def can_edit(self) -> bool:
        return self.role in self.EDITOR_ROLES


class ApiKey(TenantModel):
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


class Invitation(TenantModel):
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
