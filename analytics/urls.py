from django.urls import include, path
from csp.decorators import csp_replace
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from . import api, views

urlpatterns = [
    path("v1/runs", api.RunsView.as_view(), name="api-runs"),
    path("v1/runs/<str:run_id>", api.RunDetailView.as_view(), name="api-run"),
    path("v1/stats/summary", api.SummaryView.as_view(), name="api-summary"),
    path("v1/stats/breakdown", api.BreakdownView.as_view(), name="api-breakdown"),
    path("v1/stats/timeseries", api.TimeseriesView.as_view(), name="api-timeseries"),
    path("v1/export", api.ExportView.as_view(), name="api-export"),
    path("v1/schema", SpectacularAPIView.as_view(authentication_classes=[], permission_classes=[]), name="api-schema"),
    # The split view serves Swagger UI's init script as a file (no inline script, CSP); its page keeps one
    # static inline <style> of drf-spectacular's template, allowed on this page only.
    path("v1/docs", csp_replace({"style-src-elem": ["'self'", "'unsafe-inline'"]})(
        SpectacularSwaggerSplitView.as_view(url_name="api-schema", authentication_classes=[], permission_classes=[])),
        name="api-docs"),
    path("", include("analytics.insights_urls")),
    path("o/<slug:slug>/", views.overview, name="overview"),
    path("o/<slug:slug>/welcome/", views.onboarding, name="onboarding"),
    path("o/<slug:slug>/runs/", views.runs, name="runs"),
    path("o/<slug:slug>/runs/<path:run_id>/", views.run_detail, name="run_detail"),
    path("o/<slug:slug>/customers/", views.customers, name="customers"),
    path("o/<slug:slug>/customers/<path:customer_id>/", views.customer_detail, name="customer_detail"),
    path("o/<slug:slug>/export/", views.export, name="export"),
    path("docs/<slug:name>/", views.docs_page, name="docs"),
]
