from urllib.parse import urlencode

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect
from django.urls import include, path, reverse
from django.utils.http import url_has_allowed_host_and_scheme

from . import api


def admin_login(request, extra_context=None):
    """The admin signs in through allauth's login, so its failed-login rate limit guards it too.

    Django's own admin login form has no brute-force limit; allauth's refuses a key (the email)
    after 5 failures in 5 minutes, whatever the password, and an IP after 10 a minute.
    """
    target = request.GET.get("next", "")
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()},
                                           require_https=request.is_secure()):
        target = reverse("admin:index")
    if request.user.is_authenticated:
        if request.user.is_active and request.user.is_staff:
            return redirect(target)
        raise PermissionDenied("This account may not use the admin.")  # no redirect loop through the login page
    return redirect(f"{reverse('account_login')}?{urlencode({'next': target})}")


admin.site.login = admin_login

urlpatterns = [
    path("health", api.health, name="health"),
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    path("", include("ingestion.urls")),
    path("", include("analytics.urls")),
    path("stripe/", include("djstripe.urls", namespace="djstripe")),
    path("", include("billing.urls")),
    path("", include("instrument.urls")),
    path("", include("accounts.urls")),
    path("", include("ops.urls")),
]
