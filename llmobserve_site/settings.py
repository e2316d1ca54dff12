"""LLMObserve settings: one module, configured by environment variables.

Defaults give the embedded mode (SQLite, eager Celery, console email) so
`make demo` and `make test` work on a fresh machine with no configuration.
"""

import os
import secrets
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def _secret_key() -> str:
    """SECRET_KEY from the environment, else one generated once into a git-ignored file."""
    key = os.environ.get("SECRET_KEY")
    if key:
        return key
    path = BASE_DIR / ".secret_key"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        key = secrets.token_urlsafe(64)
        path.write_text(key)
        path.chmod(0o600)
        return key


def _email_settings(url: str) -> dict:
    """EMAIL_URL: console:// | locmem:// | dummy:// | smtp://user:pass@host:port[?tls=1|ssl=1]."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    backends = {
        "console": "django.core.mail.backends.console.EmailBackend",
        "locmem": "django.core.mail.backends.locmem.EmailBackend",
        "dummy": "django.core.mail.backends.dummy.EmailBackend",
    }
    if scheme in backends:
        return {"EMAIL_BACKEND": backends[scheme]}
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    return {
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "EMAIL_HOST": parts.hostname or "localhost",
        "EMAIL_PORT": parts.port or (465 if scheme == "smtps" else 587 if scheme == "smtp+tls" else 25),
        "EMAIL_HOST_USER": unquote(parts.username or ""),
        "EMAIL_HOST_PASSWORD": unquote(parts.password or ""),
        "EMAIL_USE_TLS": scheme == "smtp+tls" or query.get("tls") == "1",
        "EMAIL_USE_SSL": scheme == "smtps" or query.get("ssl") == "1",
    }


# --- Core -------------------------------------------------------------------
SECRET_KEY = _secret_key()
DEBUG = env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost")
# Tests use the "testserver" host of Django's client.
if os.environ.get("PYTEST_VERSION") or env_bool("LLMOBSERVE_TESTING"):
    ALLOWED_HOSTS.append("testserver")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "template_partials",
    "allauth",
    "allauth.account",
    "csp",
    "accounts",
    "ingestion",
    "analytics",
    "billing",
    "instrument",
    "ops",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "llmobserve_site.middleware.IngestFastPathMiddleware",  # /v1/events, /v1/otlp/…: the rest is for browsers
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "llmobserve_site.middleware.NoStoreForSignedInMiddleware",
]

ROOT_URLCONF = "llmobserve_site.urls"
WSGI_APPLICATION = "llmobserve_site.wsgi.application"
ASGI_APPLICATION = "llmobserve_site.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database ---------------------------------------------------------------
DATABASE_URL = os.environ.get("DATABASE_URL") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}"
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60, conn_health_checks=True)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL + a busy timeout let the web process and an eager task share the file.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
    }
    DATABASES["default"]["CONN_MAX_AGE"] = 0
elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Dashboard and API queries are short index walks: on a few cores, starting parallel workers
    # costs more than the query (runs filtered by agent at 1M events: 11 ms → 2 ms). Raise it for
    # big analytical boxes with LLMOBSERVE_PG_PARALLEL_WORKERS.
    _parallel = int(os.environ.get("LLMOBSERVE_PG_PARALLEL_WORKERS", "0"))
    DATABASES["default"].setdefault("OPTIONS", {})["options"] = f"-c max_parallel_workers_per_gather={_parallel}"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# A file-backed SQLite test database, so `--reuse-db` skips dj-stripe's slow migrations locally.
_default_test_db = str(BASE_DIR / "test_db.sqlite3") if DATABASES["default"]["ENGINE"].endswith("sqlite3") else None
DATABASES["default"]["TEST"] = {"NAME": os.environ.get("LLMOBSERVE_TEST_DB_NAME") or _default_test_db}

# --- Cache, Celery ----------------------------------------------------------
REDIS_URL = os.environ.get("REDIS_URL", "")
# Redis down must never fail a request (llmobserve_site/failopen.py): cache calls give up after these short
# timeouts and, for LLMOBSERVE_REDIS_RETRY_SECONDS after an error, go to a per-process memory cache without
# trying Redis (throttles keep their rate per process); `.delay()` likewise skips a broker that just failed.
LLMOBSERVE_REDIS_RETRY_SECONDS = float(os.environ.get("LLMOBSERVE_REDIS_RETRY_SECONDS", "5"))
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "llmobserve_site.failopen.FailOpenRedisCache", "LOCATION": REDIS_URL,
                          "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5}}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = None
# Without Redis the tasks run in-process, right after the request's commit.
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_TIME_LIMIT = 300
CELERY_TASK_SOFT_TIME_LIMIT = 240
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A dead broker must not hang a request: fail fast, the sweeper catches up.
# socket_timeout: a hung Redis (accepting connections, never answering) must not hang the publish either.
CELERY_BROKER_TRANSPORT_OPTIONS = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2,
                                   "socket_connect_timeout": 1, "socket_timeout": 2}
CELERY_TASK_PUBLISH_RETRY = False
# Keep the worker's database connection between tasks (Celery closes it after every task by
# default): reconnecting and re-creating the ingest temp tables cost more than the work itself.
CELERY_DB_REUSE_MAX = 500
CELERY_BEAT_SCHEDULE = {
    "ingestion-sweep-pending": {"task": "ingestion.tasks.batches_sweep", "schedule": 60.0},
    "ingestion-otlp-resolve": {"task": "ingestion.tasks.otlp_resolve", "schedule": 10.0},
}
CELERY_TIMEZONE = "UTC"

# --- Auth -------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "home"
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_UNIQUE_EMAIL = True
# Mandatory verification is what makes allauth's enumeration prevention work at signup: a registered
# email gets the same "check your inbox" answer as a new one (and a mail saying it has an account).
# With "optional" the signup form says "already registered". The adapter counts operator-made
# accounts and invitation signups as verified (accounts/adapters.py).
ACCOUNT_EMAIL_VERIFICATION = os.environ.get("ACCOUNT_EMAIL_VERIFICATION", "mandatory")
ACCOUNT_PREVENT_ENUMERATION = True
ACCOUNT_ADAPTER = "accounts.adapters.AccountAdapter"
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = True
ACCOUNT_EMAIL_SUBJECT_PREFIX = "[LLMObserve] "
if os.environ.get("PYTEST_VERSION"):
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast hashing in tests only

# --- Email ------------------------------------------------------------------
EMAIL_URL = os.environ.get("EMAIL_URL", "console://")
globals().update(_email_settings(EMAIL_URL))
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "LLMObserve <noreply@llmobserve.local>")

# --- HTTPS (LLMOBSERVE_HTTPS=1 behind TLS) ----------------------------------
LLMOBSERVE_HTTPS = env_bool("LLMOBSERVE_HTTPS", False)
if LLMOBSERVE_HTTPS:
    SECURE_SSL_REDIRECT = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_REDIRECT_EXEMPT = [r"^health$"]
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = 31536000
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
SECURE_CONTENT_TYPE_NOSNIFF = True
# Content-Security-Policy on every response (django-csp): scripts only from our own static files,
# never inline, so injected markup cannot run script. Data for charts travels in
# <script type="application/json"> blocks (json_script), which are not executed. Styles: our own
# stylesheet plus inline style *attributes* (share bars' widths, plotly's SVG); <style> elements
# stay forbidden except plotly's (see style-src-elem). /v1/docs (Swagger UI) widens style-src-elem
# for its template's one static <style> (analytics/urls.py). Django admin needs nothing more.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],  # only browsers without style-src-elem/-attr fall back to this
        # The vendored plotly.js adds two <style> elements: an empty one it fills through the CSSOM
        # (the empty string's hash) and its bundled maplibre CSS (v4.1.1's hash; the browser tests
        # report a CSP violation with the new hash when plotly.min.js changes).
        "style-src-elem": ["'self'", "'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='",
                           "'sha256-ji27qzEtxXZW+7dun6UwjHXJ18e6WAin1VvNtkzIE/o='"],
        "style-src-attr": ["'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "frame-ancestors": ["'none'"],
    },
}
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

# --- Static files (whitenoise, no collectstatic needed) ---------------------
STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True  # serve straight from app/static dirs, so runserver with DEBUG off works
WHITENOISE_AUTOREFRESH = DEBUG

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- API --------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["accounts.authentication.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["accounts.authentication.HasApiKey"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
    "URL_FORMAT_OVERRIDE": None,  # `?format=csv|json` belongs to /v1/export
    "EXCEPTION_HANDLER": "llmobserve_site.api.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "LLMObserve API",
    "DESCRIPTION": "Ingest LLM call events and read their cost.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Product ----------------------------------------------------------------
LLMOBSERVE_BILLING_ENABLED = env_bool("LLMOBSERVE_BILLING_ENABLED", False)
LLMOBSERVE_PUBLIC_URL = os.environ.get("LLMOBSERVE_PUBLIC_URL", "http://127.0.0.1:8000")
# Ingestion throttle: requests per minute per API key.
LLMOBSERVE_INGEST_RATE = int(os.environ.get("LLMOBSERVE_INGEST_RATE", "1200"))

# --- Operations (docs/operations.md) ---
# Bearer token Prometheus sends to GET /metrics; unset: only a staff session sees it (others get 404).
LLMOBSERVE_METRICS_TOKEN = os.environ.get("LLMOBSERVE_METRICS_TOKEN", "")
# PROMETHEUS_MULTIPROC_DIR (read by prometheus-client itself, not here): an empty directory, wiped at each
# deploy, shared by every gunicorn and Celery process so /metrics sums them all.
LLMOBSERVE_READ_RATE = int(os.environ.get("LLMOBSERVE_READ_RATE", "600"))
LLMOBSERVE_MAX_EVENTS_PER_REQUEST = 1000
LLMOBSERVE_MAX_BODY_BYTES = 5 * 1024 * 1024
# A backed-up queue is drained up to this many events (whole batches, up to 32) per worker transaction: the
# fold's fixed costs (claiming, planning its statements, the coarse grains' upserts, the commit) are paid once.
LLMOBSERVE_INGEST_GROUP_EVENTS = int(os.environ.get("LLMOBSERVE_INGEST_GROUP_EVENTS", "20000"))
# OTLP: seconds a call span waits for its ancestors before its section path is built from what has arrived.
LLMOBSERVE_OTLP_RESOLVE_WAIT = float(os.environ.get("LLMOBSERVE_OTLP_RESOLVE_WAIT", "30"))
# Days raw events are kept when an org has no retention of its own (Organization.event_retention_days, set per
# plan in the admin). Rollups, run summaries and insights are kept; `manage.py events_prune` and beat enforce it.
LLMOBSERVE_EVENT_RETENTION_DAYS = int(os.environ.get("LLMOBSERVE_EVENT_RETENTION_DAYS", "90"))
DATA_UPLOAD_MAX_MEMORY_SIZE = LLMOBSERVE_MAX_BODY_BYTES + 1024
ANTHROPIC_API_KEY = os.environ.get("ANTHROPIC_API_KEY", "")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
}

# --- Billing (dj-stripe) ----------------------------------------------------
INSTALLED_APPS += ["djstripe"]
# Test mode unless STRIPE_LIVE_MODE=1; dj-stripe picks the matching secret key.
STRIPE_LIVE_MODE = env_bool("STRIPE_LIVE_MODE", False)
STRIPE_LIVE_SECRET_KEY = os.environ.get("STRIPE_LIVE_SECRET_KEY", "")
STRIPE_TEST_SECRET_KEY = os.environ.get("STRIPE_TEST_SECRET_KEY", "")
# dj-stripe 2.11 requires foreign keys to Stripe ids (not its internal pks).
DJSTRIPE_FOREIGN_KEY_TO_FIELD = "id"
DJSTRIPE_WEBHOOK_VALIDATION = "verify_signature"
# Another Stripe API host (stripe-mock, the test suite's fake); billing.apps applies it to stripe.api_base.
STRIPE_API_BASE = os.environ.get("STRIPE_API_BASE", "")
# The $8/month price; `manage.py billing_setup` finds or creates it when unset.
STRIPE_PRICE_ID = os.environ.get("STRIPE_PRICE_ID", "")
# Free trial on new subscriptions, in days (0 = no trial).
LLMOBSERVE_TRIAL_DAYS = int(os.environ.get("LLMOBSERVE_TRIAL_DAYS", "0"))
# Days a past-due org keeps full access (with a banner) while Stripe retries the card.
LLMOBSERVE_PAST_DUE_GRACE_DAYS = int(os.environ.get("LLMOBSERVE_PAST_DUE_GRACE_DAYS", "7"))

# --- AI auto-instrument ---
# Claude model that labels code when ANTHROPIC_API_KEY is set; the static engine answers otherwise.
LLMOBSERVE_INSTRUMENT_MODEL = os.environ.get("LLMOBSERVE_INSTRUMENT_MODEL", "claude-sonnet-5-5")
# Empty: the anthropic SDK's default (or ANTHROPIC_BASE_URL); tests point it at a local fake.
LLMOBSERVE_INSTRUMENT_BASE_URL = os.environ.get("LLMOBSERVE_INSTRUMENT_BASE_URL", "")
LLMOBSERVE_INSTRUMENT_TIMEOUT = float(os.environ.get("LLMOBSERVE_INSTRUMENT_TIMEOUT", "45"))  # seconds per attempt
LLMOBSERVE_INSTRUMENT_MAX_RETRIES = int(os.environ.get("LLMOBSERVE_INSTRUMENT_MAX_RETRIES", "1"))
LLMOBSERVE_INSTRUMENT_MAX_TOKENS = int(os.environ.get("LLMOBSERVE_INSTRUMENT_MAX_TOKENS", "8192"))  # room for a big file's list
LLMOBSERVE_INSTRUMENT_MAX_CODE_BYTES = 200 * 1024
# Requests per minute per org (429 beyond), and Claude calls per minute across all orgs (static beyond).
LLMOBSERVE_INSTRUMENT_RATE_PER_ORG = int(os.environ.get("LLMOBSERVE_INSTRUMENT_RATE_PER_ORG", "20"))
LLMOBSERVE_INSTRUMENT_RATE_GLOBAL = int(os.environ.get("LLMOBSERVE_INSTRUMENT_RATE_GLOBAL", "200"))
# What our own Claude calls cost, USD per 1M tokens (metered per org in pico-USD).
LLMOBSERVE_INSTRUMENT_PRICE_IN = os.environ.get("LLMOBSERVE_INSTRUMENT_PRICE_IN", "3")
LLMOBSERVE_INSTRUMENT_PRICE_OUT = os.environ.get("LLMOBSERVE_INSTRUMENT_PRICE_OUT", "15")

# --- Insights and alerts ---
from celery.schedules import crontab  # noqa: E402  (kept inside this block on purpose)

# A section spike must cost at least this much more than its daily average (per-org override on Organization).
LLMOBSERVE_SPIKE_MIN_USD = os.environ.get("LLMOBSERVE_SPIKE_MIN_USD", "0.50")
# Token bloat, retry loops and model inefficiency below this much money at stake are noise, not insights.
LLMOBSERVE_INSIGHT_MIN_USD = os.environ.get("LLMOBSERVE_INSIGHT_MIN_USD", "0.05")
# Webhook POSTs give up after this many seconds; Celery retries them (bounded), the detectors never wait.
LLMOBSERVE_WEBHOOK_TIMEOUT = float(os.environ.get("LLMOBSERVE_WEBHOOK_TIMEOUT", "5"))
# Alert webhooks (SSRF guard, analytics/insights/webhooks.py): https to public addresses only, checked on save and
# at delivery. Self-hosters whose chat server is on their own network opt in (docs/self-hosting.md).
LLMOBSERVE_WEBHOOK_ALLOW_PRIVATE = env_bool("LLMOBSERVE_WEBHOOK_ALLOW_PRIVATE", False)  # loopback/private targets
LLMOBSERVE_WEBHOOK_ALLOW_HTTP = env_bool("LLMOBSERVE_WEBHOOK_ALLOW_HTTP", False)  # plain http:// targets
# UTC hour at which the daily digest goes out to orgs that chose it.
LLMOBSERVE_DIGEST_HOUR = int(os.environ.get("LLMOBSERVE_DIGEST_HOUR", "8"))
CELERY_BEAT_SCHEDULE.update({
    "analytics-insights-hourly": {"task": "analytics.tasks.insights_run_all", "schedule": crontab(minute=2)},
    # PostgreSQL: the events table's monthly partitions, created ahead (this month and the next two); then the
    # daily retention job (drops whole months past every org's retention, deletes the rest in chunks).
    "ingestion-event-partitions": {"task": "ingestion.tasks.event_partitions_ensure", "schedule": crontab(minute=17, hour="*/6")},
    "ingestion-events-prune-daily": {"task": "ingestion.tasks.events_prune", "schedule": crontab(minute=40, hour=3)},
    "analytics-alerts-digest-daily": {
        "task": "analytics.tasks.alerts_digest",
        "schedule": crontab(minute=5, hour=LLMOBSERVE_DIGEST_HOUR),
    },
})
