"""Incremental Server-Sent-Events scanning of a stream as the user consumes it.

The scanner never holds the stream: per chunk it splits lines and remembers only
the few ``data:`` payloads that carry the model and usage (the first one, the
last one and the last one of a few named events). Turning those payloads into
token counts happens later, on the flush thread.
"""

from __future__ import annotations

import time
import zlib
from typing import Dict, Optional

from .providers import SSE_EVENTS, SSE_FINAL, SSE_FINAL_IF

# Named SSE events whose last payload carries the model or the usage (each format declares its own).
INTERESTING = SSE_EVENTS
# Events after which a stream is complete even if the client stops reading before the
# transport's end (the SDKs close the response at [DONE]), and events that end it when their
# payload says so (an Anthropic ``message_delta`` with a ``stop_reason``: LiteLLM closes there).
FINAL = SSE_FINAL
FINAL_IF = SSE_FINAL_IF

_TAIL = 262_144


class StreamTap:
    """Receives the bytes of a response body in order, keeps what usage needs."""

    __slots__ = ("_rest", "_event", "first", "last", "events", "done", "tail", "_decoder", "raw_tail", "total",
                 "first_at")

    def __init__(self, content_encoding: str = "", raw_tail: bool = False) -> None:
        self._rest = b""
        self._event: Optional[bytes] = None
        self.first: Optional[bytes] = None
        self.last: Optional[bytes] = None
        self.events: Dict[bytes, bytes] = {}
        self.done = False  # saw ``data: [DONE]``
        self.tail = bytearray()
        self.raw_tail = raw_tail  # not SSE: keep the last bytes (the whole of a small body)
        self.total = 0
        self.first_at: Optional[float] = None  # perf_counter() when the first body byte arrived (time to first token)
        self._decoder: Optional["zlib._Decompress"] = None
        self.set_encoding(content_encoding)

    def set_encoding(self, content_encoding: str) -> None:
        """Decode what is fed (a client handing us still-compressed bytes)."""
        if self._decoder is not None:
            return
        enc = content_encoding.strip().lower()
        if enc in ("gzip", "x-gzip"):
            self._decoder = zlib.decompressobj(47)
        elif enc == "deflate":
            self._decoder = zlib.decompressobj()

    def feed(self, chunk: bytes) -> None:
        if not chunk:
            return
        if self.first_at is None:
            self.first_at = time.perf_counter()
        if self._decoder is not None:
            try:
                chunk = self._decoder.decompress(chunk)
            except zlib.error:
                self._decoder = None
                return
        if self.raw_tail:
            self.total += len(chunk)
            self.tail += chunk
            if len(self.tail) > 2 * _TAIL:
                del self.tail[:-_TAIL]
            return
        if self._rest:
            chunk = self._rest + chunk
        end = chunk.rfind(b"\n")
        if end < 0:
            self._rest = chunk if len(chunk) <= 1_048_576 else b""  # not SSE: never grow unbounded
            return
        self._rest = chunk[end + 1:]
        if self._event is None and b"event:" not in chunk:
            if self.first is None:
                self._first(chunk, end)
            self._fast(chunk, end)
            return
        for line in chunk[:end].split(b"\n"):
            self._line(line)

    def _first(self, chunk: bytes, end: int) -> None:
        pos = 0
        while pos < end:
            nl = chunk.find(b"\n", pos)
            if nl < 0:
                nl = end
            line = chunk[pos:nl]
            if line.startswith(b"data:"):
                payload = line[5:].strip()
                if payload and payload != b"[DONE]":
                    self.first = payload
                    return
            pos = nl + 1

    def _fast(self, chunk: bytes, end: int) -> None:
        """Streams without named events (OpenAI chat, Gemini): only the chunk's
        last ``data:`` payload can matter, so skip the lines before it."""
        while end > 0:
            start = chunk.rfind(b"\n", 0, end) + 1
            line = chunk[start:end]
            if line.startswith(b"data:"):
                payload = line[5:].strip()
                if payload == b"[DONE]":
                    self.done = True
                elif payload:
                    self.last = payload
                    return
            end = start - 1

    def ended(self) -> bool:
        """Did the provider signal the end of the stream?"""
        if self.done:
            return True
        if self.raw_tail:  # a JSON body: whole when it closes its outer value
            return self.complete() and bytes(self.tail.rstrip()[-1:]) in (b"}", b"]")
        last = self.last
        return last is not None and b'"finishReason"' in last

    def kept(self) -> bytes:
        """The kept tail of a non-SSE body (all of it when ``complete()``)."""
        return bytes(self.tail[-_TAIL:])

    def complete(self) -> bool:
        return self.total <= _TAIL

    def close(self) -> None:
        if self._rest:
            rest, self._rest = self._rest, b""
            self._line(rest)

    def _line(self, line: bytes) -> None:
        if line.startswith(b"data:"):
            payload = line[5:].strip()
            if payload == b"[DONE]":
                self.done = True
                return
            if not payload:
                return
            if self.first is None:
                self.first = payload
            self.last = payload
            event = self._event
            if event is not None:
                if event in INTERESTING:
                    self.events[event] = payload
                check = FINAL_IF.get(event)
                if check is not None and check(payload):
                    self.done = True
        elif line.startswith(b"event:"):
            self._event = line[6:].strip()
            if self._event in FINAL:
                self.done = True
        elif not line.strip():
            self._event = None
