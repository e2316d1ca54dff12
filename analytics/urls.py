import re
from urllib.parse import unquote

from csp.decorators import csp_replace
from django.urls import include, path, register_converter
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from . import api, views


class ApiLabelConverter:
    """Any label the wire format stores, `/` included, for the read API: the client percent-encodes it once
    (`quote(run_id, safe="")`) and the server decodes it once, as for any URL."""

    regex = r"[\s\S]+"  # newlines too: rows stored before labels were checked must stay reachable

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


_DOT_SEGMENT = re.compile(r"(?<![^/])\.{1,2}(?![^/])")


class PageLabelConverter(ApiLabelConverter):
    """A label in a dashboard link. Browsers resolve `.` and `..` path segments (`%2E` too) before sending, so a
    run called `..` or `a/../b` would link elsewhere: `to_url` escapes `%` and the dots of such segments, and
    `reverse()` percent-encodes the result once more (`%252E`), which no browser touches. The server decodes the
    path once as usual and `to_python` once more. Every other character, `/` included, reads as itself."""

    def to_python(self, value: str) -> str:
        return unquote(value)

    def to_url(self, value: str) -> str:
        escaped = value.replace("%", "%25")
        return _DOT_SEGMENT.sub(lambda m: "%2E" * len(m.group()), escaped)


register_converter(ApiLabelConverter, "apilabel")
register_converter(PageLabelConverter, "label")

urlpatterns = [
    path("v1/runs", api.RunsView.as_view(), name="api-runs"),
    path("v1/runs/<apilabel:run_id>", api.RunDetailView.as_view(), name="api-run"),
    path("v1/stats/summary", api.SummaryView.as_view(), name="api-summary"),
    path("v1/stats/breakdown", api.BreakdownView.as_view(), name="api-breakdown"),
    path("v1/stats/timeseries", api.TimeseriesView.as_view(), name="api-timeseries"),
    path("v1/stats/latency", api.LatencyView.as_view(), name="api-latency"),
    path("v1/stats/errors", api.ErrorsView.as_view(), name="api-errors"),
    path("v1/stats/forecast", api.ForecastView.as_view(), name="api-forecast"),
    path("v1/export", api.ExportView.as_view(), name="api-export"),
    path("v1/prices", api.PricesView.as_view(), name="api-prices"),
    path("v1/schema", SpectacularAPIView.as_view(authentication_classes=[], permission_classes=[]), name="api-schema"),
    # The split view serves Swagger UI's init script as a file (no inline script, CSP); its page keeps one
    # static inline <style> of drf-spectacular's template, allowed on this page only.
    path("v1/docs", csp_replace({"style-src-elem": ["'self'", "'unsafe-inline'"]})(
        SpectacularSwaggerSplitView.as_view(url_name="api-schema", authentication_classes=[], permission_classes=[])),
        name="api-docs"),
    path("", include("analytics.insights.urls")),
    path("o/<slug:slug>/", views.overview, name="overview"),
    path("o/<slug:slug>/welcome/", views.onboarding, name="onboarding"),
    path("o/<slug:slug>/performance/", views.performance, name="performance"),
    path("o/<slug:slug>/runs/", views.runs, name="runs"),
    path("o/<slug:slug>/runs/<label:run_id>/", views.run_detail, name="run_detail"),
    path("o/<slug:slug>/customers/", views.customers, name="customers"),
    path("o/<slug:slug>/customers/<label:customer_id>/", views.customer_detail, name="customer_detail"),
    path("o/<slug:slug>/export/", views.export, name="export"),
    path("docs/<slug:name>/", views.docs_page, name="docs"),
]
