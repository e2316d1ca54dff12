import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmobserve_site.settings")
application = get_wsgi_application()

# Import the URLconf (and every view module) now, while the server boots the worker, not in its first
# request: that request used to wait seconds for the imports (docs/operations.md).
from django.urls import get_resolver  # noqa: E402 - needs the settings configured above

get_resolver().url_patterns

# Chunked request bodies (Node's OTLP exporters) made readable under gunicorn and runserver alike.
from ingestion.chunked import ChunkedBodyMiddleware  # noqa: E402 - needs the settings configured above

application = ChunkedBodyMiddleware(application)

# The loaded application leaves the garbage collector's full collections (llmobserve_site.heap).
from llmobserve_site.heap import app_heap_freeze  # noqa: E402

app_heap_freeze()
