from django.urls import path

from .api import EventsIngestView

urlpatterns = [
    path("v1/events", EventsIngestView.as_view(), name="events-ingest"),
    path("events", EventsIngestView.as_view(), name="events-ingest-alias"),
]
