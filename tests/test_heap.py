"""A Celery pool process keeps what it was forked with out of the garbage collector's full collections (the web
worker's freeze is checked with its boot: tests/test_health.py)."""

from __future__ import annotations

from tests.processes import python_output


def test_worker_pool_process_freezes_what_it_was_forked_with():
    before, after = map(int, python_output(
        "import gc; from celery.signals import worker_process_init; from llmobserve_site.celery import app; "
        "before = gc.get_freeze_count(); worker_process_init.send(sender=None); print(before, gc.get_freeze_count())"
    ).split())
    assert before == 0
    assert after > 20_000
