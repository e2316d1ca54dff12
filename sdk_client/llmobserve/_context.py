"""Run / section / customer context, carried by ``contextvars``.

One immutable ``Frame`` per nesting level lives in a ContextVar, so reading the
context on the hot path is a single ``ContextVar.get()`` and asyncio tasks get
their own copy for free. Thread pools get it through ``propagating_submit``.
"""

from __future__ import annotations

import functools
import inspect
import os
import uuid
from contextvars import ContextVar, Token
from types import TracebackType
from typing import (
    Any,
    AsyncGenerator,
    Callable,
    Generator,
    Optional,
    Tuple,
    Type,
    TypeVar,
    cast,
)

F = TypeVar("F", bound=Callable[..., Any])


def new_id() -> str:
    """A uuid4 as 32 hex digits."""
    return uuid.UUID(bytes=os.urandom(16), version=4).hex


def new_span_id() -> str:
    return os.urandom(8).hex()


class Frame:
    """An immutable snapshot of where the code is: run, span and section path."""

    __slots__ = ("run_id", "span_id", "parent_span_id", "path", "section")

    def __init__(
        self,
        run_id: Optional[str],
        span_id: Optional[str],
        parent_span_id: Optional[str],
        path: str,
        section: str,
    ) -> None:
        self.run_id = run_id
        self.span_id = span_id
        self.parent_span_id = parent_span_id
        self.path = path
        self.section = section


ROOT = Frame(None, None, None, "", "")
_frame: ContextVar[Frame] = ContextVar("llmobserve_frame", default=ROOT)
_customer: ContextVar[Optional[str]] = ContextVar("llmobserve_customer", default=None)
# Set while a patched client handles a call, so nested clients (requests ->
# urllib3, httpx over an aiohttp transport) and the SDK's own flush record nothing.
capturing: ContextVar[bool] = ContextVar("llmobserve_capturing", default=False)


def current_frame() -> Frame:
    return _frame.get()


def set_customer_id(customer_id: Optional[str]) -> None:
    """Attach ``customer_id`` to every event captured in this context until changed."""
    _customer.set(None if customer_id is None else str(customer_id)[:256])


