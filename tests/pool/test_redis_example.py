"""examples/redis_ping.py: its RESP parser on its own, then the pooled client
against a real ``redis-server`` on a loopback port of its own.

The server tests are marked ``interop``. They fail (never skip) when
``redis-server`` is missing, because CI must run them: install it with
``bash scripts/install-test-servers``.
"""

from __future__ import annotations

import itertools
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

import trio_conpool as cp
from tests.helpers import load_script

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load_example(name: str) -> ModuleType:
    return load_script("examples", name)


if TYPE_CHECKING:
    import redis_ping  # mypy sees examples/ through [tool.mypy] files
else:
    redis_ping = load_example("redis_ping")

RedisError = redis_ping.RedisError
RedisProtocolError = redis_ping.RedisProtocolError


# ------------------------------------------------------------- the parser alone


def encode_reply(value: redis_ping.RespValue) -> bytes:
    """What a server would send for *value* (the inverse of RespParser)."""
    if isinstance(value, RedisError):
        return b"-%s\r\n" % str(value).encode()
    if isinstance(value, str):
        return b"+%s\r\n" % value.encode()
    if isinstance(value, int):
        return b":%d\r\n" % value
    if isinstance(value, bytes):
        return b"$%d\r\n%s\r\n" % (len(value), value)
    if value is None:
        return b"$-1\r\n"
    return b"*%d\r\n" % len(value) + b"".join(map(encode_reply, value))


def comparable(value: redis_ping.RespValue) -> object:
    """RedisError compares by identity; compare errors by message instead."""
    if isinstance(value, RedisError):
        return ("error", str(value))
    if isinstance(value, list):
        return [comparable(item) for item in value]
    return value


def parse_all(parser: redis_ping.RespParser) -> list[redis_ping.RespValue]:
    replies: list[redis_ping.RespValue] = []
    for _ in range(10_000):  # bounded: far more than any test feeds
        reply = parser.next_reply()
        if reply is redis_ping.NEED_DATA:
            return replies
        replies.append(reply)
    raise AssertionError("parser never asked for more data")


NESTED = b"*6\r\n+OK\r\n:-42\r\n$-1\r\n$0\r\n\r\n*2\r\n$4\r\na\r\nb\r\n-WRONGTYPE nope\r\n*-1\r\n"
NESTED_VALUE: list[object] = ["OK", -42, None, b"", [b"a\r\nb", ("error", "WRONGTYPE nope")], None]


def test_parse_nested_reply_in_one_piece() -> None:
    parser = redis_ping.RespParser()
    parser.feed(NESTED)
    assert [comparable(r) for r in parse_all(parser)] == [NESTED_VALUE]
    assert parser.pending == 0


def test_parse_reply_split_byte_by_byte() -> None:
    """A reply may arrive in any number of pieces, split anywhere: inside a
    CRLF, a length header, or a bulk string that itself contains CRLF."""
    parser = redis_ping.RespParser()
    replies: list[redis_ping.RespValue] = []
    for i in range(len(NESTED)):
        parser.feed(NESTED[i : i + 1])
        replies += parse_all(parser)
        assert replies == [] or i == len(NESTED) - 1
    assert [comparable(r) for r in replies] == [NESTED_VALUE]


resp_values: st.SearchStrategy[redis_ping.RespValue] = st.recursive(
    st.none()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.binary(max_size=40)
    | st.text(st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=20)
    | st.builds(RedisError, st.from_regex(r"[A-Z]+ [a-z ]{0,20}", fullmatch=True)),
    lambda children: st.lists(children, max_size=5),
    max_leaves=20,
)


