"""``httpx`` and ``httpx2`` (the official openai 3.x / anthropic 2.x clients) patches.

``Client.send`` / ``AsyncClient.send`` are wrapped. A read response is handed
to the buffer as it is (``response.content``, decoded by httpx); a streamed one
gets its ``stream`` replaced by a pass-through that feeds a tap as the user
consumes it, so nothing is buffered and no byte changes.
"""

from __future__ import annotations

import functools
import importlib
from typing import Any, AsyncIterator, Dict, Iterator, List, Optional, Tuple

from ._config import STATE, BudgetExceeded, logger
from ._capture import asend_captured, send_captured
from ._capture import safe as _safe
from ._providers import Call, begin, propagation_headers
from ._sse import StreamTap

MODULES = ("httpx", "httpx2")
_originals: Dict[str, Tuple[Any, Any, Any, Any]] = {}


def _start(request: Any) -> Optional[Call]:
    url = request.url
    host = url.netloc
    cfg = STATE.config
    if cfg is not None and cfg.propagate_to:
        extra = propagation_headers(_norm(host))
        if extra:
            request.headers.update(extra)
    call = begin(host, request.method, url.path)
    if call is not None:
        call.req_body = getattr(request, "_content", None)
    return call


def _norm(host: Any) -> str:
    from ._config import host_key

    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    return host_key(str(host))


def _make_stream_classes(mod: Any) -> Tuple[type, type]:
    class TapSyncStream(mod.SyncByteStream):  # type: ignore[misc,unused-ignore]
        def __init__(self, inner: Any, tap: StreamTap, call: Call) -> None:
            self._inner = inner
            self._tap = tap
            self._call = call

        @property
        def elapsed(self) -> Any:
            return getattr(self._inner, "elapsed", None)

        def __iter__(self) -> Iterator[bytes]:
            tap, call = self._tap, self._call
            try:
                for chunk in self._inner:
                    try:
                        tap.feed(chunk)
                    except Exception:
                        logger.debug("llmobserve: tap failed", exc_info=True)
                    yield chunk
            except GeneratorExit:
                raise
            except BaseException as exc:
                _safe(call.fail, exc)
                raise
            _safe(call.finish)

        def close(self) -> None:
            try:
                self._inner.close()
            finally:
                if not self._call.finished:
                    _safe(self._call.finish, True)

        def __del__(self) -> None:  # abandoned unclosed: still one (partial) event
            call = getattr(self, "_call", None)
            if call is not None and not call.finished:
                _safe(call.finish, True)

    class TapAsyncStream(mod.AsyncByteStream):  # type: ignore[misc,unused-ignore]
        def __init__(self, inner: Any, tap: StreamTap, call: Call) -> None:
            self._inner = inner
            self._tap = tap
            self._call = call

        @property
        def elapsed(self) -> Any:
            return getattr(self._inner, "elapsed", None)

        async def __aiter__(self) -> AsyncIterator[bytes]:
            tap, call = self._tap, self._call
            try:
                async for chunk in self._inner:
                    try:
                        tap.feed(chunk)
                    except Exception:
                        logger.debug("llmobserve: tap failed", exc_info=True)
                    yield chunk
            except GeneratorExit:
                raise
            except BaseException as exc:
                _safe(call.fail, exc)
                raise
            _safe(call.finish)

        async def aclose(self) -> None:
            try:
                await self._inner.aclose()
            finally:
                if not self._call.finished:
                    _safe(self._call.finish, True)

        def __del__(self) -> None:
            call = getattr(self, "_call", None)
            if call is not None and not call.finished:
                _safe(call.finish, True)

    return TapSyncStream, TapAsyncStream


def _attach(call: Call, response: Any, stream_cls: type) -> None:
    call.response(response.status_code)
    content = getattr(response, "_content", None)
    headers = response.headers
    if content is not None:
        call.read_body(content, headers.get("content-type", ""))
        return
    tap = call.start_stream(headers.get("content-type", ""), headers.get("content-encoding", ""))
    response.stream = stream_cls(response.stream, tap, call)


def _wrap_sync(orig: Any, stream_cls: type) -> Any:
    attach = functools.partial(_attach, stream_cls=stream_cls)

    def send(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            call = _start(request)
        except BudgetExceeded:
            raise
        except Exception:
            logger.debug("llmobserve: httpx hook failed", exc_info=True)
            call = None
        if call is None:
            return orig(self, request, *args, **kwargs)
        return send_captured(call, lambda: orig(self, request, *args, **kwargs), attach, "httpx")

    send.__wrapped__ = orig  # type: ignore[attr-defined]
    send.__llmobserve__ = True  # type: ignore[attr-defined]
    return send


def _wrap_async(orig: Any, stream_cls: type) -> Any:
    attach = functools.partial(_attach, stream_cls=stream_cls)

    async def send(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            call = _start(request)
        except BudgetExceeded:
            raise
        except Exception:
            logger.debug("llmobserve: httpx hook failed", exc_info=True)
            call = None
        if call is None:
            return await orig(self, request, *args, **kwargs)
        return await asend_captured(call, lambda: orig(self, request, *args, **kwargs), attach, "httpx")

    send.__wrapped__ = orig  # type: ignore[attr-defined]
    send.__llmobserve__ = True  # type: ignore[attr-defined]
    return send


def patch() -> List[str]:
    done: List[str] = []
    for name in MODULES:
        if name in _originals:
            done.append(name)
            continue
        try:
            mod = importlib.import_module(name)
        except ImportError:
            continue
        sync_cls, async_cls = _make_stream_classes(mod)
        sync_send, async_send = mod.Client.send, mod.AsyncClient.send
        if getattr(sync_send, "__llmobserve__", False):
            continue
        _originals[name] = (mod, sync_send, async_send, None)
        mod.Client.send = _wrap_sync(sync_send, sync_cls)
        mod.AsyncClient.send = _wrap_async(async_send, async_cls)
        done.append(name)
    return done


def unpatch() -> None:
    for name, (mod, sync_send, async_send, _) in list(_originals.items()):
        mod.Client.send = sync_send
        mod.AsyncClient.send = async_send
        del _originals[name]
