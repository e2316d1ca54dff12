"""Dashboard pages. Each view validates its query, calls selectors, and renders the page or, for htmx,
the one partial that changed (`page.html#panel`, DESIGN §6) — the same URL serves both."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlencode

from django.conf import settings
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils.cache import patch_vary_headers
from django.utils import timezone
from django.utils.encoding import escape_uri_path
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_http_methods

from accounts.decorators import org_member_required
from accounts.models import Membership
from accounts.selectors import org_api_keys
from accounts.services import api_key_create

from . import performance as perf_selectors, selectors
from .api import export_response
from .forecast import forecast_get
from .forms import ExportForm, RunFilterForm, WindowForm
from .windows import Window

PROVIDER_COLORS = {
    "openai": "#10a37f", "anthropic": "#d97757", "google": "#4285f4", "azure_openai": "#0078d4",
    "bedrock": "#ff9900", "mistral": "#fa520f", "cohere": "#39594d", "groq": "#f55036", "pinecone": "#6d28d9",
}
PALETTE = ["#6366f1", "#14b8a6", "#f43f5e", "#eab308", "#8b5cf6", "#0ea5e9", "#84cc16", "#64748b"]


def _render(request, template: str, partial: str | None, context: dict, *, status: int = 200) -> HttpResponse:
    """The full page, or only `template#partial` when htmx asks; caches must key on HX-Request."""
    name = f"{template}#{partial}" if request.htmx and partial else template
    context.setdefault("org", getattr(request, "org", None))
    response = render(request, name, context, status=status)
    patch_vary_headers(response, ["HX-Request"])
    return response


def _window_form(request) -> tuple[WindowForm, Window]:
    form = WindowForm(request.GET or None)
    return form, form.window_obj


def _window_links(request, window: Window, *, keep: tuple[str, ...] = ()) -> list[dict]:
    """The 24h/7d/30d switches, keeping the page's other filters."""
    base = {k: request.GET[k] for k in keep if request.GET.get(k)}
    links = []
    for name in ("24h", "7d", "30d"):
        links.append({"name": name, "active": window.name == name,
                      "url": f"{escape_uri_path(request.path)}?{urlencode({**base, 'window': name})}"})
    return links


def _window_query(window: Window) -> dict[str, str]:
    if window.name == "custom":
        return {"since": window.start.strftime("%Y-%m-%dT%H:00Z"), "until": window.end.strftime("%Y-%m-%dT%H:00Z")}
    return {"window": window.name}


def _chart(buckets: list[dict]) -> dict:
    """Plotly-ready stacked series (one per provider); floats only for drawing, never for money maths."""
    totals: dict[str, float] = {}
    for bucket in buckets:
        for key, value in bucket["values"].items():
            totals[key] = totals.get(key, 0.0) + float(value)
    keys = sorted(totals, key=lambda k: -totals[k])
    series = []
    for i, key in enumerate(keys):
        series.append({"name": key, "color": PROVIDER_COLORS.get(key, PALETTE[i % len(PALETTE)]),
                       "y": [float(b["values"].get(key, 0)) for b in buckets]})
    return {"x": [b["t"].replace("T", " ").replace(":00:00Z", ":00") for b in buckets], "series": series}


def _interval(window: Window) -> str:
    return "hour" if window.hours <= 48 else "day"


def _providers(models: list[selectors.ModelRow]) -> list[dict]:
    by: dict[str, dict] = {}
    for row in models:
        p = by.setdefault(row.provider or "(none)", {"provider": row.provider or "(none)", "cost_pico": 0,
                                                    "calls": 0, "unpriced_calls": 0})
        p["cost_pico"] += row.cost_pico
        p["calls"] += row.calls
        p["unpriced_calls"] += row.unpriced_calls
    total = sum(p["cost_pico"] for p in by.values())
    for p in by.values():
        p["share"] = p["cost_pico"] / total if total else 0.0
    return sorted(by.values(), key=lambda p: (-p["cost_pico"], -p["calls"]))


# --- overview ------------------------------------------------------------------------------------

@org_member_required
def overview(request):
    org = request.org
    form, window = _window_form(request)
    data = selectors.overview_get(org=org, window=window, interval=_interval(window))
    summary, agents, models, customers, buckets = (data.summary, data.agents, data.models, data.customers,
                                                   data.timeseries)
    untracked = next((r for r in agents if r.key is None), None)
    context = {
        "nav": "overview", "form": form, "window": window, "window_links": _window_links(request, window),
        "summary": summary, "avg_cost_pico": summary.cost_pico // summary.calls if summary.calls else None,
        "agents": agents, "untracked": untracked, "models": models[:12], "providers": _providers(models),
        "chart": _chart(buckets), "customers": customers, "window_query": urlencode(_window_query(window)),
        "has_events": summary.calls > 0 or selectors.org_has_events(org=org),
        # the month (not the window): on the full page only, the window switch re-renders the panels alone
        "forecast": None if request.htmx else forecast_get(org=org, now=timezone.now()),
    }
    return _render(request, "analytics/overview.html", "panels", context)


