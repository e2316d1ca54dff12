"""Batch results: one event per result line of a downloaded OpenAI Batch output file or
Anthropic Message Batch results file (JSONL), and no event for the download itself.

A download the client streams is split into lines as the user reads it: each complete line is
decoded and reduced at once to the few facts an event needs (custom id, status, model, usage,
served tier), and only the unfinished line is held, so a file of any size costs one line plus a
chunk; the user's bytes are neither buffered nor altered. A download the client read whole (the
user's ``bytes``, already in memory) is split on the flush thread.

Each line's event says ``processing: "batch"``, carries ``custom_id`` in its metadata and the
section, run and customer active at download time. Its ``event_id`` is derived from the file and
the custom id, so downloading the same results twice never counts them twice.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from typing import Any, Dict, Iterator, Optional

from . import providers
from ._config import logger
from ._providers import Call, assemble_event
from .providers._base import BatchLine, Meta, Tokens

# A single line longer than this (no newline in sight) is not a batch result: stop reading it.
_MAX_LINE = 16 * 1_048_576
# An OpenAI files download whose first line is not even this long a JSON object is not batch output.
_SHAPE_PROBE = 1_048_576


class BatchItem:
    """One result line, reduced: what ``build_event`` needs and nothing of the line's text."""

    __slots__ = ("call", "custom_id", "status", "http_status", "model", "tokens", "meta", "span_type", "created")

    def __init__(self, call: "BatchCall", line: BatchLine) -> None:
        custom_id, status, http_status, body = line
        self.call = call
        self.custom_id = custom_id
        self.status = status
        self.http_status = http_status
        self.model = ""
        self.tokens: Optional[Tokens] = None
        self.meta: Meta = {}
        self.span_type = "llm"
        self.created: Optional[float] = None
        if body is None:
            return
        fmt = providers.get(call.fmt)
        if fmt is not None:
            self.model, self.tokens = fmt.body(body, self.meta)
        if body.get("object") == "list" and isinstance(body.get("data"), list):
            self.span_type = "embedding"
        created = body.get("created", body.get("created_at"))
        if isinstance(created, (int, float)) and not isinstance(created, bool):
            self.created = float(created)

    def event(self) -> Dict[str, Any]:
        call = self.call
        meta = self.meta
        meta["custom_id"] = self.custom_id
        tokens = self.tokens
        if tokens is None and self.status == "ok":
            meta["usage_missing"] = True
        # The provider's own time for the answer when it gives one (and it is not in the future). Without
        # one, no timestamp: the download's time would differ on a second download, and the collector's
        # key is (event_id, timestamp); it stamps the line and keeps its first stamp for a repeat.
        ts = None
        if self.created is not None and 0 < self.created <= call.start_wall:
            ts = self.created
        return assemble_event(
            call,
            event_id=_event_id(call, self.custom_id),
            run_id=call.run_id,
            span_type=self.span_type,
            model=self.model,
            tokens=tokens,
            meta=meta,
            status=self.status,
            http_status=self.http_status,
            latency_ms=None,
            stream=False,
            timestamp=ts,
            processing="batch",
        )


def _event_id(call: "BatchCall", custom_id: str) -> str:
    """Stable per (provider, file, custom id): a second download of the same results is a repeat."""
    digest = hashlib.sha256(f"{call.provider}\n{call.path}\n{custom_id}".encode("utf-8", "replace"))
    return "batch-" + digest.hexdigest()[:48]


