from allauth.account.adapter import DefaultAccountAdapter
from django.urls import reverse

from .selectors import user_orgs

PENDING_INVITE_SESSION_KEY = "pending_invitation"


class AccountAdapter(DefaultAccountAdapter):
    """After sign-in or sign-up: back to a pending invitation link, else the create-organisation form
    for a user without an organisation."""

    def _pending_invitation_url(self, request) -> str | None:
        token = request.session.get(PENDING_INVITE_SESSION_KEY)
        return reverse("invitation_accept", args=[token]) if token else None

    def get_login_redirect_url(self, request):
        pending = self._pending_invitation_url(request)
        if pending:
            return pending
        if not user_orgs(user=request.user).exists():
            return reverse("org_create")
        return super().get_login_redirect_url(request)

    def get_signup_redirect_url(self, request):
        return self._pending_invitation_url(request) or reverse("org_create")
