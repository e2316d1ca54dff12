from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from .decorators import org_member_required
from .forms import ApiKeyCreateForm, InviteForm, OrgCreateForm, OrgSettingsForm
from .models import ApiKey, Invitation, Membership
from .selectors import org_api_keys, org_invitations_pending, org_members, user_orgs
from .services import (
    InvitationError, LastOwnerError, api_key_create, api_key_revoke, invitation_accept, invitation_create,
    invitation_get_by_link, invitation_revoke, membership_remove, membership_set_role, org_create, org_update,
)

PENDING_INVITE_SESSION_KEY = "pending_invitation"


def home(request):
    """Signed out: the sign-in page. Signed in: the first organisation, or the form to create one."""
    if not request.user.is_authenticated:
        return redirect("account_login")
    pending = request.session.get(PENDING_INVITE_SESSION_KEY)
    if pending:
        return redirect("invitation_accept", token=pending)
    org = user_orgs(user=request.user).first()
    if org is None:
        return redirect("org_create")
    return redirect("overview", slug=org.slug)


@login_required
def org_create_view(request):
    form = OrgCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        org = org_create(name=form.cleaned_data["name"], owner=request.user)
        return redirect("onboarding", slug=org.slug)
    return render(request, "accounts/org_create.html", {"form": form})


# --- settings: organisation ---------------------------------------------------------------------

@org_member_required(write_roles=Membership.MANAGER_ROLES)
def settings_general(request):
    org = request.org
    form = OrgSettingsForm(request.POST or None, org=org, initial={"name": org.name, "slug": org.slug})
    if request.method == "POST":
        if form.is_valid():
            org_update(org=org, name=form.cleaned_data["name"].strip(), slug=form.cleaned_data["slug"])
            messages.success(request, "Organisation updated.")
            return redirect("settings", slug=org.slug)
    return render(request, "accounts/settings_general.html", {"org": org, "nav": "settings", "tab": "general",
                                                              "form": form})


# --- settings: API keys -------------------------------------------------------------------------

@org_member_required
def settings_keys(request):
    org = request.org
    new_key = request.session.pop("new_api_key", None)
    return render(request, "accounts/settings_keys.html", {
        "org": org, "nav": "settings", "tab": "keys", "keys": list(org_api_keys(org=org)), "new_key": new_key,
        "form": ApiKeyCreateForm(), "collector_url": request.build_absolute_uri("/").rstrip("/"),
    })


@org_member_required(manage=True)
@require_POST
def api_key_create_view(request):
    form = ApiKeyCreateForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Give the key a name and a scope.")
        return redirect("settings_keys", slug=request.org.slug)
    created = api_key_create(org=request.org, name=form.cleaned_data["name"], scope=form.cleaned_data["scope"],
                             created_by=request.user)
    # Shown once, on the next page view, then gone: only the hash is stored.
    request.session["new_api_key"] = {"raw": created.raw_key, "id": created.api_key.pk,
                                      "name": created.api_key.name}
    return redirect("settings_keys", slug=request.org.slug)


@org_member_required(manage=True)
@require_POST
def api_key_revoke_view(request, key_id: int):
    key = get_object_or_404(ApiKey.objects.for_org(request.org), pk=key_id)
    api_key_revoke(api_key=key)
    messages.success(request, f"Key {key.prefix}… revoked. Requests with it now get 401.")
    return redirect("settings_keys", slug=request.org.slug)


# --- settings: members and invitations ----------------------------------------------------------

@org_member_required
def settings_members(request):
    org = request.org
    return render(request, "accounts/settings_members.html", {
        "org": org, "nav": "settings", "tab": "members", "members": list(org_members(org=org)),
        "invitations": list(org_invitations_pending(org=org)) if request.membership.can_manage else [],
        "form": InviteForm(), "roles": Membership.Role.choices,
    })


@org_member_required(manage=True)
@require_POST
def member_invite(request):
    form = InviteForm(request.POST)
    if form.is_valid():
        try:
            invitation_create(org=request.org, email=form.cleaned_data["email"], role=form.cleaned_data["role"],
                              invited_by=request.user, base_url=request.build_absolute_uri("/"),
                              actor=request.membership)
        except InvitationError as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, f"Invitation sent to {form.cleaned_data['email']}.")
    else:
        messages.error(request, "Enter a valid email address and role.")
    return redirect("settings_members", slug=request.org.slug)


@org_member_required(manage=True)
@require_POST
def member_role(request, membership_id: int):
    membership = get_object_or_404(Membership.objects.for_org(request.org).select_related("user"), pk=membership_id)
    try:
        membership_set_role(membership=membership, role=request.POST.get("role", ""), actor=request.membership)
    except (LastOwnerError, ValueError) as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"{membership.user.email} is now {membership.get_role_display().lower()}.")
    return redirect("settings_members", slug=request.org.slug)


@org_member_required(manage=True)
@require_POST
def member_remove(request, membership_id: int):
    membership = get_object_or_404(Membership.objects.for_org(request.org).select_related("user"), pk=membership_id)
    if membership.pk == request.membership.pk:
        return member_leave_do(request)
    try:
        membership_remove(membership=membership, actor=request.membership)
    except LastOwnerError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"{membership.user.email} was removed.")
    return redirect("settings_members", slug=request.org.slug)


def member_leave_do(request):
    try:
        membership_remove(membership=request.membership, actor=request.membership)
    except LastOwnerError as exc:
        messages.error(request, str(exc))
        return redirect("settings_members", slug=request.org.slug)
    messages.success(request, f"You left {request.org.name}.")
    return redirect("home")


@org_member_required
@require_POST
def member_leave(request):
    return member_leave_do(request)


@org_member_required(manage=True)
@require_POST
def invitation_revoke_view(request, invitation_id: int):
    invitation = get_object_or_404(Invitation.objects.for_org(request.org), pk=invitation_id)
    invitation_revoke(invitation=invitation)
    messages.success(request, f"Invitation to {invitation.email} revoked.")
    return redirect("settings_members", slug=request.org.slug)


def invitation_accept_view(request, token: str):
    """The emailed link. Signed out: remember it, then sign up or sign in and come back here."""
    invitation = invitation_get_by_link(link_token=token)
    if invitation is None:
        raise Http404("No such invitation")
    context = {"invitation": invitation, "token": token, "error": None}
    if not invitation.is_pending:
        context["error"] = "This invitation has expired or was already used. Ask for a new one."
        request.session.pop(PENDING_INVITE_SESSION_KEY, None)
        return render(request, "accounts/invitation.html", context, status=410)
    if not request.user.is_authenticated:
        request.session[PENDING_INVITE_SESSION_KEY] = token
        from .models import User

        context["has_account"] = User.objects.filter(email__iexact=invitation.email).exists()
        return render(request, "accounts/invitation.html", context)
    if request.method == "POST":
        try:
            invitation_accept(invitation=invitation, user=request.user)
        except InvitationError as exc:
            context["error"] = str(exc)
            return render(request, "accounts/invitation.html", context, status=400)
        request.session.pop(PENDING_INVITE_SESSION_KEY, None)
        messages.success(request, f"Welcome to {invitation.org.name}.")
        return redirect("overview", slug=invitation.org.slug)
    if request.user.email.lower() != invitation.email.lower():
        context["error"] = (f"This invitation is for {invitation.email}; you are signed in as "
                            f"{request.user.email}. Sign out and sign in (or sign up) as {invitation.email}.")
    return render(request, "accounts/invitation.html", context)
