"""One HTTP/2 stream: a request's half of a multiplexed connection.

The connection's reader task calls :meth:`H2Stream.deliver` with the h2
events of this stream; the request's task takes them from the inbox with
:meth:`receive_head` and :meth:`receive_data`. Everything a stream does to
h2 is synchronous; the connection's writer puts it on the wire.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterable
from typing import TYPE_CHECKING

import h2.errors
import h2.events
import h2.exceptions
import trio

from ._errors import LocalProtocolError, ReadTimeout, RemoteProtocolError, StreamReset, WriteTimeout
from ._h2_state import BodyLengthMismatch
from ._headers import Headers

if TYPE_CHECKING:
    from ._http2 import HTTP2Connection
    from ._models import Request

__all__ = ["H2Stream", "StreamRefused"]

#: Hop-by-hop fields that HTTP/2 forbids (RFC 9113 §8.2.2); Host becomes :authority.
_DROPPED = frozenset(
    {b"host", b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade"}
)
_REFUSED = h2.errors.ErrorCodes.REFUSED_STREAM
_CANCEL = h2.errors.ErrorCodes.CANCEL
_HTTP_1_1_REQUIRED = h2.errors.ErrorCodes.HTTP_1_1_REQUIRED


class StreamRefused(Exception):
    """The server did not process the request (GOAWAY above its last stream,
    REFUSED_STREAM, HTTP_1_1_REQUIRED, or the connection could take no
    stream): any method may be sent again. Internal: the Session replays it,
    or raises what :meth:`error` makes once it may not.

    Attributes:
        error_code: the RST_STREAM code, if the server reset the stream.
        wait: back off before the replay (the server said it is busy).
        downgrade: replay over HTTP/1.1 (HTTP_1_1_REQUIRED).
        goaway_last_id: the last stream id of the GOAWAY that refused it;
            None if no GOAWAY did.
    """

    def __init__(
        self, reason: str, error_code: int | None = None, *, goaway_last_id: int | None = None
    ) -> None:
        super().__init__(reason)
        self.error_code = error_code
        self.goaway_last_id = goaway_last_id
        self.wait = error_code == _REFUSED
        self.downgrade = error_code == _HTTP_1_1_REQUIRED

    def error(self, request: Request) -> RemoteProtocolError | StreamReset:
        """The public exception for a request that may not be replayed."""
        if self.error_code is None:
            return RemoteProtocolError(str(self), request=request)
        return StreamReset(str(self), error_code=self.error_code, request=request)


class _Lost:
    """Inbox marker: the connection failed."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


class _Refused(_Lost):
    """Inbox marker: the server will not process this stream (GOAWAY)."""

    __slots__ = ("last_id",)

    def __init__(self, reason: str, last_id: int) -> None:
        super().__init__(reason)
        self.last_id = last_id


Item = h2.events.Event | _Lost


