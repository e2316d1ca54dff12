"""Onboarding and the new-key panel offer the OpenTelemetry option beside the two SDK lines."""

import re
from urllib.parse import unquote

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


def otlp_vars(page: str) -> dict:
    block = re.search(r'<pre id="otlp-snippet-[\w-]+"><code>(.*?)</code></pre>', page, re.S).group(1)
    return dict(line.split("=", 1) for line in block.strip().splitlines())


def test_onboarding_shows_the_two_otlp_variables_with_the_orgs_host_and_new_key(member_client, org, settings):
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "llmo.example.com"]
    page = member_client.get(reverse("onboarding", args=[org.slug])).content.decode()
    assert 'data-testid="otlp-snippet"' in page
    assert otlp_vars(page)["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://testserver/v1/otlp"

    member_client.post(reverse("onboarding", args=[org.slug]))
    page = member_client.get(reverse("onboarding", args=[org.slug]), HTTP_HOST="llmo.example.com").content.decode()
    raw = re.search(r'data-testid="new-api-key" id="new-key">(llmo_[^<]+)<', page).group(1)
    env = otlp_vars(page)
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://llmo.example.com/v1/otlp"
    # The header list is URL-encoded, as OTEL_EXPORTER_OTLP_HEADERS requires.
    assert env["OTEL_EXPORTER_OTLP_HEADERS"] == "Authorization=Bearer%20" + raw
    assert unquote(env["OTEL_EXPORTER_OTLP_HEADERS"].split("=", 1)[1]) == f"Bearer {raw}"
    assert f'api_key="{raw}"' in page  # the SDK lines are still there, with the same key
    assert 'href="/docs/opentelemetry/"' in page


def test_new_key_panel_shows_the_otlp_option(member_client, org):
    member_client.post(reverse("api_key_create", args=[org.slug]), {"name": "node", "scope": "ingest"})
    page = member_client.get(reverse("settings_keys", args=[org.slug])).content.decode()
    raw = re.search(r'data-testid="new-api-key" id="new-key">(llmo_[^<]+)<', page).group(1)
    assert otlp_vars(page)["OTEL_EXPORTER_OTLP_HEADERS"] == "Authorization=Bearer%20" + raw


def test_the_opentelemetry_guide_is_served(member_client):
    page = member_client.get("/docs/opentelemetry/").content.decode()
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" in page and "gen_ai.usage.input_tokens" in page
