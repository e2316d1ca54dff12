"""The web and worker processes keep the loaded application out of the garbage collector's full collections."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.processes import ROOT

# Each script runs in a fresh interpreter, as a server process starts: (what it loads, then prints the frozen count).
WEB = "import gc, llmobserve_site.wsgi; print(gc.get_freeze_count())"
WORKER = ("import gc; from celery.signals import worker_process_init; from llmobserve_site.celery import app; "
          "before = gc.get_freeze_count(); worker_process_init.send(sender=None); print(before, gc.get_freeze_count())")


def _run(script: str) -> list[int]:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "llmobserve_site.settings"}
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=120, check=True).stdout.split()
    return [int(n) for n in out]


def test_web_worker_freezes_the_loaded_application():
    """gunicorn imports the WSGI module in each worker: Django, the apps and the URLconf are frozen there."""
    (frozen,) = _run(WEB)
    assert frozen > 20_000


def test_worker_pool_process_freezes_what_it_was_forked_with():
    before, after = _run(WORKER)
    assert before == 0
    assert after > 20_000