# --- performance ---------------------------------------------------------------------------------

def _line_chart(x: list[str], series: dict[str, list], unit: str) -> dict:
    """Plotly-ready lines (latency in ms, error rate in %); None values are gaps."""
    return {"kind": "line", "unit": unit, "x": [t.replace("T", " ").replace(":00:00Z", ":00") for t in x],
            "series": [{"name": name, "color": PALETTE[i % len(PALETTE)], "y": ys}
                       for i, (name, ys) in enumerate(series.items())]}


@org_member_required
def performance(request):
    org = request.org
    form, window = _window_form(request)
    data = perf_selectors.performance_get(org=org, window=window, interval=_interval(window))
    x = [label for label, _ in data.buckets]
    rows = [row for _, row in data.buckets]
    latency = {f"p{p}": [round(v, 1) if (v := row.latency(p)) is not None else None for row in rows]
               for p in (50, 95, 99)}
    errors = {"error rate": [round(row.error_rate * 100, 2) if row.calls else None for row in rows]}
    context = {
        "nav": "performance", "form": form, "window": window, "window_links": _window_links(request, window),
        "window_query": urlencode(_window_query(window)), "totals": data.totals, "models": data.models,
        "sections": data.sections, "failing_sections": data.failing_sections,
        "failing_endpoints": data.failing_endpoints, "latency_chart": _line_chart(x, latency, "ms"),
        "model_chart": _line_chart(x, data.model_p95, "ms"), "error_chart": _line_chart(x, errors, "%"),
        "has_ttft": any(e.row.ttft_calls for e in data.models),
    }
    return _render(request, "analytics/performance.html", "panels", context)


# --- runs ----------------------------------------------------------------------------------------

MAX_TIMELINE_ROWS = 500  # a runaway agent loop can make thousands of calls; the tree still counts them all
RUN_FILTER_KEYS = ("window", "since", "until", "agent", "section", "customer_id", "status", "model", "untracked")


def _run_filter_form(request, org, data) -> tuple[RunFilterForm, Window]:
    window = WindowForm(data or None).window_obj
    agents = [(r.key, r.label) for r in selectors.cost_breakdown(org=org, by="agent", window=window) if r.key]
    models = [r.key for r in selectors.cost_breakdown(org=org, by="model", window=window) if r.key]
    form = RunFilterForm(data or None, agents=agents, models=models)
    return form, form.window_obj


@org_member_required
def runs(request):
    org = request.org
    form, window = _run_filter_form(request, org, request.GET)
    cursor = request.GET.get("cursor", "")
    run_rows, next_cursor = selectors.runs_list(org=org, window=window, filters=form.filters, cursor=cursor,
                                                limit=50)
    params = {k: request.GET[k] for k in RUN_FILTER_KEYS if request.GET.get(k)}
    next_url = (f"{escape_uri_path(request.path)}?{urlencode({**params, 'cursor': next_cursor})}" if next_cursor
                else None)
    context = {"nav": "runs", "form": form, "window": window, "runs": run_rows, "next_url": next_url,
               "filtered": any(params.get(k) for k in ("agent", "section", "customer_id", "status", "model",
                                                       "untracked"))}
    partial = "rows" if cursor else "runs-panel"
    return _render(request, "analytics/runs.html", partial, context)


@org_member_required
def run_detail(request, run_id: str):
    org = request.org
    run = selectors.run_get(org=org, run_id=run_id)
    events = selectors.run_events(org=org, run_id=run_id)
    timeline = selectors.run_timeline(run=run, events=events,
                                      price_labels=selectors.run_price_labels(org=org, events=events))
    context = {
        "nav": "runs", "run": run, "events": events, "tree": selectors.section_tree(events),
        "past_retention": selectors.run_past_retention(org=org, run=run), "retention_days": org.retention_days,
        "timeline": timeline[:MAX_TIMELINE_ROWS], "hidden_calls": max(len(timeline) - MAX_TIMELINE_ROWS, 0),
        "duration_ms": (run.ended_at - run.started_at).total_seconds() * 1000,
        "cached_tokens": sum(e.cached_input_tokens for e in events),
        "reasoning_tokens": sum(e.reasoning_tokens for e in events),
        "perf": perf_selectors.run_perf(events=events),
    }
    return _render(request, "analytics/run_detail.html", None, context)


