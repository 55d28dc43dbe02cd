"""The Session over HTTP/1.1 against the scripted server: the everyday API."""

from __future__ import annotations

import datetime
import gzip
import json
import ssl
from collections.abc import AsyncIterator

import pytest
import trio
import trio.lowlevel

import trio_requests as tr
from trio_requests.testing import H11Server, ReceivedRequest, Reply


async def echo(request: ReceivedRequest) -> Reply:
    payload = {
        "method": request.method,
        "target": request.target,
        "headers": dict(request.headers),
        "body": request.body.decode("latin-1"),
    }
    return Reply(
        200, body=json.dumps(payload).encode(), headers=[("content-type", "application/json")]
    )


async def test_get_with_params_and_headers(server: H11Server) -> None:
    server.route("GET", "/echo", echo)
    async with tr.Session(headers={"X-Session": "s"}) as s:
        r = await s.get(
            server.url + "/echo?a=1", params={"b": ["2", "3"], "c": None}, headers={"x-req": "r"}
        )
    assert r.status_code == 200 and r.reason == "OK" and r.http_version == "HTTP/1.1"
    body = r.json()
    assert body["target"] == "/echo?a=1&b=2&b=3&c="
    assert body["headers"]["x-session"] == "s" and body["headers"]["x-req"] == "r"
    assert body["headers"]["host"] == f"127.0.0.1:{server.port}"
    assert "gzip" in body["headers"]["accept-encoding"]
    assert r.headers["Content-Type"] == "application/json"
    assert r.url == server.url + "/echo?a=1&b=2&b=3&c="
    assert r.elapsed.total_seconds() >= 0
    assert r.raise_for_status() is r


@pytest.mark.parametrize(
    ("kwargs", "content_type", "body"),
    [
        ({"json": {"a": [1, "é"]}}, "application/json", '{"a":[1,"é"]}'),
        (
            {"data": {"k": "v w", "n": ["1", "2"]}},
            "application/x-www-form-urlencoded",
            "k=v+w&n=1&n=2",
        ),
        ({"content": b"raw bytes"}, None, "raw bytes"),
    ],
)
async def test_request_bodies(
    server: H11Server, kwargs: dict[str, object], content_type: str | None, body: str
) -> None:
    server.route("POST", "/echo", echo)
    async with tr.Session() as s:
        r = await s.post(server.url + "/echo", **kwargs)
    got = r.json()
    assert got["headers"].get("content-type") == content_type
    assert got["body"].encode("latin-1").decode() == body
    assert got["headers"]["content-length"] == str(len(body.encode()))


async def test_multipart_upload(server: H11Server) -> None:
    server.route("POST", "/echo", echo)
    async with tr.Session() as s:
        r = await s.post(
            server.url + "/echo", data={"field": "x"}, files={"f": ("a.txt", b"hello")}
        )
    got = r.json()
    assert got["headers"]["content-type"].startswith("multipart/form-data; boundary=")
    assert 'filename="a.txt"' in got["body"] and "hello" in got["body"]


async def test_chunked_upload_from_async_iterable(server: H11Server) -> None:
    server.route("PUT", "/echo", echo)

    async def parts() -> AsyncIterator[bytes]:
        for i in range(5):
            await trio.lowlevel.checkpoint()
            yield b"part%d;" % i

    async with tr.Session() as s:
        r = await s.put(server.url + "/echo", content=parts())
    got = r.json()
    assert got["headers"]["transfer-encoding"] == "chunked"
    assert got["body"] == "part0;part1;part2;part3;part4;"


async def test_keep_alive_reuses_one_connection(server: H11Server) -> None:
    server.route("GET", "/", Reply(200, body=b"x" * 100))
    async with tr.Session() as s:
        for _ in range(5):
            r = await s.get(server.url + "/")
            assert r.content == b"x" * 100
        (stats,) = s.stats().endpoints.values()
    assert server.connections_accepted == 1
    assert (stats.total_created, stats.total_reused) == (1, 4)
    assert s.stats().requests_made == 5


