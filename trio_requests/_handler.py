"""HTTPHandler: the trio_conpool ProtocolHandler of the HTTP client."""

from __future__ import annotations

import trio

import trio_conpool as cp

from ._http11 import HTTP11Connection


class HTTPHandler:
    """Makes each pooled connection an HTTP/1.1 connection, leased
    exclusively (one request at a time per connection)."""

    def __init__(self, *, max_header_bytes: int) -> None:
        self._max_header_bytes = max_header_bytes

    async def init_state(
        self, stream: trio.abc.Stream, info: cp.ConnectionInfo, nursery: trio.Nursery
    ) -> HTTP11Connection:
        return HTTP11Connection(stream, max_header_bytes=self._max_header_bytes)

    def access_mode(self, state: HTTP11Connection) -> cp.AccessMode:
        return cp.Exclusive()

    def is_healthy(self, state: HTTP11Connection) -> bool:
        return not state.broken

    def on_acquire(self, state: HTTP11Connection) -> None:
        pass

    def on_release(self, state: HTTP11Connection) -> None:
        pass

    async def on_close(self, state: HTTP11Connection) -> None:
        pass
