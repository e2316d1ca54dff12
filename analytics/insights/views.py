"""Insights pages: the list with open/dismissed tabs, the overview panel fragment, and alert settings."""

from __future__ import annotations

from decimal import Decimal

from django import forms
from django.conf import settings
from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_POST

from accounts.decorators import org_member_required
from accounts.models import Membership
from ingestion.money import pico_to_decimal, pico_to_usd, usd_to_pico

from ..models import Insight
from . import alerts, selectors, services, webhooks
from .detectors import spend_cap_status

PAGE_SIZE = 50


def _render(request, template: str, partial: str, context: dict) -> HttpResponse:
    """The full page, or just its partial for an htmx request (same URL, Vary: HX-Request)."""
    name = f"{template}#{partial}" if getattr(request, "htmx", False) else template
    response = render(request, name, context)
    patch_vary_headers(response, ["HX-Request"])
    return response


@org_member_required
def insights_list(request):
    status = request.GET.get("status")
    status = status if status in Insight.Status.values else Insight.Status.OPEN
    try:
        after_id = int(request.GET["cursor"]) if request.GET.get("cursor") else None
    except ValueError:
        after_id = None
    rows, next_after = selectors.insights_page(org=request.org, status=status, after_id=after_id, limit=PAGE_SIZE)
    context = {"org": request.org, "status": status, "insights": rows, "next_after": next_after,
               "counts": selectors.insight_counts(org=request.org),
               "can_dismiss": request.membership.can_edit,
               "can_manage": request.membership.can_manage}
    return _render(request, "analytics/insights/insights.html", "list", context)


@org_member_required
def insights_panel(request):
    context = {"org": request.org, "insights": selectors.insights_top(org=request.org, limit=5),
               "counts": selectors.insight_counts(org=request.org),
               "can_dismiss": request.membership.can_edit}
    return _render(request, "analytics/insights/panel.html", "panel", context)


@require_POST
@org_member_required(roles=Membership.EDITOR_ROLES)
def insight_dismiss(request, insight_id: int):
    services.insight_dismiss(org=request.org, insight_id=insight_id)
    if getattr(request, "htmx", False):
        return HttpResponse("")  # hx-swap="outerHTML" on the row: it disappears
    messages.success(request, "Insight dismissed.")
    return redirect("insights", slug=request.org.slug)


class AlertSettingsForm(forms.Form):
    spend_cap_usd = forms.DecimalField(
        label="Monthly spending cap (USD)", required=False, min_value=Decimal("0.01"), max_digits=14,
        decimal_places=6, help_text="Month-to-date cost (UTC calendar month). Empty: no cap. "
                                    "You are warned at 80 % and alerted at 100 %; the SDK then sees over_cap.")
    spike_min_usd = forms.DecimalField(
        label="Spike minimum (USD)", required=False, min_value=Decimal("0"), max_digits=14, decimal_places=6,
        help_text="A section spike must cost at least this much more than its daily average. "
                  "Empty: the site default.")
    alert_email = forms.BooleanField(label="Email owners and admins", required=False)
    alert_webhook_url = forms.URLField(
        label="Slack-compatible webhook URL", required=False, max_length=500, assume_scheme="https",
        help_text="An incoming-webhook URL (Slack, Mattermost, Discord /slack, or your own endpoint).")
    alert_digest = forms.BooleanField(
        label="One daily digest instead of one alert per insight", required=False,
        help_text="Spending-cap alerts are always sent at once.")

    def clean_alert_webhook_url(self):
        url = self.cleaned_data["alert_webhook_url"]
        if url:
            try:
                webhooks.webhook_url_validate(url)  # the SSRF guard: https, public address, no credentials
            except webhooks.WebhookError as exc:
                raise forms.ValidationError(str(exc)) from None
        return url

    @staticmethod
    def initial_for(org) -> dict:
        def dollars(pico):
            return pico_to_decimal(pico)
        return {"spend_cap_usd": dollars(org.spend_cap_pico), "spike_min_usd": dollars(org.spike_min_pico),
                "alert_email": org.alert_email, "alert_webhook_url": org.alert_webhook_url,
                "alert_digest": org.alert_digest}


@org_member_required(manage=True)
def alert_settings(request):
    org = request.org
    if request.method == "POST":
        form = AlertSettingsForm(request.POST)
        if form.is_valid():
            services.alert_settings_update(org=org, **form.cleaned_data)
            messages.success(request, "Alert settings saved.")
            return redirect("alert_settings", slug=org.slug)
    else:
        form = AlertSettingsForm(initial=AlertSettingsForm.initial_for(org))
    site_default = pico_to_usd(usd_to_pico(settings.LLMOBSERVE_SPIKE_MIN_USD))
    form.fields["spike_min_usd"].widget.attrs["placeholder"] = f"{site_default} (site default)"
    context = {"org": org, "form": form, "cap": spend_cap_status(org=org)}
    return render(request, "analytics/insights/alert_settings.html", context)


@require_POST
@org_member_required(manage=True)
def alert_test(request):
    """Send a test message on the saved channels, and say how it went."""
    results = alerts.alert_test_send(org=request.org)
    if not results:
        messages.error(request, "No alert channel is on: enable email or add a webhook URL first.")
    for channel, error in results.items():
        name = "Email" if channel == "email" else "Webhook"
        if error:
            messages.error(request, f"{name}: test alert failed — {error}")
        else:
            messages.success(request, f"{name}: test alert sent.")
    return redirect("alert_settings", slug=request.org.slug)
