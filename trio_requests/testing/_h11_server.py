"""The scriptable HTTP/1.1 server: :func:`open_h11_server` and :class:`H11Server`."""

from __future__ import annotations

import ssl
from contextlib import AbstractAsyncContextManager

import trio

from ._h11_connection import H11Connection
from ._server import ConnectionSlot, Ending, ServerBase, check_common_options, serve

__all__ = ["H11Server", "open_h11_server"]


class H11Server(ServerBase):
    """An HTTP/1.1 server on loopback, scripted per route. Get one from :func:`open_h11_server`.

    Attributes and methods (inherited by every server of this kit):
    :attr:`url`, :attr:`port`, :meth:`route`, :attr:`requests`,
    :attr:`connections_accepted`, :attr:`open_connections`,
    :meth:`wait_for_requests`, :meth:`wait_for_open_connections`,
    :meth:`close_idle_connections`, :meth:`close_all_connections`.
    """

    def __init__(
        self,
        *,
        host: str,
        port: int,
        ssl_context: ssl.SSLContext | None,
        max_requests_per_connection: int | None,
        send_100_continue: bool,
    ) -> None:
        super().__init__(host=host, port=port, ssl_context=ssl_context)
        self._max_requests = max_requests_per_connection
        self._send_100_continue = send_100_continue

    async def _speak(self, stream: trio.abc.Stream, slot: ConnectionSlot) -> Ending:
        # A TLS handshake runs lazily on the first read, inside serve().
        connection = H11Connection(
            self,
            stream,
            slot,
            max_requests=self._max_requests,
            send_100_continue=self._send_100_continue,
        )
        return await connection.serve()


def open_h11_server(
    *,
    host: str = "127.0.0.1",
    ssl_context: ssl.SSLContext | None = None,
    max_requests_per_connection: int | None = None,
    send_100_continue: bool = True,
) -> AbstractAsyncContextManager[H11Server]:
    """Start an HTTP/1.1 test server on a free port: ``async with open_h11_server() as server``.

    Entering binds the port and starts accepting, so ``server.url`` is usable
    at once. Leaving closes the listener and every connection, cancels every
    connection task (handlers included), and then re-raises: the block's
    exception as it was, or, if a handler raised or a reply could not be
    framed, an ExceptionGroup of those errors (plus the block's exception).

    Args:
        host: the IP address to listen on (``"127.0.0.1"``, ``"::1"``); a name
            could resolve to several addresses, each with its own free port.
        ssl_context: serve HTTPS with this server-side context. A client that
            rejects the certificate only ends its own connection.
        max_requests_per_connection: answer at most this many requests per
            connection, the last one with ``Connection: close`` (nginx's
            ``keepalive_requests``); None for no limit.
        send_100_continue: answer ``Expect: 100-continue`` with a 100 before
            reading the body. False makes the client wait out its own timeout.

    Raises:
        ValueError: ``host`` is not an IP address, or the limit is below 1.
    """
    check_common_options("open_h11_server", host, max_requests_per_connection)
    return _open_h11_server(host, ssl_context, max_requests_per_connection, send_100_continue)


def _open_h11_server(
    host: str,
    ssl_context: ssl.SSLContext | None,
    max_requests: int | None,
    send_100_continue: bool,
) -> AbstractAsyncContextManager[H11Server]:
    return serve(
        host,
        lambda port: H11Server(
            host=host,
            port=port,
            ssl_context=ssl_context,
            max_requests_per_connection=max_requests,
            send_100_continue=send_100_continue,
        ),
    )
