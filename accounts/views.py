from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render

from .forms import OrgCreateForm
from .selectors import user_orgs
from .services import org_create


def home(request):
    """Signed out: the sign-in page. Signed in: the first organisation, or the form to create one."""
    if not request.user.is_authenticated:
        return redirect("account_login")
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
