import os

import pytest
from hypothesis import HealthCheck, settings as hypothesis_settings

from accounts.services import api_key_create

from .factories import MembershipFactory, OrganizationFactory, UserFactory

# CI runs a capped profile so fuzzing stays bounded; `HYPOTHESIS_PROFILE=dev` explores more.
hypothesis_settings.register_profile("ci", max_examples=60, deadline=None,
                                     suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
hypothesis_settings.register_profile("dev", max_examples=300, deadline=None,
                                     suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def org(db):
    return OrganizationFactory()


@pytest.fixture
def other_org(db):
    return OrganizationFactory()


@pytest.fixture
def member(org):
    """A signed-up user who owns `org`."""
    return MembershipFactory(org=org).user


@pytest.fixture
def member_client(client, member):
    client.force_login(member)
    return client


@pytest.fixture
def ingest_key(org):
    return api_key_create(org=org, name="ingest", scope="ingest").raw_key


@pytest.fixture
def read_key(org):
    return api_key_create(org=org, name="read", scope="read").raw_key


@pytest.fixture
def other_read_key(other_org):
    return api_key_create(org=other_org, name="read", scope="read").raw_key


@pytest.fixture
def api(client):
    """A test client that sends an API key: api(key).get(url) / .post(url, data)."""

    class _Api:
        def __init__(self, key):
            self.headers = {"Authorization": f"Bearer {key}"} if key else {}

        def get(self, url, **params):
            return client.get(url, params, headers=self.headers)

        def post(self, url, data=None, content_type="application/json", **extra):
            headers = {**self.headers, **extra.pop("headers", {})}
            return client.post(url, data, content_type=content_type, headers=headers, **extra)

    return _Api
