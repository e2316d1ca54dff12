"""Org resolution for pages: `/o/<slug>/…` → request.org, after a membership check."""

from __future__ import annotations

from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import render

from .selectors import membership_get_or_404


def org_member_required(view=None, *, manage: bool = False, billing_exempt: bool = False):
    """Resolve the org from the `slug` URL kwarg; non-members get a 404, like a missing org.

    `manage=True` additionally requires the owner or admin role (403 otherwise).
    An org without an active subscription gets the subscribe wall (402) instead of the page,
    unless `billing_exempt=True` (the billing pages themselves).
    """

    def decorate(func):
        @login_required
        @wraps(func)
        def wrapper(request, slug, *args, **kwargs):
            membership = membership_get_or_404(user=request.user, slug=slug)
            if manage and not membership.can_manage:
                raise PermissionDenied("Only owners and admins can do this.")
            request.org = membership.org
            request.membership = membership
            if not billing_exempt and not membership.org.is_active:
                context = {"org": membership.org, "membership": membership}
                return render(request, "billing/subscribe_wall.html", context, status=402)
            return func(request, *args, **kwargs)

        return wrapper

    return decorate(view) if view is not None else decorate


class OrgMemberMixin:
    """The same check for class-based views."""

    manage = False
    billing_exempt = False

    def dispatch(self, request, *args, **kwargs):
        handler = org_member_required(super().dispatch, manage=self.manage, billing_exempt=self.billing_exempt)
        return handler(request, *args, **kwargs)
