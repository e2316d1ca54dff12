"""WSGI middleware: request bodies sent with `Transfer-Encoding: chunked` and no Content-Length.

Node's OTLP/HTTP exporters always send chunked bodies. Django's WSGIRequest reads a missing
Content-Length as 0, so without this the body is silently empty. This reads the whole body (at most
`limit` + 1 bytes) before Django sees the request and hands Django a sized stream:

* gunicorn de-chunks the body itself and says so with `wsgi.input_terminated`: read to EOF;
* Django's `runserver` (`make demo`) hands the application `LimitedStream(socket, 0)` and never
  de-chunks: the chunk framing is decoded here from the socket file the stream wraps;
* any other server: the request is left alone, and the ingest views answer 400 for a chunked body
  they cannot read (never an empty batch accepted in its place).

A body over the limit is kept to `limit` + 1 bytes (the view answers 413); the rest is read and
discarded (gunicorn does it itself; under runserver up to DRAIN_FACTOR × the limit) so that the
connection stays usable.
"""

from __future__ import annotations

import io

from django.conf import settings
from django.core.handlers.wsgi import LimitedStream

DECODED = "llmobserve.chunked_decoded"
DRAIN_FACTOR = 8


class ChunkedBodyError(ValueError):
    pass


def _read_chunked(raw, limit: int) -> tuple[bytes, bool]:
    """Decode chunked framing from a raw socket file: (body, complete).

    Keeps at most `limit` + 1 bytes; past that, chunks are read and dropped up to DRAIN_FACTOR × the limit.
    """
    body = bytearray()
    total = 0
    while True:
        line = raw.readline(1026)
        if not line.endswith(b"\n"):
            raise ChunkedBodyError("chunk size line is malformed or the connection closed")
        size_text = line.split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise ChunkedBodyError(f"bad chunk size {size_text[:20]!r}") from None
        if size == 0:
            while raw.readline(8192).strip():  # trailers, up to the empty line
                pass
            return bytes(body), total <= limit
        total += size
        if total > DRAIN_FACTOR * limit:
            raise ChunkedBodyError("chunked body far over the size limit")
        while size:
            data = raw.read(min(size, 1 << 16))
            if not data:
                raise ChunkedBodyError("the connection closed inside a chunk")
            size -= len(data)
            if len(body) <= limit:
                body += data[:limit + 1 - len(body)]
        if raw.readline(3).strip():
            raise ChunkedBodyError("chunk data is not followed by CRLF")


def _socket_file(stream):
    """The socket file under runserver's LimitedStream (its bound read method's owner), or None."""
    if isinstance(stream, LimitedStream) and stream.limit == 0 and stream._pos == 0:
        return getattr(stream._read, "__self__", None)
    return None


class ChunkedBodyMiddleware:
    def __init__(self, application, *, limit: int | None = None):
        self.application = application
        self.limit = limit

    def __call__(self, environ, start_response):
        if "chunked" not in environ.get("HTTP_TRANSFER_ENCODING", "").lower() or environ.get("CONTENT_LENGTH"):
            return self.application(environ, start_response)
        limit = self.limit if self.limit is not None else settings.LLMOBSERVE_MAX_BODY_BYTES
        stream = environ.get("wsgi.input")
        complete = True
        try:
            if environ.get("wsgi.input_terminated"):
                body = stream.read(limit + 1)  # gunicorn drops the unread rest itself
                complete = len(body) <= limit
            elif (raw := _socket_file(stream)) is not None:
                body, complete = _read_chunked(raw, limit)
            else:
                return self.application(environ, start_response)
        except (ChunkedBodyError, OSError, ValueError):
            environ[DECODED] = "error"  # no Content-Length: the view answers 400
            return self.application(environ, start_response)
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        environ[DECODED] = "ok" if complete else "truncated"
        return self.application(environ, start_response)
