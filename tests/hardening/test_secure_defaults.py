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
from pathlib import Path
from typing import Any

import pytest
import trustme

import trio_requests as tr
from tests.cli.helpers import run_cli
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
    """Its security settings and trust store. (The store only holds still for
    a context without a capath: OpenSSL loads a capath directory's
    certificates lazily, as verification looks them up.)"""
    return (
        context.cert_store_stats(),
        context.get_ca_certs(),
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
    mine = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # no capath: see snapshot()
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
    secret_headers = {"Cookie": "sid=1", "Proxy-Authorization": "Basic eHg6eXk="}
    async with tr.Session(verify=client_ssl_context) as session:
        with pytest.raises(tr.InsecureRedirect, match="allow_https_to_http_redirects=True"):
            await session.get(tls_server.url + "/", auth=("user", SECRET), headers=secret_headers)
        assert_pool_clean(session)
    assert server.requests == []
    async with tr.Session(verify=client_ssl_context, allow_https_to_http_redirects=True) as session:
        response = await session.get(
            tls_server.url + "/", auth=("user", SECRET), headers=secret_headers
        )
        assert response.content == b"in the clear"
    (plain,) = server.requests
    assert not {"authorization", "cookie", "proxy-authorization"} & dict(plain.headers).keys()


async def test_the_insecure_redirect_names_both_urls_without_credentials(
    tls_server: H11Server, server: H11Server, client_ssl_context: ssl.SSLContext
) -> None:
    plain = server.url.replace("://", f"://other:{SECRET}@") + "/plain"
    tls_server.route("GET", "/", Reply(302, headers=[("location", plain)]))
    async with tr.Session(verify=client_ssl_context) as session:
        with pytest.raises(tr.InsecureRedirect) as info:
            await session.get(tls_server.url.replace("://", f"://user:{SECRET}@") + "/")
    message = str(info.value)
    assert f"from {tls_server.url}/ to {server.url}/plain" in message, message
    assert SECRET not in message and server.requests == []


async def test_the_cli_follows_https_to_http_as_curl_does(
    tls_server: H11Server, server: H11Server, ca: trustme.CA, tmp_path: Path
) -> None:
    """curl -L follows a redirect to plain http (its man page: -L goes
    anywhere; only --proto-redir limits it), but never takes -u along to
    another host; so does ours."""
    tls_server.route("GET", "/", Reply(302, headers=[("location", server.url + "/plain")]))
    server.route("GET", "/plain", Reply(200, body=b"in the clear"))
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    ran = await run_cli(
        "-sS", "-L", "--cacert", str(ca_file), "-u", f"user:{SECRET}", tls_server.url + "/"
    )
    assert (ran.code, ran.stdout) == (0, b"in the clear"), ran.stderr
    assert dict(tls_server.requests[0].headers)["authorization"] == f"Basic {TOKEN}"
    (plain,) = server.requests
    assert "authorization" not in dict(plain.headers)


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
    trace = lambda event: events.append(repr(event))  # noqa: E731
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


async def test_injected_params_are_percent_encoded(server: H11Server) -> None:
    server.route("GET", "/", Reply(200))
    async with tr.Session() as session:
        await session.get(server.url + "/", params={"q": "a\r\nX-Injected: 1 HTTP/1.1"})
    (received,) = server.requests
    assert received.target == "/?q=a%0D%0AX-Injected%3A+1+HTTP%2F1.1"
    assert "x-injected" not in dict(received.headers)


async def test_session_headers_are_checked_when_the_session_is_made() -> None:
    with pytest.raises(tr.LocalProtocolError):
        tr.Session(headers={"X-A": "a\r\nX-Injected: 1"})


# -- credentials in error messages (not only the ones a server provokes) -----------

BAD_URLS = [
    f"http://user:{SECRET}@127.0.0.1:0/",
    f"http://user:{SECRET}@127.0.0.1:99999/",
    f"http://user:{SECRET}@127.0.0.1:port/",
    f"ftp://user:{SECRET}@127.0.0.1/",
    f"http://user:{SECRET}@127.0.0.1/a b",
    f"http://user:{SECRET}\r\n@127.0.0.1/",
    f"http://user:{SECRET}@ex\uff0fample.com/",  # fails urlsplit's NFKC check
]


@pytest.mark.parametrize("url", BAD_URLS)
async def test_an_invalid_url_is_named_without_its_password(url: str) -> None:
    async with tr.Session() as session:
        with pytest.raises(tr.InvalidURL) as info:
            await session.get(url)
    assert "***@" in str(info.value)
    assert SECRET not in "".join(shown_in(info.value))


BAD_HEADERS: list[tuple[dict[str, Any], type[Exception]]] = [
    ({"Authorization": f"Basic {TOKEN}\r\nX-Injected: 1"}, tr.LocalProtocolError),
    ({"Proxy-Authorization": f"Basic {TOKEN}\0"}, tr.LocalProtocolError),
    ({"Cookie": f"sid={SECRET}\n"}, tr.LocalProtocolError),
    ({"Authorization": f"Bearer {SECRET}\u20ac"}, tr.LocalProtocolError),
    ({"authorization": f"Bearer {SECRET}".encode()}, TypeError),
]


@pytest.mark.parametrize(("headers", "error"), BAD_HEADERS)
async def test_a_refused_credential_header_is_not_quoted(
    server: H11Server, headers: dict[str, Any], error: type[Exception]
) -> None:
    async with tr.Session() as session:
        with pytest.raises(error) as info:
            await session.get(server.url + "/", headers=headers)
    assert "[secure]" in str(info.value)
    assert not [t for t in shown_in(info.value) if SECRET in t or TOKEN in t]
    assert server.connections_accepted == 0


BAD_LOCATIONS: list[tuple[bytes, type[tr.RequestError]]] = [
    (f"gopher://user:{SECRET}@127.0.0.1/".encode(), tr.InvalidURL),
    (f"http://user:{SECRET}@127.0.0.1:0/".encode(), tr.InvalidURL),
    (f"http://user:{SECRET}@127.0.0.1/\xff".encode("latin-1"), tr.RemoteProtocolError),
]


@pytest.mark.parametrize(("location", "error"), BAD_LOCATIONS)
async def test_an_unusable_redirect_is_named_without_its_password(
    server: H11Server, location: bytes, error: type[tr.RequestError]
) -> None:
    head = b"HTTP/1.1 302 Found\r\nContent-Length: 0\r\nLocation: " + location + b"\r\n\r\n"
    server.route("GET", "/", Reply(302, raw=head))
    async with tr.Session() as session:
        with pytest.raises(error) as info:
            await session.get(server.url + "/")
        assert_pool_clean(session)
    assert "***@127.0.0.1" in str(info.value)
    assert SECRET not in "".join(shown_in(info.value))


def shown_in(error: BaseException) -> list[str]:
    """What a traceback or a log line would show of *error* and the chain
    behind it (``__context__`` too, unless ``raise ... from None`` hid it)."""
    shown: list[str] = []
    link: BaseException | None = error
    while link is not None:
        shown += [str(link), repr(link)]
        if isinstance(link, tr.RequestError):
            shown.append(repr(link.request))
        hidden = link.__suppress_context__
        link = link.__cause__ if link.__cause__ or hidden else link.__context__
    return shown


# -- cookies and loops along a redirect chain ------------------------------------


async def test_each_hop_gets_the_cookies_the_jar_chooses_for_it(server: H11Server) -> None:
    """The jar's Cookie header for one URL is not carried to the next: a
    cookie scoped to /admin stays there, and one the redirect sets is sent."""
    server.route("GET", "/admin/login", Reply(200, headers=[("set-cookie", "adm=1; Path=/admin")]))
    server.route(
        "GET",
        "/admin/out",
        Reply(302, headers=[("location", "/pub"), ("set-cookie", "new=2; Path=/")]),
    )
    server.route("GET", "/pub", Reply(200))
    async with tr.Session(cookies={"pre": "1"}) as session:
        await session.get(server.url + "/admin/login")
        await session.get(server.url + "/admin/out")
    out, pub = server.requests[1:]
    assert sorted((out.header("cookie") or "").split("; ")) == ["adm=1", "pre=1"]
    assert sorted((pub.header("cookie") or "").split("; ")) == ["new=2", "pre=1"]


async def test_a_callers_cookie_header_stays_the_same_along_one_origin(
    server: H11Server,
) -> None:
    server.route("GET", "/a", Reply(302, headers=[("location", "/b"), ("set-cookie", "jar=1")]))
    server.route("GET", "/b", Reply(200))
    async with tr.Session() as session:
        await session.get(server.url + "/a", headers={"Cookie": "mine=1"})
    assert [r.header("cookie") for r in server.requests] == ["mine=1", "mine=1"]


async def test_a_redirect_back_with_a_new_cookie_is_not_a_loop(server: H11Server) -> None:
    """The "do you keep cookies?" check: set one, redirect to the same URL."""
    server.route(
        "GET",
        "/check",
        [Reply(302, headers=[("location", "/check"), ("set-cookie", "ok=1")]), Reply(200)],
    )
    async with tr.Session() as session:
        response = await session.get(server.url + "/check")
    assert response.status_code == 200 and len(response.history) == 1
    assert [r.header("cookie") for r in server.requests] == [None, "ok=1"]


async def test_a_loop_that_sets_the_same_cookie_again_is_caught_at_once(
    server: H11Server,
) -> None:
    server.route("GET", "/a", Reply(302, headers=[("location", "/a"), ("set-cookie", "x=1")]))
    async with tr.Session() as session:
        with pytest.raises(tr.TooManyRedirects, match=r"redirect loop: .*/a redirects to .*/a"):
            await session.get(server.url + "/a")
        assert_pool_clean(session)
    assert len(server.requests) == 2  # without, then with the cookie: then the same again


async def test_a_redirect_to_the_same_url_with_another_method_is_not_a_loop(
    server: H11Server,
) -> None:
    """Post/redirect/get: POST /form answers 303 to itself, GET /form shows it."""
    server.route("POST", "/form", Reply(303, headers=[("location", "/form")]))
    server.route("GET", "/form", Reply(200, body=b"thanks"))
    async with tr.Session() as session:
        response = await session.post(server.url + "/form", content=b"x=1")
    assert response.content == b"thanks"
    assert [r.method for r in server.requests] == ["POST", "GET"]


async def test_a_loop_through_a_fragment_is_still_a_loop(server: H11Server) -> None:
    """Fragments are never sent: /a#one and /a#two are the same request."""
    server.route("GET", "/a", Reply(302, headers=[("location", "/b#one")]))
    server.route("GET", "/b", Reply(302, headers=[("location", "/a#two")]))
    async with tr.Session() as session:
        with pytest.raises(tr.TooManyRedirects, match="redirect loop"):
            await session.get(server.url + "/a#zero")
    assert [r.path for r in server.requests] == ["/a", "/b"]


@pytest.mark.parametrize("content", [None, b"not a certificate\n"])
def test_an_unreadable_ca_bundle_is_a_clear_error(tmp_path: Path, content: bytes | None) -> None:
    """verify= naming a missing or non-PEM file fails when the Session is
    made, naming the path, not later as an OSError from ssl."""
    path = tmp_path / "ca.pem"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ValueError, match=r"cannot load CA certificates from '.*ca\.pem'"):
        tr.Session(verify=str(path))
