"""HTTPHandler: the trio_conpool ProtocolHandler of the HTTP client.

It routes each new connection by what it negotiated (DESIGN.md, seed 000):
ALPN ``h2`` (or h2c by prior knowledge on a cleartext endpoint) makes an
:class:`HTTP2Connection`, leased as ``Multiplexed`` up to the peer's
MAX_CONCURRENT_STREAMS; anything else an :class:`HTTP11Connection`,
leased ``Exclusive``. So one pool serves both protocols.
"""

from __future__ import annotations

import trio

import trio_conpool as cp
from trio_conpool.events import Trace

from ._http2 import H2Counters, H2Options, HTTP2Connection
from ._http11 import HTTP11Connection

Connection = HTTP11Connection | HTTP2Connection
_EXCLUSIVE = cp.Exclusive()


class HTTPHandler:
    """Makes each pooled connection an HTTP/1.1 or an HTTP/2 connection.

    Args:
        max_header_bytes: the largest response head accepted.
        http2_prior_knowledge: speak h2c on cleartext endpoints without asking.
        h2_options: flow-control windows and PING health of HTTP/2 connections.
        counters: where HTTP/2 connections count their streams.
        trace: receives the HTTP/2 connections' events (streams, GOAWAY).
    """

    def __init__(
        self,
        *,
        max_header_bytes: int,
        http2_prior_knowledge: bool = False,
        h2_options: H2Options | None = None,
        counters: H2Counters | None = None,
        trace: Trace | None = None,
    ) -> None:
        self._max_header_bytes = max_header_bytes
        self._prior_knowledge = http2_prior_knowledge
        self._h2_options = h2_options or H2Options(max_header_bytes=max_header_bytes)
        self.counters = counters or H2Counters()
        self._trace = trace

    async def init_state(
        self, stream: trio.abc.Stream, info: cp.ConnectionInfo, nursery: trio.Nursery
    ) -> Connection:
        if info.alpn_protocol == "h2" or (self._prior_knowledge and info.endpoint.tls is None):
            connection = HTTP2Connection(
                stream, info, options=self._h2_options, counters=self.counters, trace=self._trace
            )
            await connection.start(nursery)
            return connection
        return HTTP11Connection(stream, max_header_bytes=self._max_header_bytes)

    def access_mode(self, state: Connection) -> cp.AccessMode:
        if isinstance(state, HTTP2Connection):
            return state.access_mode()
        return _EXCLUSIVE

    def is_healthy(self, state: Connection) -> bool:
        if isinstance(state, HTTP2Connection):
            return state.healthy
        return not state.broken

    def on_acquire(self, state: Connection) -> None:
        pass

    def on_release(self, state: Connection) -> None:
        pass

    async def on_close(self, state: Connection) -> None:
        if isinstance(state, HTTP2Connection):
            await state.aclose()
