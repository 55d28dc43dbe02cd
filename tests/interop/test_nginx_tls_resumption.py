"""TLS session resumption against nginx (session tickets on, its default):
nginx ends each connection after 10 requests, so 25 requests in a row need
three connections, and the second and third resume the first's session."""

from __future__ import annotations

import pytest
import trio

import trio_requests as tr
from tests.interop.nginx import Nginx
from trio_conpool.events import ConnectFinished, Event

pytestmark = pytest.mark.interop


@pytest.mark.parametrize("http2", [False, True])
async def test_new_connections_resume_the_session(nginx_ka10: Nginx, http2: bool) -> None:
    connects: list[ConnectFinished] = []

    def trace(event: Event) -> None:
        if isinstance(event, ConnectFinished):
            connects.append(event)

    with trio.fail_after(30):
        async with tr.Session(verify=str(nginx_ka10.ca_path), http2=http2, trace=trace) as s:
            for i in range(25):
                r = await s.get(f"{nginx_ka10.https_url}/small?id={i}")
                assert (r.status_code, r.content) == (200, f"{i}\n".encode())
                assert r.http_version == ("HTTP/2" if http2 else "HTTP/1.1")
    assert [c.tls_session_reused for c in connects] == [False, True, True]
    assert {c.tls_version for c in connects} == {"TLSv1.3"}
