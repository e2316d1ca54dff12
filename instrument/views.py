"""The AI Auto-Instrument page: the commands to run, filled in for this org, and its metered use."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from accounts.decorators import org_member_required
from accounts.selectors import org_api_keys

from .selectors import usage_summary


@org_member_required
def auto_instrument(request: HttpRequest) -> HttpResponse:
    org = request.org  # type: ignore[attr-defined]
    key = org_api_keys(org=org).filter(revoked_at__isnull=True).first()
    return render(request, "instrument/auto_instrument.html", {
        "org": org,
        "collector_url": settings.LLMOBSERVE_PUBLIC_URL,
        "key_hint": f"{key.prefix}…" if key else None,
        "claude_enabled": bool(settings.ANTHROPIC_API_KEY),
        "usage": usage_summary(org=org),
    })
