"""The exception tree of trio_conpool.

Every error the pool raises derives from :class:`PoolError`, so a caller can
catch the whole family in one clause. Errors that concern a destination carry
the :class:`Endpoint`; errors caused by the OS or by :mod:`ssl` chain the
original exception as ``__cause__`` so nothing is hidden.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._endpoint import Endpoint
    from ._proxy import Proxy


class PoolError(Exception):
    """Base class of every exception raised by trio_conpool.

    Attributes:
        endpoint: the destination concerned, or ``None`` for pool-wide errors.
    """

    def __init__(self, message: str, *, endpoint: Endpoint | None = None) -> None:
        super().__init__(message)
        self.endpoint = endpoint


class ConnectError(PoolError):
    """A connection could not be opened: DNS failure, refusal, unreachable host.

    The OS error (or the ``ExceptionGroup`` of happy-eyeballs attempts) is
    chained as ``__cause__``.
    """


class ConnectTimeout(ConnectError):
    """Opening a connection (TCP connect plus TLS handshake) exceeded
    ``PoolConfig.connect_timeout``."""


class TLSError(ConnectError):
    """The TLS handshake failed: untrusted issuer, hostname mismatch, expired
    certificate, or a protocol failure. The message says which and what to do;
    the :class:`ssl.SSLError` is chained."""


class ProxyError(ConnectError):
    """The proxy did not open the tunnel: it refused (an HTTP status or a
    SOCKS5 reply code, quoted in the message), wanted other credentials,
    answered something that is not its protocol, or (an https proxy) failed
    its TLS handshake: the message then says that the certificate was the
    proxy's, and the :class:`ssl.SSLError` is chained. Not a
    :class:`TLSError`, which is always about the target.

    Attributes:
        proxy: the :class:`~trio_conpool.Proxy` concerned (printed without
            its password).
        connected: whether the connection to the proxy itself was made
            (False: it was unreachable or did not resolve, the OS error
            chained).
    """

    def __init__(
        self,
        message: str,
        *,
        endpoint: Endpoint | None = None,
        proxy: Proxy,
        connected: bool = True,
    ) -> None:
        super().__init__(message, endpoint=endpoint)
        self.proxy = proxy
        self.connected = connected


class PoolTimeout(PoolError):
    """No connection became available within ``PoolConfig.pool_timeout``."""


class PoolClosed(PoolError):
    """The pool is closed (or closing) and hands out no more leases."""


class LeaseClosed(PoolError):
    """The lease was already released or discarded; it may not be used again."""
