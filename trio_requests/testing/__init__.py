"""Scriptable in-process HTTP servers for testing HTTP clients (like :mod:`trio.testing`).

:func:`open_h11_server` starts a real HTTP/1.1 server (h11 over loopback TCP,
optionally TLS) inside your test's trio run. You script it per route with
:class:`Reply` values, or with async handlers, and afterwards inspect what it
received: every :class:`ReceivedRequest`, and how many connections carried them::

    import trio_requests
    from trio_requests.testing import Reply, open_h11_server

    async def test_keep_alive_reuses_the_connection() -> None:
        async with open_h11_server() as server:
            server.route("GET", "/hello", Reply(200, body=b"hi"))
            async with trio_requests.Session() as session:
                for _ in range(2):
                    r = await session.get(server.url + "/hello")
                    assert r.content == b"hi"
            assert [req.path for req in server.requests] == ["/hello", "/hello"]
            assert server.connections_accepted == 1

A route answers with one :class:`Reply` for every request, with a sequence of
them played in order (``[Reply(503), Reply(200)]`` for a retry test; the last
one repeats), or with an async handler (below).

Each :class:`Reply` option beyond status, headers and body is a fault that real
servers commit and a client has to survive: slow headers (``delay_headers``),
a slow or dribbling body (``delay_body``, ``trickle``), a body cut short
(``truncate_to``), a TCP reset (``reset``), silence (``no_response``), a
keep-alive connection closed behind the client's back (``close_silently_after``,
:meth:`H11Server.close_idle_connections`), or arbitrary bytes on the wire
(``raw``) for responses h11 would refuse to produce. Delays are ``trio.sleep``
calls, so tests run them in virtual time with trio's ``autojump_clock``.

Handler routes receive the request with its body read::

    async def echo(request: ReceivedRequest) -> Reply:
        return Reply(200, body=request.body)

    server.route("POST", "/echo", echo)

Unrouted requests get a 404. To wait for the server without sleeping, use
``await server.wait_for_requests(n)`` or ``server.wait_for_open_connections(n)``.

The server never lets a misbehaving *client* crash it (garbage gets a 400, a
failed TLS handshake just ends that connection). But a handler that raises,
or a reply h11 refuses to frame, is a bug in the test: the client gets a 500
or a closed connection, and the error is re-raised, in an ExceptionGroup,
when the ``async with`` block exits, so the test fails instead of hanging.

Everything the server starts lives inside its ``async with`` block. The kit
depends only on trio, h11, h2 (with h2's own hyperframe) and the standard
library; bring your own certificates (``trustme`` makes them) for TLS.

:func:`open_h2_server` serves the same routes, replies and handlers over
HTTP/2 (the ``h2`` library; h2c with prior knowledge, or TLS whose context
offers ALPN ``h2``), one task per stream so streams really run concurrently.
Requests are recorded with ``http_version="HTTP/2"``. It adds HTTP/2 faults:
:class:`ResetStream` route replies (RST_STREAM with a chosen code),
:meth:`H2Server.send_goaway`, SETTINGS changed mid-connection
(:meth:`H2Server.set_max_concurrent_streams`,
:meth:`H2Server.set_initial_window_size`), and flow-control windows held shut
(:meth:`H2Server.pause_window_updates`). It also measures what the client
did: the most streams each connection had open at once
(:attr:`H2Server.peak_open_streams`) and the DATA bytes received
(:attr:`H2Server.data_bytes_received`).
"""

from __future__ import annotations

from ._h2_server import H2Server, ResetStream, open_h2_server
from ._h11_server import H11Server, open_h11_server
from ._script import Handler, ReceivedRequest, Reply

__all__ = [
    "H11Server",
    "H2Server",
    "Handler",
    "ReceivedRequest",
    "Reply",
    "ResetStream",
    "open_h11_server",
    "open_h2_server",
]
