"""The ``llmobserve`` console script.

``llmobserve doctor`` checks the collector URL, the API key and the clock, and
posts one test event. More subcommands plug in from ``llmobserve._instrument_cli``
(``preview``, ``instrument``) when that module is installed: see
``_register_extensions``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import time
import urllib.error
import urllib.request
import uuid
from email.utils import parsedate_to_datetime
from typing import Any, Dict, Optional, Sequence, Tuple

from ._config import DEFAULT_URL
from ._transport import USER_AGENT

CLOCK_SKEW_WARN_S = 60.0


def _http(
    method: str, url: str, body: Optional[bytes] = None, headers: Optional[Dict[str, str]] = None,
    timeout: float = 5.0,
) -> Tuple[int, Dict[str, str], bytes, float]:
    """(status, headers, body, seconds); status 0 when the host cannot be reached."""
    req = urllib.request.Request(url, data=body, method=method, headers={"User-Agent": USER_AGENT, **(headers or {})})
    start = time.monotonic()
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, dict(resp.headers.items()), resp.read(), time.monotonic() - start
    except urllib.error.HTTPError as err:
        data = err.read() if err.fp is not None else b""
        return err.code, dict(err.headers.items()) if err.headers else {}, data, time.monotonic() - start
    except Exception as exc:
        return 0, {"error": f"{type(exc).__name__}: {exc}"}, b"", time.monotonic() - start


def _skew(headers: Dict[str, str]) -> Optional[float]:
    date = headers.get("Date") or headers.get("date")
    if not date:
        return None
    try:
        return parsedate_to_datetime(date).timestamp() - time.time()
    except (TypeError, ValueError):
        return None


class _Report:
    def __init__(self, out: Any) -> None:
        self.out = out
        self.failed = False

    def line(self, ok: Optional[bool], text: str) -> None:
        mark = {True: "ok  ", False: "FAIL", None: "warn"}[ok]
        if ok is False:
            self.failed = True
        print(f"[{mark}] {text}", file=self.out)


def doctor(url: str, api_key: str, timeout: float = 5.0, out: Any = None) -> int:
    report = _Report(out or sys.stdout)
    url = url.rstrip("/")
    status, headers, body, took = _http("GET", url + "/health", timeout=timeout)
    if status == 0:
        report.line(False, f"collector {url} unreachable: {headers.get('error')}")
        return 1
    report.line(status < 500, f"collector {url} answered /health with HTTP {status} in {took * 1000:.0f} ms")

    skew = _skew(headers)
    if skew is None:
        report.line(None, "clock: the collector sent no Date header, skew unknown")
    elif abs(skew) > CLOCK_SKEW_WARN_S:
        report.line(
            False,
            f"clock: this machine is {-skew:+.0f} s off the collector; event timestamps will be wrong "
            "(the collector refuses events more than 1 h in the future). Sync the clock (NTP).",
        )
    else:
        report.line(True, f"clock: within {abs(skew):.1f} s of the collector")

    if not api_key:
        report.line(False, "API key: none given (--api-key or LLMOBSERVE_API_KEY)")
        return 1
    if not api_key.startswith("llmo_"):
        report.line(None, "API key: does not start with llmo_; is it an LLMObserve key?")

    event = {
        "event_id": uuid.uuid4().hex,
        "span_type": "other",
        "provider": "llmobserve",
        "model": "doctor",
        "section": "llmobserve:doctor",
        "status": "ok",
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "metadata": {"doctor": True, "sdk": USER_AGENT},
    }
    payload = gzip.compress(json.dumps({"events": [event]}).encode())
    status, headers, body, took = _http(
        "POST",
        url + "/v1/events",
        payload,
        {"Content-Type": "application/json", "Content-Encoding": "gzip", "Authorization": f"Bearer {api_key}"},
        timeout=timeout,
    )
    text = body[:300].decode("utf-8", "replace")
    if status in (401, 403):
        report.line(False, f"API key: refused (HTTP {status}): {text}")
    elif 200 <= status < 300:
        report.line(True, f"API key: accepted ({api_key[:9]}…)")
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = {}
        accepted = parsed.get("accepted") if isinstance(parsed, dict) else None
        report.line(accepted == 1, f"test event: HTTP {status}, accepted={accepted} in {took * 1000:.0f} ms")
        if isinstance(parsed, dict) and parsed.get("over_cap"):
            report.line(None, "the organisation is over its spending cap")
    else:
        report.line(False, f"test event: HTTP {status or 'no answer'}: {text or headers.get('error')}")
    from . import stats

    counters = ", ".join(f"{name}={value}" for name, value in stats().items())
    print(f"[info] SDK counters in this process: {counters}", file=report.out)
    return 1 if report.failed else 0


def build_parser() -> Tuple[argparse.ArgumentParser, Any]:
    parser = argparse.ArgumentParser(prog="llmobserve", description="LLMObserve SDK tools")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    doc = sub.add_parser("doctor", help="check the collector URL, the API key, the clock; post a test event")
    doc.add_argument("--url", default=os.environ.get("LLMOBSERVE_URL") or DEFAULT_URL)
    doc.add_argument("--api-key", default=os.environ.get("LLMOBSERVE_API_KEY", ""))
    doc.add_argument("--timeout", type=float, default=5.0)
    doc.set_defaults(func=lambda a: doctor(a.url, a.api_key, a.timeout))
    _register_extensions(sub)
    return parser, sub


# ---------------------------------------------------------------------------
# Extension hook: ``llmobserve/_instrument_cli.py`` (written separately) adds
# ``preview FILE…`` and ``instrument FILE… --auto-apply`` by defining
# ``register(subparsers)``; each subparser sets ``func`` (args -> exit code)
# with ``set_defaults``. Absent module = those commands are simply not offered.
# ---------------------------------------------------------------------------
def _register_extensions(subparsers: Any) -> None:
    try:
        from . import _instrument_cli  # type: ignore[attr-defined,unused-ignore]
    except ImportError:
        return
    register = getattr(_instrument_cli, "register", None)
    if callable(register):
        register(subparsers)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser, _ = build_parser()
    args = parser.parse_args(list(argv) if argv is not None else None)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    result = func(args)
    return int(result or 0)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