# --- customers -----------------------------------------------------------------------------------

@org_member_required
def customers(request):
    org = request.org
    form, window = _window_form(request)
    rows = selectors.customers_trend(org=org, window=window)
    context = {"nav": "customers", "form": form, "window": window, "rows": rows,
               "window_links": _window_links(request, window), "window_query": urlencode(_window_query(window))}
    return _render(request, "analytics/customers.html", "panel", context)


@org_member_required
def customer_detail(request, customer_id: str):
    org = request.org
    if not selectors.customer_has_events(org=org, customer_id=customer_id):
        raise Http404("No such customer")
    form, window = _window_form(request)
    data = selectors.overview_get(org=org, window=window, interval=_interval(window), customer_id=customer_id)
    summary, agents, models, buckets = data.summary, data.agents, data.models, data.timeseries
    run_rows, next_cursor = selectors.runs_list(org=org, window=window,
                                                filters=selectors.RunFilters(customer_id=customer_id), limit=20)
    runs_url = f"/o/{org.slug}/runs/?{urlencode({**_window_query(window), 'customer_id': customer_id})}"
    context = {"nav": "customers", "form": form, "window": window, "customer_id": customer_id,
               "window_links": _window_links(request, window), "summary": summary,
               "avg_cost_pico": summary.cost_pico // summary.calls if summary.calls else None,
               "agents": agents, "models": models, "chart": _chart(buckets), "runs": run_rows,
               "more_runs": bool(next_cursor), "runs_url": runs_url}
    return _render(request, "analytics/customer_detail.html", "panel", context)


# --- export --------------------------------------------------------------------------------------

@org_member_required
def export(request):
    org = request.org
    data = request.GET if request.GET else None
    form_data = data.copy() if data else None
    window = WindowForm(data).window_obj
    agents = [(r.key, r.label) for r in selectors.cost_breakdown(org=org, by="agent", window=window) if r.key]
    models = [r.key for r in selectors.cost_breakdown(org=org, by="model", window=window) if r.key]
    form = ExportForm(form_data, agents=agents, models=models, initial={"format": "csv", "window": "24h"})
    if data and "format" in data and form.is_valid():
        return export_response(org=org, window=form.window_obj, filters=form.filters,
                               fmt=form.cleaned_data["format"])
    summary = selectors.cost_summary(org=org, window=window)
    return _render(request, "analytics/export.html", None,
                   {"nav": "export", "form": form, "window": window, "summary": summary})


# --- onboarding ----------------------------------------------------------------------------------

@org_member_required(write_roles=Membership.MANAGER_ROLES)
@require_http_methods(["GET", "POST"])
def onboarding(request):
    org = request.org
    if request.method == "POST":
        created = api_key_create(org=org, name="first key", scope="ingest", created_by=request.user)
        request.session["new_api_key"] = {"raw": created.raw_key, "id": created.api_key.pk}
        return redirect("onboarding", slug=org.slug)
    has_events = selectors.org_has_events(org=org)
    if request.htmx:
        if has_events:
            response = HttpResponse(status=204)
            response["HX-Redirect"] = f"/o/{org.slug}/"
            return response
        return _render(request, "analytics/onboarding.html", "waiting", {})
    new_key = request.session.pop("new_api_key", None)
    keys = list(org_api_keys(org=org).filter(revoked_at__isnull=True)[:5])
    context = {"nav": "", "has_events": has_events, "new_key": new_key, "keys": keys,
               "collector_url": request.build_absolute_uri("/").rstrip("/")}
    return _render(request, "analytics/onboarding.html", None, context)


# --- docs ----------------------------------------------------------------------------------------

_DOC_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def docs_page(request, name: str):
    """Render `docs/<name>.md` (our own, trusted files) — the Untracked row's CTAs link here."""
    if not _DOC_NAME.match(name):
        raise Http404
    docs_dir = Path(settings.BASE_DIR) / "docs"
    path = next((p for p in (docs_dir / f"{name}.md", docs_dir / f"{name.replace('-', '_')}.md") if p.is_file()),
                None)
    if path is None:
        raise Http404("No such page")
    import markdown

    text = path.read_text(encoding="utf-8")
    html = markdown.markdown(text, extensions=["fenced_code", "tables", "toc", "sane_lists"])
    title = next((line.lstrip("# ").strip() for line in text.splitlines() if line.startswith("# ")), name)
    return render(request, "analytics/docs_page.html", {"title": title, "body": mark_safe(html), "org": None})
