"""Reading what a client uploads: the body within a size limit and a deadline, then the images in it
(multipart files or one raw image body), parsed in memory.

Errors are ``RequestError``s carrying the HTTP status the route answers with: 408 for a body that
stops arriving, 413 for one over the limit (or too many files), 415 for a body that is neither an
upload nor an image, 400 for a malformed or cut multipart upload, 422 for an upload without a file.
A client that hangs up mid-body is ``ClientGone`` (not an error of the server's: counted as 499).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

MIN_DEADLINE_S = 0.001


class RequestError(Exception):
    """A request the service refuses, with the status and message of the answer."""

    def __init__(self, status: int, message: str, headers: Optional[Dict[str, str]] = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


class ClientGone(Exception):
    """The client closed the connection before its request was read: nothing can be answered."""


@dataclass(frozen=True)
class BodyLimits:
    """How much a client may send and how slowly: ``max_bytes`` in all; the first bytes within
    ``grace_s`` of the request head, and from then on at ``min_rate`` bytes/s on average."""

    max_bytes: int
    grace_s: float
    min_rate: float  # bytes per second

    def deadline(self, start: float, received: int) -> float:
        """When the next bytes must have arrived, given ``received`` bytes since ``start``."""
        return start + self.grace_s + received / self.min_rate


def declared_length(headers) -> Optional[int]:
    text = headers.get("content-length")
    if text is None:
        return None
    if not text.strip().isdigit():  # uvicorn/h11 refuse most of these before the app sees them
        raise RequestError(400, f"invalid Content-Length {text!r}: it must be the body's size in bytes")
    return int(text)


async def read_body(request, limits: BodyLimits) -> bytes:
    """The request body. 413 as soon as it passes the limit (never held whole), 408 when it stops
    arriving at the minimum rate (the connection is then closed), ClientGone if the client hangs up."""
    declared = declared_length(request.headers)
    if declared is not None and declared > limits.max_bytes:
        raise RequestError(413, f"request body is {declared:,} bytes; the limit is {limits.max_bytes:,}")
    loop = asyncio.get_running_loop()
    start = loop.time()
    chunks: List[bytes] = []
    size = 0
    while True:
        left = limits.deadline(start, size) - loop.time()
        try:
            message = await asyncio.wait_for(request.receive(), max(left, MIN_DEADLINE_S))
        except asyncio.TimeoutError:
            raise RequestError(
                408,
                f"the request body stopped arriving ({size:,} bytes in {loop.time() - start:.1f} s; the server "
                f"needs the first bytes within {limits.grace_s:g} s and then at least "
                f"{limits.min_rate / 1024:g} KiB/s); send it again on a faster connection",
                {"Connection": "close"},
            ) from None
        if message["type"] == "http.disconnect":
            raise ClientGone(f"the client left after sending {size:,} bytes of the request body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limits.max_bytes:
            raise RequestError(
                413, f"request body exceeds the {limits.max_bytes:,}-byte limit", {"Connection": "close"}
            )
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


@dataclass
class Part:
    headers: Dict[bytes, bytes] = field(default_factory=dict)
    data: bytearray = field(default_factory=bytearray)


class _TooManyParts(Exception):
    pass


# Text fields a client may send beside its files (a form's other inputs): beyond this many parts in
# all, an upload is refused before the rest is parsed. 200,000 tiny fields under the size limit would
# otherwise cost seconds of parsing per request.
EXTRA_PARTS = 32


class _Collector:
    """python-multipart's callbacks, collecting the parts of a body in memory."""

    def __init__(self, max_parts: int) -> None:
        self.parts: List[Part] = []
        self.field, self.value = b"", b""
        self.complete = False
        self.max_parts = max_parts

    def callbacks(self) -> Dict[str, object]:
        return {
            "on_part_begin": self._begin,
            "on_header_field": lambda data, start, end: self._add("field", data[start:end]),
            "on_header_value": lambda data, start, end: self._add("value", data[start:end]),
            "on_header_end": self._header_end,
            "on_part_data": lambda data, start, end: self.parts[-1].data.extend(data[start:end]),
            "on_end": self._end,
        }

    def _begin(self) -> None:
        if len(self.parts) >= self.max_parts:  # stop at once: the rest of the body is not parsed
            raise _TooManyParts
        self.parts.append(Part())

    def _add(self, which: str, data: bytes) -> None:
        setattr(self, which, getattr(self, which) + data)

    def _header_end(self) -> None:
        self.parts[-1].headers[self.field.lower()] = self.value
        self.field, self.value = b"", b""

    def _end(self) -> None:
        self.complete = True


def multipart_files(body: bytes, content_type: str, max_files: int) -> List[Tuple[str, bytes]]:
    """(file name, bytes) of every file part of a multipart/form-data body, parsed in memory (the
    body is already bounded by the size limit, so nothing is spooled to temporary files that a cut
    upload could leave open). Text fields are ignored."""
    from python_multipart.multipart import MultipartParser, parse_options_header

    _, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if not boundary:
        raise RequestError(400, "malformed multipart upload: the Content-Type has no boundary")
    collected = _Collector(max_files + EXTRA_PARTS)
    parser = MultipartParser(boundary, collected.callbacks())  # type: ignore[arg-type]
    try:
        parser.write(body)
        parser.finalize()
    except _TooManyParts:
        raise RequestError(
            413, f"more than {max_files + EXTRA_PARTS} parts in one multipart upload; send at most {max_files} files"
        ) from None
    except Exception as exc:  # python-multipart raises its own MultipartParseError and ValueErrors
        raise RequestError(400, f"malformed multipart upload ({exc})") from None
    if not collected.complete:
        raise RequestError(
            400,
            f"the multipart upload is cut short: its {len(body):,} bytes end before the closing boundary; "
            "send the whole request",
        )
    files = []
    for part in collected.parts:
        _, options = parse_options_header(part.headers.get(b"content-disposition", b""))
        if b"filename" not in options:
            continue  # a text field
        files.append((options[b"filename"].decode("utf-8", "replace") or "upload", bytes(part.data)))
        if len(files) > max_files:
            raise RequestError(413, f"more than {max_files} files in one request; the limit is {max_files}")
    if not files:
        raise RequestError(422, "the multipart upload holds no file; send the image as a file field")
    return files


async def uploaded_images(request, limits: BodyLimits, max_images: int) -> List[Tuple[str, bytes]]:
    """(name, bytes) of each image in the request: multipart files or one raw image body."""
    content_type = request.headers.get("content-type", "")
    kind = content_type.split(";")[0].strip().lower()
    if kind != "multipart/form-data" and not (kind.startswith("image/") or kind == "application/octet-stream"):
        raise RequestError(
            415,
            f"unsupported Content-Type {kind or '(none)'!r}: send a multipart/form-data upload or a raw image "
            "body with Content-Type image/*",
            {"Connection": "close"},  # its body is not read
        )
    body = await read_body(request, limits)
    if kind == "multipart/form-data":
        # Parsed in a worker thread: a large body must not hold the event loop (every other client) meanwhile.
        return await asyncio.to_thread(multipart_files, body, content_type, max_images)
    return [("body", body)]
