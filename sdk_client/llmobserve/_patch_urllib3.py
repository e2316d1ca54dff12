"""``urllib3`` patch, and the response tap that ``requests`` shares.

``HTTPConnectionPool.urlopen`` is wrapped. An unread response gets its
``read``/``read_chunked``/``close`` shadowed on the instance so each chunk the
user reads also feeds the tap; the bytes returned are the same objects.
"""

from __future__ import annotations

from typing import Any, Dict, Generator, Optional
from urllib.parse import urlsplit

from . import _context
from ._config import BudgetExceeded, host_key, logger
from ._capture import safe as _safe
from ._capture import send_captured
from ._providers import Call, begin, propagation_headers

_original: Dict[str, Any] = {}


def _fp_done(resp: Any) -> bool:
    fp = getattr(resp, "_fp", None)
    if fp is None:
        return True
    if len(getattr(resp, "_decoded_buffer", b"") or b""):
        return False
    try:
        from urllib3.util.response import is_fp_closed

        return bool(is_fp_closed(fp))
    except Exception:
        return False


def tap_response(call: Call, resp: Any) -> None:
    """Finish ``call`` from an urllib3 response: now if it was preloaded, else as it is read."""
    call.response(int(resp.status))
    body = getattr(resp, "_body", None)
    headers = resp.headers
    if body is not None:
        call.read_body(body, headers.get("content-type", ""))
        return
    tap = call.start_stream(headers.get("content-type", ""))
    encoding = headers.get("content-encoding", "")
    orig_read = resp.read
    orig_chunked = resp.read_chunked
    orig_close = resp.close
    orig_release = resp.release_conn
    # urllib3 releases the connection from inside read() once the socket is
    # drained, before the bytes are handed back: the read wrapper finishes then.
    in_read = [False]

    def feed(data: bytes, decode: Optional[bool]) -> None:
        try:
            effective = resp.decode_content if decode is None else decode
            if encoding and not effective:
                tap.set_encoding(encoding)
            tap.feed(data)
        except Exception:
            logger.debug("llmobserve: tap failed", exc_info=True)

    def read(amt: Optional[int] = None, decode_content: Optional[bool] = None, *a: Any, **kw: Any) -> Any:
        in_read[0] = True
        try:
            data = orig_read(amt, decode_content, *a, **kw)
        except BaseException as exc:
            if not call.finished:
                _safe(call.fail, exc)
            raise
        finally:
            in_read[0] = False
        if not call.finished:
            if data:
                feed(data, decode_content)
            if amt is None or not data or _fp_done(resp):
                _safe(call.finish)
        return data

    def read_chunked(
        amt: Optional[int] = None, decode_content: Optional[bool] = None
    ) -> Generator[bytes, None, None]:
        try:
            for chunk in orig_chunked(amt, decode_content=decode_content):
                if not call.finished:
                    feed(chunk, decode_content)
                yield chunk
        except GeneratorExit:
            raise
        except BaseException as exc:
            if not call.finished:
                _safe(call.fail, exc)
            raise
        if not call.finished:
            _safe(call.finish)

    def close() -> None:
        try:
            orig_close()
        finally:
            if not call.finished:
                _safe(call.finish, True)

    def release_conn() -> None:
        try:
            orig_release()
        finally:
            if not call.finished and not in_read[0]:
                # Complete or not is judged from what the tap saw (an SSE end
                # marker, a whole JSON body): urllib3 also releases on abandonment.
                _safe(call.finish, True)

    resp.read = read
    resp.read_chunked = read_chunked
    resp.close = close
    resp.release_conn = release_conn


def _wrap(orig: Any) -> Any:
    def urlopen(self: Any, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        call: Optional[Call] = None
        try:
            if not _context.capturing.get():
                host = f"{self.host}:{self.port}" if self.port else str(self.host)
                path = url if url.startswith("/") else (urlsplit(url).path or "/")
                path = path.split("?", 1)[0]
                extra = propagation_headers(host_key(host))
                if extra:
                    if len(args) >= 2:  # body, headers passed positionally
                        args = (args[0], {**(args[1] or self.headers), **extra}) + args[2:]
                    else:
                        kwargs["headers"] = {**(kwargs.get("headers") or self.headers), **extra}
                call = begin(host, method, path)
                if call is not None:
                    call.req_body = args[0] if args else kwargs.get("body")
        except BudgetExceeded:
            raise
        except Exception:
            logger.debug("llmobserve: urllib3 hook failed", exc_info=True)
            call = None
        if call is None:
            return orig(self, method, url, *args, **kwargs)
        return send_captured(call, lambda: orig(self, method, url, *args, **kwargs), tap_response, "urllib3")

    urlopen.__wrapped__ = orig  # type: ignore[attr-defined]
    return urlopen


def patch() -> bool:
    if _original:
        return True
    try:
        from urllib3 import connectionpool
    except ImportError:
        return False
    orig = connectionpool.HTTPConnectionPool.urlopen
    _original["urlopen"] = orig
    connectionpool.HTTPConnectionPool.urlopen = _wrap(orig)  # type: ignore[method-assign]
    return True


def unpatch() -> None:
    orig = _original.pop("urlopen", None)
    if orig is not None:
        from urllib3 import connectionpool

        connectionpool.HTTPConnectionPool.urlopen = orig  # type: ignore[method-assign]
