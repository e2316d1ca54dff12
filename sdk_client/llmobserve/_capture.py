"""What every client patch does around the real request: suppress nested capture while the
wrapped call runs, record a failure, attach the response. Hook errors never reach user code."""

from __future__ import annotations

from typing import Any, Awaitable, Callable

from . import _context
from ._config import logger
from ._providers import Call


def safe(fn: Callable[..., Any], *args: Any) -> None:
    try:
        fn(*args)
    except Exception:
        logger.debug("llmobserve: hook failed", exc_info=True)


def send_captured(call: Call, send: Callable[[], Any], attach: Callable[[Call, Any], None], client: str) -> Any:
    token = _context.capturing.set(True)
    try:
        response = send()
    except BaseException as exc:
        _context.capturing.reset(token)
        safe(call.fail, exc)
        raise
    _context.capturing.reset(token)
    try:
        attach(call, response)
    except Exception:
        logger.debug("llmobserve: %s hook failed", client, exc_info=True)
    return response


async def asend_captured(call: Call, send: Callable[[], Awaitable[Any]], attach: Callable[[Call, Any], None],
                         client: str) -> Any:
    token = _context.capturing.set(True)
    try:
        response = await send()
    except BaseException as exc:
        _context.capturing.reset(token)
        safe(call.fail, exc)
        raise
    _context.capturing.reset(token)
    try:
        attach(call, response)
    except Exception:
        logger.debug("llmobserve: %s hook failed", client, exc_info=True)
    return response
