"""``aiohttp`` patch: ``ClientSession._request``.

aiohttp's ``StreamReader`` has ``__slots__``, so the tap sits on the feed side:
``StreamReader.feed_data`` is wrapped once at class level and looks up the
reader in a dict (one ``dict.get`` per chunk for untracked readers). Chunks fed
before ``_request`` returned are peeked from the reader's buffer, not consumed.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

from . import _context
from ._config import BudgetExceeded, host_key, logger
from ._capture import asend_captured
from ._capture import safe as _safe
from ._providers import Call, begin, propagation_headers
from ._sse import StreamTap

_original: Dict[str, Any] = {}
# id(reader) -> (tap, call, reader). Holding the reader keeps its id from being
# reused while tracked; the bound stops abandoned responses from piling up.
_taps: Dict[int, Tuple[StreamTap, Call, Any]] = {}
_MAX_TRACKED = 10_000


def _finish_reader(reader: Any, partial: bool) -> None:
    entry = _taps.pop(id(reader), None)
    if entry is not None and not entry[1].finished:
        _safe(entry[1].finish, partial)


def _attach(call: Call, resp: Any) -> None:
    call.response(int(resp.status))
    reader = resp.content
    tap = call.start_stream(resp.headers.get("Content-Type", ""))
    for chunk in list(getattr(reader, "_buffer", ())):
        tap.feed(chunk)
    eof = getattr(reader, "_eof", None)
    if eof is None or eof:
        call.finish()
        return
    if len(_taps) >= _MAX_TRACKED:
        oldest = next(iter(_taps))
        _finish_reader(_taps[oldest][2], True)
    _taps[id(reader)] = (tap, call, reader)
    reader.on_eof(lambda: _finish_reader(reader, False))


def _wrap_request(orig: Any) -> Any:
    async def _request(self: Any, method: str, str_or_url: Any, **kwargs: Any) -> Any:
        call: Optional[Call] = None
        try:
            if not _context.capturing.get():
                build = getattr(self, "_build_url", None)
                if build is not None:
                    url = build(str_or_url)
                else:
                    from yarl import URL

                    url = URL(str(str_or_url))
                host = f"{url.host}:{url.port}" if url.port else str(url.host)
                extra = propagation_headers(host_key(host))
                if extra:
                    kwargs["headers"] = {**dict(kwargs.get("headers") or {}), **extra}
                call = begin(host, method, url.path)
                if call is not None:
                    call.req_body = kwargs.get("json") or kwargs.get("data")
        except BudgetExceeded:
            raise
        except Exception:
            logger.debug("llmobserve: aiohttp hook failed", exc_info=True)
            call = None
        if call is None:
            return await orig(self, method, str_or_url, **kwargs)
        return await asend_captured(call, lambda: orig(self, method, str_or_url, **kwargs), _attach, "aiohttp")

    _request.__wrapped__ = orig  # type: ignore[attr-defined]
    return _request


def _wrap_feed(orig: Any) -> Any:
    def feed_data(self: Any, data: bytes, *args: Any, **kwargs: Any) -> Any:
        if _taps:
            entry = _taps.get(id(self))
            if entry is not None and data:
                try:
                    entry[0].feed(data)
                except Exception:
                    logger.debug("llmobserve: tap failed", exc_info=True)
        return orig(self, data, *args, **kwargs)

    return feed_data


def _wrap_end(orig: Any) -> Any:
    def end(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return orig(self, *args, **kwargs)
        finally:
            if _taps:
                content = getattr(self, "content", None)
                if content is not None and id(content) in _taps:
                    _finish_reader(content, not content._eof)

    return end


def patch() -> bool:
    if _original:
        return True
    try:
        import aiohttp
        from aiohttp import streams
    except ImportError:
        return False
    _original["_request"] = aiohttp.ClientSession._request
    _original["feed_data"] = streams.StreamReader.feed_data
    _original["release"] = aiohttp.ClientResponse.release
    _original["close"] = aiohttp.ClientResponse.close
    aiohttp.ClientSession._request = _wrap_request(aiohttp.ClientSession._request)  # type: ignore[method-assign]
    streams.StreamReader.feed_data = _wrap_feed(streams.StreamReader.feed_data)  # type: ignore[method-assign]
    aiohttp.ClientResponse.release = _wrap_end(aiohttp.ClientResponse.release)  # type: ignore[method-assign]
    aiohttp.ClientResponse.close = _wrap_end(aiohttp.ClientResponse.close)  # type: ignore[method-assign]
    return True


def unpatch() -> None:
    if not _original:
        return
    import aiohttp
    from aiohttp import streams

    aiohttp.ClientSession._request = _original.pop("_request")  # type: ignore[method-assign]
    streams.StreamReader.feed_data = _original.pop("feed_data")  # type: ignore[method-assign]
    aiohttp.ClientResponse.release = _original.pop("release")  # type: ignore[method-assign]
    aiohttp.ClientResponse.close = _original.pop("close")  # type: ignore[method-assign]
    _taps.clear()
