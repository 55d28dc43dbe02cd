"""One request/response exchange over a pooled connection.

This is the layer between the Session (retries, redirects, cookies) and the
protocol driver: it leases a connection, sends, waits for the response
head, and ties the lease to the response body so the connection goes back
to the pool exactly when the body is done (or is discarded if it is not
read to the end, or anything fails).
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

import h11
import trio

import trio_conpool as cp

from ._decoders import get_decoder
from ._errors import (
    ConnectError,
    ConnectTimeout,
    PoolTimeout,
    RemoteProtocolError,
    RequestError,
    TLSError,
)
from ._headers import Headers
from ._http11 import HTTP11Connection
from ._limits import Limits
from ._models import Request, Response
from ._timeouts import Timeout

Trace = Callable[[str, dict[str, Any]], None]

#: Methods whose repetition has no further effect (RFC 9110 §9.2.2).
IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"})


def _mapped(exc: cp.PoolError, request: Request) -> RequestError:
    """trio_conpool's error as ours (the caller chains the original)."""
    message = str(exc)
    if isinstance(exc, cp.ConnectTimeout):
        return ConnectTimeout(message, request=request)
    if isinstance(exc, cp.TLSError):
        return TLSError(message, request=request)
    if isinstance(exc, cp.ConnectError):
        return ConnectError(message, request=request)
    if isinstance(exc, cp.PoolTimeout):
        return PoolTimeout(message, request=request)
    if isinstance(exc, cp.PoolClosed):
        return RequestError("the Session is closed; open a new one", request=request)
    return RequestError(message, request=request)


class H11Body:
    """The body of an HTTP/1.1 response, read from its leased connection."""

    __slots__ = ("_conn", "_done", "_lease", "_read_timeout", "_request")

    def __init__(
        self, lease: cp.Lease[HTTP11Connection], request: Request, read_timeout: float | None
    ):
        self._lease = lease
        self._conn = lease.state
        self._request = request
        self._read_timeout = read_timeout
        self._done = False

    async def receive_some(self) -> bytes:
        if self._done:
            return b""
        try:
            data = await self._conn.receive_body(self._request, self._read_timeout)
        except BaseException:
            self._end(reusable=False)
            raise
        if not data:
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


class Exchanger:
    """Sends requests over a pool of HTTP connections."""

    def __init__(
        self, pool: cp.Pool[HTTP11Connection], limits: Limits, trace: Trace | None
    ) -> None:
        self._pool = pool
        self._limits = limits
        self._trace = trace

    async def send(self, request: Request, endpoint: cp.Endpoint, timeout: Timeout) -> Response:
        """One exchange, plus the transparent retry of a request that met a
        keep-alive connection the server had already closed: it failed
        before a byte of response arrived, so the server cannot have acted
        on it if it is idempotent, or if it was never fully written
        (the rule Go's net/http follows)."""
        stale_retries = self._pool.config.max_connections_per_endpoint + 1
        while True:
            try:
                lease = await self._pool.acquire(
                    endpoint,
                    pool_timeout=timeout.pool,
                    connect_timeout=timeout.connect,
                    trace=self._trace,
                )
            except cp.PoolError as exc:
                raise _mapped(exc, request) from exc
            try:
                return await self._exchange(lease, request, timeout)
            except RemoteProtocolError:
                conn = lease.state
                stale = lease.reused and conn.nothing_received
                safe = request.method in IDEMPOTENT or not conn.request_sent
                if not (stale and safe and request.replayable and stale_retries):
                    raise
                stale_retries -= 1
                if self._trace is not None:
                    self._trace("retry", {"reason": "keep-alive connection closed by the server"})

    async def _exchange(
        self, lease: cp.Lease[HTTP11Connection], request: Request, timeout: Timeout
    ) -> Response:
        conn = lease.state
        start = trio.current_time()
        try:
            await conn.send_request(request, timeout.write)
            if self._trace is not None:
                self._trace("request.sent", {"method": request.method, "url": str(request.url)})
            head = await conn.receive_response(request, timeout.read, self._limits.max_header_count)
            response = self._response(head, lease, request, timeout)
        except BaseException:
            if not lease.done:
                await lease.discard()
            raise
        response.elapsed = datetime.timedelta(seconds=trio.current_time() - start)
        return response

    def _response(
        self,
        head: h11.Response,
        lease: cp.Lease[HTTP11Connection],
        request: Request,
        timeout: Timeout,
    ) -> Response:
        headers = Headers.from_raw(head.headers.raw_items())
        http_version = "HTTP/1.0" if head.http_version == b"1.0" else "HTTP/1.1"
        if self._trace is not None:
            self._trace(
                "response.headers_received",
                {"status": head.status_code, "http_version": http_version},
            )
        encoding = headers.get("content-encoding")
        decoder = None
        if encoding is not None:
            decoder = get_decoder(
                encoding,
                max_size=self._limits.max_decompressed_size,
                max_ratio=self._limits.max_decompression_ratio,
            )
        return Response(
            head.status_code,
            request=request,
            headers=headers,
            reason=head.reason.decode("latin-1"),
            http_version=http_version,
            stream=H11Body(lease, request, timeout.read),
            decoder=decoder,
        )
