"""Providers: who a host is, which calls are billable, and how usage normalises.

Two halves with different budgets:

* ``begin()`` runs on the user's thread for every HTTP request of a patched
  client. It is a cached dict lookup plus a path check; unknown hosts cost one
  dict hit.
* ``build_event()`` runs on the flush thread. It JSON-decodes the kept body (or
  the few SSE payloads the tap kept) and hands it to the format's module in
  ``llmobserve/providers/``, which applies design §4's token rules.
"""

from __future__ import annotations

import datetime as _dt
import re
import time
from typing import Any, Dict, Iterator, Optional, Tuple

from . import _context, providers
from ._config import STATE, BudgetExceeded, host_key, logger
from ._sse import StreamTap
from .providers import EXACT_HOSTS, FORMATS, MATCHERS, SUFFIX_HOSTS, Tokens
from .providers._base import find_json_after as _find_json_after
from .providers._base import loads as _loads
from .providers._base import SERVICE_TIER, SPEED, USAGE
from .providers._base import zero as _zero

Spec = Tuple[str, str]  # (provider, format)
# Keyed by the host exactly as the client holds it (str or bytes), so the hot
# path for a host seen before is one dict lookup.
_host_cache: Dict[Any, Optional[Spec]] = {}


def clear_cache() -> None:
    _host_cache.clear()


def lookup(host: Any) -> Optional[Spec]:
    """``host[:port]`` -> (provider, format), or None for other hosts."""
    try:
        return _host_cache[host]
    except KeyError:
        pass
    raw = host.decode("ascii", "replace") if isinstance(host, (bytes, bytearray)) else str(host)
    spec = _resolve(host_key(raw))
    if len(_host_cache) > 4096:
        _host_cache.clear()
    _host_cache[host] = spec
    return spec


def _resolve(host: str) -> Optional[Spec]:
    cfg = STATE.config
    if cfg is None:
        return None
    if host == cfg.collector_host:
        return None
    name = cfg.hosts.get(host)
    if name is None:
        bare = host.split(":", 1)[0]
        name = cfg.hosts.get(bare) or EXACT_HOSTS.get(bare)
        if name is None:
            for suffix, provider in SUFFIX_HOSTS:
                if bare.endswith(suffix):
                    name = provider
                    break
            else:
                for match in MATCHERS:
                    name = match(bare)
                    if name is not None:
                        break
    if name is None:
        return None
    return (name, FORMATS.get(name, "openai"))


def classify(fmt: str, method: str, path: str) -> Optional[str]:
    """The span type of a billable call, or None for calls not worth an event."""
    if method != "POST":
        return None
    spec = providers.get(fmt)
    return spec.classify(path) if spec is not None else None


