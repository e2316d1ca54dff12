"""Posting batches to the collector: stdlib ``urllib``, gzip, bounded retries.

``urllib.request`` is never patched, and the flush thread marks itself as
capturing, so the SDK's own posts are never recorded.
"""

from __future__ import annotations

import gzip
import http.client
import json
import random
import time
import urllib.error
import urllib.request
from email.utils import parsedate_to_datetime
from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import urlsplit

from ._config import Config, logger

USER_AGENT = "llmobserve-python/0.1.0"


def _retry_after(value: Optional[str]) -> Optional[float]:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def encode(events: List[Dict[str, Any]]) -> bytes:
    """``{"events": [...]}``, gzip. Encoded a few events at a time, yielding the GIL
    in between, so the flush thread never holds it for long."""
    dumps = json.JSONEncoder(separators=(",", ":"), default=str).encode
    parts: List[str] = []
    for i in range(0, len(events), 32):
        parts.append(dumps(events[i:i + 32])[1:-1])
        time.sleep(0)
    raw = ('{"events":[' + ",".join(parts) + "]}").encode("utf-8")
    return gzip.compress(raw, compresslevel=1)  # CPU on the client matters more than bytes


class _KeepAlive:
    """One persistent HTTP(S) connection to the collector (used under the flush
    lock, so by one thread at a time): a new TCP/TLS handshake per batch would
    cost more CPU than building the batch. Falls back to ``urllib.request``
    when a proxy is configured for the collector."""

    def __init__(self) -> None:
        self.conn: Optional[http.client.HTTPConnection] = None
        self.key: Optional[Tuple[str, str, Optional[int], float]] = None

    def reset(self) -> None:
        conn, self.conn, self.key = self.conn, None, None
        if conn is not None:
            try:
                conn.close()
            except Exception:
                pass

    def post(self, url: str, body: bytes, headers: Dict[str, str], timeout: float) -> Tuple[int, Dict[str, str], bytes]:
        parts = urlsplit(url)
        key = (parts.scheme, parts.hostname or "", parts.port, timeout)
        for attempt in (0, 1):
            if self.conn is None or self.key != key:
                self.reset()
                cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
                self.conn = cls(parts.hostname or "", parts.port, timeout=timeout)
                self.key = key
                fresh = True
            else:
                fresh = False
            conn = self.conn
            try:
                conn.request("POST", parts.path or "/", body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                if resp.will_close:
                    self.reset()
                return resp.status, dict(resp.getheaders()), data
            except (http.client.HTTPException, OSError):
                self.reset()
                if fresh or attempt:  # a stale keep-alive connection gets one retry
                    raise
        raise OSError("unreachable")  # pragma: no cover


KEEPALIVE = _KeepAlive()


def _proxied(url: str) -> bool:
    parts = urlsplit(url)
    proxies = urllib.request.getproxies()
    if parts.scheme not in proxies:
        return False
    return not urllib.request.proxy_bypass(parts.hostname or "")


def post_once(cfg: Config, body: bytes, timeout: float) -> Tuple[int, Dict[str, str], bytes]:
    """POST one gzip body; returns (status, headers, response body). Raises on network errors."""
    url = cfg.collector_url + "/v1/events"
    headers = {
        "Content-Type": "application/json",
        "Content-Encoding": "gzip",
        "Authorization": f"Bearer {cfg.api_key}",
        "User-Agent": USER_AGENT,
    }
    if not _proxied(url):
        return KEEPALIVE.post(url, body, headers, timeout)
    req = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, dict(resp.headers.items()), resp.read()
    except urllib.error.HTTPError as err:
        try:
            data = err.read()
        except Exception:
            data = b""
        return err.code, dict(err.headers.items()) if err.headers else {}, data


def send_batch(
    cfg: Config, events: List[Dict[str, Any]], deadline: Optional[float] = None
) -> Tuple[bool, Optional[Dict[str, Any]]]:
    """Send one batch with retries (network errors, 5xx, 429 honouring Retry-After).

    Returns (delivered, parsed 2xx response body). A 4xx other than 429 is final:
    retrying the same bytes cannot succeed.
    """
    body = encode(events)
    attempt = 0
    while True:
        timeout = cfg.timeout
        if deadline is not None:
            timeout = min(timeout, max(0.05, deadline - time.monotonic()))
        wait: Optional[float] = None
        try:
            status, headers, data = post_once(cfg, body, timeout)
        except Exception as exc:  # connection refused, DNS, timeout, ...
            logger.debug("llmobserve: collector unreachable: %s", exc)
            status, headers, data = 0, {}, b""
        if 200 <= status < 300:
            try:
                parsed = json.loads(data) if data else None
            except ValueError:
                parsed = None
            return True, parsed if isinstance(parsed, dict) else None
        if status and status < 500 and status != 429:
            logger.warning(
                "llmobserve: collector refused %d events (HTTP %d): %s",
                len(events),
                status,
                data[:200].decode("utf-8", "replace"),
            )
            return False, None
        if status == 429 or status >= 500:
            wait = _retry_after(headers.get("Retry-After") or headers.get("retry-after"))
        attempt += 1
        if attempt > cfg.max_retries:
            return False, None
        if wait is None:
            wait = min(8.0, 0.25 * (2 ** (attempt - 1)))
            wait = wait / 2 + random.uniform(0, wait / 2)
        if deadline is not None and time.monotonic() + wait >= deadline:
            return False, None
        time.sleep(min(wait, 30.0))
