"""Ways for a test server to end a connection: politely, abruptly, or with a TCP reset.

These act on the transport underneath any protocol, so the HTTP/1.1 and HTTP/2
servers share them.
"""

from __future__ import annotations

import contextlib
import socket
import struct

import trio

__all__ = ["close_stream", "reset_stream"]

# A graceful close only has to flush a TLS close_notify into the kernel's send
# buffer; a peer that stopped reading must not make the server hang, so after
# this long the close turns forceful.
CLOSE_TIMEOUT = 1.0


def _socket_stream(stream: trio.abc.Stream) -> trio.SocketStream | None:
    """The TCP stream under ``stream`` (through any TLS layers), if there is one."""
    while isinstance(stream, trio.SSLStream):
        stream = stream.transport_stream
    return stream if isinstance(stream, trio.SocketStream) else None


async def close_stream(stream: trio.abc.Stream, *, graceful: bool) -> None:
    """Close ``stream``: with TLS close_notify and FIN if ``graceful``, else at once.

    Never raises for a peer that already went away, and never blocks for more
    than :data:`CLOSE_TIMEOUT`, even when the caller is being cancelled.
    """
    if graceful:
        with trio.move_on_after(CLOSE_TIMEOUT, shield=True):
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await stream.aclose()
    # Idempotent: a no-op after a completed graceful close, the fallback otherwise.
    await trio.aclose_forcefully(stream)


async def reset_stream(stream: trio.abc.Stream) -> None:
    """Abort the connection with a TCP RST instead of the usual FIN.

    ``SO_LINGER`` with a zero timeout makes ``close()`` discard unsent data
    and send RST (the classic "abortive release", RFC 9293 §3.6 / BSD sockets),
    so the peer's next read or write fails with ``ECONNRESET``.
    """
    tcp = _socket_stream(stream)
    if tcp is not None:
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    await trio.aclose_forcefully(stream)
