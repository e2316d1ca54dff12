from django.urls import path

from . import views

urlpatterns = [
    path("o/<slug:slug>/billing/", views.billing_page, name="billing"),
    path("o/<slug:slug>/billing/checkout/", views.checkout, name="billing_checkout"),
    path("o/<slug:slug>/billing/portal/", views.portal, name="billing_portal"),
    path("o/<slug:slug>/billing/redeem/", views.redeem, name="billing_redeem"),
]