class _Scope:
    """A section or run; usable as a (async) context manager and as a decorator."""

    def __init__(
        self,
        label: Optional[str],
        new_run: bool,
        run_id: Optional[str] = None,
        customer_id: Optional[str] = None,
        inherit_customer: bool = True,
    ) -> None:
        self._inherit_customer = inherit_customer
        self._label = label
        self._new_run = new_run
        self._run_id = run_id
        self._customer_id = customer_id
        self._tokens: list[Tuple[Token[Frame], Optional[Token[Optional[str]]]]] = []
        # A pinned scope re-enters with the frame it built first: a generator or
        # a streamed response body is one span, resumed step by step.
        self._pinned = False
        self._built: Optional[Frame] = None

    def pin(self) -> "_Scope":
        self._pinned = True
        return self

    # -- context manager -------------------------------------------------
    def __enter__(self) -> "_Scope":
        if self._built is not None:
            self._tokens.append((_frame.set(self._built), self._enter_customer()))
            return self
        parent = _frame.get()
        run_id = parent.run_id
        if self._new_run or run_id is None:
            run_id = self._run_id or new_id()
        if self._label:
            path = f"{parent.path}/{self._label}" if parent.path else self._label
            section = self._label
        else:
            path, section = parent.path, parent.section
        frame = Frame(run_id, new_span_id(), parent.span_id, path[:1024], section[:256])
        if self._pinned:
            self._built = frame
        self._tokens.append((_frame.set(frame), self._enter_customer()))
        return self

    def _enter_customer(self) -> Optional[Token[Optional[str]]]:
        """A run restores the customer id at exit, so a ``set_customer_id()`` made
        inside one request never leaks into the next request of the same thread."""
        if self._customer_id is not None:
            return _customer.set(self._customer_id)
        if self._new_run:
            return _customer.set(_customer.get() if self._inherit_customer else None)
        return None

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        ftok, ctok = self._tokens.pop()
        try:
            _frame.reset(ftok)
            if ctok is not None:
                _customer.reset(ctok)
        except ValueError:  # exited in another context (generator moved threads)
            _frame.set(ftok.old_value if ftok.old_value is not Token.MISSING else ROOT)

    async def __aenter__(self) -> "_Scope":
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    def _fresh(self) -> "_Scope":
        return _Scope(self._label, self._new_run, self._run_id, self._customer_id, self._inherit_customer)

    # -- decorator ---------------------------------------------------------
    def __call__(self, func: F) -> F:
        make = self._fresh
        if inspect.isasyncgenfunction(func):

            @functools.wraps(func)
            async def agen_wrapper(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, Any]:
                scope = make().pin()
                gen = func(*args, **kwargs)
                # Re-enter the scope around each step: the consumer may resume us
                # from a different context than the one that created us. Values,
                # exceptions and close() are forwarded to the wrapped generator.
                value: Any = None
                exc: Optional[BaseException] = None
                while True:
                    with scope:
                        try:
                            item = await (gen.asend(value) if exc is None else gen.athrow(exc))
                        except StopAsyncIteration:
                            return
                    exc = None
                    try:
                        value = yield item
                    except GeneratorExit:
                        with scope:
                            await gen.aclose()
                        raise
                    except BaseException as thrown:
                        exc, value = thrown, None

            return cast(F, agen_wrapper)
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                with make():
                    return await func(*args, **kwargs)

            return cast(F, async_wrapper)
        if inspect.isgeneratorfunction(func):

            @functools.wraps(func)
            def gen_wrapper(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
                scope = make().pin()
                gen = func(*args, **kwargs)
                value: Any = None
                exc: Optional[BaseException] = None
                while True:
                    with scope:
                        try:
                            item = gen.send(value) if exc is None else gen.throw(exc)
                        except StopIteration as stop:
                            return stop.value
                    exc = None
                    try:
                        value = yield item
                    except GeneratorExit:
                        with scope:
                            gen.close()
                        raise
                    except BaseException as thrown:
                        exc, value = thrown, None

            return cast(F, gen_wrapper)

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with make():
                return func(*args, **kwargs)

        return cast(F, wrapper)


def section(name: str) -> _Scope:
    """Label the calls inside with ``name``; nesting builds ``section_path``.

    The outermost section also opens a run when none is active.
    """
    return _Scope(str(name), new_run=False)


def agent(name: str) -> _Scope:
    return _Scope(f"agent:{name}", new_run=False)


def tool(name: str) -> _Scope:
    return _Scope(f"tool:{name}", new_run=False)


def trace(
    agent: Optional[str] = None,
    tool: Optional[str] = None,
    step: Optional[str] = None,
    name: Optional[str] = None,
) -> _Scope:
    """``@trace(agent="researcher")`` == ``@agent("researcher")``, etc."""
    if agent:
        label = f"agent:{agent}"
    elif tool:
        label = f"tool:{tool}"
    elif step:
        label = f"step:{step}"
    elif name:
        label = name
    else:
        raise ValueError("trace() needs one of agent=, tool=, step= or name=")
    return _Scope(label, new_run=False)


def run(
    run_id: Optional[str] = None, customer_id: Optional[str] = None, *, inherit_customer: bool = True
) -> _Scope:
    """An explicit run boundary: the calls inside share one ``run_id``.

    The customer id is inherited (unless ``inherit_customer=False``) and whatever
    ``set_customer_id()`` does inside the run is undone when it ends.
    """
    return _Scope(None, new_run=True, run_id=run_id, customer_id=customer_id, inherit_customer=inherit_customer)


def wrap_with_context(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Carry the caller's run/section/customer into another thread."""
    frame = _frame.get()
    customer = _customer.get()
    if frame is ROOT and customer is None:
        return fn

    @functools.wraps(fn)
    def runner(*args: Any, **kwargs: Any) -> Any:
        ftok = _frame.set(frame)
        ctok = _customer.set(customer)
        try:
            return fn(*args, **kwargs)
        finally:
            _customer.reset(ctok)
            _frame.reset(ftok)

    return runner


def reset_for_tests() -> None:
    _frame.set(ROOT)
    _customer.set(None)


_orig_submit: list[Any] = []


def patch_executor() -> None:
    """``ThreadPoolExecutor.submit`` carries the submitter's run/section/customer,
    as users expect of ``with section(...): pool.map(call_llm, ...)``."""
    if _orig_submit:
        return
    from concurrent.futures import ThreadPoolExecutor

    orig = ThreadPoolExecutor.submit
    _orig_submit.append(orig)

    def submit(self: Any, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        try:
            fn = wrap_with_context(fn)
        except Exception:
            pass
        return orig(self, fn, *args, **kwargs)

    submit.__wrapped__ = orig  # type: ignore[attr-defined]
    ThreadPoolExecutor.submit = submit  # type: ignore[method-assign]


def unpatch_executor() -> None:
    if _orig_submit:
        from concurrent.futures import ThreadPoolExecutor

        ThreadPoolExecutor.submit = _orig_submit.pop()  # type: ignore[method-assign]