class H2Stream:
    """One request/response exchange on an :class:`HTTP2Connection`.

    Attributes:
        nothing_received: no frame of a response arrived yet.
        trailers: the trailer fields, once the body has been read.
    """

    __slots__ = (
        "_conn",
        "_inbox",
        "_max_header_count",
        "_ticket",
        "_unsent",
        "_waiter",
        "closed",
        "headers_ticket",
        "local_ended",
        "nothing_received",
        "remote_ended",
        "request",
        "reset_code",
        "stream_id",
        "trailers",
    )

    def __init__(
        self, conn: HTTP2Connection, stream_id: int, request: Request, max_header_count: int
    ) -> None:
        self._conn = conn
        self.stream_id = stream_id
        self.request = request
        self._max_header_count = max_header_count
        self._inbox: deque[Item] = deque()
        self._waiter: trio.lowlevel.Task | None = None  # the request task, parked in _next
        self._ticket: int | None = None  # its wait's entry in the connection's ReadDeadlines
        self._unsent = memoryview(b"")  # what send_headers could not queue
        self.nothing_received = True
        self.local_ended = False
        self.remote_ended = False
        self.reset_code: int | None = None
        self.closed = False
        self.headers_ticket = 0  # the writer's ticket for our HEADERS
        self.trailers = Headers()

    # -- the reader's side ------------------------------------------------------

    def deliver(self, item: Item) -> None:
        """File an event for the request task (called by the reader task)."""
        if isinstance(item, h2.events.StreamReset):
            self.reset_code = item.error_code
            self._conn.wake_uploaders()
        elif isinstance(item, h2.events.StreamEnded):
            self.remote_ended = True
            self._conn.wake_uploaders()
        self.nothing_received = False
        self._inbox.append(item)
        self._wake()

    def refuse(self, reason: str, goaway_last_id: int) -> None:
        self._push(_Refused(reason, goaway_last_id))

    def connection_lost(self, reason: str) -> None:
        self._push(_Lost(reason))

    def _push(self, marker: _Lost) -> None:
        self._inbox.append(marker)
        self._wake()

    # -- sending ------------------------------------------------------------------

    def send_headers(self) -> None:
        """Queue HEADERS, and the whole body too if it is in memory and fits
        the send windows (the common case: no await at all)."""
        request = self.request
        body = request.content if request.stream is None else None
        end = request.stream is None and not body
        h2c = self._conn.h2
        try:
            h2c.send_request(self.stream_id, _request_headers(request), end)
        except h2.exceptions.TooManyStreamsError:
            # The peer lowered MAX_CONCURRENT_STREAMS under a lease in flight.
            raise StreamRefused("the server allows no more streams right now") from None
        except h2.exceptions.ProtocolError as exc:
            raise LocalProtocolError(f"cannot send this request: {exc}", request=request) from exc
        self.local_ended = end
        if body:
            self._unsent = self._queue(memoryview(body))
            if not self._unsent:
                h2c.end_stream(self.stream_id)
                self.local_ended = True
        self.headers_ticket = self._conn.kick()

    async def send_body(self, write_timeout: float | None) -> None:
        """Send what :meth:`send_headers` could not, within the peer's flow
        control windows, a window's worth at a time (never the whole body
        into a buffer). Stops early if the server already answered or
        reset the stream: the response tells the rest."""
        if self.local_ended:
            return
        request = self.request
        try:
            if request.stream is None:
                await self._send_bytes(self._unsent, write_timeout)
            elif isinstance(request.stream, AsyncIterable):
                async for chunk in request.stream:
                    await self._send_bytes(memoryview(chunk), write_timeout)
            else:
                for chunk in request.stream:
                    await self._send_bytes(memoryview(chunk), write_timeout)
            if not self._upload_stopped:
                self._conn.h2.end_stream(self.stream_id)
                self.local_ended = True
                self._conn.kick()
        except h2.exceptions.ProtocolError:
            # The stream was reset or answered, or the connection ended,
            # while we sent: reading the response says which.
            pass

    def never_sent(self) -> bool:
        """The connection failed before a byte of this request was written."""
        return self._conn.never_sent(self.headers_ticket)

    @property
    def _upload_stopped(self) -> bool:
        return self.remote_ended or self.reset_code is not None or self._conn.error is not None

    async def _send_bytes(self, view: memoryview, timeout: float | None) -> None:
        """Send *view* as the windows allow. *timeout* bounds each wait (for
        the socket, or for window), not the whole body: a slow, steady
        upload is fine, as over HTTP/1.1."""
        while view and not self._upload_stopped:
            rest = self._queue(view)
            if len(rest) < len(view):
                await self._conn.flush(timeout, self.request)  # backpressure
            elif not await self._conn.wait_for_window(
                None if timeout is None else trio.current_time() + timeout
            ):
                raise WriteTimeout(
                    f"sending the request took over {timeout}s: "
                    "the server kept its flow-control window closed",
                    request=self.request,
                )
            view = rest

    def _queue(self, view: memoryview) -> memoryview:
        """Queue as much of *view* as the windows allow; return the rest."""
        h2c = self._conn.h2
        while view:
            size = min(h2c.local_flow_control_window(self.stream_id), h2c.max_outbound_frame_size)
            if size <= 0:
                break
            h2c.send_data(self.stream_id, bytes(view[:size]))
            view = view[size:]
        return view

    # -- receiving ----------------------------------------------------------------

    async def receive_head(self, read_timeout: float | None) -> tuple[int, Headers]:
        """Wait for the final response head (1xx interim responses skipped)."""
        while True:
            event = await self._next(read_timeout)
            if isinstance(event, h2.events.ResponseReceived):
                return self._head(event.headers)
            if not isinstance(event, h2.events.InformationalResponseReceived):
                raise self._failure(event)

    async def receive_data(self, read_timeout: float | None) -> bytes:
        """The next piece of the body; b"" once it is complete. Reading is
        what reopens the peer's send window."""
        while True:
            event = await self._next(read_timeout)
            if isinstance(event, h2.events.DataReceived):
                self._acknowledge(event.flow_controlled_length)
                if event.data:
                    return event.data
            elif isinstance(event, h2.events.StreamEnded):
                return b""
            elif isinstance(event, h2.events.TrailersReceived):
                self._keep_trailers(event)
            else:
                raise self._failure(event)

    async def receive_rest(self, read_timeout: float | None) -> bytes:
        """The rest of the body in one piece (for ``aread()``). Each wake
        takes every event already in the inbox in one pass, and reopens the
        window once for all of them, not once per DATA frame through every
        layer above; the window is still reopened before each wait, so a
        body larger than it keeps coming."""
        parts: list[bytes] = []
        while not self._collect(await self._next(read_timeout), parts):
            pass
        return b"".join(parts)

    def _collect(self, event: Item, parts: list[bytes]) -> bool:
        """Take *event* and those queued after it into *parts*, acknowledge
        their DATA; True once the stream has ended."""
        consumed = 0
        ended = False
        inbox = self._inbox
        while True:
            if isinstance(event, h2.events.DataReceived):
                consumed += event.flow_controlled_length
                parts.append(event.data)
            elif isinstance(event, h2.events.StreamEnded):
                ended = True
            elif isinstance(event, h2.events.TrailersReceived):
                self._keep_trailers(event)
            else:
                self._acknowledge(consumed)
                raise self._failure(event)
            if ended or not inbox:
                break
            event = inbox.popleft()
        self._acknowledge(consumed)
        return ended

    def _keep_trailers(self, event: h2.events.TrailersReceived) -> None:
        # In place: the Response already holds this object.
        self.trailers.extend_raw((bytes(n), bytes(v)) for n, v in event.headers)

    def close(self) -> None:
        """The request is done with this stream: reset it if it is still
        open (CANCEL), give back the window of data nobody will read, and
        free its slot. Synchronous, so it is safe in any cleanup path."""
        if self.closed:
            return
        self.closed = True
        conn = self._conn
        unread = sum(
            e.flow_controlled_length for e in self._inbox if isinstance(e, h2.events.DataReceived)
        )
        self._inbox.clear()
        if conn.error is None:
            try:
                if unread:
                    conn.h2.acknowledge_received_data(unread, self.stream_id)
                if self.reset_code is None and not (self.local_ended and self.remote_ended):
                    conn.h2.reset_stream(self.stream_id, _CANCEL)
            except h2.exceptions.ProtocolError:
                pass  # the stream closed meanwhile: nothing to say
            if conn.h2.has_output:
                conn.kick()
        conn.forget(self)

    async def _next(self, timeout: float | None) -> Item:
        if not self._inbox:
            # Parked directly (no Event per wait), its read timeout kept by
            # the connection (no cancel scope per wait): see _read_deadlines.
            self._waiter = trio.lowlevel.current_task()
            self._ticket = None
            if timeout is not None:
                conn = self._conn
                deadline = trio.current_time() + timeout
                self._ticket = conn.read_deadlines.arm(deadline, self, len(conn.streams))
            await trio.lowlevel.wait_task_rescheduled(self._abort_wait)
            if not self._inbox:  # woken by time_out
                raise ReadTimeout(f"no response data within {timeout}s", request=self.request)
        return self._inbox.popleft()

    def read_ticket(self) -> int | None:
        return self._ticket if self._waiter is not None else None

    def time_out(self) -> None:
        self._wake()

    def _abort_wait(self, _: object) -> trio.lowlevel.Abort:
        self._waiter = None
        return trio.lowlevel.Abort.SUCCEEDED

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None:
            trio.lowlevel.reschedule(waiter)

    def _acknowledge(self, size: int) -> None:
        if size and self._conn.error is None:
            h2c = self._conn.h2
            try:
                h2c.acknowledge_received_data(size, self.stream_id)
            except h2.exceptions.ProtocolError:
                return
            if h2c.has_output:
                self._conn.kick()

    def _head(self, raw: list[tuple[bytes, bytes]]) -> tuple[int, Headers]:
        status = 0
        fields = []
        for name, value in raw:
            if name == b":status":
                status = _status(value, self.request)
            elif not name.startswith(b":"):
                fields.append((name, value))
        if len(fields) > self._max_header_count:
            raise RemoteProtocolError(
                f"the response has {len(fields)} header fields, more than "
                f"max_header_count={self._max_header_count}",
                request=self.request,
            )
        return status, Headers.from_raw(fields, lowercase=True)

    def _failure(self, event: Item) -> Exception:
        if isinstance(event, _Refused):
            return StreamRefused(event.reason, goaway_last_id=event.last_id)
        if isinstance(event, _Lost):
            return RemoteProtocolError(event.reason, request=self.request)
        if isinstance(event, BodyLengthMismatch):
            said = "longer" if event.actual > event.expected else "shorter"
            return RemoteProtocolError(
                f"invalid response: the body is {said} than its Content-Length "
                f"({event.expected} bytes announced, {event.actual} received)",
                request=self.request,
            )
        if isinstance(event, h2.events.StreamReset):
            code = event.error_code
            if code in (_REFUSED, _HTTP_1_1_REQUIRED):
                return StreamRefused(f"the server reset the stream with {code_name(code)}", code)
            return StreamReset(
                f"the server reset the stream with {code_name(code)}",
                error_code=int(code),
                request=self.request,
            )
        return RemoteProtocolError(f"unexpected HTTP/2 event {event!r}", request=self.request)


