"""One request/response exchange over a pooled connection.

This is the layer between the Session (retries, redirects, cookies) and the
protocol driver: it leases a connection, sends, waits for the response
head, and ties the lease to the response body so the connection goes back
to the pool exactly when the body is done (or is discarded if it is not
read to the end, or anything fails).
"""

from __future__ import annotations

import http

import trio

import trio_conpool as cp
from trio_conpool.events import Trace

from ._decoders import ContentDecoder, get_decoder
from ._errors import (
    ConnectError,
    ConnectTimeout,
    PoolTimeout,
    ProxyError,
    RemoteProtocolError,
    RequestError,
    TLSError,
)
from ._h1codec import Head
from ._h2_stream import H2Stream, StreamRefused
from ._handler import Connection
from ._headers import Headers
from ._http2 import HTTP2Connection
from ._http11 import HTTP11Connection
from ._limits import Limits
from ._models import Request, Response
from ._timeouts import Timeout
from .events import RequestSent, ResponseHeadersReceived

#: Methods whose repetition has no further effect (RFC 9110 §9.2.2).
IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"})


def _shown(request: Request) -> str:
    """The URL for trace events: never with its user:password."""
    return str(request.url.without_credentials())


def _unreachable(proxy: cp.Proxy, exc: cp.ConnectError, request: Request) -> ProxyError:
    """A forward proxy's connect failure, which the pool saw as a plain
    endpoint's: say that it is the proxy."""
    message = (
        f"cannot reach proxy {proxy} (for {request.url.scheme}://{request.url.authority}): {exc}"
    )
    return ProxyError(message, request=request, proxy=proxy, connected=False)


def _proxy_tls_failed(proxy: cp.Proxy, exc: cp.TLSError, request: Request) -> ProxyError:
    """A forward proxy's TLS handshake failure, which the pool saw as an
    endpoint's: say that it was the proxy's, not the target's."""
    message = (
        f"TLS with proxy {proxy} (for {request.url.scheme}://{request.url.authority}) failed, "
        f"the proxy's certificate or handshake, not the target's: {exc}"
    )
    return ProxyError(message, request=request, proxy=proxy)


def _mapped(exc: cp.PoolError, request: Request) -> RequestError:
    """trio_conpool's error as ours (the caller chains the original)."""
    message = str(exc)
    if isinstance(exc, cp.ConnectTimeout):
        return ConnectTimeout(message, request=request)
    if isinstance(exc, cp.TLSError):
        return TLSError(message, request=request)
    if isinstance(exc, cp.ProxyError):
        return ProxyError(message, request=request, proxy=exc.proxy, connected=exc.connected)
    if isinstance(exc, cp.ConnectError):
        return ConnectError(message, request=request)
    if isinstance(exc, cp.PoolTimeout):
        return PoolTimeout(message, request=request)
    if isinstance(exc, cp.PoolClosed):
        return RequestError("the Session is closed; open a new one", request=request)
    return RequestError(message, request=request)


class H11Body:
    """The body of an HTTP/1.1 response, read from its leased connection."""

    __slots__ = ("_conn", "_done", "_lease", "_read_timeout", "_request", "trailers")

    def __init__(
        self,
        lease: cp.Lease[Connection],
        conn: HTTP11Connection,
        request: Request,
        read_timeout: float | None,
    ):
        self._lease = lease
        self._conn = conn
        self._request = request
        self._read_timeout = read_timeout
        self._done = False
        #: None for a Content-Length body (the fast path's), which has none
        self.trailers = None if conn.length_framed else Headers()

    async def receive_some(self) -> bytes:
        if self._done:
            return b""
        try:
            data = await self._conn.receive_body(self._request, self._read_timeout, self.trailers)
        except BaseException:
            self._end(reusable=False)
            raise
        if not data:
            self._end(reusable=self._conn.finish_cycle())
        return data

    async def receive_rest(self) -> bytes | None:
        if self._done:
            return None
        try:
            data = await self._conn.read_rest(self._request, self._read_timeout)
        except BaseException:
            self._end(reusable=False)
            raise
        if data is not None:
            self._end(reusable=self._conn.finish_cycle())
        return data

    async def aclose(self) -> None:
        self._end(reusable=False)  # a body left unread: state unknown

    def _end(self, *, reusable: bool) -> None:
        # Sync: the read that ended the body was the checkpoint.
        if self._done:
            return
        self._done = True
        if reusable:
            self._lease.release_nowait()
        else:
            self._lease.discard_nowait()