class Call:
    """One captured request; built on the user's thread, turned into an event later."""

    __slots__ = (
        "provider",
        "fmt",
        "span_type",
        "path",
        "req_body",
        "start_wall",
        "start_perf",
        "frame",
        "customer",
        "stream",
        "http_status",
        "status",
        "latency_ms",
        "body",
        "tap",
        "partial",
        "error",
        "finished",
        "parsed",
        "req_model",
    )

    def __init__(self, provider: str, fmt: str, span_type: str, path: str) -> None:
        self.provider = provider
        self.fmt = fmt
        self.span_type = span_type
        self.path = path
        self.req_body: Any = None
        self.start_wall = time.time()
        self.start_perf = time.perf_counter()
        self.frame = _context._frame.get()
        self.customer = _context._customer.get()
        self.stream = False
        self.http_status: Optional[int] = None
        self.status = "ok"
        self.latency_ms = 0.0
        self.body: Optional[bytes] = None
        self.tap: Optional[StreamTap] = None
        self.partial = False
        self.error: Optional[str] = None
        self.finished = False
        self.parsed: Any = None  # a large body, already reduced to its usage and model
        self.req_model: Optional[str] = None

    # -- user thread ---------------------------------------------------------
    def response(self, http_status: int) -> None:
        self.http_status = http_status
        if http_status == 429:
            self.status = "rate_limited"
        elif http_status >= 400:
            self.status = "error"

    def read_body(self, body: Optional[bytes], content_type: str) -> None:
        """The client read the whole body: keep it by reference (parsed later). An
        SSE body read whole (``stream=True`` requests read eagerly) stays a stream."""
        ctype = content_type.lower()
        self.stream = "event-stream" in ctype or "eventstream" in ctype
        self.body = body
        self.finish()

    def start_stream(self, content_type: str, content_encoding: str = "") -> StreamTap:
        ctype = content_type.lower()
        self.stream = "event-stream" in ctype or "eventstream" in ctype
        tap = StreamTap(content_encoding, raw_tail="text/event-stream" not in ctype)
        self.tap = tap
        return tap

    def fail(self, exc: BaseException) -> None:
        name = type(exc).__name__
        if name == "CancelledError" or isinstance(exc, (KeyboardInterrupt, GeneratorExit)):
            self.status = "cancelled"
        elif "timeout" in name.lower() or isinstance(exc, TimeoutError):
            self.status = "timeout"
        else:
            self.status = "error"
        self.error = name
        self.finish()

    def finish(self, partial: bool = False) -> None:
        if self.finished:
            return
        self.finished = True
        if partial and self.tap is not None:
            self.tap.close()
            partial = not self.tap.ended()
        self.partial = partial
        self.latency_ms = round((time.perf_counter() - self.start_perf) * 1000.0, 3)
        if self.tap is not None:
            self.tap.close()
        self._shrink()
        _buffer_push(self)

    def _shrink(self) -> None:
        """Never hold big bodies while buffered (a dead collector x 10,000 calls):
        reduce them now. Small ones (nearly every call) are kept by reference."""
        body = self.body
        if body is not None and len(body) > _BIG_BODY:
            self.parsed = _body_json(body)
            self.body = None
        req = self.req_body
        if isinstance(req, (bytes, bytearray, str)) and len(req) > _BIG_REQUEST:
            self.req_model = _request_model(self)
            self.req_body = None


_budget_classes: Dict[Tuple[type, ...], type] = {}


def _budget_error() -> type:
    """``BudgetExceeded``, also typed as the loaded provider SDKs' own base errors.

    The anthropic SDK wraps any foreign exception from its HTTP client in a
    retried ``APIConnectionError``, but passes its own ``AnthropicError`` through
    untouched (openai likewise for ``OpenAIError``): so the user gets
    ``BudgetExceeded`` itself, at once, with no retries."""
    import sys

    bases: Tuple[type, ...] = (BudgetExceeded,)
    for module, name in (("openai", "OpenAIError"), ("anthropic", "AnthropicError")):
        mod = sys.modules.get(module)
        base = getattr(mod, name, None) if mod is not None else None
        if isinstance(base, type) and issubclass(base, Exception):
            bases += (base,)
    cls = _budget_classes.get(bases)
    if cls is None:
        try:
            cls = type("BudgetExceeded", bases, {"__module__": "llmobserve"})
        except TypeError:  # an incompatible base layout: plain BudgetExceeded
            cls = BudgetExceeded
        _budget_classes[bases] = cls
    return cls


def _buffer_push(call: Call) -> None:
    global _buffer_push
    from ._buffer import BUFFER  # late: _buffer imports this module

    _buffer_push = BUFFER.push
    BUFFER.push(call)


def begin(host: Any, method: str, path: str) -> Optional[Call]:
    """Start capturing a request, or return None when it is not ours to record.

    Raises ``BudgetExceeded`` (the only exception the SDK raises on purpose)
    when ``on_cap="raise"`` and the collector said the org is over its cap.
    """
    if _context.capturing.get():
        return None
    spec = lookup(host)
    if spec is None:
        return None
    method = method.upper()
    span_type = classify(spec[1], method, path)
    if span_type is None:
        return _batch_download(spec, path) if method == "GET" else None
    if STATE.over_cap and STATE.config is not None and STATE.config.on_cap == "raise":
        raise _budget_error()(
            "LLMObserve: the organisation is over its spending cap; "
            "the request was not sent (observe(on_cap='raise'))."
        )
    fmt = providers.get(spec[1])
    routed = fmt.route(path) if fmt is not None and fmt.route is not None else None
    if routed is not None:
        return Call(routed[0], routed[1], span_type, path)
    return Call(spec[0], spec[1], span_type, path)


def _batch_download(spec: Spec, path: str) -> Optional[Call]:
    """A download of batch results (already paid for: never refused over the cap)."""
    fmt = providers.get(spec[1])
    if fmt is None or fmt.batch_path is None:
        return None
    sure = fmt.batch_path(path)
    if sure is None:
        return None
    from ._batch import BatchCall  # late: _batch imports this module

    return BatchCall(spec[0], spec[1], path, sure)


