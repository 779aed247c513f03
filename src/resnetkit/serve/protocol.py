"""The HTTP/1.1 connection handler the server runs: uvicorn's h11 protocol, plus two things uvicorn
does not do.

- **A deadline for the request head.** uvicorn waits forever for a connection's first bytes and for
  the rest of a request line and headers, so a client that connects, or sends half a header, and then
  stalls holds its connection for as long as it likes (a "slowloris"; uvicorn's keep-alive timeout
  only covers the idle time between requests, and it is cancelled by the first byte). Here every
  request head must be complete within ``read_timeout_s`` of the connection opening or its first byte
  arriving; otherwise the client gets 408 and the connection is closed. (The body has its own
  deadline, enforced where it is read: ``uploads.read_body``.)
- **The service's error shape for malformed requests.** uvicorn answers an unparsable request (a bad
  ``Content-Length``, a broken request line) with the plain text "Invalid HTTP request received.";
  here the answer is the JSON ``{"error", "status"}`` every other error has, naming what h11 found.

Hand-written because no ASGI server offers a header timeout (uvicorn's own is an open feature
request); it subclasses uvicorn's protocol rather than copying it, and is installed with
``uvicorn.Config(http=GuardedH11Protocol)``.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any, Callable, Optional

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

REASONS = {400: "Bad Request", 408: "Request Timeout"}


def raw_json_response(status: int, message: str) -> bytes:
    """A complete HTTP/1.1 response with the service's JSON error body, closing the connection
    (written straight to the transport: h11 cannot answer a request it never parsed)."""
    body = json.dumps({"error": message, "status": status}).encode()
    head = (
        f"HTTP/1.1 {status} {REASONS[status]}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode("latin-1") + body


@dataclass(frozen=True)
class HeadGuard:
    """The deadline for a request head, and what to call (with "timeout" or "malformed") when a
    connection is refused; the app carries it as ``app.state.head_guard``."""

    read_timeout_s: float = 10.0
    on_reject: Optional[Callable[[str], None]] = None


def find_guard(app: Any) -> HeadGuard:
    """The app's HeadGuard, looking through the middleware uvicorn wraps around it."""
    for _ in range(8):
        state = getattr(app, "state", None)
        guard = getattr(state, "head_guard", None) if state is not None else None
        if isinstance(guard, HeadGuard):
            return guard
        app = getattr(app, "app", None)
        if app is None:
            break
    return HeadGuard()


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a request-head deadline and JSON answers to malformed requests;
    its settings come from the app it serves (``find_guard``), so the same class serves one process
    or each of `serve --workers N`'s."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        guard = find_guard(self.app)
        self.read_timeout_s, self.on_reject = guard.read_timeout_s, guard.on_reject
        self._head_timer: Optional[asyncio.TimerHandle] = None
        self._protocol_error: Optional[str] = None
        parse = self.conn.next_event

        def next_event():  # h11's own words for a malformed request, kept for the 400 answer
            try:
                return parse()
            except h11.RemoteProtocolError as exc:
                self._protocol_error = str(exc)
                raise

        self.conn.next_event = next_event  # type: ignore[method-assign]

    # ---- the request-head deadline ---------------------------------------------------------------

    def _waiting_for_head(self) -> bool:
        return self.conn.their_state is h11.IDLE and (self.cycle is None or self.cycle.response_complete)

    def _arm(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.read_timeout_s, self._head_timed_out)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or not self._waiting_for_head():
            return
        self._reject(
            408,
            "timeout",
            f"the request line and headers did not arrive within {self.read_timeout_s:g} s; send the whole "
            "request head at once",
        )

    def _reject(self, status: int, reason: str, message: str) -> None:
        if self.on_reject is not None:
            self.on_reject(reason)
        self.transport.write(raw_json_response(status, message))
        self.transport.close()

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()  # a connection that never sends a byte is let go too

    def data_received(self, data: bytes) -> None:
        if self._waiting_for_head():
            self._arm()  # the first bytes of a request head (also after a keep-alive pause)
        super().data_received(data)
        if not self._waiting_for_head():
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # Between requests uvicorn's keep-alive timer runs; the head deadline starts with the next
        # request's first byte (data_received).
        self._disarm()

    def connection_lost(self, exc) -> None:
        self._disarm()
        super().connection_lost(exc)

    # ---- malformed requests ----------------------------------------------------------------------

    def send_400_response(self, msg: str) -> None:
        detail = self._protocol_error or msg.rstrip(".")
        self._disarm()
        self._reject(
            400,
            "malformed",
            f"malformed HTTP request ({detail}); check the request line and headers such as Content-Length",
        )