class LineTap:
    """Fed the response bytes in order (the same surface as ``StreamTap``); splits JSONL lines."""

    __slots__ = ("call", "_rest", "_decoder", "off")

    def __init__(self, call: "BatchCall", content_encoding: str = "") -> None:
        self.call = call
        self._rest = b""
        self._decoder: Optional["zlib._Decompress"] = None
        self.off = False  # not batch results after all (or a line too long): ignore the rest
        self.set_encoding(content_encoding)

    def set_encoding(self, content_encoding: str) -> None:
        if self._decoder is not None:
            return
        enc = content_encoding.strip().lower()
        if enc in ("gzip", "x-gzip"):
            self._decoder = zlib.decompressobj(47)
        elif enc == "deflate":
            self._decoder = zlib.decompressobj()

    def feed(self, chunk: bytes) -> None:
        if not chunk or self.off:
            return
        if self._decoder is not None:
            try:
                chunk = self._decoder.decompress(chunk)
            except zlib.error:
                self.off = True
                return
        data = self._rest + chunk if self._rest else chunk
        start = 0
        while not self.off:
            nl = data.find(b"\n", start)
            if nl < 0:
                break
            self._line(data[start:nl])
            start = nl + 1
        self._rest = data[start:] if start else data
        if len(self._rest) > _MAX_LINE:
            self._rest = b""
            self.off = True

    def _line(self, raw: bytes) -> None:
        raw = raw.strip()
        if not raw:
            return
        try:
            item = self.call.read_line(raw)
        except Exception:  # one odd line must not lose the lines after it
            logger.debug("llmobserve: unreadable batch line", exc_info=True)
            return
        if item is None:
            if self.call.verdict is False:
                self.off = True
            return
        self.call.push_item(item)

    def close(self) -> None:
        if self._rest and not self.off:
            rest, self._rest = self._rest, b""
            self._line(rest)
        self._rest = b""

    def ended(self) -> bool:
        return True


class BatchCall(Call):
    """A GET of batch results. ``verdict``: True once known to be batch results, False when the
    first line shows it is some other file (nothing is recorded), None until then."""

    __slots__ = ("verdict", "run_id", "line_tap")

    def __init__(self, provider: str, fmt: str, path: str, sure: bool) -> None:
        super().__init__(provider, fmt, "llm", path)
        self.verdict: Optional[bool] = True if sure else None
        self.run_id = self.frame.run_id or "batch-" + hashlib.sha256(
            f"{provider}\n{path}".encode("utf-8", "replace")).hexdigest()[:32]
        self.line_tap: Optional[LineTap] = None

    # -- user thread ---------------------------------------------------------
    def read_line(self, raw: bytes) -> Optional[BatchItem]:
        """Decode one line and reduce it; None for a line that is not a batch result."""
        fmt = providers.get(self.fmt)
        if fmt is None or fmt.batch_line is None:
            self.verdict = False
            return None
        try:
            obj = json.loads(raw)
        except ValueError:
            obj = None
        line = fmt.batch_line(obj)
        if self.verdict is None:
            self.verdict = line is not None
        if line is None:
            return None
        return BatchItem(self, line)

    def push_item(self, item: BatchItem) -> None:
        from ._buffer import BUFFER  # late: _buffer imports _providers

        BUFFER.push(item)  # type: ignore[arg-type]

    def read_body(self, body: Optional[bytes], content_type: str) -> None:
        """Read whole by the client: the bytes are the user's already; split them on the flush thread."""
        if self.finished:
            return
        self.finished = True
        if self.status != "ok" or not body:
            return  # a failed download holds no results
        if self.verdict is None:
            end = body.find(b"\n", 0, _SHAPE_PROBE)
            first = body[: end if end >= 0 else _SHAPE_PROBE].strip()
            if self.read_line(first) is None:
                return
        self.body = body
        from ._buffer import BUFFER

        BUFFER.push(self)

    def start_stream(self, content_type: str, content_encoding: str = "") -> LineTap:  # type: ignore[override]
        tap = LineTap(self, content_encoding)
        if self.status != "ok":
            tap.off = True
        self.line_tap = tap
        return tap

    def fail(self, exc: BaseException) -> None:
        """A download that broke: the lines read so far were recorded; nothing else to say."""
        self.finish()

    def finish(self, partial: bool = False) -> None:
        if self.finished:
            return
        self.finished = True
        if self.line_tap is not None:
            self.line_tap.close()

    # -- flush thread ----------------------------------------------------------
    def events(self) -> Iterator[Dict[str, Any]]:
        """The events of a body read whole, one line at a time (never a copy of the body)."""
        body, self.body = self.body, None
        if not body:
            return
        view = memoryview(body)
        pos, size = 0, len(body)
        while pos < size:
            nl = body.find(b"\n", pos)
            end = size if nl < 0 else nl
            raw = bytes(view[pos:end]).strip()
            pos = end + 1
            if not raw:
                continue
            try:
                item = self.read_line(raw)
            except Exception:
                logger.debug("llmobserve: unreadable batch line", exc_info=True)
                continue
            if item is not None:
                yield item.event()
