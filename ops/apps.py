from django.apps import AppConfig


class OpsConfig(AppConfig):
    """Operating the service: GET /metrics (Prometheus) and the staff console at /staff/."""

    name = "ops"
    verbose_name = "Operations"
