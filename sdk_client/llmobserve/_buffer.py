"""The bounded in-memory buffer and its daemon flush thread.

The user's thread only appends a ``Call`` to a deque (drop-oldest when full).
Building the event dicts, JSON, gzip and the POST all happen on the flush
thread, every ``flush_interval`` seconds or as soon as ``batch_size`` calls wait.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any, Deque, Dict, List, Optional

from . import _context
from ._config import STATE, logger
from ._transport import KEEPALIVE, send_batch

if TYPE_CHECKING:
    from ._providers import Call


class Buffer:
    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._dq: Deque["Call"] = deque()
        self._wake = threading.Event()
        self._flush_lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._thread: Optional[threading.Thread] = None
        self._stop_event: Optional[threading.Event] = None
        self._pid = os.getpid()
        self.captured = 0  # calls recorded since observe() (or the last clear)
        self.dropped = 0  # calls dropped because the buffer was full
        self.failed = 0  # events the collector never accepted
        self.sent = 0
        self.failed_flushes = 0  # POSTs to the collector that failed (after their retries)
        self.last_flush_ms: Optional[float] = None  # how long the last POST took, retries included

    # -- user thread ---------------------------------------------------------
    def push(self, call: "Call") -> None:
        cfg = STATE.config
        if cfg is None or not STATE.active:
            return
        dq = self._dq
        self.captured += 1
        if len(dq) >= cfg.max_buffer:
            try:
                dq.popleft()
                self.dropped += 1
            except IndexError:
                pass
        dq.append(call)
        if self._thread is None:  # forks are handled by register_at_fork, not here
            self._start()
        if len(dq) >= cfg.batch_size:
            self._wake.set()

    def __len__(self) -> int:
        return len(self._dq)

    # -- lifecycle -----------------------------------------------------------
    def _start(self) -> None:
        with self._start_lock:
            if self._pid != os.getpid():  # a fork we were not told about
                self._after_fork_in_child()
            if self._thread is not None:
                return
            # Each thread has its own stop flag: a thread still retrying a dead
            # collector when shutdown() gave up joining it must not resume.
            stop = threading.Event()
            self._stop_event = stop
            thread = threading.Thread(target=self._loop, args=(stop,), name="llmobserve-flush", daemon=True)
            self._thread = thread
            thread.start()

    def _after_fork_in_child(self) -> None:
        """A forked child starts with an empty buffer and no thread: the parent's
        pending calls are the parent's to send."""
        self._reset()
        KEEPALIVE.conn = None  # the parent's socket: never write to it from here
        KEEPALIVE.key = None

    def stop(self, timeout: float = 2.0) -> None:
        if self._stop_event is not None:
            self._stop_event.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        self._thread = None
        self._stop_event = None
        self._wake = threading.Event()

    def clear(self) -> None:
        KEEPALIVE.reset()
        self._dq.clear()
        self.captured = self.dropped = self.failed = self.sent = self.failed_flushes = 0
        self.last_flush_ms = None

    # -- flush thread ----------------------------------------------------------
    def _loop(self, stop: threading.Event) -> None:
        _context.capturing.set(True)  # nothing this thread does is recorded
        wake = self._wake
        while not stop.is_set():
            cfg = STATE.config
            interval = cfg.flush_interval if cfg is not None else 0.5
            wake.wait(interval)
            wake.clear()
            if stop.is_set():
                break
            try:
                self.drain(None, stop)
            except Exception:
                logger.debug("llmobserve: flush failed", exc_info=True)

    def drain(self, deadline: Optional[float], stop: Optional[threading.Event] = None) -> bool:
        """Send everything buffered; True when the buffer ended up empty."""
        from ._providers import build_events

        lock_timeout = -1.0 if deadline is None else max(0.0, deadline - time.monotonic())
        lock = self._flush_lock
        if not lock.acquire(timeout=lock_timeout):
            return False
        token = _context.capturing.set(True)
        try:
            while self._dq and not (stop is not None and stop.is_set()):
                cfg = STATE.config
                if cfg is None:
                    return True
                batch: List["Call"] = []
                while self._dq and len(batch) < cfg.max_batch:
                    batch.append(self._dq.popleft())
                events: List[Dict[str, Any]] = []
                built = 0
                for call in batch:
                    try:
                        n = 0
                        # One event per call, except a batch results file read whole: one per line.
                        for event in build_events(call):
                            n += 1
                            events.append(event)
                            built += 1
                            if len(events) >= cfg.max_batch:
                                self._send(cfg, events, deadline)
                                events = []
                            if built & 7 == 7:
                                # Hand the GIL back often: a user thread whose response just
                                # arrived must not wait out a whole switch interval (5 ms).
                                time.sleep(0)
                        if n > 1:
                            self.captured += n - 1
                    except Exception:
                        logger.debug("llmobserve: dropped an unbuildable event", exc_info=True)
                if events:
                    self._send(cfg, events, deadline)
                if deadline is not None and time.monotonic() >= deadline:
                    break
            return not self._dq
        finally:
            _context.capturing.reset(token)
            lock.release()

    def _send(self, cfg: Any, events: List[Dict[str, Any]], deadline: Optional[float]) -> None:
        started = time.monotonic()
        ok, resp = send_batch(cfg, events, deadline)
        self.last_flush_ms = (time.monotonic() - started) * 1000
        if ok:
            self.sent += len(events)
            _note_response(resp)
        else:
            self.failed += len(events)
            self.failed_flushes += 1


def _note_response(resp: Optional[Dict[str, Any]]) -> None:
    if resp is None or "over_cap" not in resp:
        return
    over = bool(resp.get("over_cap"))
    STATE.over_cap = over
    cfg = STATE.config
    if over and cfg is not None and cfg.on_cap == "warn" and not STATE.cap_warned:
        STATE.cap_warned = True
        logger.warning("LLMObserve: your organisation is over its spending cap.")


BUFFER = Buffer()


def flush(timeout: float = 5.0) -> bool:
    """Send buffered events now; returns True when nothing is left."""
    if STATE.config is None:
        return True
    try:
        return BUFFER.drain(time.monotonic() + max(0.0, timeout))
    except Exception:
        logger.debug("llmobserve: flush failed", exc_info=True)
        return False


def _atexit() -> None:
    if STATE.active:
        flush(timeout=2.0)


_registered = False


def register_process_hooks() -> None:
    global _registered
    if _registered:
        return
    _registered = True
    atexit.register(_atexit)
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=BUFFER._after_fork_in_child)
