"""Writes to accounts rows. Other apps change an organisation only through these functions."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.text import slugify

from .models import ApiKey, Membership, Organization, User

API_KEY_PREFIX = "llmo_"
_VISIBLE_PREFIX_LEN = 12


def api_key_hash(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


@dataclass(frozen=True)
class CreatedApiKey:
    api_key: ApiKey
    raw_key: str  # shown once, never stored


def api_key_create(*, org: Organization, name: str = "default", scope: str = ApiKey.Scope.INGEST,
                   created_by: User | None = None) -> CreatedApiKey:
    if scope not in ApiKey.Scope.values:
        raise ValueError(f"scope must be one of {', '.join(ApiKey.Scope.values)}")
    raw = API_KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey.objects.create(
        org=org, name=name or "default", scope=scope, created_by=created_by,
        prefix=raw[:_VISIBLE_PREFIX_LEN], key_hash=api_key_hash(raw),
    )
    return CreatedApiKey(api_key=key, raw_key=raw)


def api_key_revoke(*, api_key: ApiKey) -> ApiKey:
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
    return api_key


def api_key_touch(*, api_key: ApiKey, at: datetime | None = None) -> None:
    """Record use at most once a minute per key, so hot ingestion does not write on every call."""
    at = at or timezone.now()
    last = api_key.last_used_at
    if last is None or (at - last).total_seconds() >= 60:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=at)
        api_key.last_used_at = at


def _unique_slug(base: str) -> str:
    base = (slugify(base) or "org")[:50]
    slug, n = base, 1
    while Organization.objects.filter(slug=slug).exists():
        n += 1
        slug = f"{base}-{n}"
    return slug


@transaction.atomic
def org_create(*, name: str, owner: User | None = None, slug: str | None = None) -> Organization:
    """Create an organisation; its creator becomes the owner."""
    for _ in range(5):
        try:
            with transaction.atomic():
                org = Organization.objects.create(name=name.strip(), slug=slug or _unique_slug(name))
            break
        except IntegrityError:
            if slug:
                raise
    else:  # pragma: no cover - five slug races in a row
        raise IntegrityError("could not allocate a unique slug")
    if owner is not None:
        Membership.objects.create(org=org, user=owner, role=Membership.Role.OWNER)
    return org


def org_update(*, org: Organization, **fields) -> Organization:
    """Change an organisation's settings or state; the one write path for Organization rows."""
    allowed = {f.name for f in Organization._meta.concrete_fields} - {"id", "created_at"}
    unknown = set(fields) - allowed
    if unknown:
        raise ValueError(f"unknown organisation fields: {', '.join(sorted(unknown))}")
    changed = [name for name, value in fields.items() if getattr(org, name) != value]
    for name in changed:
        setattr(org, name, fields[name])
    if changed:
        org.save(update_fields=changed)
    return org


def org_subscription_set(*, org: Organization, status: str, period_end: datetime | None = None,
                         comped_until: datetime | None = None) -> Organization:
    """Billing's only way to write subscription state (accounts imports no app)."""
    if status not in Organization.Subscription.values:
        raise ValueError(f"unknown subscription status {status!r}")
    past_due_since = org.past_due_since
    if status == Organization.Subscription.PAST_DUE:
        past_due_since = past_due_since or timezone.now()
    else:
        past_due_since = None
    fields = {"subscription_status": status, "subscription_period_end": period_end, "past_due_since": past_due_since}
    if status == Organization.Subscription.COMPED:
        fields["comped_until"] = comped_until
    return org_update(org=org, **fields)


def org_over_cap_set(*, org: Organization, over_cap: bool) -> Organization:
    return org_update(org=org, over_cap=over_cap)


def membership_add(*, org: Organization, user: User, role: str = Membership.Role.MEMBER) -> Membership:
    membership, created = Membership.objects.get_or_create(org=org, user=user, defaults={"role": role})
    return membership


class LastOwnerError(ValueError):
    pass


def _owner_count(org: Organization) -> int:
    return Membership.objects.for_org(org).filter(role=Membership.Role.OWNER).count()


def membership_set_role(*, membership: Membership, role: str) -> Membership:
    if role not in Membership.Role.values:
        raise ValueError(f"unknown role {role!r}")
    if membership.role == Membership.Role.OWNER and role != Membership.Role.OWNER and _owner_count(membership.org) <= 1:
        raise LastOwnerError("An organisation needs at least one owner.")
    membership.role = role
    membership.save(update_fields=["role"])
    return membership


def membership_remove(*, membership: Membership) -> None:
    if membership.role == Membership.Role.OWNER and _owner_count(membership.org) <= 1:
        raise LastOwnerError("The last owner cannot leave; make someone else an owner first.")
    membership.delete()
