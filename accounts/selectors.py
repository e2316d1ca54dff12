"""Reads of accounts rows."""

from __future__ import annotations

from django.db.models import QuerySet
from django.http import Http404

from .models import ApiKey, Membership, Organization, User
from .services import api_key_hash


def api_key_get_active(*, raw_key: str) -> ApiKey | None:
    if not raw_key:
        return None
    return (
        ApiKey.objects.unscoped()
        .select_related("org")
        .filter(key_hash=api_key_hash(raw_key), revoked_at__isnull=True)
        .first()
    )


def user_orgs(*, user: User) -> QuerySet[Organization]:
    return Organization.objects.filter(memberships__user=user).order_by("name")


def membership_get_or_404(*, user: User, slug: str) -> Membership:
    """The caller's membership of the org named in the URL; a non-member gets the same 404 as a missing org."""
    if not user.is_authenticated:
        raise Http404
    membership = Membership.objects.unscoped().select_related("org").filter(user=user, org__slug=slug).first()
    if membership is None:
        raise Http404("No such organisation")
    return membership


def org_members(*, org: Organization) -> QuerySet[Membership]:
    return Membership.objects.for_org(org).select_related("user").order_by("created_at")


def org_api_keys(*, org: Organization) -> QuerySet[ApiKey]:
    return ApiKey.objects.for_org(org).select_related("created_by")


def org_invitations_pending(*, org: Organization):
    from django.utils import timezone

    from .models import Invitation

    return Invitation.objects.for_org(org).filter(accepted_at__isnull=True, expires__gt=timezone.now()) \
        .select_related("invited_by").order_by("-created_at")
