"""The house task rules: transient failures are retried (bounded), bad data is not, queuing never raises."""

import pytest
from celery import current_app
from django.db import OperationalError

from ingestion import services

pytestmark = pytest.mark.django_db


@pytest.fixture
def reprice_task():
    """Run eagerly as a worker would: a failure is a task state, and a retry runs again at once."""
    previous = current_app.conf.task_eager_propagates
    current_app.conf.task_eager_propagates = False
    current_app.loader.import_default_modules()
    yield current_app.tasks["ingestion.tasks.events_reprice"]
    current_app.conf.task_eager_propagates = previous


def _failing(monkeypatch, errors):
    """The re-pricing service fails with `errors` in turn, then works."""
    calls = []
    real = services.events_reprice_unpriced

    def flaky(**kwargs):
        calls.append(kwargs)
        if len(calls) <= len(errors):
            raise errors[len(calls) - 1]
        return real(**kwargs)

    monkeypatch.setattr(services, "events_reprice_unpriced", flaky)
    return calls


def test_a_transient_database_error_is_retried_until_the_task_succeeds(monkeypatch, reprice_task):
    calls = _failing(monkeypatch, [OperationalError("server closed the connection"), ConnectionError("reset")])
    result = reprice_task.apply()
    assert result.successful() and result.result == 0
    assert len(calls) == 3


def test_retries_are_bounded(monkeypatch, reprice_task):
    calls = _failing(monkeypatch, [OperationalError("down")] * 20)
    result = reprice_task.apply()
    assert result.failed() and isinstance(result.result, OperationalError)
    assert len(calls) == reprice_task.max_retries + 1 == 6


def test_a_bug_or_bad_data_is_not_retried_blindly(monkeypatch, reprice_task):
    calls = _failing(monkeypatch, [ValueError("bad row")])
    result = reprice_task.apply()
    assert result.failed() and len(calls) == 1


def test_enqueue_on_commit_waits_for_the_commit_and_a_dead_broker_never_raises(dead_broker, caplog,
                                                                               django_capture_on_commit_callbacks):
    from accounts.tasking import enqueue_on_commit

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        enqueue_on_commit("ingestion.tasks.events_reprice", 7)
    assert len(callbacks) == 1 and "could not queue" not in caplog.text
    callbacks[0]()  # the commit happened; the broker is unreachable
    assert "could not queue ingestion.tasks.events_reprice(7,)" in caplog.text
