"""GET /metrics for Prometheus, and the staff console (/staff/): Django staff only, everyone else a 404."""

from __future__ import annotations

import csv
import functools
import hmac

from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpResponse, HttpResponseBadRequest, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from analytics.csv_safety import csv_safe_row
from ingestion.money import pico_to_usd
from ingestion.services import batches_retry

from . import selectors
from .exposition import CONTENT_TYPE, metrics_exposition

DEFAULT_DAYS = 30


def _is_staff(request) -> bool:
    user = request.user
    return user.is_authenticated and user.is_active and user.is_staff


def _bearer_ok(request) -> bool:
    token = settings.LLMOBSERVE_METRICS_TOKEN
    scheme, _, sent = request.headers.get("Authorization", "").partition(" ")
    return bool(token) and scheme.lower() == "bearer" and hmac.compare_digest(sent.strip().encode(), token.encode())


@require_GET
def metrics(request):
    """Prometheus text format. A bearer LLMOBSERVE_METRICS_TOKEN or a staff session; otherwise the URL does
    not exist (404) unless a token is configured, when a wrong or missing one is a 401 the scraper can report."""
    if not (_bearer_ok(request) or _is_staff(request)):
        if not settings.LLMOBSERVE_METRICS_TOKEN:
            raise Http404
        response = HttpResponse("Send Authorization: Bearer <LLMOBSERVE_METRICS_TOKEN>.\n", status=401,
                                content_type="text/plain; charset=utf-8")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    response = HttpResponse(metrics_exposition(now=timezone.now()), content_type=CONTENT_TYPE)
    response["Cache-Control"] = "no-store"
    return response


def staff_required(view):
    """Django staff only; anyone else (anonymous included) gets the same 404 as a missing page."""
    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        if not _is_staff(request):
            raise Http404
        return view(request, *args, **kwargs)
    return wrapper


def _window(request) -> selectors.ConsoleWindow | None:
    raw = request.GET.get("days", str(DEFAULT_DAYS))
    try:
        return selectors.ConsoleWindow.build(days=int(raw), now=timezone.now())
    except ValueError:
        return None


def _bad_window() -> HttpResponse:
    return HttpResponseBadRequest(f"days must be one of {', '.join(map(str, selectors.WINDOWS))}.",
                                  content_type="text/plain; charset=utf-8")


def _count_chart(points, name: str, color: str) -> dict:
    return {"unit": "count", "x": [d.isoformat() for d, _ in points],
            "series": [{"name": name, "color": color, "y": [n for _, n in points]}]}


@require_GET
@staff_required
def console(request):
    window = _window(request)
    if window is None:
        return _bad_window()
    data = selectors.console_get(window=window)
    usage = data.usage
    context = {
        "window": window,
        "window_links": [{"days": d, "active": d == window.days, "url": f"{reverse('staff_console')}?days={d}"}
                         for d in selectors.WINDOWS],
        "signups": data.signups, "keys": data.api_keys, "usage": usage,
        "signups_total": sum(n for _, n in data.signups), "keys_total": sum(n for _, n in data.api_keys),
        "events_total": sum(u.events for u in usage), "cost_total": sum(u.cost_pico for u in usage),
        "active_orgs": data.active_orgs, "active_days": selectors.ACTIVE_DAYS,
        "subs": data.subscriptions, "churn_days": selectors.CHURN_DAYS,
        "top_cost": data.top_cost, "top_events": data.top_events, "models": data.models, "providers": data.providers,
        "lag": data.lag, "lag_sample": selectors.LAG_SAMPLE, "backlog": data.backlog, "stuck": data.stuck,
        "failing_alerts": data.failing_alerts,
    }
    context["charts"] = {
        "signups": _count_chart(context["signups"], "signups", "#6366f1"),
        "keys": _count_chart(context["keys"], "API keys", "#14b8a6"),
        "events": _count_chart([(u.day, u.events) for u in usage], "events", "#0ea5e9"),
        # floats only for drawing; every figure on the page is the integer pico-USD
        "cost": {"x": [u.day.isoformat() for u in usage],
                 "series": [{"name": "cost", "color": "#10a37f",
                             "y": [float(pico_to_usd(u.cost_pico)) for u in usage]}]},
    }
    return render(request, "ops/console.html", context)


ORG_CSV_COLUMNS = ("org_slug", "org_name", "events", "cost_usd", "unpriced_calls")
_ORG_CSV_NUMERIC = frozenset({"events", "cost_usd", "unpriced_calls"})


class _Echo:
    def write(self, value):
        return value


@require_GET
@staff_required
def orgs_csv(request):
    """Every org with usage in the window, by cost; text cells neutralised against spreadsheet formulas."""
    window = _window(request)
    if window is None:
        return _bad_window()
    rows = selectors.orgs_usage(window=window, order=request.GET.get("order", "cost"), limit=None)
    writer = csv.writer(_Echo())

    def lines():
        yield writer.writerow(ORG_CSV_COLUMNS)
        for row in rows:
            yield writer.writerow(csv_safe_row(
                (row.slug, row.name, row.events, pico_to_usd(row.cost_pico), row.unpriced_calls),
                columns=ORG_CSV_COLUMNS, numeric=_ORG_CSV_NUMERIC))

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    stamp = window.end.strftime("%Y%m%d")
    response["Content-Disposition"] = f'attachment; filename="llmobserve-orgs-{window.days}d-{stamp}.csv"'
    return response


@require_POST
@staff_required
def batches_retry_view(request):
    """Retry the chosen stuck batches (or every quarantined one): a fresh attempt budget, queued after commit."""
    if request.POST.get("all_quarantined"):
        ids = [b.pk for b in selectors.stuck_batches(limit=10_000) if b.quarantined_at is not None]
    else:
        try:
            ids = [int(v) for v in request.POST.getlist("batch_id")]
        except ValueError:
            return HttpResponseBadRequest("batch_id must be integers.", content_type="text/plain; charset=utf-8")
    if not ids:
        messages.warning(request, "No batch selected.")
    else:
        count = batches_retry(batch_ids=ids)
        messages.success(request, f"{count} batch{'es' if count != 1 else ''} queued for another attempt.")
    return redirect(f"{reverse('staff_console')}#batches")
