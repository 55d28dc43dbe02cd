"""The HTTP/1.1 driver: h11 over one exclusively leased connection.

h11 does the protocol (framing, keep-alive rules, validation); this module
only moves bytes and maps failures to our exceptions. The shape is the
``next_event`` / ``NEED_DATA`` loop of h11's own examples. The common case
(a body in memory; a response framed by Content-Length) takes the strict
fast path of :mod:`._h1codec` instead, and falls back to h11 the moment
anything about the exchange is less plain (see that module). A connection
goes back to the pool only when both sides finished a request/response
cycle cleanly; anything else (an error, a body left unread, cancellation)
leaves it in an unknown state and the caller discards it.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterable, Callable, Coroutine, Iterable
from typing import Any, NoReturn

import h11
import trio

import trio_conpool as cp
from trio_conpool._idle_probe import socket_under
from trio_conpool._socket_stream import SocketDeadline
from trio_conpool._tls_stream import send_eagerly

from ._errors import LocalProtocolError, ReadTimeout, RemoteProtocolError, WriteTimeout
from ._h1codec import Head, HeadParser, request_head
from ._headers import Headers
from ._models import Request

#: Bytes asked of the socket per read: large enough that a 1 MiB body takes
#: 16 reads, small enough not to hoard memory per connection.
READ_SIZE = 65536

#: What bounds an exchange's waits (see HTTP11Connection._deadline).
Deadline = trio.CancelScope | SocketDeadline


class HTTP11Connection:
    """One HTTP/1.1 connection's protocol state (what the pool leases).

    Attributes:
        bytes_received: response bytes read from the socket in this cycle
            (0 means the server sent nothing at all: see
            :meth:`nothing_received`).
    """

    __slots__ = (
        "_body_left",
        "_body_length",
        "_buffer",
        "_clock",
        "_eof",
        "_fast",
        "_forward",
        "_h11",
        "_heads",
        "_keep_alive",
        "_max_header_bytes",
        "_socket",
        "_stream",
        "broken",
        "bytes_received",
        "bytes_sent",
    )

    def __init__(self, stream: trio.abc.Stream, *, max_header_bytes: int) -> None:
        self._stream = stream
        #: the pool's socket under the stream, which keeps our deadlines
        self._socket = socket_under(stream)
        self._max_header_bytes = max_header_bytes
        #: the run's clock, read directly: trio.current_time() is three calls deep
        self._clock = trio.lowlevel.current_clock()
        #: made at the first cycle the fast path does not take; in IDLE
        #: between cycles, so a cycle may be handed to it at any point.
        self._h11: h11.Connection | None = None
        #: this cycle bypasses h11 (the fast path's state follows)
        self._fast = False
        self._heads = HeadParser()
        self._forward: cp.Proxy | None = None
        self._buffer = b""  # received, not yet consumed
        self._eof = False
        self._body_left = self._body_length = 0
        self._keep_alive = True
        self.broken = False
        self.bytes_received = 0
        self.bytes_sent = 0

    # -- sending ---------------------------------------------------------------

    def exchange(
        self,
        request: Request,
        write_timeout: float | None,
        read_timeout: float | None,
        max_header_count: int,
        forward: cp.Proxy | None = None,
        on_sent: Callable[[Request], None] | None = None,
    ) -> Coroutine[Any, Any, Head]:
        """Send the request (a body in memory goes out with the head in one
        write), call *on_sent*, and wait for the final response head (1xx
        interim responses skipped). *forward*: this connection is to that
        HTTP proxy, which is sent the absolute URL and its credentials.

        Sync, returning the coroutine of the path taken: no frame of its
        own in the chain that every task switch of the exchange resumes."""
        if request.stream is None and (forward is None or forward.proxy_authorization is None):
            target = request.url.target if forward is None else request.url.absolute_target
            head = request_head(request.method, target, request.headers, request.content)
            if head is not None:
                return self._exchange_fast(
                    head, request, write_timeout, read_timeout, max_header_count, forward, on_sent
                )
        return self._exchange_h11(
            request, write_timeout, read_timeout, max_header_count, forward, on_sent
        )

    async def _exchange_fast(
        self,
        head: bytes,
        request: Request,
        write_timeout: float | None,
        read_timeout: float | None,
        max_header_count: int,
        forward: cp.Proxy | None,
        on_sent: Callable[[Request], None] | None,
    ) -> Head:
        """The fast path's request and response head, under one deadline
        (see :meth:`_deadline`) moved from the write to each read. h11
        reads the response if the fast path may not."""
        self._fast = True
        self._forward = forward
        self._keep_alive = True
        data = head + request.content if request.content else head
        with self._deadline(write_timeout) as scope:
            # The read of the response that follows is the exchange's
            # checkpoint (a cycle starts with nothing buffered: finish_cycle
            # reuses only a drained connection), so the send skips its own.
            await self._send_raw(data, request, checkpoint=False)
            if on_sent is not None:
                on_sent(request)
            response = await self._receive_fast_head(request, scope, read_timeout, max_header_count)
        if scope.cancelled_caught:
            self.broken = True
            if not self.bytes_sent:
                raise WriteTimeout(
                    f"sending the request took over {write_timeout}s", request=request
                )
            raise ReadTimeout(f"no response data within {read_timeout}s", request=request)
        if response is None:
            return await self._receive_h11_response(request, read_timeout, max_header_count)
        return response

    async def _exchange_h11(
        self,
        request: Request,
        write_timeout: float | None,
        read_timeout: float | None,
        max_header_count: int,
        forward: cp.Proxy | None,
        on_sent: Callable[[Request], None] | None,
    ) -> Head:
        """The whole exchange through h11."""
        await self._send_h11(request, write_timeout, forward)
        if on_sent is not None:
            on_sent(request)
        return await self._receive_h11_response(request, read_timeout, max_header_count)

    async def _send_h11(
        self, request: Request, write_timeout: float | None, forward: cp.Proxy | None
    ) -> None:
        self._fast = False
        conn = self._protocol()
        data = self._h11_request(conn, request, forward)
        if request.stream is None:
            data += self._h11_body(conn, request.content)
            await self._send(data, write_timeout, request)
            return
        await self._send(data, write_timeout, request)
        await self._send_stream(request.stream, write_timeout, request)

    def _protocol(self) -> h11.Connection:
        """h11, made at the first cycle that needs it."""
        if self._h11 is None:
            # h11 enforces its limit only on a head still arriving; a complete
            # oversize head in one read is caught by _check_head_size.
            self._h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=self._max_header_bytes)
        return self._h11

    def _h11_body(self, conn: h11.Connection, content: bytes | None) -> bytes:
        """A body in memory and the end of the request, through h11."""
        data = (conn.send(h11.Data(data=content)) or b"") if content else b""
        return data + (conn.send(h11.EndOfMessage()) or b"")

    def _h11_request(
        self, conn: h11.Connection, request: Request, forward: cp.Proxy | None
    ) -> bytes:
        """The request head, through h11 (which checks it)."""
        headers = request.headers.raw()
        target = request.url.target
        if forward is not None:
            target = request.url.absolute_target
            if (credentials := forward.proxy_authorization) is not None:
                headers = [*headers, (b"Proxy-Authorization", credentials.encode("latin-1"))]
        try:
            event = h11.Request(method=request.method, target=target, headers=headers)
            data = conn.send(event)
        except h11.LocalProtocolError as exc:
            self.broken = True
            raise LocalProtocolError(f"cannot send this request: {exc}", request=request) from exc
        assert data is not None
        return data

    async def _send_stream(
        self,
        stream: AsyncIterable[bytes] | Iterable[bytes],
        timeout: float | None,
        request: Request,
    ) -> None:
        if isinstance(stream, AsyncIterable):
            async for chunk in stream:
                await self._send_chunk(chunk, timeout, request)
        else:
            for chunk in stream:
                await self._send_chunk(chunk, timeout, request)
        await self._send(self._protocol().send(h11.EndOfMessage()) or b"", timeout, request)

    async def _send_chunk(self, chunk: bytes, timeout: float | None, request: Request) -> None:
        if chunk:
            try:
                data = self._protocol().send(h11.Data(data=chunk))
            except h11.LocalProtocolError as exc:  # more bytes than Content-Length said
                self.broken = True
                raise LocalProtocolError(f"request body: {exc}", request=request) from exc
            await self._send(data or b"", timeout, request)

    async def _send(self, data: bytes, timeout: float | None, request: Request) -> None:
        with self._deadline(timeout) as scope:
            await self._send_raw(data, request)
        if scope.cancelled_caught:
            self.broken = True
            raise WriteTimeout(f"sending the request took over {timeout}s", request=request)

    async def _send_raw(self, data: bytes, request: Request, *, checkpoint: bool = True) -> None:
        """Write *data* (the caller's scope bounds the time it takes);
        *checkpoint* False: see :func:`~trio_conpool._tls_stream.send_eagerly`."""
        stream = self._stream
        try:
            await (stream.send_all(data) if checkpoint else send_eagerly(stream, data))
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            self.broken = True
            if not self._fast:
                self._protocol().send_failed()
            raise RemoteProtocolError(
                f"the server closed the connection while the request was sent: {exc}",
                request=request,
            ) from exc
        self.bytes_sent += len(data)

    # -- receiving -------------------------------------------------------------

    async def _receive_h11_response(
        self, request: Request, read_timeout: float | None, max_header_count: int
    ) -> Head:
        event = await self._receive_h11_head(request, read_timeout, max_header_count)
        return Head(
            event.status_code,
            event.reason.decode("latin-1"),
            "HTTP/1.0" if event.http_version == b"1.0" else "HTTP/1.1",
            Headers.from_raw(event.headers.raw_items()),
        )

    async def _receive_fast_head(
        self,
        request: Request,
        scope: Deadline,
        timeout: float | None,
        max_header_count: int,
    ) -> Head | None:
        """The head, if the fast path may take it; else None, and this cycle
        is h11's from here on (it has been given what arrived so far). Each
        read gets *timeout* seconds, by moving the deadline of *scope*."""
        limit = self._max_header_bytes
        end = self._heads.end(self._buffer, limit) if self._buffer else None
        while end is None:
            scope.deadline = self._at(timeout)
            data = await self._receive_raw(request)
            if not data:
                self._eof = True
                break
            self._buffer += data
            end = self._heads.end(self._buffer, limit)
        if isinstance(end, int):
            head = self._heads.parse(self._buffer, end, limit, max_header_count)
            if isinstance(head, Head):
                self._buffer = self._buffer[end:]
                self._body_left = self._body_length = head.length
                self._keep_alive = head.keep_alive
                return head
        self._fall_back(request)
        return None

    def _fall_back(self, request: Request) -> None:
        """Hand this cycle to h11 after the fast path sent the request: h11
        is told the request (its bytes are already out, so these are
        dropped) and given every byte received so far."""
        conn = self._protocol()
        self._h11_request(conn, request, self._forward)
        self._h11_body(conn, request.content)
        conn.receive_data(self._buffer)
        if self._eof:
            conn.receive_data(b"")
        self._buffer = b""
        self._eof = False
        self._fast = False

    async def _receive_h11_head(
        self, request: Request, read_timeout: float | None, max_header_count: int
    ) -> h11.Response:
        interim = False
        while True:
            try:
                event = await self._next_event(request, read_timeout)
            except RemoteProtocolError as exc:
                if not (interim and self._protocol().trailing_data[1]):
                    raise
                raise RemoteProtocolError(  # h11 words this as a state error
                    "the server closed the connection after an interim (1xx) response",
                    request=request,
                ) from exc.__cause__
            if isinstance(event, h11.Response):
                self._check_head_size(event, request)
                self._check_framing(event, request)
                if len(event.headers) > max_header_count:
                    self.broken = True
                    raise RemoteProtocolError(
                        f"the response has {len(event.headers)} header fields, more than "
                        f"max_header_count={max_header_count}",
                        request=request,
                    )
                return event
            if not isinstance(event, h11.InformationalResponse):
                raise self._unexpected(event, request)
            interim = True

    def _check_head_size(self, event: h11.Response, request: Request) -> None:
        size = (
            len(event.reason) + 15 + sum(len(n) + len(v) + 4 for n, v in event.headers.raw_items())
        )
        if size > self._max_header_bytes:
            self.broken = True
            raise RemoteProtocolError(
                f"invalid response: the response head is {size} bytes, more than "
                f"max_header_bytes={self._max_header_bytes}",
                request=request,
            )

    def _check_framing(self, event: h11.Response, request: Request) -> None:
        """RFC 9112 §6.3: with both Transfer-Encoding and Content-Length, the
        two parties may disagree on where the body ends (response splitting).
        h11 would quietly trust Transfer-Encoding; we refuse the response."""
        names = {name for name, _ in event.headers}
        if b"transfer-encoding" in names and b"content-length" in names:
            self.broken = True
            raise RemoteProtocolError(
                "invalid response: it has both Content-Length and Transfer-Encoding, "
                "so where its body ends is ambiguous (RFC 9112 §6.3)",
                request=request,
            )

    async def receive_body(
        self, request: Request, read_timeout: float | None, trailers: Headers | None
    ) -> bytes:
        """The next piece of the body; b"" once it is complete (then the
        chunked body's trailer fields, if any, are added to *trailers*)."""
        if self._fast:
            return await self._receive_fast_body(request, read_timeout)
        event = await self._next_event(request, read_timeout)
        if isinstance(event, h11.Data):
            return bytes(event.data)
        if isinstance(event, h11.EndOfMessage):
            if trailers is not None:  # None only for a length_framed body, never h11's
                trailers.extend_raw(event.headers.raw_items())
            return b""
        raise self._unexpected(event, request)

    async def _receive_fast_body(self, request: Request, timeout: float | None) -> bytes:
        """The next piece of a Content-Length body: what arrived with the
        head first. Bytes past its end stay in the buffer (and make the
        connection unusable, as they do under h11)."""
        left = self._body_left
        if not left:
            return b""
        data = self._buffer
        if not data:
            data = await self._receive(request, timeout)
            if not data:
                self._truncated(request, self._body_length - left)
        self._buffer = data[left:]
        data = data[:left]
        self._body_left = left - len(data)
        return data

    async def read_rest(self, request: Request, timeout: float | None) -> bytes | None:
        """The rest of a fast-path body in one piece; None for a body h11
        frames (read it with :meth:`receive_body`). No I/O when it has all
        arrived (with the head, say); else one loop of reads under one
        cancel scope, its deadline moved before each read: a 1 MiB body is
        ~150 TLS reads, and a scope and a chain of frames per read cost
        about as much as the read."""
        if not self._fast:
            return None
        left = self._body_left
        parts = [self._buffer]
        have = len(self._buffer)
        if have < left:
            with self._deadline(timeout) as scope:
                while have < left:
                    scope.deadline = self._at(timeout)
                    data = await self._receive_raw(request)
                    if not data:
                        self._truncated(request, self._body_length - left + have)
                    parts.append(data)
                    have += len(data)
            if scope.cancelled_caught:
                self.broken = True
                raise ReadTimeout(f"no response data within {timeout}s", request=request)
        whole = parts[0] if len(parts) == 1 else b"".join(parts)
        self._buffer = whole[left:]
        self._body_left = 0
        return whole[:left]

    def _truncated(self, request: Request, received: int) -> NoReturn:
        self.broken = True
        raise RemoteProtocolError(  # h11's words
            "invalid response: peer closed connection without sending complete "
            f"message body (received {received} bytes, expected {self._body_length})",
            request=request,
        )

    def finish_cycle(self) -> bool:
        """After a complete response: ready the connection for the next
        request. False if it cannot be reused (``Connection: close``,
        HTTP/1.0, an error)."""
        if self._fast:
            reusable = not (self.broken or self._body_left or self._buffer) and self._keep_alive
        else:
            reusable = self._finish_h11_cycle()
        if reusable:
            self.bytes_received = self.bytes_sent = 0
        return reusable

    def _finish_h11_cycle(self) -> bool:
        conn = self._protocol()
        if self.broken or conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
            return False
        if conn.trailing_data[0]:
            # Bytes past the end of the response (a body longer than its
            # Content-Length): they would be read as the next response.
            return False
        conn.start_next_cycle()
        return True

    @property
    def length_framed(self) -> bool:
        """This cycle's response body is the fast path's, framed by its
        Content-Length: it has no trailer fields."""
        return self._fast

    @property
    def request_sent(self) -> bool:
        """The whole request (head and body) was handed to the socket."""
        if self._fast:  # in one write, counted once it succeeded
            return self.bytes_sent > 0
        state = self._protocol().our_state
        return state is h11.DONE or state is h11.MUST_CLOSE

    @property
    def nothing_received(self) -> bool:
        """True if not a byte of a response arrived: a failure now means the
        server dropped the connection without looking at our request (e.g. a
        keep-alive connection it had just timed out)."""
        return self.bytes_received == 0

    async def _next_event(self, request: Request, timeout: float | None) -> h11.Event:
        conn = self._protocol()
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                self.broken = True
                raise RemoteProtocolError(self._describe(exc), request=request) from exc
            if event is not h11.NEED_DATA:
                return event  # type: ignore[return-value]
            data = await self._receive(request, timeout)
            conn.receive_data(data)

    def _describe(self, exc: h11.RemoteProtocolError) -> str:
        if self.nothing_received:
            return "the server closed the connection without sending a response"
        if self._protocol().their_state is h11.SWITCHED_PROTOCOL or "_SWITCH_UPGRADE" in str(exc):
            return "invalid response: 101 Switching Protocols, but the request asked for no upgrade"
        return f"invalid response: {exc}"

    async def _receive(self, request: Request, timeout: float | None) -> bytes:
        with self._deadline(timeout):
            return await self._receive_raw(request)
        self.broken = True  # reached only if the deadline passed
        raise ReadTimeout(f"no response data within {timeout}s", request=request)

    async def _receive_raw(self, request: Request) -> bytes:
        """One read (the caller's scope bounds the wait); b"" at EOF."""
        try:
            data = await self._stream.receive_some(READ_SIZE)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            self.broken = True
            raise RemoteProtocolError(
                f"the connection broke while reading the response: {exc}", request=request
            ) from exc
        self.bytes_received += len(data)
        return bytes(data)

    def _deadline(self, timeout: float | None) -> Deadline:
        """What bounds the block's waits to *timeout* seconds from now
        (never if None): the pool's socket, if it is one of its streams (no
        scope in trio's deadline heap, see SocketDeadline), else a cancel
        scope. Callers check ``cancelled_caught`` to raise their own typed
        timeout, and may move ``deadline``."""
        if self._socket is not None:
            return SocketDeadline(self._socket, self._at(timeout))
        return trio.CancelScope(deadline=self._at(timeout))

    def _at(self, timeout: float | None) -> float:
        """The deadline *timeout* seconds from now (inf: none)."""
        return math.inf if timeout is None else self._clock.current_time() + timeout

    def _unexpected(self, event: object, request: Request) -> RemoteProtocolError:
        self.broken = True
        if isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
            return RemoteProtocolError(
                "the server closed the connection without sending a complete response",
                request=request,
            )
        return RemoteProtocolError(f"unexpected HTTP/1.1 event {event!r}", request=request)
