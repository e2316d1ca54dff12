"""Writes to accounts rows. Other apps change an organisation only through these functions."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.core import signing
from django.core.exceptions import PermissionDenied
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.text import slugify

from .models import ApiKey, Invitation, Membership, Organization, User

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
        ApiKey.objects.for_org(api_key.org_id).filter(pk=api_key.pk).update(last_used_at=at)
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
    membership, created = Membership.objects.for_org(org).get_or_create(org=org, user=user, defaults={"role": role})
    return membership


class LastOwnerError(ValueError):
    pass


def _owner_count(org: Organization) -> int:
    return Membership.objects.for_org(org).filter(role=Membership.Role.OWNER).count()


def role_assert_can_assign(*, actor: Membership | None, role: str, target: Membership | None = None) -> None:
    """Owners and admins manage members; only an owner grants the owner role or changes an owner."""
    if actor is None:
        return
    if not actor.can_manage:
        raise PermissionDenied("Only owners and admins can manage members.")
    if actor.role != Membership.Role.OWNER and (
            role == Membership.Role.OWNER or (target is not None and target.role == Membership.Role.OWNER)):
        raise PermissionDenied("Only an owner can grant or change the owner role.")


def membership_set_role(*, membership: Membership, role: str, actor: Membership | None = None) -> Membership:
    if role not in Membership.Role.values:
        raise ValueError(f"unknown role {role!r}")
    role_assert_can_assign(actor=actor, role=role, target=membership)
    if membership.role == Membership.Role.OWNER and role != Membership.Role.OWNER and _owner_count(membership.org) <= 1:
        raise LastOwnerError("An organisation needs at least one owner.")
    membership.role = role
    membership.save(update_fields=["role"])
    return membership


def membership_remove(*, membership: Membership, actor: Membership | None = None) -> None:
    """Remove a member (or, with actor = the membership itself, leave). The last owner stays."""
    if actor is not None and actor.pk != membership.pk:
        role_assert_can_assign(actor=actor, role=membership.role, target=membership)
    if membership.role == Membership.Role.OWNER and _owner_count(membership.org) <= 1:
        raise LastOwnerError("The last owner cannot leave; make someone else an owner first.")
    membership.delete()


# --- invitations ---------------------------------------------------------------------------------

_INVITE_SALT = "accounts.invitation"


class InvitationError(ValueError):
    pass


def invitation_link_token(invitation: Invitation) -> str:
    """The link carries the random token signed with SECRET_KEY: a forged or altered link fails early."""
    return signing.Signer(salt=_INVITE_SALT).sign(invitation.token)


def invitation_get_by_link(*, link_token: str) -> Invitation | None:
    try:
        token = signing.Signer(salt=_INVITE_SALT).unsign(link_token)
    except signing.BadSignature:
        return None
    return Invitation.objects.unscoped().select_related("org", "invited_by").filter(token=token).first()


def invitation_create(*, org: Organization, email: str, role: str, invited_by: User | None,
                      base_url: str, actor: Membership | None = None) -> Invitation:
    """Invite `email` (a new or existing user) and email them the signed link; re-inviting renews the link."""
    email = email.strip().lower()
    if role not in Membership.Role.values:
        raise InvitationError(f"unknown role {role!r}")
    role_assert_can_assign(actor=actor, role=role)
    if Membership.objects.for_org(org).filter(user__email__iexact=email).exists():
        raise InvitationError(f"{email} is already a member of {org.name}.")
    with transaction.atomic():
        Invitation.objects.for_org(org).filter(email=email, accepted_at__isnull=True).delete()
        invitation = Invitation.objects.create(org=org, email=email, role=role, invited_by=invited_by,
                                               token=secrets.token_urlsafe(32))
    link = base_url.rstrip("/") + reverse("invitation_accept", args=[invitation_link_token(invitation)])
    inviter = invited_by.email if invited_by else "Someone"
    send_mail(
        subject=f"{settings.ACCOUNT_EMAIL_SUBJECT_PREFIX}{inviter} invited you to {org.name}",
        message=(f"{inviter} invited you to join {org.name} on LLMObserve as {invitation.get_role_display()}.\n\n"
                 f"Accept the invitation (sign up or sign in with {email}):\n{link}\n\n"
                 f"The link expires on {invitation.expires:%Y-%m-%d}."),
        from_email=None, recipient_list=[email],
    )
    return invitation


def invitation_accept(*, invitation: Invitation, user: User) -> Membership:
    """Join the org with the invited role. The signed-in user's email must be the invited one."""
    if invitation.accepted_at is not None:
        raise InvitationError("This invitation has already been used.")
    if invitation.expires <= timezone.now():
        raise InvitationError("This invitation has expired; ask for a new one.")
    if user.email.lower() != invitation.email.lower():
        raise InvitationError(f"This invitation is for {invitation.email}; you are signed in as {user.email}.")
    with transaction.atomic():
        updated = Invitation.objects.unscoped().filter(pk=invitation.pk, accepted_at__isnull=True).update(
            accepted_at=timezone.now())
        if not updated:
            raise InvitationError("This invitation has already been used.")
        membership = membership_add(org=invitation.org, user=user, role=invitation.role)
    return membership


def invitation_revoke(*, invitation: Invitation) -> None:
    if invitation.accepted_at is None:
        invitation.delete()
