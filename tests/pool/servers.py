"""In-process loopback servers for the pool tests."""

from __future__ import annotations

import os
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import trio

from tests.pool.ledger_helpers import check_invariants
from trio_conpool import Pool

StreamHandler = Callable[["Server", trio.abc.Stream], Awaitable[None]]


@dataclass(eq=False)
class Server:
    """A TCP (optionally TLS) server on 127.0.0.1 that records its connections."""

    port: int = 0
    accepted: int = 0
    streams: list[trio.abc.Stream] = field(default_factory=list)
    closed_by_client: int = 0
    changed: trio.Event = field(default_factory=trio.Event)

    def notify(self) -> None:
        self.changed.set()
        self.changed = trio.Event()

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        while not predicate():
            await self.changed.wait()

    async def close_all(self) -> None:
        for stream in self.streams:
            await stream.aclose()


async def echo(server: Server, stream: trio.abc.Stream) -> None:
    """Echo bytes back until EOF."""
    try:
        async for data in stream:
            await stream.send_all(data)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        return


async def start_server(
    nursery: trio.Nursery,
    handler: StreamHandler = echo,
    ssl_context: ssl.SSLContext | None = None,
) -> Server:
    server = Server()

    async def serve(stream: trio.abc.Stream) -> None:
        if ssl_context is not None:
            stream = trio.SSLStream(stream, ssl_context, server_side=True)
        server.accepted += 1
        server.streams.append(stream)
        server.notify()
        try:
            await handler(server, stream)
        finally:
            server.closed_by_client += 1
            server.notify()
            await trio.aclose_forcefully(stream)

    listeners = await nursery.start(partial(trio.serve_tcp, serve, 0, host="127.0.0.1"))
    server.port = listeners[0].socket.getsockname()[1]
    return server


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def assert_clean(pool: Pool[Any]) -> None:
    """The pool's books add up and nothing is leased."""
    check_invariants(pool._ledger)
    for stats in pool.all_stats().values():
        assert stats.leases == 0
        assert stats.waiting == 0
        assert stats.connecting == 0


async def plain_http_400(stream: trio.SocketStream) -> None:
    """A server that does not speak TLS: whatever arrives, a plain HTTP 400."""
    async with stream:
        await stream.receive_some()
        await stream.send_all(b"HTTP/1.1 400 Bad Request\r\n\r\n")


async def cancel_once(
    operation: Callable[[], Awaitable[object]], reached: Callable[[], Awaitable[object]]
) -> BaseException | None:
    """Start *operation*, cancel it as soon as *reached* returns; what it
    ended with (None if it finished first)."""
    caught: list[BaseException] = []

    async def attempt() -> None:
        try:
            await operation()
        except BaseException as exc:
            caught.append(exc)
            raise

    async with trio.open_nursery() as inner:
        inner.start_soon(attempt)
        await reached()
        inner.cancel_scope.cancel()
    return caught[0] if caught else None
