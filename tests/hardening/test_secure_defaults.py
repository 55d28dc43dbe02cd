"""Secure defaults (docs/hardening.md), each proven over loopback.

Verification, TLS versions and certificate failures are rows of the bad-input
matrix (test_bad_inputs.py); this file covers the rest: SNI, the caller's
SSLContext, credentials across redirects, masking, and injection refused
before a connection is even opened.
"""

from __future__ import annotations

import base64
import socket
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trustme

import trio_requests as tr
from tests.helpers import assert_pool_clean
from trio_requests.testing import H2Server, H11Server, Reply, open_h2_server, open_h11_server

SECRET = "s3cret-pw"
TOKEN = base64.b64encode(f"user:{SECRET}".encode()).decode()


@asynccontextmanager
async def open_server(protocol: str) -> AsyncIterator[H11Server | H2Server]:
    opener = open_h11_server if protocol == "h1" else open_h2_server
    async with opener() as server:
        yield server


def snapshot(context: ssl.SSLContext) -> tuple[object, ...]:
    """Its security settings. (Not its CA store's contents: OpenSSL loads a
    capath directory's certificates lazily, as verification looks them up.)"""
    return (
        context.verify_mode,
        context.check_hostname,
        context.options,
        context.minimum_version,
        context.maximum_version,
        context.verify_flags,
        context.get_ciphers(),
        context.sni_callback,
    )


def test_the_default_context_verifies_with_tls_1_2_or_later() -> None:
    context = tr.Session()._ssl_context  # what verify=True builds
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.check_hostname
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2


async def test_sni_names_the_host(ca: trustme.CA, client_ssl_context: ssl.SSLContext) -> None:
    names: list[str | None] = []
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_context)
    server_context.sni_callback = lambda _sock, name, _ctx: names.append(name)
    async with (
        open_h11_server(ssl_context=server_context) as server,
        tr.Session(verify=client_ssl_context) as session,
    ):
        server.route("GET", "/", Reply(200, body=b"ok"))
        port = server.url.rsplit(":", 1)[1]
        assert (await session.get(f"https://localhost:{port}/")).content == b"ok"
    assert names == ["localhost"]


@pytest.mark.parametrize("alpn", [["h2"], ["http/1.1"]])
async def test_the_callers_ssl_context_keeps_its_settings(
    ca: trustme.CA, server_ssl_context: ssl.SSLContext, alpn: list[str]
) -> None:
    mine = ssl.create_default_context()
    ca.configure_trust(mine)
    mine.minimum_version = ssl.TLSVersion.TLSv1_3
    mine.options |= ssl.OP_NO_TICKET
    before = snapshot(mine)
    server_ssl_context.set_alpn_protocols(alpn)
    async with (
        open_h2_server(ssl_context=server_ssl_context) as server,
        tr.Session(verify=mine) as session,
    ):
        server.route("GET", "/", Reply(200, body=b"ok"))
        response = await session.get(server.url + "/")
        assert response.http_version == ("HTTP/2" if alpn == ["h2"] else "HTTP/1.1")
    assert snapshot(mine) == before


@pytest.mark.parametrize("protocol", ["h1", "h2"])
async def test_credentials_stay_with_their_origin(protocol: str) -> None:
    secret_headers = {"Cookie": "sid=1", "Proxy-Authorization": "Basic eHg6eXk="}
    async with open_server(protocol) as first, open_server(protocol) as second:
        first.route("GET", "/same", Reply(302, headers=[("location", "/here")]))
        first.route("GET", "/here", Reply(200))
        first.route("GET", "/away", Reply(302, headers=[("location", second.url + "/there")]))
        second.route("GET", "/there", Reply(200))
        async with tr.Session(http2_prior_knowledge=protocol == "h2") as session:
            for path in ("/same", "/away"):
                await session.get(first.url + path, auth=("user", SECRET), headers=secret_headers)
    here = dict(first.requests[1].headers)
    assert here["authorization"] == f"Basic {TOKEN}" and here["cookie"] == "sid=1"
    assert here["proxy-authorization"] == secret_headers["Proxy-Authorization"]
    (there,) = second.requests
    assert not {"authorization", "cookie", "proxy-authorization"} & dict(there.headers).keys()


