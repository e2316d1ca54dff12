import os

from celery import Celery, Task
from celery.signals import worker_init, worker_process_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmobserve_site.settings")


class FailFastTask(Task):
    """A task whose `.delay()` fails at once for a few seconds after the broker failed (see failopen.py).

    Every caller already treats a failed enqueue as "pending, the sweeper will process it"; this only
    keeps a dead or hung broker from costing each request its connect/read timeouts.
    """

    def apply_async(self, *args, **kwargs):
        if self.app.conf.task_always_eager:
            return super().apply_async(*args, **kwargs)
        from kombu.exceptions import OperationalError

        from .failopen import REDIS_ERRORS, broker_circuit

        breaker = broker_circuit(self.app.conf.broker_url or "")
        if breaker.is_open():
            raise OperationalError(f"{breaker.name} failed less than {breaker.retry_seconds():.0f} s ago; "
                                   "not trying again yet")
        try:
            result = super().apply_async(*args, **kwargs)
        except (OperationalError, *REDIS_ERRORS) as exc:
            breaker.failed(exc)
            raise
        breaker.succeeded()
        return result


app = Celery("llmobserve_site", task_cls=FailFastTask)
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_init.connect
def price_book_warm(**_kwargs) -> None:
    """The worker loads the price table once, in its main process before the pool forks (~0.3 s for the ~4,000
    registry rows): every pool process starts with it in memory instead of loading it inside its first batch.
    The connection used is closed before the fork — a child must never share its parent's socket. A failure
    (the database down) is only logged: each process then loads the table with its first batch."""
    import logging

    from django.db import connections

    try:
        from ingestion.pricing import price_book_get

        price_book_get()
    except Exception:  # noqa: BLE001 - never keep a worker from starting
        logging.getLogger(__name__).warning("price table not loaded at worker start", exc_info=True)
    finally:
        connections.close_all()


@worker_process_init.connect
def heap_freeze(**_kwargs) -> None:
    """Each pool process, once forked with the loaded application and price table, keeps them out of the garbage
    collector's full collections (llmobserve_site.heap)."""
    from .heap import app_heap_freeze

    app_heap_freeze()
