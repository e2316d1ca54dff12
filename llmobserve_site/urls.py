from django.contrib import admin
from django.urls import include, path

from . import api

urlpatterns = [
    path("health", api.health, name="health"),
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    path("", include("ingestion.urls")),
    path("", include("analytics.urls")),
    path("stripe/", include("djstripe.urls", namespace="djstripe")),
    path("", include("billing.urls")),
    path("", include("instrument.urls")),
    path("", include("accounts.urls")),
]
