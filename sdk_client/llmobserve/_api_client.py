"""The CLI's one HTTP call: `POST /v1/ai-instrument` with stdlib `urllib.request`, and the errors
and exit codes the commands end with."""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, TextIO

EXIT_OK, EXIT_FILES, EXIT_USAGE, EXIT_SERVER, EXIT_AUTH = 0, 1, 2, 3, 4
ENDPOINT = "/v1/ai-instrument"
_MAX_RATE_WAITS = 3


class InstrumentCliError(Exception):
    """A failure that ends the command with `exit_code`."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class FileRejected(Exception):
    """This file cannot be processed; the others go on."""


@dataclass(frozen=True)
class _Config:
    url: str
    api_key: str
    timeout: float


def suggestions_fetch(config: _Config, *, code: str, file_path: str, err: TextIO | None = None) -> dict[str, Any]:
    """The server's answer for one file: {"engine", "suggestions", "dropped"}.

    Raises FileRejected (400/413: this file only) or InstrumentCliError (unreachable, bad key, …).
    Waits out a 429 up to three times, as its Retry-After says.
    """
    endpoint = config.url.rstrip("/") + ENDPOINT
    payload = json.dumps({"code": code, "file_path": file_path}).encode()
    for attempt in range(_MAX_RATE_WAITS + 1):
        request = urllib.request.Request(endpoint, data=payload, method="POST", headers={
            "Authorization": f"Bearer {config.api_key}", "Content-Type": "application/json",
            "Accept": "application/json", "User-Agent": "llmobserve-cli"})
        try:
            with urllib.request.urlopen(request, timeout=config.timeout) as response:
                body = _json(response.read())
            break
        except urllib.error.HTTPError as exc:
            detail = _detail(exc)
            if exc.code == 429 and attempt < _MAX_RATE_WAITS:
                wait = _retry_after(exc.headers.get("Retry-After"))
                (err or sys.stderr).write(f"rate limited by the server; waiting {wait} s\n")
                time.sleep(wait)
                continue
            if exc.code in (401, 403):
                raise InstrumentCliError(f"The server rejected the API key ({exc.code}): {detail} "
                                         "Check LLMOBSERVE_API_KEY or --api-key.", EXIT_AUTH) from exc
            if exc.code in (400, 413, 422):
                raise FileRejected(detail) from exc
            if exc.code == 404:
                raise InstrumentCliError(f"{endpoint} was not found (404): is {config.url} an LLMObserve server?",
                                         EXIT_SERVER) from exc
            raise InstrumentCliError(f"The server answered {exc.code}: {detail}", EXIT_SERVER) from exc
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise InstrumentCliError(f"Cannot reach {config.url}: {reason}. Check LLMOBSERVE_URL or --url.",
                                     EXIT_SERVER) from exc
    if not isinstance(body, dict) or not isinstance(body.get("suggestions"), list):
        raise InstrumentCliError(f"Unexpected answer from {endpoint}: not an ai-instrument response.", EXIT_SERVER)
    body["suggestions"] = [s for s in body["suggestions"] if isinstance(s, dict)]
    return body


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None


def _detail(exc: urllib.error.HTTPError) -> str:
    try:
        body = _json(exc.read())
    except OSError:
        body = None
    if isinstance(body, dict) and body.get("detail"):
        return str(body["detail"])
    if isinstance(body, dict) and body:
        return "; ".join(f"{k}: {v}" for k, v in body.items())
    return exc.reason if isinstance(exc.reason, str) else f"HTTP {exc.code}"


def _retry_after(value: str | None) -> int:
    try:
        return max(1, min(60, int(value or "5")))
    except ValueError:
        return 5
