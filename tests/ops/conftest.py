"""Fixtures for /metrics and the staff console: a scraper that parses the exposition, a staff client."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.factories import UserFactory


SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "summary": ("_count", "_sum")}


def parse(text: str) -> tuple[dict[tuple[str, frozenset], float], set[str]]:
    """({(sample name, frozenset of label items): value}, every series name declared) of an exposition.

    A labelled metric that has no child yet is declared (# TYPE) with no sample: its names count as exposed.
    """
    samples, names = {}, set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        names.update(family.name + suffix for suffix in SUFFIXES.get(family.type, ()))
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
            names.add(sample.name)
    return samples, names


class Scrape:
    def __init__(self, parsed):
        self.samples, self.declared = parsed

    def value(self, name: str, **labels) -> float:
        return self.samples.get((name, frozenset((k, str(v)) for k, v in labels.items())), 0.0)

    def names(self) -> set[str]:
        return set(self.declared)


@pytest.fixture
def staff_user(db):
    return UserFactory(is_staff=True)


@pytest.fixture
def staff_client(client, staff_user):
    client.force_login(staff_user)
    return client


@pytest.fixture
def scrape(client, settings):
    """GET /metrics with the bearer token, parsed."""
    settings.LLMOBSERVE_METRICS_TOKEN = "metrics-secret-token"

    def _scrape() -> Scrape:
        response = client.get("/metrics", headers={"Authorization": "Bearer metrics-secret-token"})
        assert response.status_code == 200, response.content
        assert response["Content-Type"].startswith("text/plain; version=0.0.4")
        return Scrape(parse(response.content.decode()))

    return _scrape
