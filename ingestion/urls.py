from django.urls import path

from .api import EventsIngestAliasView, EventsIngestView, OtlpTracesView

urlpatterns = [
    path("v1/events", EventsIngestView.as_view(), name="events-ingest"),
    path("v1/otlp/v1/traces", OtlpTracesView.as_view(), name="otlp-traces"),
    path("events", EventsIngestAliasView.as_view(), name="events-ingest-alias"),
]
