from django.urls import path

from . import views
from .api import EventsIngestAliasView, EventsIngestView, OtlpTracesView

urlpatterns = [
    path("v1/events", EventsIngestView.as_view(), name="events-ingest"),
    path("v1/otlp/v1/traces", OtlpTracesView.as_view(), name="otlp-traces"),
    path("events", EventsIngestAliasView.as_view(), name="events-ingest-alias"),
    path("o/<slug:slug>/settings/prices/", views.settings_prices, name="settings_prices"),
    path("o/<slug:slug>/settings/prices/overrides/", views.price_override_save, name="price_override_create"),
    path("o/<slug:slug>/settings/prices/overrides/<int:price_id>/", views.price_override_save,
         name="price_override_update"),
    path("o/<slug:slug>/settings/prices/overrides/<int:price_id>/delete/", views.price_override_delete,
         name="price_override_delete"),
    path("o/<slug:slug>/settings/prices/discounts/", views.price_discount_save, name="price_discount_create"),
    path("o/<slug:slug>/settings/prices/discounts/<int:discount_id>/", views.price_discount_save,
         name="price_discount_update"),
    path("o/<slug:slug>/settings/prices/discounts/<int:discount_id>/delete/", views.price_discount_delete,
         name="price_discount_delete"),
    path("o/<slug:slug>/settings/prices/reprice/", views.prices_reprice, name="prices_reprice"),
]
