"""A small pooled Redis client: RESP2 spoken directly on ``RawStream`` leases.

Run ``python3 examples/redis_ping.py [--host H] [--port P]`` against a Redis
server (default 127.0.0.1:6379). It PINGs, does a few SET/GET/INCR on keys
under ``trio_conpool:example:``, and prints the pool's statistics.

How the pool and the protocol share the work
--------------------------------------------
Each command takes a whole connection for one request/reply exchange
(Redis connections are exclusive: replies come back in request order, so two
tasks may not interleave on one). :meth:`RedisClient.command` does that
inside ``async with pool.connection(endpoint)``, which decides the
connection's fate when the block ends:

* a reply was read completely, even an error reply (``-ERR ...``): the
  connection is in a known, clean state, so it is *released* for reuse and
  the error is raised only after the block (:class:`RedisError`);
* anything else (a malformed reply, the server hanging up, a cancelled or
  timed-out command whose reply may still arrive later): the connection's
  state is unknown, so the exception leaves the block and the pool
  *discards* the connection. Reusing it could hand the stale reply of one
  command to the next caller.

Connections the server closed while idle (its ``timeout`` setting, ``CLIENT
KILL``, a restart) are caught by the pool before reuse with
``PoolConfig.check_readable`` (the default): one non-blocking ``poll`` per
checkout sees the FIN, and the pool tries another connection or opens a new
one. That is why no ``health_check`` is configured: a PING health check
would cost a full round trip on every reuse to catch only peers that vanish
*without* closing (a NAT or firewall dropping an idle flow), which TCP
keepalive or a ``max_idle_time`` below the middlebox's timeout handle
without any traffic on the hot path.

The RESP parser (:class:`RespParser`) is sans-IO: it is fed bytes and hands
out replies, so it is tested without sockets; :func:`exchange` is the thin
trio driver around it.
"""

from __future__ import annotations

import argparse
import enum
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Final, Literal, TypeAlias

import trio

import trio_conpool as cp

#: A decoded RESP2 reply: simple string -> str, integer -> int, bulk string ->
#: bytes (None for the null bulk string), array -> list (None for the null
#: array). An error reply nested inside an array (EXEC) stays a value.
RespValue: TypeAlias = "str | int | bytes | RedisError | list[RespValue] | None"
Arg: TypeAlias = "bytes | str | int"

#: Redis itself caps a bulk string at 512 MiB (proto-max-bulk-len); a client
#: that stops far earlier turns a confused peer into an error, not an OOM.
MAX_REPLY_SIZE = 64 * 1024 * 1024
#: Nesting deeper than this is not something Redis sends (its own replies
#: nest two or three levels); it bounds the parser's recursion.
MAX_DEPTH = 32
RECEIVE_SIZE = 64 * 1024


class RedisClientError(Exception):
    """Root of this client's exceptions (pool errors such as
    :class:`trio_conpool.ConnectError` pass through unchanged)."""


