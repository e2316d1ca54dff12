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


@pytest.fixture(autouse=True)
def _clear_cache():
    """Throttle counters live in the cache (Redis in CI): start clean. The process's price book too: a
    transactional test's flush starts the price-table version over, so a book loaded before it could match
    the next test's version with other rows."""
    from django.core.cache import cache

    from ingestion import pricing

    cache.clear()
    pricing._book = None  # this process's copy only (no database write: not every test has the database)
    yield


def make_price(**fields):
    """A price row, written through the price service (validated; the price books reload)."""
    from ingestion.price_services import price_save

    fields.setdefault("match_kind", "exact")
    return price_save(**fields)


@pytest.fixture
def prices(db):
    """A small, known price table (USD per 1M tokens)."""
    return {
        "gpt-4o": make_price(provider="openai", model_match="gpt-4o", input_mtok="2.5", output_mtok="10",
                             cached_input_mtok="1.25"),
        "gpt-4o-mini": make_price(provider="openai", match_kind="prefix", model_match="gpt-4o-mini",
                                  input_mtok="0.15", output_mtok="0.6", cached_input_mtok="0.075"),
        "gpt-4o-prefix": make_price(provider="openai", match_kind="prefix", model_match="gpt-4o",
                                    input_mtok="2.5", output_mtok="10", cached_input_mtok="1.25"),
        "claude": make_price(provider="anthropic", match_kind="prefix", model_match="claude-sonnet-4",
                             input_mtok="3", output_mtok="15", cached_input_mtok="0.3", cache_write_mtok="3.75",
                             tiers=[{"above": 200000, "input_mtok": "6", "output_mtok": "22.5",
                                     "cached_input_mtok": "0.6", "cache_write_mtok": "7.5"}]),
    }


@pytest.fixture
def post_events(client, django_capture_on_commit_callbacks):
    """POST a batch to /v1/events with a key; runs the on-commit processing (eager); returns the response."""
    import gzip as _gzip
    import json as _json

    def _post(key, events, *, gzip=False, url="/v1/events", **headers):
        body = events if isinstance(events, (bytes, str)) else _json.dumps(events)
        if isinstance(body, str):
            body = body.encode()
        if gzip:
            body = _gzip.compress(body)
            headers["Content-Encoding"] = "gzip"
        if key:
            headers["Authorization"] = f"Bearer {key}"
        with django_capture_on_commit_callbacks(execute=True):
            return client.generic("POST", url, body,
                                  content_type=headers.pop("content_type", "application/json"), headers=headers)

    return _post


@pytest.fixture(autouse=True, scope="session")
def _tasks_registered(django_db_setup, django_db_blocker):
    """Import every app's tasks once, up front: Celery's first import re-applies the logging config (and runs
    Django's checks), which would otherwise drop a test's log capture the first time a task is queued by name."""
    from llmobserve_site.celery import app

    with django_db_blocker.unblock():
        app.loader.import_default_modules()


@pytest.fixture(autouse=True)
def _eager_tasks(request):
    """Tasks run in-process in tests, even with REDIS_URL set; `@pytest.mark.real_worker` tests opt out."""
    from llmobserve_site.celery import app

    if request.node.get_closest_marker("real_worker"):
        yield
        return
    previous = app.conf.task_always_eager, app.conf.task_eager_propagates
    app.conf.task_always_eager, app.conf.task_eager_propagates = True, True
    yield
    app.conf.task_always_eager, app.conf.task_eager_propagates = previous


@pytest.fixture
def dead_broker():
    """Point the Celery app at a port nothing listens on, with eager mode off: a real connection failure."""
    from llmobserve_site.celery import app

    saved = (app.conf.broker_url, app.conf.task_always_eager)
    app.conf.broker_url, app.conf.task_always_eager = "redis://127.0.0.1:1/0", False
    app._pool = None
    app.amqp._producer_pool = None
    yield
    app.conf.broker_url, app.conf.task_always_eager = saved
    app._pool = None
    app.amqp._producer_pool = None
