from django.urls import path

from . import views

urlpatterns = [
    path("metrics", views.metrics, name="metrics"),
    path("staff/", views.console, name="staff_console"),
    path("staff/orgs.csv", views.orgs_csv, name="staff_orgs_csv"),
    path("staff/batches/retry", views.batches_retry_view, name="staff_batches_retry"),
]
