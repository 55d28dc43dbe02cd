"""trio_requests: an HTTP client for trio, built on the trio_conpool pool.

::

    import trio_requests as tr

    async with tr.Session() as session:
        response = await session.get("https://example.org/", params={"q": "trio"})
        response.raise_for_status()
        print(response.status_code, response.http_version, len(response.content))

Every failure raises a subclass of :class:`RequestError` carrying the
request; no h11, ssl or trio exception escapes unwrapped.
"""

from __future__ import annotations

from ._api import delete, get, head, options, patch, post, put, request
from ._cookies import Cookies
from ._errors import (
    ConnectError,
    ConnectTimeout,
    DecodingError,
    HTTPStatusError,
    InsecureRedirect,
    InvalidURL,
    LocalProtocolError,
    PoolTimeout,
    ProtocolError,
    ProxyError,
    ReadTimeout,
    RemoteProtocolError,
    RequestError,
    ResponseClosed,
    StreamConsumed,
    StreamReset,
    TimeoutException,
    TLSError,
    TooManyRedirects,
    TotalTimeout,
    TransportError,
    WriteTimeout,
)
from ._headers import Headers
from ._limits import Limits
from ._models import Request, Response
from ._retries import Retry
from ._send_options import StreamContext
from ._session import Session
from ._stats import H2Stats, SessionStats
from ._timeouts import Timeout
from ._urls import URL

__all__ = [
    "ConnectError",
    "ConnectTimeout",
    "Cookies",
    "DecodingError",
    "H2Stats",
    "HTTPStatusError",
    "Headers",
    "InsecureRedirect",
    "InvalidURL",
    "Limits",
    "LocalProtocolError",
    "PoolTimeout",
    "ProtocolError",
    "ProxyError",
    "ReadTimeout",
    "RemoteProtocolError",
    "Request",
    "RequestError",
    "Response",
    "ResponseClosed",
    "Retry",
    "Session",
    "SessionStats",
    "StreamConsumed",
    "StreamContext",
    "StreamReset",
    "TLSError",
    "Timeout",
    "TimeoutException",
    "TooManyRedirects",
    "TotalTimeout",
    "TransportError",
    "URL",
    "WriteTimeout",
    "delete",
    "get",
    "head",
    "options",
    "patch",
    "post",
    "put",
    "request",
]
