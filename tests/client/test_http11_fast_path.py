"""The HTTP/1.1 driver's fast path and h11 taking turns on one connection.

A cycle the fast path starts may be handed to h11 once the response head
shows something less plain (chunked, 204, a reply to HEAD...); the next cycle on the
same connection starts on the fast path again. Either way the connection is
reused exactly when h11 alone would reuse it.
"""

from __future__ import annotations

import pytest

import trio_requests as tr
from tests.helpers import assert_pool_clean
from trio_requests.testing import H11Server, Reply

REPLIES = {
    "/length": Reply(200, body=b"length"),
    "/chunked": Reply(200, chunks=[b"chu", b"nked"], chunked=True),
    "/empty": Reply(204),
}


async def test_fast_and_h11_cycles_alternate_on_one_connection(server: H11Server) -> None:
    for path, reply in REPLIES.items():
        server.route("GET", path, reply)
    server.route("HEAD", "/length", Reply(200, headers=[("content-length", "6")]))
    server.route("POST", "/length", REPLIES["/length"])
    async with tr.Session() as session:
        for path in ["/length", "/chunked", "/length", "/empty", "/length"]:
            response = await session.get(server.url + path)
            assert response.content == {"/empty": b""}.get(path, path[1:].encode())
        head = await session.head(server.url + "/length")
        assert (head.content, head.headers["content-length"]) == (b"", "6")
        assert (await session.post(server.url + "/length", content=b"x")).content == b"length"
        assert_pool_clean(session)
    assert server.connections_accepted == 1


@pytest.mark.parametrize(
    ("raw", "reused"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", True),
        (b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", False),
        (b"HTTP/1.1 200 OK\r\nConnection: keep-alive, CLOSE\r\nContent-Length: 2\r\n\r\nok", False),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", False),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA", False),
    ],
)
async def test_reuse_follows_h11s_rules(server: H11Server, raw: bytes, reused: bool) -> None:
    server.route("GET", "/raw", Reply(200, raw=raw, keep_open=True))
    server.route("GET", "/ok", Reply(200, body=b"ok"))
    async with tr.Session() as session:
        assert (await session.get(server.url + "/raw")).content == b"ok"
        assert (await session.get(server.url + "/ok")).content == b"ok"
        assert_pool_clean(session)
    assert server.connections_accepted == (1 if reused else 2)


async def test_a_body_cut_short_says_how_much_arrived(server: H11Server) -> None:
    server.route("GET", "/cut", Reply(200, body=b"0123456789", truncate_to=4))
    async with tr.Session(retries=0) as session:
        with pytest.raises(tr.RemoteProtocolError, match=r"received 4 bytes, expected 10"):
            await session.get(server.url + "/cut")
        assert_pool_clean(session)


async def test_a_repeated_head_gives_each_response_its_own_headers(server: H11Server) -> None:
    """The connection remembers the last head it parsed: a byte-identical
    head is answered from memory, with fresh Headers; a head of the same
    length but other bytes is parsed again."""
    a = b"HTTP/1.1 200 OK\r\nX-A: 1\r\nContent-Length: 2\r\n\r\nok"
    b = b"HTTP/1.1 201 No\r\nX-B: 2\r\nContent-Length: 2\r\n\r\nno"
    server.route("GET", "/a", Reply(200, raw=a, keep_open=True))
    server.route("GET", "/b", Reply(200, raw=b, keep_open=True))
    async with tr.Session() as session:
        first = await session.get(server.url + "/a")
        first.headers["x-a"] = "changed"
        second = await session.get(server.url + "/a")
        assert (second.status_code, second.headers["x-a"], second.content) == (200, "1", b"ok")
        other = await session.get(server.url + "/b")
        assert (other.status_code, other.reason, other.content) == (201, "No", b"no")
        assert list(other.headers.items()) == [("X-B", "2"), ("Content-Length", "2")]
        assert_pool_clean(session)
    assert server.connections_accepted == 1
