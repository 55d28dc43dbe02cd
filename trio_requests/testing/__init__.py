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
Requests are recorded with ``http_version="HTTP/2"`` and their ``stream_id``.
A TLS connection whose ALPN selected ``http/1.1`` is served as HTTP/1.1 with
the same routes, so a client's fallback (or its downgrade after
HTTP_1_1_REQUIRED) meets the same server.

HTTP/2 faults are declared up front, as values (``open_h2_server(faults=[...])``
or :meth:`H2Server.add_faults`), each for all connections or chosen ones:

* :class:`GoAway`: GOAWAY once a connection has received N streams: graceful
  with any ``last_stream_id``, with an error code, or in two steps
  (2**31-1 first, RFC 9113 §6.8), after a delay;
* :class:`ResetRule`: RST_STREAM with a chosen code on the streams that match
  a request id in the query, a path or a stream ordinal, a number of times;
* :class:`DropConnection`: the connection dies (FIN or TCP RST) instead of
  sending byte N+1 or stream frame N+1, so mid-response;
* :class:`ChangeSettings`: MAX_CONCURRENT_STREAMS or INITIAL_WINDOW_SIZE
  changed mid-connection (a tiny window throttles uploads under way).

Others are route replies or calls: :class:`ResetStream` replies,
``Reply(raw=...)`` for malformed frames (:func:`h2_frame` builds them, lying
lengths included), :meth:`H2Server.send_goaway`,
:meth:`H2Server.set_max_concurrent_streams`,
:meth:`H2Server.set_initial_window_size`, and flow-control windows held shut
(:meth:`H2Server.pause_window_updates`).

The servers keep books for exactly-once tests: :attr:`H2Server.requests` holds
the requests the server *processed*, :attr:`H2Server.refused_requests` the
ones it refused unprocessed (:class:`RefusedRequest`: REFUSED_STREAM,
HTTP_1_1_REQUIRED, or above the last stream id of a GOAWAY it sent, which a
client may replay whatever the method), and :attr:`H2Server.goaways_sent`
the GOAWAY frames as sent. It also measures what the client did: the most
streams each connection had open at once (:attr:`H2Server.peak_open_streams`)
and the DATA bytes received (:attr:`H2Server.data_bytes_received`).
"""

from __future__ import annotations

from ._h2_faults import (
    ChangeSettings,
    DropConnection,
    GoAway,
    H2Fault,
    ResetRule,
    SentGoAway,
    h2_frame,
)
from ._h2_server import H2Server, ResetStream, open_h2_server
from ._h11_server import H11Server, open_h11_server
from ._script import Handler, ReceivedRequest, Refusal, RefusedRequest, Reply

__all__ = [
    "ChangeSettings",
    "DropConnection",
    "GoAway",
    "H11Server",
    "H2Fault",
    "H2Server",
    "Handler",
    "ReceivedRequest",
    "Refusal",
    "RefusedRequest",
    "Reply",
    "ResetRule",
    "ResetStream",
    "SentGoAway",
    "h2_frame",
    "open_h11_server",
    "open_h2_server",
]
