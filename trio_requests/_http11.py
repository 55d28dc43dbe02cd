"""The HTTP/1.1 driver: h11 over one exclusively leased connection.

h11 does the protocol (framing, keep-alive rules, validation); this module
only moves bytes and maps failures to our exceptions. The shape is the
``next_event`` / ``NEED_DATA`` loop of h11's own examples. A connection
goes back to the pool only when both sides finished a request/response
cycle cleanly; anything else (an error, a body left unread, cancellation)
leaves it in an unknown state and the caller discards it.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Iterable

import h11
import trio

import trio_conpool as cp

from ._errors import LocalProtocolError, ReadTimeout, RemoteProtocolError, WriteTimeout
from ._headers import Headers
from ._models import Request

#: Bytes asked of the socket per read: large enough that a 1 MiB body takes
#: 16 reads, small enough not to hoard memory per connection.
READ_SIZE = 65536


class HTTP11Connection:
    """One HTTP/1.1 connection's protocol state (what the pool leases).

    Attributes:
        bytes_received: response bytes read from the socket in this cycle
            (0 means the server sent nothing at all: see
            :meth:`nothing_received`).
    """

    __slots__ = ("_h11", "_max_header_bytes", "_stream", "broken", "bytes_received", "bytes_sent")

    def __init__(self, stream: trio.abc.Stream, *, max_header_bytes: int) -> None:
        self._stream = stream
        self._max_header_bytes = max_header_bytes
        # h11 enforces its limit only on a head still arriving; a complete
        # oversize head in one read is caught by _check_head_size.
        self._h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=max_header_bytes)
        self.broken = False
        self.bytes_received = 0
        self.bytes_sent = 0

    # -- sending ---------------------------------------------------------------

    async def send_request(
        self, request: Request, write_timeout: float | None, forward: cp.Proxy | None = None
    ) -> None:
        """Send the request line, headers and body. A body in memory goes
        out with the headers in one write. *forward*: this connection is to
        that HTTP proxy, which is sent the absolute URL and its credentials."""
        headers = request.headers.raw()
        target = request.url.target
        if forward is not None:
            target = request.url.absolute_target
            if (credentials := forward.proxy_authorization) is not None:
                headers = [*headers, (b"Proxy-Authorization", credentials.encode("latin-1"))]
        try:
            event = h11.Request(method=request.method, target=target, headers=headers)
            data = self._h11.send(event)
        except h11.LocalProtocolError as exc:
            self.broken = True
            raise LocalProtocolError(f"cannot send this request: {exc}", request=request) from exc
        assert data is not None
        if request.stream is None:
            if request.content:
                data += self._h11.send(h11.Data(data=request.content)) or b""
            data += self._h11.send(h11.EndOfMessage()) or b""
            await self._send(data, write_timeout, request)
            return
        await self._send(data, write_timeout, request)
        await self._send_stream(request.stream, write_timeout, request)

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
        await self._send(self._h11.send(h11.EndOfMessage()) or b"", timeout, request)

    async def _send_chunk(self, chunk: bytes, timeout: float | None, request: Request) -> None:
        if chunk:
            try:
                data = self._h11.send(h11.Data(data=chunk))
            except h11.LocalProtocolError as exc:  # more bytes than Content-Length said
                self.broken = True
                raise LocalProtocolError(f"request body: {exc}", request=request) from exc
            await self._send(data or b"", timeout, request)

    async def _send(self, data: bytes, timeout: float | None, request: Request) -> None:
        try:
            with _deadline(timeout) as scope:
                await self._stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            self.broken = True
            self._h11.send_failed()
            raise RemoteProtocolError(
                f"the server closed the connection while the request was sent: {exc}",
                request=request,
            ) from exc
        if scope.cancelled_caught:
            self.broken = True
            raise WriteTimeout(f"sending the request took over {timeout}s", request=request)
        self.bytes_sent += len(data)

    # -- receiving -------------------------------------------------------------

    async def receive_response(
        self, request: Request, read_timeout: float | None, max_header_count: int
    ) -> h11.Response:
        """Wait for the final response head (1xx interim responses skipped)."""
        interim = False
        while True:
            try:
                event = await self._next_event(request, read_timeout)
            except RemoteProtocolError as exc:
                if not (interim and self._h11.trailing_data[1]):
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
        self, request: Request, read_timeout: float | None, trailers: Headers
    ) -> bytes:
        """The next piece of the body; b"" once it is complete (then the
        chunked body's trailer fields, if any, are added to *trailers*)."""
        event = await self._next_event(request, read_timeout)
        if isinstance(event, h11.Data):
            return bytes(event.data)
        if isinstance(event, h11.EndOfMessage):
            trailers.extend_raw(event.headers.raw_items())
            return b""
        raise self._unexpected(event, request)

    def finish_cycle(self) -> bool:
        """After a complete response: ready the connection for the next
        request. False if it cannot be reused (``Connection: close``,
        HTTP/1.0, an error)."""
        conn = self._h11
        if self.broken or conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
            return False
        if conn.trailing_data[0]:
            # Bytes past the end of the response (a body longer than its
            # Content-Length): they would be read as the next response.
            return False
        conn.start_next_cycle()
        self.bytes_received = self.bytes_sent = 0
        return True

    @property
    def request_sent(self) -> bool:
        """The whole request (head and body) was handed to the socket."""
        return self._h11.our_state is h11.DONE or self._h11.our_state is h11.MUST_CLOSE

    @property
    def nothing_received(self) -> bool:
        """True if not a byte of a response arrived: a failure now means the
        server dropped the connection without looking at our request (e.g. a
        keep-alive connection it had just timed out)."""
        return self.bytes_received == 0

    async def _next_event(self, request: Request, timeout: float | None) -> h11.Event:
        while True:
            try:
                event = self._h11.next_event()
            except h11.RemoteProtocolError as exc:
                self.broken = True
                raise RemoteProtocolError(self._describe(exc), request=request) from exc
            if event is not h11.NEED_DATA:
                return event  # type: ignore[return-value]
            data = await self._receive(request, timeout)
            self._h11.receive_data(data)

    def _describe(self, exc: h11.RemoteProtocolError) -> str:
        if self.nothing_received:
            return "the server closed the connection without sending a response"
        if self._h11.their_state is h11.SWITCHED_PROTOCOL or "_SWITCH_UPGRADE" in str(exc):
            return "invalid response: 101 Switching Protocols, but the request asked for no upgrade"
        return f"invalid response: {exc}"

    async def _receive(self, request: Request, timeout: float | None) -> bytes:
        data: bytes | bytearray = b""
        try:
            with _deadline(timeout) as scope:
                data = await self._stream.receive_some(READ_SIZE)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            self.broken = True
            raise RemoteProtocolError(
                f"the connection broke while reading the response: {exc}", request=request
            ) from exc
        if scope.cancelled_caught:
            self.broken = True
            raise ReadTimeout(f"no response data within {timeout}s", request=request)
        self.bytes_received += len(data)
        return bytes(data)

    def _unexpected(self, event: object, request: Request) -> RemoteProtocolError:
        self.broken = True
        if isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
            return RemoteProtocolError(
                "the server closed the connection without sending a complete response",
                request=request,
            )
        return RemoteProtocolError(f"unexpected HTTP/1.1 event {event!r}", request=request)


def _deadline(timeout: float | None) -> trio.CancelScope:
    """A cancel scope expiring *timeout* seconds from now (never if None).

    A plain CancelScope rather than ``trio.fail_after``: that one is a
    generator-based context manager and cost ~10% of a keep-alive request
    in profiles. Callers check ``cancelled_caught`` to raise their own
    typed timeout."""
    if timeout is None:
        return trio.CancelScope()
    return trio.CancelScope(deadline=trio.current_time() + timeout)
