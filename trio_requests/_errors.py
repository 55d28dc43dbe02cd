"""The exception tree of trio_requests.

Every failure of a request is a :class:`RequestError` carrying the
:class:`~trio_requests.Request` it concerns (``.request``); the underlying
h11 / h2 / ssl / OS / pool error is chained as ``__cause__``. Errors split
like h11's: *remote* ones (the server misbehaved) and *local* ones (we were
asked to send something invalid).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from trio_conpool import Proxy

    from ._models import Request, Response


class RequestError(Exception):
    """Base class of every exception trio_requests raises about a request.

    Attributes:
        request: the request that failed (None only before one was built).
    """

    def __init__(self, message: str, *, request: Request | None = None) -> None:
        super().__init__(message)
        self.request = request


class TransportError(RequestError):
    """The connection failed: connect, TLS, timeouts, resets."""


class ConnectError(TransportError):
    """The connection could not be opened (DNS, refused, unreachable)."""


class TLSError(ConnectError):
    """The TLS handshake failed; the message says why (untrusted issuer,
    hostname mismatch, expired certificate)."""


class ProxyError(TransportError):
    """The proxy could not be reached, or refused or failed the tunnel;
    the message names the proxy (without its password), the target, and
    what the proxy answered (an HTTP status, a SOCKS5 reply).

    Not retried: a proxy that refuses will refuse again.

    Attributes:
        proxy: the :class:`trio_conpool.Proxy` concerned, if known.
        connected: whether the connection to the proxy itself was made
            (False: it did not resolve or was unreachable).
    """

    def __init__(
        self,
        message: str,
        *,
        request: Request | None = None,
        proxy: Proxy | None = None,
        connected: bool = True,
    ) -> None:
        super().__init__(message, request=request)
        self.proxy = proxy
        self.connected = connected


class TimeoutException(TransportError):
    """Base class of the four timeouts of :class:`~trio_requests.Timeout`."""


class ConnectTimeout(TimeoutException, ConnectError):
    """Opening the connection (TCP + TLS) took longer than ``Timeout.connect``."""


class ReadTimeout(TimeoutException):
    """No byte of the response arrived within ``Timeout.read``."""


class WriteTimeout(TimeoutException):
    """The request could not be sent within ``Timeout.write``."""


class PoolTimeout(TimeoutException):
    """No connection became free within ``Timeout.pool``."""


class TotalTimeout(TimeoutException):
    """The request as a whole took longer than ``Timeout.total``."""


class ProtocolError(TransportError):
    """The HTTP exchange broke the protocol."""


class RemoteProtocolError(ProtocolError):
    """The server sent something invalid: a malformed status line or header,
    bad framing, a connection closed mid-response, oversize headers."""


class LocalProtocolError(ProtocolError):
    """We were asked to send something invalid, e.g. a header value with
    CR/LF in it. Nothing was sent."""


class StreamReset(ProtocolError):
    """The server reset this HTTP/2 stream.

    Attributes:
        error_code: the RST_STREAM error code (an :class:`h2.errors.ErrorCodes`
            member, or an int for unknown codes).
    """

    def __init__(self, message: str, *, error_code: int, request: Request | None = None) -> None:
        super().__init__(message, request=request)
        self.error_code = error_code


class DecodingError(RequestError):
    """The response body could not be decoded: corrupt compressed data, an
    unknown charset in ``.json()``, or decompression past the configured
    size or ratio limit (a decompression bomb)."""


class TooManyRedirects(RequestError):
    """More redirects than ``max_redirects``, or a redirect loop."""


class InsecureRedirect(RequestError):
    """A redirect from https to http, which would send the request (and its
    body) in the clear. ``Session(allow_https_to_http_redirects=True)``
    follows them."""


class InvalidURL(RequestError):
    """The URL cannot be requested: unsupported scheme, no host, bad port.
    Raised before any I/O."""


class StreamConsumed(RequestError):
    """The body of a request or response was already read as a stream and
    cannot be read again."""


class ResponseClosed(RequestError):
    """The response was closed before its body was read."""


class HTTPStatusError(RequestError):
    """Raised by :meth:`Response.raise_for_status` for 4xx and 5xx replies.

    Attributes:
        response: the response with the error status.
    """

    def __init__(self, message: str, *, request: Request, response: Response) -> None:
        super().__init__(message, request=request)
        self.response = response
