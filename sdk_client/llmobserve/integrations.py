"""Web framework integrations: one run per incoming request, with no code.

* WSGI (any framework): ``app = LLMObserveWSGIMiddleware(app)``
* Flask: ``llmobserve.integrations.instrument_flask(app)``
* ASGI (FastAPI, Starlette, Django ASGI): ``app.add_middleware(LLMObserveASGIMiddleware)``
  or ``app = LLMObserveASGIMiddleware(app)``
* Django: add ``"llmobserve.integrations.LLMObserveDjangoMiddleware"`` to ``MIDDLEWARE``.

With ``trust_headers=True`` (Django: ``LLMOBSERVE_TRUST_HEADERS = True``) the
request's ``X-LLMObserve-Run-ID`` / ``-Section`` / ``-Customer-ID`` headers (sent
by your own services through ``observe(propagate_to=[...])``) continue the
caller's run instead of opening a new one. Off by default: a public client must
not be able to choose which customer its calls are billed to.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any, Awaitable, Callable, Dict, Iterable, Iterator, Mapping, Optional, Tuple

from ._context import _Scope, run, section

__all__ = [
    "LLMObserveWSGIMiddleware",
    "LLMObserveASGIMiddleware",
    "LLMObserveDjangoMiddleware",
    "instrument_flask",
]


def _scopes(get: Callable[[str], Optional[str]], trust: bool) -> Tuple[_Scope, Optional[_Scope]]:
    """The run to open for a request (and the caller's section, when trusted)."""
    if not trust:
        return run(inherit_customer=False).pin(), None
    run_id = get("x-llmobserve-run-id") or None
    customer = get("x-llmobserve-customer-id") or None
    path = get("x-llmobserve-section") or None
    return run(run_id=run_id[:128] if run_id else None, customer_id=customer, inherit_customer=False).pin(), (
        section(path[:1024]).pin() if path else None
    )


class _Entered:
    def __init__(self, scopes: Tuple[_Scope, Optional[_Scope]]) -> None:
        self._scopes = scopes

    def __enter__(self) -> None:
        self._scopes[0].__enter__()
        if self._scopes[1] is not None:
            self._scopes[1].__enter__()

    def __exit__(self, *exc: Any) -> None:
        if self._scopes[1] is not None:
            self._scopes[1].__exit__(None, None, None)
        self._scopes[0].__exit__(None, None, None)


class LLMObserveWSGIMiddleware:
    def __init__(self, app: Callable[..., Iterable[bytes]], trust_headers: bool = False) -> None:
        self.app = app
        self.trust_headers = trust_headers

    def __call__(self, environ: Dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        def get(name: str) -> Optional[str]:
            value = environ.get("HTTP_" + name.upper().replace("-", "_"))
            return str(value) if value is not None else None

        entered = _Entered(_scopes(get, self.trust_headers))
        with entered:
            body = self.app(environ, start_response)
        return _ScopedBody(body, entered)


class _ScopedBody:
    """Re-enters the request's run while a streamed WSGI body is produced."""

    def __init__(self, body: Iterable[bytes], entered: _Entered) -> None:
        self._body = body
        self._entered = entered

    def __iter__(self) -> Iterator[bytes]:
        it = iter(self._body)
        while True:
            with self._entered:
                try:
                    chunk = next(it)
                except StopIteration:
                    return
            yield chunk

    def close(self) -> None:
        close = getattr(self._body, "close", None)
        if close is not None:
            with self._entered:
                close()


def instrument_flask(app: Any, trust_headers: bool = False) -> Any:
    """Wrap a Flask app's WSGI callable; returns the app."""
    app.wsgi_app = LLMObserveWSGIMiddleware(app.wsgi_app, trust_headers=trust_headers)
    return app


ASGIApp = Callable[[Dict[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]


class LLMObserveASGIMiddleware:
    def __init__(self, app: ASGIApp, trust_headers: bool = False) -> None:
        self.app = app
        self.trust_headers = trust_headers

    async def __call__(
        self,
        scope: Dict[str, Any],
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        if scope.get("type") not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers: Mapping[str, str] = {}
        if self.trust_headers:
            headers = {
                k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers") or []
            }
        with _Entered(_scopes(headers.get, self.trust_headers)):
            await self.app(scope, receive, send)


class LLMObserveDjangoMiddleware:
    """Django middleware (sync and async)."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response
        try:  # Django marks async handlers the asgiref way (seen by inspect only on 3.12+)
            asgiref_sync: Any = importlib.import_module("asgiref.sync")
            self._is_async = bool(asgiref_sync.iscoroutinefunction(get_response))
            if self._is_async:
                asgiref_sync.markcoroutinefunction(self)
        except ImportError:
            self._is_async = inspect.iscoroutinefunction(get_response)
        try:
            settings = importlib.import_module("django.conf").settings
            self.trust_headers = bool(getattr(settings, "LLMOBSERVE_TRUST_HEADERS", False))
        except Exception:
            self.trust_headers = False

    def _entered(self, request: Any) -> _Entered:
        meta = getattr(request, "META", {}) or {}

        def get(name: str) -> Optional[str]:
            value = meta.get("HTTP_" + name.upper().replace("-", "_"))
            return str(value) if value is not None else None

        return _Entered(_scopes(get, self.trust_headers))

    def __call__(self, request: Any) -> Any:
        if self._is_async:
            return self.__acall__(request)
        with self._entered(request):
            return self.get_response(request)

    async def __acall__(self, request: Any) -> Any:
        with self._entered(request):
            return await self.get_response(request)
