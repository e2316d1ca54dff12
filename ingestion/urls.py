from django.urls import path

from .api import EventsIngestAliasView, EventsIngestView

urlpatterns = [
    path("v1/events", EventsIngestView.as_view(), name="events-ingest"),
    path("events", EventsIngestAliasView.as_view(), name="events-ingest-alias"),
]
