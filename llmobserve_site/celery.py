import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmobserve_site.settings")

app = Celery("llmobserve_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