def propagation_headers(host: str) -> Optional[Dict[str, str]]:
    """Context headers (design §3) for hosts the user listed in ``propagate_to``."""
    cfg = STATE.config
    if cfg is None or not cfg.propagate_to:
        return None
    if host not in cfg.propagate_to and host.split(":", 1)[0] not in cfg.propagate_to:
        return None
    frame = _context._frame.get()
    headers: Dict[str, str] = {}
    if frame.run_id:
        headers["X-LLMObserve-Run-ID"] = frame.run_id
    if frame.path:
        headers["X-LLMObserve-Section"] = frame.path
    customer = _context._customer.get()
    if customer:
        headers["X-LLMObserve-Customer-ID"] = customer
    return headers or None


# -- flush thread: turning a Call into a wire event ------------------------------


_BIG_BODY = 262_144
_BIG_REQUEST = 65_536


def _body_json(raw: bytes) -> Any:
    """Decode a response body; a very large one (embedding vectors) is searched
    for its ``usage`` and ``model`` instead of decoded whole."""
    if len(raw) <= _BIG_BODY:
        return _loads(raw)
    obj: Dict[str, Any] = {}
    for key in providers.USAGE_KEYS:
        val = _find_json_after(raw, key)
        if val is not None:
            obj[key.decode().strip('"')] = val
    for part in (raw[-4096:], raw[:4096]):  # OpenAI puts it after the vectors
        model = _find_json_after(part, b'"model"')
        if isinstance(model, str):
            obj["model"] = model
            break
    for part in (raw[-4096:], raw[:4096]):
        tier = _find_json_after(part, b'"service_tier"')
        if isinstance(tier, str):
            obj["service_tier"] = tier
            break
    return obj


def _looks_binary(body: bytes) -> bool:
    """AWS event-stream framing (binary) rather than text SSE."""
    return b"\x00" in body[:16]


def _parse(call: Call, meta: Dict[str, Any]) -> Tuple[str, Optional[Tokens]]:
    """(model, tokens) from what the call kept; tokens None when usage is unknown."""
    fmt = providers.get(call.fmt)
    tap = call.tap
    if tap is None and call.stream and call.body is not None:
        tap = StreamTap("", raw_tail=_looks_binary(call.body))
        tap.feed(call.body)
        tap.close()
        return fmt.stream(tap, meta) if fmt is not None else ("", None)
    if tap is not None and call.body is None and call.parsed is None:
        if call.stream:
            return fmt.stream(tap, meta) if fmt is not None else ("", None)
        if tap.complete():
            call.body = tap.kept()  # a JSON body read as a stream: the tap holds all of it
    obj = call.parsed if call.parsed is not None else (_body_json(call.body) if call.body else None)
    if not isinstance(obj, dict):
        return "", None
    if fmt is None:
        model = obj.get("model")
        return (model if isinstance(model, str) else ""), None
    return fmt.body(obj, meta)


def _request_model(call: Call) -> str:
    if call.req_model is not None:
        return call.req_model
    raw = call.req_body
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "replace")
    if isinstance(raw, (bytes, bytearray)) and raw:
        obj = _loads(bytes(raw)) if len(raw) <= _BIG_REQUEST else None
        if isinstance(obj, dict) and isinstance(obj.get("model"), str):
            return str(obj["model"])
        if obj is None:  # big, or not JSON: the SDKs put "model" after the messages
            idx = raw.rfind(b'"model"')
            m = _find_json_after(bytes(raw[idx:idx + 1024]), b'"model"') if idx >= 0 else None
            if isinstance(m, str):
                return m
    elif isinstance(raw, dict) and isinstance(raw.get("model"), str):
        return str(raw["model"])
    return ""


def _rfc3339(ts: float) -> str:
    dt = _dt.datetime.fromtimestamp(ts, _dt.timezone.utc)
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# The collector refuses labels with C0 control characters or lone surrogates (PostgreSQL cannot store
# some of them, and a newline breaks CSV rows and e-mail headers): replace them rather than lose the call.
_UNSENDABLE = re.compile("[\x00-\x1f\ud800-\udfff]")


