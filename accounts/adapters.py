from allauth.account.adapter import DefaultAccountAdapter
from allauth.account.models import EmailAddress
from django.urls import reverse

from .selectors import user_orgs

PENDING_INVITE_SESSION_KEY = "pending_invitation"


class AccountAdapter(DefaultAccountAdapter):
    """After sign-in or sign-up: back to a pending invitation link, else the create-organisation form
    for a user without an organisation.

    Email verification is mandatory (settings: that is what lets allauth's enumeration prevention give
    a signup with a registered email the same "check your inbox" answer as a new one). Two kinds of
    address count as verified without a confirmation mail: the address of an account an operator made
    (createsuperuser, the admin, the demo loader: no EmailAddress row yet), and a signup's address that
    the pending invitation link — emailed to that very address — was opened for.
    """

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

    def pre_login(self, request, user, *, signup: bool, **kwargs):
        if user.is_active and user.email:
            if signup:
                if self._invited_address(request) == user.email.lower():
                    _email_mark_verified(user)
            elif not EmailAddress.objects.filter(user_id=user.pk).exists():
                _email_mark_verified(user)
        return super().pre_login(request, user, signup=signup, **kwargs)

    @staticmethod
    def _invited_address(request) -> str | None:
        from .services import invitation_get_by_link

        token = request.session.get(PENDING_INVITE_SESSION_KEY)
        invitation = invitation_get_by_link(link_token=token) if token else None
        return invitation.email.lower() if invitation is not None and invitation.is_pending else None


def _email_mark_verified(user) -> None:
    EmailAddress.objects.update_or_create(user=user, email=user.email.lower(),
                                          defaults={"verified": True, "primary": True})
