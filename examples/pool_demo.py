"""Many concurrent requests, few connections: trio_conpool in one screenful.

Run ``python3 examples/pool_demo.py``. It needs no network and no setup: it
starts its own PING/PONG line server on a free loopback port, sends
:data:`REQUESTS` concurrent requests through a pool that allows at most
:data:`MAX_CONNECTIONS` connections, and shows that the server saw only that
many connections while the pool reused them for everything else.

The server and the pool live in one nursery. The pool closes first (leaving
its ``async with`` closes every pooled connection), then the server is
cancelled, so nothing outlives ``main``.
"""

from __future__ import annotations

import sys
import time
from functools import partial

import trio

import trio_conpool as cp

REQUESTS = 200
MAX_CONNECTIONS = 5
#: A PONG line is 5 bytes; anything much longer is not our server talking.
MAX_LINE = 64


class PingServer:
    """Answers every ``PING`` line with ``PONG`` and counts the connections
    it accepts: the number the pool is supposed to keep small."""

    def __init__(self) -> None:
        self.accepted = 0

    async def handle(self, stream: trio.SocketStream) -> None:
        self.accepted += 1
        async with stream:
            buffer = b""
            # Ends when the client closes the connection (``async for`` stops
            # at EOF), or when the demo cancels the server.
            async for chunk in stream:
                buffer += chunk
                while b"\n" in buffer:
                    line, _, buffer = buffer.partition(b"\n")
                    reply = b"PONG\n" if line == b"PING" else b"ERR unknown command\n"
                    await stream.send_all(reply)


async def read_line(stream: trio.abc.Stream) -> bytes:
    """Read one ``\\n``-terminated line; a reply may arrive in pieces."""
    line = b""
    while not line.endswith(b"\n"):  # bounded: MAX_LINE bytes, then an error
        chunk = await stream.receive_some(MAX_LINE)
        if not chunk or len(line) + len(chunk) > MAX_LINE:
            raise RuntimeError(f"bad reply from the server: {line + chunk!r}")
        line += chunk
    return line


async def ping(pool: cp.Pool[trio.abc.Stream], endpoint: cp.Endpoint, replies: list[bytes]) -> None:
    """One request. ``pool.connection`` waits for a free connection (or opens
    one within the limit) and returns it afterwards; if anything here raises,
    the connection is discarded instead, since its state is unknown."""
    async with pool.connection(endpoint) as lease:
        await lease.stream.send_all(b"PING\n")
        replies.append(await read_line(lease.stream))


async def main() -> int:
    server = PingServer()
    config = cp.PoolConfig(max_connections_per_endpoint=MAX_CONNECTIONS)
    with trio.fail_after(10):  # a hang is a bug; say so instead of waiting forever
        async with trio.open_nursery() as nursery:
            serve = partial(trio.serve_tcp, server.handle, 0, host="127.0.0.1")
            listeners = await nursery.start(serve)
            port: int = listeners[0].socket.getsockname()[1]
            endpoint = cp.Endpoint("127.0.0.1", port)

            replies: list[bytes] = []
            start = time.perf_counter()
            async with cp.open_pool(config) as pool:
                async with trio.open_nursery() as requests:
                    for _ in range(REQUESTS):
                        requests.start_soon(ping, pool, endpoint, replies)
                elapsed = time.perf_counter() - start
                in_use = pool.stats(endpoint)
            closed = pool.stats(endpoint)
            nursery.cancel_scope.cancel()  # stop the server

    done = replies.count(b"PONG\n")
    print(f"{REQUESTS} concurrent PING requests to {endpoint}, max {MAX_CONNECTIONS} connections")
    print(f"  requests done          {done}")
    print(f"  connections accepted   {server.accepted}  (counted by the server)")
    print(
        f"  pool stats             created {in_use.total_created}, "
        f"reused {in_use.total_reused}, idle {in_use.idle}"
    )
    print(f"  after the pool closed  closed {closed.total_closed}")
    print(f"  wall time              {elapsed * 1000:.1f} ms")
    ok = (
        done == REQUESTS
        and server.accepted <= MAX_CONNECTIONS
        and closed.total_closed == in_use.total_created
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(trio.run(main))
