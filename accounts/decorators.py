"""Org resolution and role checks for pages: `/o/<slug>/…` → request.org, after a membership check.

Views do no role checks of their own: which roles may open a page, and which may change something
through it, is declared here, on the view.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import render

from .models import Membership
from .selectors import membership_get_or_404

_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _denied(roles: frozenset[str], membership: Membership) -> PermissionDenied:
    names = [label.lower() + "s" for value, label in Membership.Role.choices if value in roles]
    allowed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    role = membership.get_role_display().lower()
    return PermissionDenied(f"Only {allowed} can do this; you are {'an' if role[0] in 'aeiou' else 'a'} {role}.")


def org_member_required(view=None, *, manage: bool = False, roles: Iterable[str] | None = None,
                        write_roles: Iterable[str] | None = None, billing_exempt: bool = False):
    """Resolve the org from the `slug` URL kwarg; non-members get a 404, like a missing org.

    Roles (a member whose role is not allowed gets 403):
    - `roles`: who may use the view at all, whatever the method;
    - `manage=True`: shorthand for `roles=Membership.MANAGER_ROLES` (owners and admins);
    - `write_roles`: who may send POST (or any other unsafe method); the other members may still
      GET the page — for pages every member reads and only some change (org settings, onboarding).
    An org without an active subscription gets the subscribe wall (402) instead of the page,
    unless `billing_exempt=True` (the billing pages themselves).
    """
    if manage and roles is not None:
        raise TypeError("pass manage=True or roles=…, not both")
    allowed = frozenset(Membership.MANAGER_ROLES if manage else roles or Membership.Role.values)
    writers = frozenset(write_roles) & allowed if write_roles is not None else allowed

    def decorate(func):
        @login_required
        @wraps(func)
        def wrapper(request, slug, *args, **kwargs):
            membership = membership_get_or_404(user=request.user, slug=slug)
            if membership.role not in allowed:
                raise _denied(allowed, membership)
            if request.method not in _READ_METHODS and membership.role not in writers:
                raise _denied(writers, membership)
            request.org = membership.org
            request.membership = membership
            if not billing_exempt and not membership.org.is_active:
                context = {"org": membership.org, "membership": membership}
                return render(request, "billing/subscribe_wall.html", context, status=402)
            return func(request, *args, **kwargs)

        return wrapper

    return decorate(view) if view is not None else decorate