async def test_connection_close_and_http10_are_honoured(server: H11Server) -> None:
    server.route("GET", "/close", Reply(200, body=b"a", close_after=True))
    server.route("GET", "/old", Reply(200, raw=b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nhi"))
    async with tr.Session() as s:
        assert (await s.get(server.url + "/close")).content == b"a"
        r = await s.get(server.url + "/old")
        assert r.http_version == "HTTP/1.0" and r.content == b"hi"
        assert (await s.get(server.url + "/close")).content == b"a"
    assert server.connections_accepted == 3


async def test_streaming_reads_on_demand(server: H11Server) -> None:
    server.route(
        "GET", "/lines", Reply(200, chunks=[b"one\r\ntw", b"o\r", b"\nthree"], chunked=True)
    )
    server.route("GET", "/big", Reply(200, body=b"z" * 100_000))
    async with tr.Session() as s:
        async with s.stream("GET", server.url + "/lines") as r:
            assert [line async for line in r.aiter_lines()] == ["one", "two", "three"]
        async with s.stream("GET", server.url + "/big") as r:
            first = await r.aiter_bytes().__anext__()
            assert first and set(first) == {ord("z")}
        # The unread body made that connection unusable: it was closed.
        (stats,) = s.stats().endpoints.values()
        assert stats.total_closed == 1 and stats.idle == 0 and stats.leases == 0


async def test_stream_response_must_be_read_before_content(server: H11Server) -> None:
    server.route("GET", "/", Reply(200, body=b"abc"))
    async with tr.Session() as s, s.stream("GET", server.url + "/") as r:
        with pytest.raises(tr.ResponseClosed, match="aread"):
            _ = r.content
        assert await r.aread() == b"abc"
        with pytest.raises(tr.StreamConsumed):
            async for _ in r.aiter_raw():
                pass


async def test_text_charset_and_json(server: H11Server) -> None:
    server.route(
        "GET",
        "/latin",
        Reply(
            200,
            body="café".encode("latin-1"),
            headers=[("content-type", "text/plain; charset=ISO-8859-1")],
        ),
    )
    server.route("GET", "/bad-json", Reply(200, body=b"{nope"))
    async with tr.Session() as s:
        r = await s.get(server.url + "/latin")
        assert r.encoding == "iso8859-1" and r.text == "café"
        r = await s.get(server.url + "/bad-json")
        with pytest.raises(tr.DecodingError, match="not valid JSON"):
            r.json()


async def test_gzip_is_decoded(server: H11Server) -> None:
    payload = b"hello " * 1000
    server.route(
        "GET",
        "/gz",
        Reply(200, body=gzip.compress(payload), headers=[("content-encoding", "gzip")]),
    )
    async with tr.Session() as s:
        r = await s.get(server.url + "/gz")
    assert r.content == payload


async def test_raise_for_status(server: H11Server) -> None:
    server.route("GET", "/missing", Reply(404))
    async with tr.Session() as s:
        r = await s.get(server.url + "/missing")
    with pytest.raises(tr.HTTPStatusError, match="404") as info:
        r.raise_for_status()
    assert info.value.response is r and info.value.request is r.request


async def test_head_has_no_body(server: H11Server) -> None:
    server.route("HEAD", "/", Reply(200, headers=[("content-length", "1000")]))
    async with tr.Session() as s:
        r = await s.head(server.url + "/")
        r2 = await s.head(server.url + "/")
    assert r.content == b"" and r.headers["content-length"] == "1000" and r2.status_code == 200
    assert server.connections_accepted == 1


async def test_tls_with_ca_bundle_path(
    tls_server: H11Server, ca: object, tmp_path: object, client_ssl_context: ssl.SSLContext
) -> None:
    import trustme

    assert isinstance(ca, trustme.CA)
    bundle = f"{tmp_path}/ca.pem"
    ca.cert_pem.write_to_path(bundle)
    tls_server.route("GET", "/", Reply(200, body=b"secure"))
    url = f"https://localhost:{tls_server.port}/"
    events: list[tuple[str, dict[str, object]]] = []
    async with tr.Session(verify=bundle, trace=lambda e: events.append((e.name, e.as_dict()))) as s:
        assert (await s.get(url)).content == b"secure"
        assert (await s.get(url)).content == b"secure"
    async with tr.Session(verify=client_ssl_context) as s:
        assert (await s.get(url)).content == b"secure"
    names = [e for e, _ in events]
    assert names[:6] == [
        "pool.opened",
        "request.started",
        "connect.started",
        "connect.finished",
        "request.sent",
        "response.headers_received",
    ]
    assert "connection.reused" in names
    finished = dict(events)["connect.finished"]
    assert finished["tls_version"] in ("TLSv1.2", "TLSv1.3") and finished["alpn"] in (
        None,
        "http/1.1",
    )


async def test_untrusted_certificate_is_a_clear_tls_error(tls_server: H11Server) -> None:
    async with tr.Session(verify=ssl.create_default_context()) as s:
        with pytest.raises(tr.TLSError, match="not trusted") as info:
            await s.get(f"https://localhost:{tls_server.port}/")
    assert info.value.request is not None


async def test_module_level_helpers(server: H11Server) -> None:
    server.route("GET", "/", Reply(200, body=b"once"))
    r = await tr.get(server.url + "/", retries=0)
    assert r.content == b"once"


async def test_base_url(server: H11Server) -> None:
    server.route("GET", "/api/v1/users", Reply(200, body=b"users"))
    async with tr.Session(base_url=server.url + "/api/v1") as s:
        assert (await s.get("users")).content == b"users"
        assert (await s.get("/users")).content == b"users"


async def test_invalid_urls_fail_before_any_io(server: H11Server) -> None:
    async with tr.Session() as s:
        for url in (
            "ftp://example.org/",
            "http://",
            "http://exa mple.org/",
            "http://x:99999/",
            "nonsense",
        ):
            with pytest.raises(tr.InvalidURL):
                await s.get(url)
        with pytest.raises(tr.LocalProtocolError, match="CR, LF"):
            await s.get(server.url + "/", headers={"X-Evil": "a\r\nInjected: yes"})
    assert server.connections_accepted == 0


async def test_chunked_trailers_are_kept(server: H11Server) -> None:
    raw = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n"
        b"3\r\nabc\r\n0\r\nX-Checksum: 900150983cd2\r\n\r\n"
    )
    server.route("GET", "/", Reply(raw=raw, keep_open=True))
    async with tr.Session() as s:
        r = await s.get(server.url + "/")
        assert r.content == b"abc"
        assert r.trailers["x-checksum"] == "900150983cd2"


async def test_a_large_body_read_in_one_loop_keeps_the_connection(server: H11Server) -> None:
    """A 2 MiB Content-Length body arrives in many reads, which aread()
    takes in one loop (the driver's read_rest): every byte, in order, and
    the connection goes back to the pool for the next request."""
    body = bytes(range(256)) * 8192
    server.route("GET", "/big", Reply(200, body=body))
    server.route("GET", "/small", Reply(200, body=b"next"))
    async with tr.Session() as s:
        r = await s.get(f"http://127.0.0.1:{server.port}/big")
        assert r.content == body and r.num_bytes_downloaded == len(body)
        assert (await s.get(f"http://127.0.0.1:{server.port}/small")).content == b"next"
    assert [request.connection_index for request in server.requests] == [0, 0]


async def test_a_body_that_failed_to_read_cannot_be_read_again(server: H11Server) -> None:
    server.route("GET", "/cut", Reply(200, body=b"x" * 100_000, truncate_to=50_000))
    async with (
        tr.Session(retries=0) as s,
        s.stream("GET", f"http://127.0.0.1:{server.port}/cut") as r,
    ):
        with pytest.raises(tr.RemoteProtocolError, match="received 50000 bytes, expected 100000"):
            await r.aread()
        with pytest.raises(tr.StreamConsumed):
            await r.aread()


async def test_requests_leave_the_session_headers_as_they_were(server: H11Server) -> None:
    """A request without headers of its own is built from the Session's
    Headers object itself: Host, Cookie and framing go on the request's copy."""
    server.route("GET", "/echo", echo)
    server.route("POST", "/echo", echo)
    async with tr.Session(headers={"X-Session": "s"}) as s:
        before = list(s.headers.multi_items())
        s.cookies.set("k", "v")
        sent = (await s.get(server.url + "/echo")).json()["headers"]
        await s.post(server.url + "/echo", content=b"body")
        s.build_request("GET", server.url + "/echo").headers["X-Mine"] = "1"
    assert sent["x-session"] == "s" and sent["cookie"] == "k=v" and "host" in sent
    assert list(s.headers.multi_items()) == before


async def test_a_plain_response_has_its_lazy_fields(server: H11Server) -> None:
    """history, trailers and elapsed are made when read; they read as before."""
    server.route("GET", "/echo", echo)
    async with tr.Session() as s:
        r = await s.get(server.url + "/echo")
    assert r.history == [] and r.history is r.history
    assert r.trailers == {} and r.trailers is r.trailers
    assert r.elapsed > datetime.timedelta(0)
    r.elapsed = datetime.timedelta(seconds=2.5)
    assert r.elapsed == datetime.timedelta(seconds=2.5)
    with pytest.raises(AttributeError):
        r.custom = 1  # type: ignore[attr-defined]


async def test_trailers_after_a_length_framed_response_on_one_connection(
    server: H11Server,
) -> None:
    """A Content-Length response (the fast path: no trailers object made)
    and then a chunked one (h11's) on the same connection: the second keeps
    its trailers, the first reads as having none."""
    server.route("GET", "/plain", Reply(200, body=b"abc"))
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\nX-T: t\r\n\r\n"
    server.route("GET", "/chunked", Reply(raw=chunked, keep_open=True))
    async with tr.Session() as s:
        plain = await s.get(server.url + "/plain")
        r = await s.get(server.url + "/chunked")
        created = sum(e.total_created for e in s.stats().endpoints.values())
    assert plain.trailers == {} and plain.content == b"abc"
    assert r.content == b"x" and r.trailers["x-t"] == "t"
    assert created == 1
