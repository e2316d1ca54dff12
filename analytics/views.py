from django.shortcuts import render

from accounts.decorators import org_member_required


@org_member_required
def overview(request):
    return render(request, "analytics/overview.html", {"org": request.org})


@org_member_required
def onboarding(request):
    return render(request, "analytics/onboarding.html", {"org": request.org})
