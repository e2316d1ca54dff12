import pytest
from django.conf import settings


@pytest.mark.django_db
def test_health_reports_database_and_broker(client):
    response = client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["database"] == "ok"
    expected = "eager" if settings.CELERY_TASK_ALWAYS_EAGER else "ok"
    assert body == {"status": "ok", "database": "ok", "broker": expected}


def test_static_files_served_without_collectstatic(client):
    response = client.get("/static/js/htmx.min.js")
    assert response.status_code == 200