def _label(value: Optional[str], limit: int) -> Optional[str]:
    if not value:
        return value
    if _UNSENDABLE.search(value):
        value = _UNSENDABLE.sub(lambda m: " " if m.group() < "\x20" else "\ufffd", value)
    return value[:limit]


def _path_sections_cut(path: Optional[str]) -> Optional[str]:
    """Each section of the path cut to 256 characters, as ``section`` is: the collector refuses a longer one."""
    if not path or len(path) <= 256:
        return path
    return "/".join(part[:256] for part in path.split("/"))


def build_event(call: Call) -> Dict[str, Any]:
    meta: Dict[str, Any] = {}
    model, tokens = "", None
    try:
        model, tokens = _parse(call, meta)
    except Exception:  # a malformed body must not lose the call
        logger.debug("llmobserve: could not parse usage", exc_info=True)
    if not model:
        fmt = providers.get(call.fmt)
        if fmt is not None and fmt.model_from_path is not None:
            model = fmt.model_from_path(call.path)
        if not model:
            model = _request_model(call)
    if tokens is None and call.span_type in ("llm", "embedding") and call.status == "ok":
        meta["usage_missing"] = True
    if call.partial:
        meta["partial"] = True
    if call.error:
        meta["error_type"] = call.error
    ttft_ms = None
    if call.stream and call.tap is not None and call.tap.first_at is not None:  # a body read whole: unknown
        ttft_ms = round(max(call.tap.first_at - call.start_perf, 0.0) * 1000.0, 3)
    event_id = _context.new_id()
    return assemble_event(
        call,
        event_id=event_id,
        run_id=call.frame.run_id or event_id,
        span_type=call.span_type,
        model=model,
        tokens=tokens,
        meta=meta,
        status=call.status,
        http_status=call.http_status,
        latency_ms=call.latency_ms,
        stream=call.stream,
        timestamp=call.start_wall,
        ttft_ms=ttft_ms,
    )


def build_events(call: Any) -> Iterator[Dict[str, Any]]:
    """A call's events: one, or one per result line of a batch results file read whole."""
    expand = getattr(call, "events", None)
    if expand is not None:
        return expand()  # type: ignore[no-any-return]
    single = getattr(call, "event", None)
    if single is not None:
        return iter((single(),))
    return iter((build_event(call),))


def assemble_event(
    call: Call,
    *,
    event_id: str,
    run_id: str,
    span_type: str,
    model: str,
    tokens: Optional[Tokens],
    meta: Dict[str, Any],
    status: str,
    http_status: Optional[int],
    latency_ms: Optional[float],
    stream: bool,
    timestamp: Optional[float],
    processing: Optional[str] = None,
    ttft_ms: Optional[float] = None,
) -> Dict[str, Any]:
    """The wire event (design §4). ``meta``'s wire keys (``usage``, ``service_tier``, ``speed``,
    set by the formats) become top-level fields, sent only when known. ``timestamp`` None: the
    collector stamps the event, and keeps the first stamp of its ``event_id`` for a repeat."""
    if not model and span_type in ("llm", "embedding"):
        model = "unknown"
    units = meta.pop(USAGE, None)
    tier = meta.pop(SERVICE_TIER, None)
    speed = meta.pop(SPEED, None)
    frame = call.frame
    event: Dict[str, Any] = {
        "event_id": event_id,
        "run_id": _label(run_id, 128),
        "span_id": _context.new_span_id(),
        "parent_span_id": frame.span_id,
        "section": _label(frame.section, 256),
        "section_path": _label(_path_sections_cut(frame.path), 1024),
        "span_type": span_type,
        "provider": _label(call.provider, 64),
        "model": _label(model, 256),
        "endpoint": _label(call.path, 256),
    }
    event.update(tokens if tokens is not None else _zero())
    event.update(
        {
            "latency_ms": latency_ms,
            "status": status,
            "http_status": http_status,
            "customer_id": _label(call.customer, 256),
            "stream": stream,
            "metadata": meta,
        }
    )
    if timestamp is not None:
        event["timestamp"] = _rfc3339(timestamp)
    if units:
        event["usage"] = units
    if tier:
        event["service_tier"] = tier
    if speed:
        event["speed"] = speed
    if processing:
        event["processing"] = processing
    if ttft_ms is not None:
        event["ttft_ms"] = ttft_ms
    return event
