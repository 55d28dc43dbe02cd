"""Redirects, authentication and cookies, end to end."""

from __future__ import annotations

import pytest

import trio_requests as tr
from trio_requests.testing import H11Server, Reply, open_h11_server


@pytest.mark.parametrize(
    ("status", "method", "body"),
    [
        (301, "GET", b""),
        (302, "GET", b""),
        (303, "GET", b""),
        (307, "POST", b"payload"),
        (308, "POST", b"payload"),
    ],
)
async def test_redirect_methods(server: H11Server, status: int, method: str, body: bytes) -> None:
    server.route("POST", "/from", Reply(status, headers=[("location", "to?x=1")]))
    server.route(method, "/to", Reply(200, body=b"landed"))
    async with tr.Session() as s:
        r = await s.post(server.url + "/from", content=b"payload")
    assert r.content == b"landed" and r.url == server.url + "/to?x=1"
    assert [h.status_code for h in r.history] == [status]
    last = server.requests[-1]
    assert (last.method, last.body) == (method, body)
    assert (last.header("content-length") is None) == (body == b"")


async def test_redirect_not_followed_when_disabled(server: H11Server) -> None:
    server.route("GET", "/", Reply(302, headers=[("location", "/elsewhere")]))
    async with tr.Session(follow_redirects=False) as s:
        r = await s.get(server.url + "/")
    assert r.status_code == 302 and r.is_redirect and len(server.requests) == 1


async def test_credentials_do_not_follow_to_another_origin(server: H11Server) -> None:
    async with open_h11_server() as other:
        other.route("GET", "/", Reply(200))
        # Cookies are per host, not per port (RFC 6265 §8.5): "localhost" is
        # another origin and another cookie host than 127.0.0.1.
        elsewhere = f"http://localhost:{other.port}/"
        server.route(
            "GET", "/go", Reply(302, headers=[("location", elsewhere), ("set-cookie", "sid=1")])
        )
        server.route("GET", "/same", Reply(302, headers=[("location", "/final")]))
        server.route("GET", "/final", Reply(200))
        async with tr.Session(auth=("user", "pw")) as s:
            await s.get(server.url + "/go")
            await s.get(server.url + "/same")
        moved = other.requests[0]
        assert moved.header("authorization") is None and moved.header("cookie") is None
        final = server.requests[-1]
        assert final.header("authorization") == "Basic dXNlcjpwdw=="
        assert final.header("cookie") == "sid=1"


async def test_cookies_persist_across_requests(server: H11Server) -> None:
    server.route(
        "GET",
        "/login",
        Reply(200, headers=[("set-cookie", "token=abc; Path=/"), ("set-cookie", "lang=en")]),
    )
    server.route("GET", "/me", Reply(200))
    async with tr.Session(cookies={"pre": "1"}) as s:
        await s.get(server.url + "/login")
        await s.get(server.url + "/me")
        assert s.cookies.get("token") == "abc"
    cookie = server.requests[-1].header("cookie") or ""
    assert sorted(cookie.split("; ")) == ["lang=en", "pre=1", "token=abc"]


async def test_auth_callable_and_url_credentials(server: H11Server) -> None:
    server.route("GET", "/", Reply(200))

    def bearer(request: tr.Request) -> tr.Request:
        request.headers["Authorization"] = "Bearer t0k"
        return request

    async with tr.Session(auth=bearer) as s:
        await s.get(server.url + "/")
        await s.get(server.url.replace("://", "://u:p@") + "/", auth=None)
    assert server.requests[0].header("authorization") == "Bearer t0k"
    assert server.requests[1].header("authorization") == "Basic dTpw"