class RedisError(RedisClientError):
    """The server answered with an error reply, e.g. ``ERR value is not an
    integer``. The connection is fine and was returned to the pool.

    Attributes:
        kind: the first word of the message (``"ERR"``, ``"WRONGTYPE"``...).
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.kind = message.split(" ", 1)[0]


class RedisProtocolError(RedisClientError):
    """The server's answer is not one the protocol allows: invalid RESP or a
    hang-up mid-reply (the connection was discarded), or a well-formed reply
    of a type the command never returns (the connection, still in step, was
    released)."""


class _NeedData(Exception):
    """Internal: the buffer ends before the reply does."""


class NeedData(enum.Enum):
    """The type of :data:`NEED_DATA` (an enum, so ``is NEED_DATA`` narrows
    the type for mypy, as h11's sentinels do)."""

    NEED_DATA = "need data"


#: returned by :meth:`RespParser.next_reply` while no whole reply is buffered.
NEED_DATA: Final = NeedData.NEED_DATA


class RespParser:
    """Incremental RESP2 reply parser (sans-IO): :meth:`feed` it bytes as
    they arrive, then call :meth:`next_reply` until it returns
    :data:`NEED_DATA`.

    An incomplete reply is parsed again from its start when more bytes come.
    That keeps the parser stateless between calls and costs little for
    Redis' typical small replies; a bulk string is never rescanned, only its
    length header.
    """

    def __init__(self, max_size: int = MAX_REPLY_SIZE) -> None:
        self._buffer = bytearray()
        self._max_size = max_size

    @property
    def pending(self) -> int:
        """Bytes fed but not yet returned as part of a reply."""
        return len(self._buffer)

    def feed(self, data: bytes | bytearray) -> None:
        if len(self._buffer) + len(data) > self._max_size:
            raise RedisProtocolError(f"reply larger than {self._max_size} bytes")
        self._buffer += data

    def next_reply(self) -> RespValue | Literal[NeedData.NEED_DATA]:
        """The next complete reply, or :data:`NEED_DATA`.

        Raises:
            RedisProtocolError: the bytes are not RESP2.
        """
        try:
            value, end = self._parse(0, 0)
        except _NeedData:
            return NEED_DATA
        del self._buffer[:end]
        return value

    def _parse(self, pos: int, depth: int) -> tuple[RespValue, int]:
        if depth > MAX_DEPTH:
            raise RedisProtocolError(f"reply nested deeper than {MAX_DEPTH} levels")
        kind, line, pos = self._line(pos)
        if kind == b"+":
            return line.decode("utf-8", "replace"), pos
        if kind == b"-":
            return RedisError(line.decode("utf-8", "replace")), pos
        if kind == b":":
            return _integer(line), pos
        if kind == b"$":
            return self._bulk(_integer(line), pos)
        if kind == b"*":
            count = _integer(line)
            if count == -1:
                return None, pos
            if count < 0:
                raise RedisProtocolError(f"invalid array length {count}")
            items: list[RespValue] = []
            for _ in range(count):  # bounded by the length header
                item, pos = self._parse(pos, depth + 1)
                items.append(item)
            return items, pos
        raise RedisProtocolError(f"unknown reply type {kind!r} in {bytes(line[:40])!r}")

    def _line(self, pos: int) -> tuple[bytes, bytes, int]:
        """The type byte, the rest of the line up to CRLF, and where the
        next element starts."""
        end = self._buffer.find(b"\r\n", pos)
        if end == -1:
            raise _NeedData
        return bytes(self._buffer[pos : pos + 1]), bytes(self._buffer[pos + 1 : end]), end + 2

    def _bulk(self, length: int, pos: int) -> tuple[bytes | None, int]:
        if length == -1:
            return None, pos
        if length < 0 or length > self._max_size:
            raise RedisProtocolError(f"invalid bulk string length {length}")
        end = pos + length
        if len(self._buffer) < end + 2:
            raise _NeedData
        if self._buffer[end : end + 2] != b"\r\n":
            raise RedisProtocolError("bulk string not terminated by CRLF")
        return bytes(self._buffer[pos:end]), end + 2


def _integer(line: bytes) -> int:
    try:
        return int(line)
    except ValueError:
        raise RedisProtocolError(f"invalid integer {line[:40]!r}") from None


def encode_command(*args: Arg) -> bytes:
    """A command as a RESP array of bulk strings, the form Redis expects
    from clients (binary safe, unlike the inline command syntax)."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, bool) or not isinstance(arg, (bytes, str, int)):
            raise TypeError(f"Redis arguments are bytes, str or int, not {arg!r}")
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


async def exchange(stream: trio.abc.Stream, request: bytes) -> RespValue:
    """Send *request* (one command) and read exactly one reply.

    Replies may arrive split across any number of reads. Bytes beyond the
    reply mean the connection is out of step (a reply to someone else's
    command), so they are an error, as is EOF before the reply is complete.

    Raises:
        RedisProtocolError: see above; the connection must be discarded.
        trio.BrokenResourceError: the transport failed.
    """
    await stream.send_all(request)
    parser = RespParser()
    # Bounded: every pass adds at least one byte, and the parser refuses
    # more than MAX_REPLY_SIZE in total.
    while (reply := parser.next_reply()) is NEED_DATA:
        data = await stream.receive_some(RECEIVE_SIZE)
        if not data:
            raise RedisProtocolError("the server closed the connection before replying")
        parser.feed(data)
    if parser.pending:
        raise RedisProtocolError(f"{parser.pending} unexpected bytes after the reply")
    return reply


class RedisClient:
    """Redis commands over pooled connections to one endpoint.

    Safe to share between tasks: each command borrows its own connection.
    Cancelling a command (``trio.move_on_after``...) is safe too: its
    connection is discarded, since the reply could still arrive on it.
    """

    def __init__(self, pool: cp.Pool[trio.abc.Stream], endpoint: cp.Endpoint) -> None:
        self.pool = pool
        self.endpoint = endpoint

    async def command(self, *args: Arg) -> RespValue:
        """Run one command and return its reply.

        Raises:
            RedisError: the server replied with an error (the connection is
                released for reuse).
            RedisProtocolError: garbled reply or hang-up (connection discarded).
            trio.BrokenResourceError: the transport failed (connection discarded).
            trio_conpool.PoolError: no connection could be had (ConnectError,
                PoolTimeout, ...).
        """
        request = encode_command(*args)
        async with self.pool.connection(self.endpoint) as lease:
            reply = await exchange(lease.stream, request)
        # Outside the block: an error reply must not make the pool discard a
        # perfectly good connection.
        if isinstance(reply, RedisError):
            raise reply
        return reply

    async def ping(self) -> bool:
        return await self.command("PING") == "PONG"

    async def get(self, key: Arg) -> bytes | None:
        reply = await self.command("GET", key)
        if reply is not None and not isinstance(reply, bytes):
            raise RedisProtocolError(f"GET replied {reply!r}")
        return reply

    async def set(self, key: Arg, value: Arg) -> None:
        reply = await self.command("SET", key, value)
        if reply != "OK":
            raise RedisProtocolError(f"SET replied {reply!r}")

    async def incr(self, key: Arg) -> int:
        reply = await self.command("INCR", key)
        if not isinstance(reply, int):
            raise RedisProtocolError(f"INCR replied {reply!r}")
        return reply

    def stats(self) -> cp.EndpointStats:
        return self.pool.stats(self.endpoint)


@asynccontextmanager
async def open_redis(
    host: str = "127.0.0.1", port: int = 6379, *, max_connections: int = 10
) -> AsyncIterator[RedisClient]:
    """``async with open_redis(...) as client``: a client with a pool of its
    own, closed (with every connection) when the block ends."""
    config = cp.PoolConfig(max_connections_per_endpoint=max_connections, connect_timeout=5.0)
    async with cp.open_pool(config) as pool:
        yield RedisClient(pool, cp.Endpoint(host, port))


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=6379)
    args = parser.parse_args(argv)
    with trio.fail_after(10):
        async with open_redis(args.host, args.port, max_connections=4) as client:
            # Caught inside the block: open_pool's nursery would wrap it in
            # an ExceptionGroup on the way out.
            try:
                await demo(client)
            except cp.ConnectError as exc:
                print(f"error: {exc} (is redis-server running?)", file=sys.stderr)
                return 1
            stats = client.stats()
    print(
        f"pool: {stats.total_created} connections created, {stats.total_reused} reuses, "
        f"{stats.idle} idle"
    )
    return 0


async def demo(client: RedisClient) -> None:
    """PING, SET/GET and concurrent INCRs on keys of our own."""
    prefix = "trio_conpool:example:"
    print(f"PING -> {await client.ping()}")
    await client.set(prefix + "greeting", "hello")
    print(f"GET greeting -> {await client.get(prefix + 'greeting')!r}")
    print(f"GET missing -> {await client.get(prefix + 'missing')!r}")
    await client.command("DEL", prefix + "counter")
    async with trio.open_nursery() as nursery:
        for _ in range(20):
            nursery.start_soon(client.incr, prefix + "counter")
    print(f"20 concurrent INCR -> {await client.get(prefix + 'counter')!r}")


if __name__ == "__main__":
    sys.exit(trio.run(main))
