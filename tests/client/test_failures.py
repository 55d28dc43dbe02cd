"""Every failure is a documented trio_requests error; the pool stays clean."""

from __future__ import annotations

import gzip
import zlib
from functools import partial

import pytest
import trio
import trio.testing

import trio_conpool as cp
import trio_requests as tr
from tests.helpers import assert_pool_clean
from trio_requests.testing import H11Server, Reply


@pytest.mark.parametrize(
    ("reply", "match"),
    [
        (Reply(200, raw=b"HTTP/1.1 abc OK\r\n\r\n"), "invalid response"),
        (Reply(200, raw=b"garbage\r\n\r\n"), "invalid response"),
        (
            Reply(200, raw=b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nhi"),
            "invalid response",
        ),
        (
            Reply(200, raw=b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
            "invalid response",
        ),
        (
            Reply(200, body=b"0123456789", truncate_to=4),
            "without sending (a )?(complete|response)|broke",
        ),
        (Reply(200, reset=True), "broke|closed"),
        (Reply(200, raw=b""), "without sending (a )?(complete|response)|broke"),
    ],
)
async def test_broken_responses_raise_remote_protocol_error(
    server: H11Server, reply: Reply, match: str
) -> None:
    server.route("GET", "/", reply)
    server.route("GET", "/ok", Reply(200, body=b"fine"))
    async with tr.Session(retries=0) as s:
        with pytest.raises(tr.RemoteProtocolError, match=match) as info:
            await s.get(server.url + "/")
        assert info.value.request is not None and info.value.request.url.path == "/"
        assert (await s.get(server.url + "/ok")).content == b"fine"
        assert_pool_clean(s)


async def test_oversize_and_overcrowded_heads(server: H11Server) -> None:
    server.route("GET", "/big", Reply(200, headers=[("x-big", "a" * 5000)]))
    server.route("GET", "/many", Reply(200, headers=[(f"x-{i}", "v") for i in range(20)]))
    limits = tr.Limits(max_header_bytes=4096, max_header_count=10)
    async with tr.Session(limits=limits, retries=0) as s:
        with pytest.raises(tr.RemoteProtocolError, match="invalid response"):
            await s.get(server.url + "/big")
        with pytest.raises(tr.RemoteProtocolError, match="max_header_count=10"):
            await s.get(server.url + "/many")
        assert_pool_clean(s)


async def test_decompression_bomb_and_corrupt_data(server: H11Server) -> None:
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    bomb = b"".join(compressor.compress(b"\0" * 1_048_576) for _ in range(64)) + compressor.flush()
    server.route("GET", "/bomb", Reply(200, body=bomb, headers=[("content-encoding", "gzip")]))
    server.route(
        "GET",
        "/corrupt",
        Reply(200, body=b"not gzip at all", headers=[("content-encoding", "gzip")]),
    )
    server.route(
        "GET",
        "/small",
        Reply(200, body=gzip.compress(b"\0" * 10_000), headers=[("content-encoding", "gzip")]),
    )
    async with tr.Session(retries=0) as s:
        with pytest.raises(tr.DecodingError, match="gzip"):
            await s.get(server.url + "/bomb")
        with pytest.raises(tr.DecodingError):
            await s.get(server.url + "/corrupt")
        assert len((await s.get(server.url + "/small")).content) == 10_000
        assert_pool_clean(s)


async def test_read_timeout(server: H11Server, autojump_clock: trio.testing.MockClock) -> None:
    server.route("GET", "/slow", Reply(200, no_response=True))
    server.route("GET", "/drip", Reply(200, body=b"abc", delay_body=5))
    async with tr.Session(timeout=tr.Timeout(2.0), retries=0) as s:
        start = trio.current_time()
        with pytest.raises(tr.ReadTimeout):
            await s.get(server.url + "/slow")
        assert trio.current_time() - start == pytest.approx(2.0)
        with pytest.raises(tr.ReadTimeout):
            await s.get(server.url + "/drip")
        assert (await s.get(server.url + "/drip", timeout=10)).content == b"abc"
        assert_pool_clean(s)


async def test_total_timeout_bounds_a_trickle_the_read_timeout_allows(
    server: H11Server, autojump_clock: trio.testing.MockClock
) -> None:
    server.route("GET", "/trickle", Reply(200, body=b"x" * 100, trickle=1.0))
    server.route("GET", "/slow-head", Reply(200, body=b"x", delay_headers=8))
    timeout = tr.Timeout(read=2.0, total=30.0)
    async with tr.Session(timeout=timeout, retries=0) as s:
        start = trio.current_time()
        with pytest.raises(tr.TotalTimeout, match=r"Timeout.total=30.0s"):
            await s.get(server.url + "/trickle")
        assert trio.current_time() - start == pytest.approx(30.0)
        with pytest.raises(tr.TotalTimeout):
            async with s.stream("GET", server.url + "/slow-head", timeout=tr.Timeout(total=5)):
                pass
        async with s.stream("GET", server.url + "/trickle") as response:
            assert len(await response.aread()) == 100  # the head came in time: the body is ours
        assert_pool_clean(s)
    with pytest.raises(ValueError, match=r"Timeout\.total"):
        tr.Timeout(total=0)
    assert tr.Timeout(5).total is None


async def test_write_timeout(server: H11Server, autojump_clock: trio.testing.MockClock) -> None:
    server.route("POST", "/", Reply(200, no_response=True, read_body=False))
    async with tr.Session(timeout=tr.Timeout(3.0), retries=0) as s:
        with pytest.raises(tr.WriteTimeout):
            await s.post(server.url + "/", content=b"x" * 50_000_000)
        assert_pool_clean(s)


async def test_pool_timeout(server: H11Server, autojump_clock: trio.testing.MockClock) -> None:
    server.route("GET", "/", Reply(200, body=b"ok"))
    config = cp.PoolConfig(max_connections_per_endpoint=1)
    async with tr.Session(pool=config, timeout=tr.Timeout(pool=1.5)) as s:
        async with s.stream("GET", server.url + "/"):
            with pytest.raises(tr.PoolTimeout):
                await s.get(server.url + "/")
        assert_pool_clean(s)


async def test_connect_timeout(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    async def silent(stream: trio.SocketStream) -> None:
        async for _ in stream:
            pass

    (listener,) = await nursery.start(partial(trio.serve_tcp, silent, 0, host="127.0.0.1"))
    port = listener.socket.getsockname()[1]
    async with tr.Session(timeout=tr.Timeout(connect=4.0), retries=0) as s:
        start = trio.current_time()
        with pytest.raises(tr.ConnectTimeout) as info:
            await s.get(f"https://127.0.0.1:{port}/")
        assert trio.current_time() - start == pytest.approx(4.0)
        assert isinstance(info.value.__cause__, cp.ConnectTimeout)


async def test_connect_refused_is_retried_then_raised() -> None:
    sock = trio.socket.socket()
    await sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    events: list[str] = []
    retry = tr.Retry(total=2, backoff_factor=0.0)
    async with tr.Session(retries=retry, trace=lambda e: events.append(e.name)) as s:
        with pytest.raises(tr.ConnectError, match="refused") as info:
            await s.post(f"http://127.0.0.1:{port}/", content=b"x")
        assert s.stats().retries_count == 2
    assert events.count("retry") == 2
    assert isinstance(info.value.__cause__, cp.ConnectError)


async def test_status_retries_respect_method_and_retry_after(
    server: H11Server, autojump_clock: trio.testing.MockClock
) -> None:
    server.route("GET", "/", [Reply(503, headers=[("retry-after", "7")]), Reply(200, body=b"ok")])
    server.route("POST", "/", [Reply(503), Reply(200)])
    retry = tr.Retry(total=3, status_forcelist=frozenset({503}))
    async with tr.Session(retries=retry) as s:
        start = trio.current_time()
        r = await s.get(server.url + "/")
        assert r.content == b"ok" and trio.current_time() - start == pytest.approx(7.0)
        assert (await s.post(server.url + "/")).status_code == 503  # POST is not idempotent
        assert s.stats().retries_count == 1
        assert_pool_clean(s)


async def test_stale_keep_alive_connection_is_retried_transparently(server: H11Server) -> None:
    server.route("GET", "/", Reply(200, body=b"ok", close_silently_after=True))
    # Without the readability check the pool hands out the dead connection,
    # as happens when the server's FIN races the next request.
    config = cp.PoolConfig(check_readable=False)
    async with tr.Session(pool=config, retries=0) as s:
        for _ in range(3):
            assert (await s.get(server.url + "/")).content == b"ok"
            await server.wait_for_open_connections(0)
        assert server.connections_accepted == 3
        assert_pool_clean(s)


async def test_too_many_redirects(server: H11Server) -> None:
    server.route("GET", "/hop", [Reply(302, headers=[("location", f"/hop?{n}")]) for n in range(9)])
    async with tr.Session(max_redirects=5) as s:
        with pytest.raises(tr.TooManyRedirects, match="max_redirects=5"):
            await s.get(server.url + "/hop")
        assert_pool_clean(s)
    assert len(server.requests) == 6


async def test_a_redirect_loop_stops_at_the_first_repeat(server: H11Server) -> None:
    server.route("GET", "/a", Reply(302, headers=[("location", "/b")]))
    server.route("GET", "/b", Reply(301, headers=[("location", "/a")]))
    async with tr.Session() as s:
        with pytest.raises(tr.TooManyRedirects, match=r"redirect loop: .*/b redirects to .*/a"):
            await s.get(server.url + "/a")
        assert_pool_clean(s)
    assert [r.path for r in server.requests] == ["/a", "/b"]


async def test_redirect_to_unsupported_scheme(server: H11Server) -> None:
    server.route("GET", "/", Reply(302, headers=[("location", "ftp://example.org/file")]))
    async with tr.Session() as s:
        with pytest.raises(tr.InvalidURL, match="ftp"):
            await s.get(server.url + "/")
        assert_pool_clean(s)