class H2Body:
    """The body of an HTTP/2 response: its stream's DATA, as the reader
    task delivers it. Ending it (read to the end, closed, failed) closes the
    stream and returns its slot; the connection stays for the others."""

    __slots__ = ("_done", "_lease", "_read_timeout", "_stream")

    def __init__(
        self, lease: cp.Lease[Connection], stream: H2Stream, read_timeout: float | None
    ) -> None:
        self._lease = lease
        self._stream = stream
        self._read_timeout = read_timeout
        self._done = False

    async def receive_some(self) -> bytes:
        if self._done:
            return b""
        try:
            data = await self._stream.receive_data(self._read_timeout)
        except BaseException:
            self._end()
            raise
        if not data:
            self._end()
        return data

    async def receive_rest(self) -> bytes | None:
        if self._done:
            return None
        try:
            return await self._stream.receive_rest(self._read_timeout)
        finally:
            self._end()

    async def aclose(self) -> None:
        self._end()

    def _end(self) -> None:
        if not self._done:
            self._done = True
            self._stream.close()
            self._lease.release_nowait()


class Unprocessed(Exception):
    """The exchange failed in a way that left the server not acting on the
    request: the Session may send it again, whatever its method, within
    ``Retry.unprocessed`` (internal; never reaches the user).

    Attributes:
        error: what to raise if it may not be sent again.
        reason: for the ``retry`` trace event.
        wait: back off first (the server said it is overloaded).
        downgrade: send it over HTTP/1.1 (the server said so).
        goaway_last_id: a GOAWAY with this last stream id refused it.
    """

    def __init__(
        self,
        error: RequestError,
        reason: str,
        *,
        wait: bool = False,
        downgrade: bool = False,
        goaway_last_id: int | None = None,
    ) -> None:
        super().__init__(reason)
        self.error = error
        self.reason = reason
        self.wait = wait
        self.downgrade = downgrade
        self.goaway_last_id = goaway_last_id