@given(
    values=st.lists(resp_values, min_size=1, max_size=4),
    cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=6),
)
def test_parse_any_values_split_anywhere(
    values: list[redis_ping.RespValue], cuts: list[int]
) -> None:
    data = b"".join(map(encode_reply, values))
    bounds = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    parser = redis_ping.RespParser()
    replies: list[redis_ping.RespValue] = []
    for start, end in itertools.pairwise(bounds):
        parser.feed(data[start:end])
        replies += parse_all(parser)
    assert [comparable(r) for r in replies] == [comparable(v) for v in values]
    assert parser.pending == 0


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"?what\r\n", "unknown reply type"),
        (b":12x\r\n", "invalid integer"),
        (b"$3\r\nabcde\r\n", "not terminated by CRLF"),
        (b"$-2\r\n", "invalid bulk string length"),
        (b"*-5\r\n", "invalid array length"),
        (b"*1\r\n" * (redis_ping.MAX_DEPTH + 2), "nested deeper"),
    ],
)
def test_parse_garbage_is_a_protocol_error(data: bytes, message: str) -> None:
    parser = redis_ping.RespParser()
    parser.feed(data)
    with pytest.raises(RedisProtocolError, match=message):
        parser.next_reply()


def test_parser_refuses_oversized_replies() -> None:
    parser = redis_ping.RespParser(max_size=16)
    parser.feed(b"$100\r\n")
    with pytest.raises(RedisProtocolError, match="invalid bulk string length"):
        parser.next_reply()
    with pytest.raises(RedisProtocolError, match="larger than 16 bytes"):
        parser.feed(b"x" * 20)


def test_encode_command() -> None:
    encoded = redis_ping.encode_command("SET", b"k\r\n", 7)
    assert encoded == b"*3\r\n$3\r\nSET\r\n$3\r\nk\r\n\r\n$1\r\n7\r\n"
    with pytest.raises(TypeError):
        redis_ping.encode_command("SET", True)  # bool is an int to mypy, not to Redis


# ------------------------------------------------- exchange() over fake servers


async def test_exchange_reads_a_reply_sent_one_byte_per_read() -> None:
    """lockstep_stream_pair delivers each send_all as its own receive, so the
    client really sees the reply in 1-byte pieces."""
    client, server = trio.testing.lockstep_stream_pair()
    request = redis_ping.encode_command("LRANGE", "k", 0, -1)
    reply = b"*2\r\n$1\r\na\r\n$-1\r\n"

    async def serve() -> None:
        received = b""
        while len(received) < len(request):  # bounded by the request's length
            received += await server.receive_some()
        assert received == request
        for i in range(len(reply)):
            await server.send_all(reply[i : i + 1])

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(serve)
            assert await redis_ping.exchange(client, request) == [b"a", None]


@pytest.mark.parametrize(
    ("reply", "message"),
    [(b"+OK\r\n+EXTRA\r\n", "unexpected bytes after the reply"), (b"$5\r\nab", "closed")],
)
async def test_exchange_errors_discard_the_connection(reply: bytes, message: str) -> None:
    """A reply with stray bytes after it, or cut short by EOF, leaves the
    connection out of step: the client raises and the pool discards it."""
    accepted = 0

    async def serve(stream: trio.SocketStream) -> None:
        nonlocal accepted
        accepted += 1
        async with stream:
            await stream.receive_some()
            await stream.send_all(reply)

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            serve_tcp = partial(trio.serve_tcp, serve, 0, host="127.0.0.1")
            listeners = await nursery.start(serve_tcp)
            port: int = listeners[0].socket.getsockname()[1]
            async with redis_ping.open_redis("127.0.0.1", port) as client:
                with pytest.raises(RedisProtocolError, match=message):
                    await client.command("PING")
                stats = client.stats()
                assert (stats.total_created, stats.total_closed, stats.idle) == (1, 1, 0)
            nursery.cancel_scope.cancel()
    assert accepted == 1


# ------------------------------------------------------- a real redis-server


