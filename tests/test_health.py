import pytest
from django.conf import settings


@pytest.mark.django_db
def test_health_reports_database_and_broker(client):
    response = client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["database"] == "ok"
    expected = "eager" if settings.CELERY_TASK_ALWAYS_EAGER else "ok"
    assert body == {"status": "ok", "database": "ok", "broker": expected,
                    "batches": {"pending": 0, "quarantined": 0}}


def test_static_files_served_without_collectstatic(client):
    response = client.get("/static/js/htmx.min.js")
    assert response.status_code == 200


def test_check_deploy_is_clean_with_https_and_a_real_key():
    import os
    import secrets
    import subprocess
    import sys
    from pathlib import Path

    env = {**os.environ, "DJANGO_DEBUG": "0", "LLMOBSERVE_HTTPS": "1", "SECRET_KEY": secrets.token_urlsafe(64),
           "ALLOWED_HOSTS": "llmobserve.example.com"}
    env.pop("PYTEST_VERSION", None)
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)  # set for the Playwright tests only
    result = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                            cwd=Path(__file__).resolve().parents[1], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_the_wsgi_application_is_ready_when_imported_and_leaves_the_ai_sdk_unloaded():
    """A server worker imports the URLconf and every view while it boots, so its first request does not wait
    seconds for them; the anthropic SDK (seconds of imports) loads on the auto-instrument engine's first call.
    What it loaded is frozen for the garbage collector (llmobserve_site.heap)."""
    from tests.processes import python_output

    out = python_output("import gc, sys; import llmobserve_site.wsgi; from django.urls import get_resolver; "
                        "print('urlconf_module' in get_resolver().__dict__, 'anthropic' in sys.modules, "
                        "'instrument.api' in sys.modules, gc.get_freeze_count())").split()
    assert out[:3] == ["True", "False", "True"]
    assert int(out[3]) > 20_000
