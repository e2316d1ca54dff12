"""``requests`` patch: ``Session.send``.

A non-streamed response has been read by requests before ``send`` returns; a
``stream=True`` one is tapped on its urllib3 ``raw`` response as the user
reads it. The capturing guard keeps the nested urllib3 call from recording twice.
"""

from __future__ import annotations

from typing import Any, Dict, Optional
from urllib.parse import urlsplit

from . import _context
from ._config import BudgetExceeded, host_key, logger
from ._capture import send_captured
from ._patch_urllib3 import tap_response
from ._providers import Call, begin, propagation_headers

_original: Dict[str, Any] = {}


def _attach(call: Call, resp: Any) -> None:
    if getattr(resp, "_content", False) not in (False, None):
        call.response(int(resp.status_code))
        call.read_body(resp._content, resp.headers.get("content-type", ""))
    elif resp.raw is not None and hasattr(resp.raw, "read_chunked"):
        tap_response(call, resp.raw)
    else:
        call.response(int(resp.status_code))
        call.finish()


def _wrap(orig: Any) -> Any:
    def send(self: Any, request: Any, **kwargs: Any) -> Any:
        call: Optional[Call] = None
        try:
            if not _context.capturing.get():
                parts = urlsplit(request.url)
                extra = propagation_headers(host_key(parts.netloc))
                if extra:
                    request.headers.update(extra)
                call = begin(parts.netloc, request.method or "GET", parts.path or "/")
                if call is not None:
                    call.req_body = request.body
        except BudgetExceeded:
            raise
        except Exception:
            logger.debug("llmobserve: requests hook failed", exc_info=True)
            call = None
        if call is None:
            return orig(self, request, **kwargs)
        return send_captured(call, lambda: orig(self, request, **kwargs), _attach, "requests")

    send.__wrapped__ = orig  # type: ignore[attr-defined]
    return send


def patch() -> bool:
    if _original:
        return True
    try:
        import requests
    except ImportError:
        return False
    _original["send"] = requests.Session.send
    requests.Session.send = _wrap(requests.Session.send)  # type: ignore[method-assign]
    return True


def unpatch() -> None:
    orig = _original.pop("send", None)
    if orig is not None:
        import requests

        requests.Session.send = orig  # type: ignore[method-assign]