async def test_https_to_http_redirect_needs_consent(
    tls_server: H11Server, server: H11Server, client_ssl_context: ssl.SSLContext
) -> None:
    tls_server.route("GET", "/", Reply(302, headers=[("location", server.url + "/plain")]))
    server.route("GET", "/plain", Reply(200, body=b"in the clear"))
    async with tr.Session(verify=client_ssl_context) as session:
        with pytest.raises(tr.InsecureRedirect, match="allow_https_to_http_redirects=True"):
            await session.get(tls_server.url + "/", auth=("user", SECRET))
        assert_pool_clean(session)
    assert server.requests == []
    async with tr.Session(verify=client_ssl_context, allow_https_to_http_redirects=True) as session:
        response = await session.get(tls_server.url + "/", auth=("user", SECRET))
        assert response.content == b"in the clear"
    assert "authorization" not in dict(server.requests[0].headers)


def refused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port  # closed, never listened: connecting is refused


FAILURES: list[tuple[str, Callable[[H11Server], str], dict[str, Any]]] = [
    ("refused", lambda _: f"http://user:{SECRET}@127.0.0.1:{refused_port()}/", {}),
    ("bad response", lambda s: s.url.replace("://", f"://user:{SECRET}@") + "/bad", {}),
    ("timeout", lambda s: s.url.replace("://", f"://user:{SECRET}@") + "/slow", {"timeout": 0.2}),
    ("status", lambda s: s.url.replace("://", f"://user:{SECRET}@") + "/401", {}),
]


@pytest.mark.parametrize(("kind", "url_of", "options"), FAILURES, ids=[f[0] for f in FAILURES])
async def test_credentials_never_show_in_errors_or_traces(
    server: H11Server, kind: str, url_of: Callable[[H11Server], str], options: dict[str, Any]
) -> None:
    server.route("GET", "/bad", Reply(200, raw=b"HTTP/1.1 abc\r\n\r\n"))
    server.route("GET", "/slow", Reply(200, no_response=True))
    server.route("GET", "/401", Reply(401))
    events: list[str] = []
    trace = lambda name, info: events.append(f"{name} {info!r}")  # noqa: E731
    async with tr.Session(retries=1, trace=trace, **options) as session:
        with pytest.raises(tr.RequestError) as info:
            (await session.get(url_of(server))).raise_for_status()
    error = info.value
    shown = [str(error), repr(error), repr(error.request), *events]
    cause: BaseException | None = error.__cause__
    while cause is not None:
        shown.append(str(cause))
        cause = cause.__cause__
    assert events or kind == "refused", "the trace saw nothing"
    assert not [text for text in shown if SECRET in text or TOKEN in text]


INJECTIONS: list[tuple[str, dict[str, Any], type[tr.RequestError]]] = [
    ("CRLF in a header value", {"headers": {"X-A": "a\r\nX-Injected: 1"}}, tr.LocalProtocolError),
    ("NUL in a header value", {"headers": {"X-A": "a\0b"}}, tr.LocalProtocolError),
    ("CRLF in a header name", {"headers": {"X-A\r\nX-B": "1"}}, tr.LocalProtocolError),
    ("colon in a header name", {"headers": {"X:A": "1"}}, tr.LocalProtocolError),
    ("space in a header name", {"headers": {"X A": "1"}}, tr.LocalProtocolError),
    ("non-latin-1 header value", {"headers": {"X-A": "€"}}, tr.LocalProtocolError),
    ("CRLF in the path", {"path": "/a\r\nX-Injected: 1"}, tr.InvalidURL),
    ("space and version in the path", {"path": "/a HTTP/1.1"}, tr.InvalidURL),
    ("CRLF in the query", {"path": "/?q=a\r\nb"}, tr.InvalidURL),
    ("CRLF in the method", {"method": "GET / HTTP/1.1\r\nX: y\r\n\r\nGET"}, tr.LocalProtocolError),
    ("space in the method", {"method": "G ET"}, tr.LocalProtocolError),
]


@pytest.mark.parametrize("protocol", ["h1", "h2"])
@pytest.mark.parametrize(
    ("label", "request_parts", "error"),
    INJECTIONS,
    ids=[i[0].replace(" ", "-") for i in INJECTIONS],
)
async def test_injection_is_refused_before_any_connection(
    protocol: str, label: str, request_parts: dict[str, Any], error: type[tr.RequestError]
) -> None:
    async with open_server(protocol) as server:
        parts = {"method": "GET", "path": "/", "headers": {}} | request_parts
        async with tr.Session(http2_prior_knowledge=protocol == "h2") as session:
            with pytest.raises(error):
                await session.request(
                    parts["method"], server.url + parts["path"], headers=parts["headers"]
                )
            assert_pool_clean(session)
        assert server.connections_accepted == 0
        assert server.requests == []