@dataclass(frozen=True)
class RedisServer:
    port: int

    def client(self, max_connections: int) -> AbstractAsyncContextManager[redis_ping.RedisClient]:
        return redis_ping.open_redis("127.0.0.1", self.port, max_connections=max_connections)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _answers_ping(proc: subprocess.Popen[bytes], port: int) -> bool:
    """True once the server on *port* is *our* redis and ready; False if the
    process exited (another process had the port). Up to 10 s."""
    deadline = time.monotonic() + 10
    for _ in range(1000):  # and bounded in count: 10 s / 10 ms
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(64) == b"+PONG\r\n":
                    return proc.poll() is None
        except OSError:
            pass  # not listening yet, or still loading
        if time.monotonic() > deadline:
            break
        time.sleep(0.01)  # poll interval between connect attempts
    raise RuntimeError(f"redis-server (pid {proc.pid}) did not answer PING on port {port} in 10 s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop exactly this process: SIGTERM, then SIGKILL if it lingers."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A throwaway redis-server on a free 127.0.0.1 port, no persistence.

    A free port can be taken by someone else between our probe and Redis'
    bind; Redis then exits and we try another port (three times at most).
    """
    binary = shutil.which("redis-server") or shutil.which("/usr/bin/redis-server")
    if binary is None:
        pytest.fail(
            "redis-server is not installed; run `bash scripts/install-test-servers` "
            "(CI does). These interop tests must not be skipped.",
            pytrace=False,
        )
    log = tmp_path / "redis.log"
    for _ in range(3):
        port = _free_port()
        args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        args += ["--appendonly", "no", "--dir", str(tmp_path)]
        with log.open("ab") as out:
            proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
        try:
            ready = _answers_ping(proc, port)
        except BaseException:
            _stop(proc)
            raise
        if ready:
            break
        _stop(proc)
    else:
        pytest.fail(f"redis-server would not start; its log:\n{log.read_text()}", pytrace=False)
    try:
        yield RedisServer(port)
    finally:
        _stop(proc)


async def info_field(admin: redis_ping.RedisClient, section: str, name: str) -> str:
    """One ``name:value`` field of ``INFO section``."""
    reply = await admin.command("INFO", section)
    assert isinstance(reply, bytes)
    for line in reply.decode().splitlines():
        key, _, value = line.partition(":")
        if key == name:
            return value
    raise AssertionError(f"INFO {section} has no field {name!r}")


async def wait_for_info(admin: redis_ping.RedisClient, name: str, wanted: str) -> None:
    """Poll ``INFO clients`` until *name* reads *wanted* (the server's own
    account of its clients is the signal; there is no push for it)."""
    for _ in range(500):  # bounded in count; the caller's fail_after bounds time
        if await info_field(admin, "clients", name) == wanted:
            return
        await trio.sleep(0.01)
    raise AssertionError(f"INFO clients {name} never became {wanted}")


@pytest.mark.interop
async def test_concurrent_incr_through_four_connections(redis_server: RedisServer) -> None:
    with trio.fail_after(10):
        async with redis_server.client(1) as admin, redis_server.client(4) as client:
            before = int(await info_field(admin, "stats", "total_connections_received"))
            async with trio.open_nursery() as nursery:
                for _ in range(200):
                    nursery.start_soon(client.incr, "counter")
            assert await client.get("counter") == b"200"

            stats = client.stats()
            assert 1 <= stats.total_created <= 4
            assert (stats.total_closed, stats.errors, stats.active) == (0, 0, 0)
            assert stats.total_reused == 201 - stats.total_created
            # The server's own count: every connection it accepted since
            # `before` came from the pool, and they are all still open.
            after = int(await info_field(admin, "stats", "total_connections_received"))
            assert after - before == stats.total_created
            client_list = await admin.command("CLIENT", "LIST")
            assert isinstance(client_list, bytes)
            assert len(client_list.splitlines()) == stats.total_created + 1  # + admin


@pytest.mark.interop
async def test_error_reply_raises_and_keeps_the_connection(redis_server: RedisServer) -> None:
    """An error reply is a complete, well-formed reply: the connection is in
    step and goes back to the pool."""
    with trio.fail_after(10):
        async with redis_server.client(1) as client:
            await client.set("text", "not a number")
            connection_id = await client.command("CLIENT", "ID")
            with pytest.raises(RedisError, match="not an integer") as error:
                await client.incr("text")
            assert error.value.kind == "ERR"
            await client.command("RPUSH", "list", "x")
            with pytest.raises(RedisError) as error:
                await client.get("list")
            assert error.value.kind == "WRONGTYPE"

            assert await client.command("CLIENT", "ID") == connection_id
            stats = client.stats()
            assert (stats.total_created, stats.total_closed, stats.idle) == (1, 0, 1)


@pytest.mark.interop
async def test_killed_idle_connections_are_replaced(redis_server: RedisServer) -> None:
    """After CLIENT KILL, check_readable sees each idle connection's EOF at
    checkout; the pool drops them all and the command runs on a new one."""
    with trio.fail_after(10):
        async with redis_server.client(1) as admin, redis_server.client(4) as client:
            pool, endpoint = client.pool, client.endpoint
            leases = [await pool.acquire(endpoint) for _ in range(4)]
            for lease in leases:
                assert await redis_ping.exchange(lease.stream, b"PING\r\n") == "PONG"
                await pool.release(lease)
            assert client.stats().idle == 4

            # Redis closes the other clients' sockets before it replies, and
            # on loopback the FIN is queued at once: no waiting needed.
            assert await admin.command("CLIENT", "KILL", "TYPE", "normal") == 4
            assert await info_field(admin, "clients", "connected_clients") == "1"

            assert await client.ping()
            stats = client.stats()
            assert (stats.total_created, stats.total_closed) == (5, 4)
            assert (stats.idle, stats.active) == (1, 0)


@pytest.mark.interop
async def test_cancelled_command_discards_its_connection(redis_server: RedisServer) -> None:
    """A command cancelled while Redis holds it (BLPOP) may still get its
    reply later, so its connection must never be reused."""
    with trio.fail_after(10):
        async with redis_server.client(1) as admin, redis_server.client(4) as client:
            assert await client.ping()
            blpop = trio.CancelScope()

            async def blocked_command() -> None:
                with blpop:
                    await client.command("BLPOP", "empty-list", 10)
                    raise AssertionError("BLPOP returned; it should have been cancelled")

            async with trio.open_nursery() as nursery:
                nursery.start_soon(blocked_command)
                await wait_for_info(admin, "blocked_clients", "1")
                blpop.cancel()
            assert blpop.cancelled_caught

            stats = client.stats()
            assert (stats.total_created, stats.total_closed, stats.idle) == (1, 1, 0)
            # The pool really closed the socket: Redis unblocks and drops it.
            await wait_for_info(admin, "blocked_clients", "0")
            await wait_for_info(admin, "connected_clients", "1")

            # A later LPUSH must not feed a reply into a reused connection.
            await client.command("LPUSH", "empty-list", "late")
            assert await client.command("LPOP", "empty-list") == b"late"
            stats = client.stats()
            assert (stats.total_created, stats.total_closed) == (2, 1)


@pytest.mark.interop
async def test_affinity_returns_the_connection_with_its_selected_database(
    redis_server: RedisServer,
) -> None:
    """SELECT is per connection: a lease that asks by the same key gets the
    connection that selected database 5 back, even though another connection
    was used since, and reads the key it wrote there without selecting again
    (the server's CLIENT ID proves it is the same connection)."""

    async def run(lease: cp.Lease[trio.abc.Stream], *args: str) -> object:
        return await redis_ping.exchange(lease.stream, redis_ping.encode_command(*args))

    with trio.fail_after(10):
        async with redis_server.client(4) as client:
            pool, endpoint = client.pool, client.endpoint
            async with (  # released last to first: `other` is the most recent
                pool.connection(endpoint) as other,
                pool.connection(endpoint, affinity="db5") as five,
            ):
                assert await run(five, "SELECT", "5") == "OK"
                assert await run(five, "SET", "where", "db5") == "OK"
                five_id = await run(five, "CLIENT", "ID")
                other_id = await run(other, "CLIENT", "ID")
            async with pool.connection(endpoint) as lease:  # LIFO: the other one
                assert await run(lease, "CLIENT", "ID") == other_id
            async with pool.connection(endpoint, affinity="db5") as lease:
                assert await run(lease, "CLIENT", "ID") == five_id
                assert await run(lease, "GET", "where") == b"db5"
