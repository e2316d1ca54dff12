from django.urls import path

from . import api, views

urlpatterns = [
    path("v1/ai-instrument", api.AiInstrumentView.as_view(), name="ai_instrument"),
    path("api/ai-instrument", api.AiInstrumentAliasView.as_view(), name="ai_instrument_alias"),
    path("o/<slug:slug>/auto-instrument/", views.auto_instrument, name="auto_instrument"),
]
