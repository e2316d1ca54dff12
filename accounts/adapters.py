from allauth.account.adapter import DefaultAccountAdapter
from django.urls import reverse

from .selectors import user_orgs


class AccountAdapter(DefaultAccountAdapter):
    """Send a user without an organisation to the create-organisation form after sign-in."""

    def get_login_redirect_url(self, request):
        if not user_orgs(user=request.user).exists():
            return reverse("org_create")
        return super().get_login_redirect_url(request)

    def get_signup_redirect_url(self, request):
        return reverse("org_create")
