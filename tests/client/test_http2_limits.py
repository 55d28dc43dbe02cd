"""HTTP/2 responses that exceed our Limits fail with a clear error, not an h2 one."""

from __future__ import annotations

import ssl

import pytest
import trio

import trio_conpool as cp
import trio_requests as tr
from tests.helpers import assert_pool_clean
from trio_requests.testing import Reply, open_h2_server


async def test_oversize_response_head_is_a_remote_protocol_error(
    server_ssl_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext
) -> None:
    server_ssl_context.set_alpn_protocols(["h2"])
    limits = tr.Limits(max_header_bytes=4096)
    async with (
        open_h2_server(ssl_context=server_ssl_context) as server,
        tr.Session(verify=client_ssl_context, limits=limits, timeout=5) as s,
    ):
        server.route("GET", "/big", Reply(200, headers=[("x-big", "v" * 8000)]))
        server.route("GET", "/ok", Reply(200, body=b"fine"))
        with (
            trio.fail_after(5),
            pytest.raises(tr.RemoteProtocolError, match="max_header_bytes=4096"),
        ):
            await s.get(server.url + "/big")
        assert (await s.get(server.url + "/ok")).content == b"fine"
        assert_pool_clean(s)


async def test_too_many_header_fields(
    server_ssl_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext
) -> None:
    server_ssl_context.set_alpn_protocols(["h2"])
    limits = tr.Limits(max_header_count=10)
    async with (
        open_h2_server(ssl_context=server_ssl_context) as server,
        tr.Session(verify=client_ssl_context, limits=limits, timeout=5) as s,
    ):
        server.route("GET", "/", Reply(200, headers=[(f"x-{i}", "1") for i in range(20)]))
        with pytest.raises(tr.RemoteProtocolError, match="max_header_count=10"):
            await s.get(server.url + "/")
        assert_pool_clean(s)


async def test_client_caps_streams_per_connection_below_the_servers_limit() -> None:
    """Limits.http2_max_concurrent_streams holds even when the server allows
    more; the extra requests wait for a slot or spill to a second connection."""
    limits = tr.Limits(http2_max_concurrent_streams=5)
    pool = cp.PoolConfig(max_connections_per_endpoint=1, connect_timeout=None)
    async with (
        open_h2_server() as server,
        tr.Session(http2_prior_knowledge=True, limits=limits, pool=pool, timeout=5) as s,
    ):
        server.route("GET", "/", Reply(200, body=b"x", delay_headers=0.05))

        async def fetch() -> None:
            assert (await s.get(server.url + "/")).content == b"x"

        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                for _ in range(30):
                    nursery.start_soon(fetch)
        assert server.max_open_streams == 5
        assert server.connections_accepted == 1
        assert_pool_clean(s)


def test_limits_refuse_a_non_positive_stream_cap() -> None:
    with pytest.raises(ValueError, match="http2_max_concurrent_streams"):
        tr.Limits(http2_max_concurrent_streams=0)