class Exchanger:
    """Sends requests over a pool of HTTP/1.1 and HTTP/2 connections."""

    def __init__(self, pool: cp.Pool[Connection], limits: Limits, trace: Trace | None) -> None:
        self._pool = pool
        self._limits = limits
        self._trace = trace
        #: the run's clock, read directly: trio.current_time() is three calls deep
        self._clock = trio.lowlevel.current_clock()
        #: seconds from asking the pool to the response head, summed over
        #: the exchanges that got one (the Session's ``total_time``)
        self.total_time = 0.0

    async def send(
        self,
        request: Request,
        endpoint: cp.Endpoint,
        timeout: Timeout,
        forward: cp.Proxy | None = None,
    ) -> Response:
        """One exchange on a leased connection. *forward*: *endpoint* is
        that HTTP proxy, to be sent the request in absolute-form.

        Raises:
            Unprocessed: the server cannot have acted on the request: it met
                a keep-alive connection the server had already closed (it
                failed before a byte of response arrived, and is idempotent
                or was never fully written: the rule Go's net/http follows),
                or an HTTP/2 stream the server refused or left above a
                GOAWAY's last stream id.
            RequestError: anything else.
        """
        queued = self._clock.current_time()
        try:
            lease = await self._pool.acquire(
                endpoint,
                pool_timeout=timeout.pool,
                connect_timeout=timeout.connect,
                checkpoint=False,  # sending the request is one
            )
        except cp.PoolError as exc:
            if forward is not None and type(exc) is cp.ConnectError:
                raise _unreachable(forward, exc, request) from exc
            if forward is not None and isinstance(exc, cp.TLSError):
                raise _proxy_tls_failed(forward, exc, request) from exc
            raise _mapped(exc, request) from exc
        if isinstance(lease.state, HTTP2Connection):
            return await self._exchange_h2(lease, lease.state, request, timeout, queued)
        return await self._exchange(lease, lease.state, request, timeout, forward, queued)

    async def _exchange(
        self,
        lease: cp.Lease[Connection],
        conn: HTTP11Connection,
        request: Request,
        timeout: Timeout,
        forward: cp.Proxy | None,
        queued: float,
    ) -> Response:
        start = self._clock.current_time()
        try:
            head = await conn.exchange(
                request,
                timeout.write,
                timeout.read,
                self._limits.max_header_count,
                forward,
                self._request_sent if self._trace is not None else None,
            )
            response = self._response(head, lease, conn, request, timeout)
        except BaseException as exc:
            if not lease.done:
                await lease.discard()
            stale = lease.reused and conn.nothing_received
            if isinstance(exc, RemoteProtocolError) and stale and _safe(request, conn.request_sent):
                raise Unprocessed(exc, "keep-alive connection closed by the server") from exc
            raise
        return self._timed(response, queued, start)

    def _timed(self, response: Response, queued: float, sent: float) -> Response:
        """*response*, its elapsed time counted from *sent*; the time since
        *queued* (the pool's wait included) added to :attr:`total_time`."""
        now = self._clock.current_time()
        response._elapsed = now - sent  # seconds: a timedelta only if read
        self.total_time += now - queued
        return response

    def _request_sent(self, request: Request) -> None:
        assert self._trace is not None
        self._trace(RequestSent(request.method, _shown(request)))

    async def _exchange_h2(
        self,
        lease: cp.Lease[Connection],
        conn: HTTP2Connection,
        request: Request,
        timeout: Timeout,
        queued: float,
    ) -> Response:
        start = self._clock.current_time()
        try:
            stream = conn.open_stream(request, self._limits.max_header_count)
        except BaseException as exc:
            lease.release_nowait()
            if isinstance(exc, StreamRefused):
                raise _unprocessed(exc, request) from exc
            raise
        try:
            await stream.send_body(timeout.write)
            if self._trace is not None:
                self._trace(RequestSent(request.method, _shown(request)))
            status, headers = await stream.receive_head(timeout.read)
        except BaseException as exc:
            stream.close()
            lease.release_nowait()
            replay = _replay_h2(exc, request, stream, reused=lease.reused)
            if replay is None:
                raise
            raise replay from exc
        response = self._h2_response(status, headers, lease, stream, timeout)
        return self._timed(response, queued, start)

    def _h2_response(
        self,
        status: int,
        headers: Headers,
        lease: cp.Lease[Connection],
        stream: H2Stream,
        timeout: Timeout,
    ) -> Response:
        if self._trace is not None:
            self._trace(ResponseHeadersReceived(status, "HTTP/2", stream.stream_id))
        response = Response(
            status,
            request=stream.request,
            headers=headers,
            reason=_reason_phrase(status),
            http_version="HTTP/2",
            stream=H2Body(lease, stream, timeout.read),
            decoder=self._decoder(headers),
        )
        response.trailers = stream.trailers
        return response

    def _decoder(self, headers: Headers) -> ContentDecoder | None:
        encoding = headers.get("content-encoding")
        if encoding is None:
            return None
        return get_decoder(
            encoding,
            max_size=self._limits.max_decompressed_size,
            max_ratio=self._limits.max_decompression_ratio,
        )

    def _response(
        self,
        head: Head,
        lease: cp.Lease[Connection],
        conn: HTTP11Connection,
        request: Request,
        timeout: Timeout,
    ) -> Response:
        headers = head.headers
        if self._trace is not None:
            self._trace(ResponseHeadersReceived(head.status_code, head.http_version))
        body = H11Body(lease, conn, request, timeout.read)
        response = Response(
            head.status_code,
            request=request,
            headers=headers,
            reason=head.reason,
            http_version=head.http_version,
            stream=body,
            decoder=self._decoder(headers),
        )
        if body.trailers is not None:
            response.trailers = body.trailers
        return response


def _safe(request: Request, fully_sent: bool) -> bool:
    """May a request the server did not answer be sent again?"""
    return request.replayable and (request.method in IDEMPOTENT or not fully_sent)


def _replay_h2(
    exc: BaseException, request: Request, stream: H2Stream, *, reused: bool
) -> Unprocessed | None:
    """A replay, if the server cannot have processed the failed HTTP/2
    exchange; None if *exc* stands."""
    if isinstance(exc, StreamRefused):
        return _unprocessed(exc, request)
    if not (isinstance(exc, RemoteProtocolError) and stream.nothing_received):
        return None
    if stream.never_sent():
        return Unprocessed(exc, "the HTTP/2 connection was lost before the request was sent")
    if reused and _safe(request, stream.local_ended):
        return Unprocessed(exc, "HTTP/2 connection lost before the response")
    return None


_PHRASES = {status.value: status.phrase for status in http.HTTPStatus}


def _reason_phrase(status: int) -> str:
    """HTTP/2 has no reason phrase (RFC 9113 §8.3.2): the standard one (a
    dict, not an HTTPStatus lookup per response)."""
    return _PHRASES.get(status, "")


def _unprocessed(refused: StreamRefused, request: Request) -> Unprocessed:
    return Unprocessed(
        refused.error(request),
        str(refused),
        wait=refused.wait,
        downgrade=refused.downgrade,
        goaway_last_id=refused.goaway_last_id,
    )
