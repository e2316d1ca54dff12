"""Redis trouble degrades the service, it never fails a request.

Two pieces, one idea (a short "circuit open" period after an error, so a dead or hung Redis costs one
timeout every few seconds instead of one per request):

- `FailOpenRedisCache`, the cache backend when REDIS_URL is set. Every cache user goes through it: DRF's
  throttles (ingest, read API), the auto-instrument rate limiter, allauth's login rate limit, the price
  book's version key. While Redis errors, each call is served by a per-process memory cache instead, so a
  throttle keeps its rate per process, and counters start afresh when Redis is back.
- `BrokerCircuit`, used by the Celery app's task class: a publish that fails opens the circuit, and
  `.delay()` then fails at once (callers already treat a failed enqueue as "the sweeper will do it").

The apps never import this module: settings name the backend, and the Celery app uses the task class.
"""

from __future__ import annotations

import logging
import threading
import time
from urllib.parse import urlsplit

from django.conf import settings
from django.core.cache.backends.locmem import LocMemCache
from django.core.cache.backends.redis import RedisCache, RedisCacheClient

logger = logging.getLogger(__name__)

try:
    from redis.exceptions import RedisError
except ImportError:  # pragma: no cover - redis is a server requirement
    RedisError = OSError

# Connection refused, timeouts, a server that went away, OOM or READONLY answers: all mean "Redis is not
# usable now". Anything else (a ValueError from incr on a missing key, a pickling error) is a real error.
REDIS_ERRORS = (RedisError, OSError)


class Circuit:
    """Remembers a dependency's last failure: for `retry_seconds` after it, callers skip the dependency."""

    def __init__(self, name: str):
        self.name = name
        self._open_until = 0.0

    @staticmethod
    def retry_seconds() -> float:
        return float(getattr(settings, "LLMOBSERVE_REDIS_RETRY_SECONDS", 5))

    def is_open(self) -> bool:
        return self._open_until > 0 and time.monotonic() < self._open_until

    def failed(self, exc: BaseException) -> None:
        if self._open_until == 0:
            logger.warning("%s unavailable (%s: %s); failing open, retrying in %.0f s", self.name,
                           type(exc).__name__, exc, self.retry_seconds())
        self._open_until = time.monotonic() + self.retry_seconds()

    def succeeded(self) -> None:
        if self._open_until:
            logger.warning("%s is back", self.name)
            self._open_until = 0.0


_circuits: dict[str, Circuit] = {}
_circuits_lock = threading.Lock()


def circuit(name: str) -> Circuit:
    """One circuit per dependency per process (Django makes one cache object per thread; they share it)."""
    with _circuits_lock:
        return _circuits.setdefault(name, Circuit(name))


def _redacted(url: str) -> str:
    """A Redis URL fit for a log line: no password."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(unparsable url)"
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return parts._replace(netloc=netloc).geturl()


def _fail_open(name: str):
    def method(self, *args, **kwargs):
        if not self._circuit.is_open():
            try:
                result = getattr(RedisCache, name)(self, *args, **kwargs)
            except REDIS_ERRORS as exc:
                self._circuit.failed(exc)
            else:
                self._circuit.succeeded()
                return result
        return getattr(self._fallback, name)(*args, **kwargs)

    method.__name__ = name
    method.__doc__ = f"RedisCache.{name}, or the per-process fallback while Redis is failing."
    return method


class _PooledClients(RedisCacheClient):
    """Django's client, with one `redis.Redis` per connection pool: Django builds a new one for every cache
    call, ~0.2 ms of CPU each (redis-py sets up its reply callbacks per client), on every throttled request.
    A `redis.Redis` is safe to share: each command takes a connection from the pool."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._clients = {}

    def get_client(self, key=None, *, write=False):
        index = self._get_connection_pool_index(write)
        client = self._clients.get(index)
        if client is None:
            client = self._clients[index] = self._client(connection_pool=self._get_connection_pool(write))
        return client


class FailOpenRedisCache(RedisCache):
    """Django's RedisCache; while Redis errors (and for a few seconds after), a per-process LocMemCache."""

    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = _PooledClients
        servers = server if isinstance(server, str) else ",".join(server)
        self._circuit = circuit("cache " + ",".join(_redacted(url) for url in servers.split(",")))
        # LocMemCache instances with the same name share one store: one fallback per process, all threads.
        self._fallback = LocMemCache(f"llmobserve-failopen:{server}", {
            "TIMEOUT": params.get("TIMEOUT", 300), "KEY_PREFIX": params.get("KEY_PREFIX", ""),
            "VERSION": params.get("VERSION", 1), "KEY_FUNCTION": params.get("KEY_FUNCTION"),
            "OPTIONS": {"MAX_ENTRIES": 10_000},
        })

    # Every method RedisCache implements; BaseCache builds the rest (get_or_set, decr, the async ones) on them.
    add = _fail_open("add")
    get = _fail_open("get")
    set = _fail_open("set")
    touch = _fail_open("touch")
    delete = _fail_open("delete")
    get_many = _fail_open("get_many")
    has_key = _fail_open("has_key")
    incr = _fail_open("incr")
    set_many = _fail_open("set_many")
    delete_many = _fail_open("delete_many")
    clear = _fail_open("clear")

    def window_counts(self, key: str, previous_key: str, timeout: int) -> tuple[int, int] | None:
        """accounts.ratelimit's counter in one round trip: create `key` (0, expiring after `timeout`) if absent, add
        one hit and read `previous_key`: (the new count, the previous count or 0). None while Redis fails: the
        caller counts with add/incr/get, which the per-process fallback then serves."""
        if self._circuit.is_open():
            return None
        try:
            client = self._cache.get_client(write=True)
            key, previous_key = self.make_and_validate_key(key), self.make_and_validate_key(previous_key)
            _, current, previous = client.pipeline(transaction=False).set(key, 0, ex=timeout, nx=True) \
                .incr(key).get(previous_key).execute()
        except REDIS_ERRORS as exc:
            self._circuit.failed(exc)
            return None
        self._circuit.succeeded()
        return current, int(previous or 0)


def broker_circuit(broker_url: str) -> Circuit:
    return circuit(f"broker {_redacted(broker_url)}")
