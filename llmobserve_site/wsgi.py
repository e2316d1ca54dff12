import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmobserve_site.settings")
application = get_wsgi_application()

# Chunked request bodies (Node's OTLP exporters) made readable under gunicorn and runserver alike.
from ingestion.chunked import ChunkedBodyMiddleware  # noqa: E402 - needs the settings configured above

application = ChunkedBodyMiddleware(application)
