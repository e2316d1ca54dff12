import os

from celery import Celery, Task

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
