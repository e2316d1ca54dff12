from django.urls import path

from . import views

urlpatterns = [
    path("o/<slug:slug>/", views.overview, name="overview"),
    path("o/<slug:slug>/welcome/", views.onboarding, name="onboarding"),
]
