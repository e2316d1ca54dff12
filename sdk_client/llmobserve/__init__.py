"""LLMObserve: what your LLM calls cost, and where.

    import llmobserve
    llmobserve.observe(collector_url="https://collector.example", api_key="llmo_...")

Every call the app makes to a known LLM provider through httpx, httpx2 (the
openai and anthropic SDKs), requests, aiohttp or urllib3 is then captured,
labelled with the current run, section and customer, and shipped in the
background. Nothing the SDK does raises into, or slows down, the app.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping, Optional, Sequence

from . import _buffer, _context, _providers
from ._buffer import BUFFER, flush
from ._config import STATE, BudgetExceeded, Config, LLMObserveError, logger
from ._context import agent, run, section, set_customer_id, tool, trace

__version__ = "0.1.0"

__all__ = [
    "observe",
    "shutdown",
    "flush",
    "section",
    "agent",
    "tool",
    "trace",
    "run",
    "set_customer_id",
    "get_run_id",
    "stats",
    "is_active",
    "LLMObserveError",
    "BudgetExceeded",
    "__version__",
]

logger.addHandler(logging.NullHandler())


def observe(
    collector_url: Optional[str] = None,
    api_key: Optional[str] = None,
    *,
    hosts: Optional[Mapping[str, str]] = None,
    propagate_to: Optional[Sequence[str]] = None,
    flush_interval: float = 0.5,
    batch_size: int = 100,
    max_buffer: int = 10_000,
    timeout: float = 5.0,
    max_retries: int = 3,
    on_cap: str = "ignore",
    disabled: Optional[bool] = None,
) -> bool:
    """Start capturing. Idempotent: a second call replaces the configuration.

    Arguments default to ``LLMOBSERVE_URL`` / ``LLMOBSERVE_API_KEY``;
    ``LLMOBSERVE_DISABLED=1`` (or ``disabled=True``) patches nothing.
    ``hosts`` maps your own ``host:port`` to a known format (``"openai"``,
    ``"anthropic"``, ...); the name becomes the event's ``provider``.
    ``propagate_to`` lists the only hosts that receive the context headers.
    ``on_cap``: what to do when the collector says the org is past its
    spending cap: ``"ignore"`` (default), ``"warn"`` (log once) or ``"raise"``
    (the next captured LLM call raises :class:`BudgetExceeded` before it is sent).

    Returns True when capturing is active.
    """
    cfg = Config.build(
        collector_url=collector_url,
        api_key=api_key,
        hosts=hosts,
        propagate_to=propagate_to,
        flush_interval=flush_interval,
        batch_size=batch_size,
        max_buffer=max_buffer,
        timeout=timeout,
        max_retries=max_retries,
        on_cap=on_cap,
        disabled=disabled,
    )
    if cfg.disabled:
        if STATE.active:
            shutdown(flush_timeout=0)
        logger.debug("llmobserve: disabled, nothing patched")
        return False
    try:
        if not cfg.api_key:
            logger.warning("llmobserve: no API key (LLMOBSERVE_API_KEY); the collector will refuse events")
        STATE.config = cfg
        _providers.clear_cache()
        if not STATE.active:
            STATE.over_cap = False
            STATE.cap_warned = False
        STATE.active = True
        STATE.patched = _patch_all()
        _buffer.register_process_hooks()
    except Exception:  # fail-open: a broken environment must not break the app
        logger.debug("llmobserve: observe() failed", exc_info=True)
        return False
    return True


def _patch_all() -> list[str]:
    from . import _patch_aiohttp, _patch_httpx, _patch_requests, _patch_urllib3

    patched = list(_patch_httpx.patch())
    for name, mod in (("requests", _patch_requests), ("aiohttp", _patch_aiohttp), ("urllib3", _patch_urllib3)):
        try:
            if mod.patch():
                patched.append(name)
        except Exception:
            logger.debug("llmobserve: could not patch %s", name, exc_info=True)
    _context.patch_executor()
    return patched


def shutdown(flush_timeout: float = 2.0) -> None:
    """Flush (bounded by ``flush_timeout``), stop the flush thread, unpatch every
    client and forget the configuration. ``observe()`` may be called again."""
    from . import _patch_aiohttp, _patch_httpx, _patch_requests, _patch_urllib3

    try:
        if STATE.active and flush_timeout > 0:
            flush(flush_timeout)
        BUFFER.stop()
        BUFFER.clear()
        for mod in (_patch_httpx, _patch_requests, _patch_aiohttp, _patch_urllib3):
            try:
                mod.unpatch()
            except Exception:
                logger.debug("llmobserve: unpatch failed", exc_info=True)
        _context.unpatch_executor()
    finally:
        STATE.active = False
        STATE.config = None
        STATE.over_cap = False
        STATE.cap_warned = False
        STATE.patched = []
        _providers.clear_cache()


def is_active() -> bool:
    return STATE.active


def get_run_id() -> Optional[str]:
    """The current run id, or None outside any run."""
    return _context.current_frame().run_id


def stats() -> dict[str, Any]:
    """The SDK's own counters, for troubleshooting (also printed by `llmobserve doctor`).

    captured: calls recorded; buffered: waiting to be sent; sent: accepted by the collector;
    dropped: lost because the buffer was full; failed: events whose POST failed after its retries;
    failed_flushes: such POSTs; last_flush_ms: how long the last POST took (None before the first).
    """
    return {
        "captured": BUFFER.captured,
        "buffered": len(BUFFER),
        "sent": BUFFER.sent,
        "dropped": BUFFER.dropped,
        "failed": BUFFER.failed,
        "failed_flushes": BUFFER.failed_flushes,
        "last_flush_ms": None if BUFFER.last_flush_ms is None else round(BUFFER.last_flush_ms, 1),
    }
