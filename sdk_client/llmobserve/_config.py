"""Configuration and the process-wide runtime state of the SDK.

The state is one module-level object so the hot path reads plain attributes and
``shutdown()`` can reset everything for the next ``observe()``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence, Tuple
from urllib.parse import urlsplit

logger = logging.getLogger("llmobserve")

DEFAULT_URL = "http://127.0.0.1:8000"
ON_CAP_CHOICES = ("ignore", "warn", "raise")


class LLMObserveError(Exception):
    """The one base class of every exception the SDK raises on purpose."""


class BudgetExceeded(LLMObserveError):
    """Raised before an LLM request is sent when the organisation is past its
    spending cap and ``observe(on_cap="raise")`` was chosen."""


def _truthy(value: Optional[str]) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def host_key(netloc: str) -> str:
    """Normalise ``host[:port]`` for lookups (lower case, default ports dropped)."""
    netloc = netloc.lower().rsplit("@", 1)[-1]
    if netloc.endswith(":443") or netloc.endswith(":80"):
        netloc = netloc.rsplit(":", 1)[0]
    return netloc


@dataclass
class Config:
    collector_url: str = DEFAULT_URL
    api_key: str = ""
    hosts: Dict[str, str] = field(default_factory=dict)
    propagate_to: Tuple[str, ...] = ()
    flush_interval: float = 0.5
    batch_size: int = 100
    max_buffer: int = 10_000
    max_batch: int = 1_000
    timeout: float = 5.0
    max_retries: int = 3
    on_cap: str = "ignore"
    disabled: bool = False
    collector_host: str = ""
    metadata: Dict[str, str] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        collector_url: Optional[str] = None,
        api_key: Optional[str] = None,
        hosts: Optional[Mapping[str, str]] = None,
        propagate_to: Optional[Sequence[str]] = None,
        flush_interval: float = 0.5,
        batch_size: int = 100,
        max_buffer: int = 10_000,
        timeout: float = 5.0,
        max_retries: int = 3,
        on_cap: str = "ignore",
        disabled: Optional[bool] = None,
    ) -> "Config":
        url = (collector_url or os.environ.get("LLMOBSERVE_URL") or DEFAULT_URL).rstrip("/")
        key = api_key or os.environ.get("LLMOBSERVE_API_KEY") or ""
        if disabled is None:
            disabled = _truthy(os.environ.get("LLMOBSERVE_DISABLED"))
        if on_cap not in ON_CAP_CHOICES:  # fail-open: a typo must not stop the app
            logger.error("llmobserve: on_cap must be one of %s, not %r; using 'ignore'", ON_CAP_CHOICES, on_cap)
            on_cap = "ignore"
        mapped = {host_key(h): p.lower() for h, p in (hosts or {}).items()}
        return cls(
            collector_url=url,
            api_key=key,
            hosts=mapped,
            propagate_to=tuple(host_key(h) for h in (propagate_to or ())),
            flush_interval=max(0.01, float(flush_interval)),
            batch_size=max(1, int(batch_size)),
            max_buffer=max(1, int(max_buffer)),
            timeout=float(timeout),
            max_retries=max(0, int(max_retries)),
            on_cap=on_cap,
            disabled=bool(disabled),
            collector_host=host_key(urlsplit(url).netloc),
        )


class State:
    """Mutable runtime state; replaced wholesale by ``shutdown()``."""

    def __init__(self) -> None:
        self.config: Optional[Config] = None
        self.active = False
        self.over_cap = False
        self.cap_warned = False
        self.patched: List[str] = []


STATE = State()
