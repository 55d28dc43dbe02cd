"""Checking an idle connection without waiting: is it still reusable?

Before an idle connection is reused the pool asks :func:`peek_idle`, a sync
look at the raw socket. TLS 1.3 complicates it: servers send NewSessionTicket
records right after the handshake (RFC 8446 section 4.6.1), so a healthy
connection that has read nothing since is "readable". :func:`probe_tls_idle`
settles it by reading through TLS until it would block. It can stop exactly
there because the TLS layer reads from our :class:`SocketStream`, which, while
a probe runs, cancels the probe instead of waiting on an empty socket.
``TLSStream.receive_some`` survives such a cancellation (only its send path
marks the stream broken), so the connection stays usable.

Through an https proxy there are two TLS layers: the target's TLSStream reads
from the proxy's, which reads from the one :class:`SocketStream`, over the
socket. The socket then carries the proxy's records only, so whatever the peek
sees there (the proxy's tickets, its close_notify, the target's records inside)
the probe reads through both layers, and a cancellation raised at the bottom
passes up through both receive paths, leaving both usable. Bytes a TLS layer
already took off the socket are invisible to the peek, as they are without a
proxy; a tunnel that ends is still seen, by the proxy's close_notify and EOF.
"""

from __future__ import annotations

import enum
import select
import socket as stdlib_socket

import trio

from ._socket_stream import SocketStream
from ._tls_stream import TLSStream
from ._transport import Transport


class IdleCheck(enum.Enum):
    """What :func:`peek_idle` found on an idle connection."""

    #: nothing pending: reusable.
    CLEAN = "clean"
    #: EOF or a socket error: the peer is gone.
    CLOSED = "closed"
    #: bytes pending. On plain text a protocol violation (not reusable); on
    #: TLS possibly session tickets, which :func:`probe_tls_idle` can tell.
    DATA = "data"


#: MSG_DONTWAIT is belt and braces: trio sockets are non-blocking anyway.
_PEEK_FLAGS: int = stdlib_socket.MSG_PEEK | getattr(stdlib_socket, "MSG_DONTWAIT", 0)


def peek_idle(transport: Transport) -> IdleCheck:
    """Check, without blocking or consuming anything, whether the peer of an
    idle connection closed it or sent something.

    One ``poll`` when nothing is pending (the common case), then a ``recv``
    with MSG_PEEK.
    """
    sock = transport.socket
    fd = sock.fileno()
    if fd == -1:
        return IdleCheck.CLOSED
    # A poll first: in the common case (nothing) it answers without the
    # exception a peek would raise, in half the time.
    poll = select.poll()
    poll.register(fd, select.POLLIN)
    if not poll.poll(0):
        return IdleCheck.CLEAN
    try:
        pending = sock.recv(1, _PEEK_FLAGS)
    except BlockingIOError:
        return IdleCheck.CLEAN  # readiness went away (spurious wakeup)
    except OSError:
        return IdleCheck.CLOSED  # ECONNRESET and friends
    return IdleCheck.DATA if pending else IdleCheck.CLOSED


async def probe_tls_idle(transport: Transport) -> bool:
    """For an encrypted transport that :func:`peek_idle` found readable: is
    it still reusable?

    Reads through TLS until reading would block, never waiting on the network.
    True if only records that carry no application data were pending (TLS 1.3
    session tickets); False on close_notify, EOF, an error, or application
    data nobody asked for (it is consumed, so the connection must be dropped).

    Through an https proxy the socket carries the proxy's TLS records, and
    the target's inside them: the read goes through every layer, and only
    the bottom one, over the socket, decides that reading would block (a
    layer above may still hold records the socket no longer shows). So
    tickets from the proxy, from the target or from both leave the
    connection reusable; the proxy's close_notify or EOF (its tunnel to the
    target ended) or the target's do not.

    Raises:
        TypeError: *transport* is plain text or was not made by open_transport.
    """
    stream = transport.stream
    bottom = socket_under(stream)
    if not isinstance(stream, TLSStream) or bottom is None:
        raise TypeError("probe_tls_idle needs a TLS transport made by open_transport")
    with trio.CancelScope() as probe:
        bottom.probe = probe
        try:
            await stream.receive_some(1)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return False
        finally:
            bottom.probe = None
        return False  # b"" (close_notify or EOF) or unexpected data
    return True  # cancelled by SocketStream: nothing more without waiting


def socket_under(stream: trio.abc.Stream) -> SocketStream | None:
    """The :class:`SocketStream` under *stream*'s TLS layers, if any."""
    while isinstance(stream, TLSStream):
        stream = stream.transport_stream
    return stream if isinstance(stream, SocketStream) else None