def _status(value: bytes, request: Request) -> int:
    """RFC 9113 §8.3.2: :status is the three-digit code (h2 does not check)."""
    if len(value) != 3 or not value.isdigit():
        raise RemoteProtocolError(
            f"invalid response: :status {value.decode('latin-1')!r} is not a three-digit code",
            request=request,
        )
    return int(value)


def _request_headers(request: Request) -> list[tuple[bytes, bytes]]:
    """HTTP/2 header fields: pseudo-fields first, names lowercase, and no
    connection-specific fields (RFC 9113 §8.2.2, §8.3.1)."""
    url = request.url
    authority = url.authority.encode("ascii")
    fields = [
        (b":method", request.method.encode("ascii")),
        (b":scheme", url.scheme.encode("ascii")),
        (b":authority", authority),
        (b":path", url.target.encode("ascii")),
    ]
    for name, value in request.headers.raw(lowercase=True):
        if name in _DROPPED:
            if name == b"host":  # a Host the caller set wins (RFC 9113 §8.3.1)
                fields[2] = (b":authority", value)
            continue
        if name == b"te" and value.lower() != b"trailers":
            continue
        fields.append((name, value))
    return fields


def code_name(code: int) -> str:
    try:
        return h2.errors.ErrorCodes(code).name
    except ValueError:
        return f"0x{code:x}"
