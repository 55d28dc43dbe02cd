"""Exit codes: curl's numbers for the same failures, and our errors mapped to them.

The numbers are libcurl's ``CURLcode`` values (``man libcurl-errors``), which
``curl`` returns as its exit status; scripts test for them, so a failure must
give the number curl gives for it. Messages keep curl's wording where there is
one, then add what our exception says, on one line:
``trio_requests: (6) Could not resolve host: example.invalid``.

Where an exception does not say enough by its type, the classifier looks at
what it chains (``__cause__``): :class:`ConnectError` from a
:class:`socket.gaierror` is a DNS failure (6), from anything else a failed
connect (7); :class:`TLSError` from an :class:`ssl.SSLCertVerificationError`
is an untrusted certificate (60), from anything else a failed handshake (35);
a :class:`RemoteProtocolError` from a :class:`ConnectionResetError` is a
receive failure (56). What the transfer saw (an HTTP/2 stream, the response
headers, the bytes of the body) tells the rest apart.
"""

from __future__ import annotations

import enum
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass

import trio

from .._errors import (
    ConnectError,
    ConnectTimeout,
    DecodingError,
    InvalidURL,
    LocalProtocolError,
    ProxyError,
    RemoteProtocolError,
    RequestError,
    StreamReset,
    TimeoutException,
    TLSError,
    TooManyRedirects,
    TransportError,
)
from .._h2_stream import code_name


class ExitCode(enum.IntEnum):
    """The curl exit statuses this tool can end with."""

    OK = 0
    UNSUPPORTED_PROTOCOL = 1
    FAILED_INIT = 2  # a bad command line
    URL_MALFORMAT = 3
    COULDNT_RESOLVE_PROXY = 5
    NOT_BUILT_IN = 4  # an option we do not support (yet)
    COULDNT_RESOLVE_HOST = 6
    COULDNT_CONNECT = 7
    WEIRD_SERVER_REPLY = 8
    HTTP2 = 16  # the HTTP/2 framing layer
    PARTIAL_FILE = 18
    HTTP_RETURNED_ERROR = 22  # -f and a status >= 400
    WRITE_ERROR = 23
    READ_ERROR = 26  # a local file to send could not be read
    OPERATION_TIMEDOUT = 28
    SSL_CONNECT_ERROR = 35
    BAD_FUNCTION_ARGUMENT = 43
    TOO_MANY_REDIRECTS = 47
    GOT_NOTHING = 52  # empty reply
    RECV_ERROR = 56
    PEER_FAILED_VERIFICATION = 60
    SSL_CACERT_BADFILE = 77  # --cacert / --proxy-cacert cannot be read
    BAD_CONTENT_ENCODING = 61
    HTTP2_STREAM = 92  # an HTTP/2 stream reset
    PROXY = 97  # a SOCKS5 handshake failed


class Failure(Exception):
    """A transfer (or the whole run) failed with curl exit status ``code``."""

    def __init__(self, code: ExitCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def line(self, program: str) -> str:
        """The line curl would print: ``curl: (7) Failed to connect ...``."""
        return f"{program}: ({int(self.code)}) {self.message}"


@dataclass(frozen=True, kw_only=True)
class Seen:
    """What one transfer had seen when it failed.

    Attributes:
        stream_id: the HTTP/2 stream of its last exchange; None over HTTP/1.
        headers_received: the final response's headers had arrived.
        body_bytes: bytes of the body received so far.
        content_length: what the response announced, if it did.
        elapsed: seconds since the transfer started.
    """

    stream_id: int | None = None
    headers_received: bool = False
    body_bytes: int = 0
    content_length: int | None = None
    elapsed: float = 0.0


def classify(exc: BaseException, seen: Seen) -> Failure:
    """The curl exit code and message for *exc*, which ended a transfer."""
    if isinstance(exc, Failure):
        return exc
    if isinstance(exc, trio.TooSlowError):  # our own --max-time
        return _timeout(seen)
    if isinstance(exc, OSError):
        return Failure(ExitCode.WRITE_ERROR, f"Failure writing output to destination: {exc}")
    if isinstance(exc, RequestError):
        return _request_error(exc, seen)
    return Failure(ExitCode.RECV_ERROR, f"{type(exc).__name__}: {exc}")


def _request_error(exc: RequestError, seen: Seen) -> Failure:
    if isinstance(exc, TimeoutException):
        if isinstance(exc, ConnectTimeout):
            return Failure(ExitCode.OPERATION_TIMEDOUT, f"Connection timed out: {exc}")
        return _timeout(seen, str(exc))
    if isinstance(exc, TLSError):
        return _tls(exc)
    if isinstance(exc, ProxyError):
        return _proxy(exc)
    if isinstance(exc, ConnectError):
        return _connect(exc)
    if isinstance(exc, StreamReset):
        name = code_name(exc.error_code)
        text = (
            f"HTTP/2 stream {seen.stream_id} was not closed cleanly: {name} (err {exc.error_code})"
        )
        return Failure(ExitCode.HTTP2_STREAM, text)
    if isinstance(exc, RemoteProtocolError):
        return _remote(exc, seen)
    return _other(exc)


def _other(exc: RequestError) -> Failure:
    if isinstance(exc, TooManyRedirects):
        return Failure(ExitCode.TOO_MANY_REDIRECTS, str(exc))
    if isinstance(exc, InvalidURL):
        return Failure(ExitCode.URL_MALFORMAT, f"URL using bad/illegal format: {exc}")
    if isinstance(exc, DecodingError):
        return Failure(ExitCode.BAD_CONTENT_ENCODING, f"Unrecognized content encoding: {exc}")
    if isinstance(exc, LocalProtocolError):
        return Failure(ExitCode.BAD_FUNCTION_ARGUMENT, str(exc))
    if isinstance(exc, TransportError):
        return Failure(ExitCode.RECV_ERROR, f"Failure when receiving data from the peer: {exc}")
    return Failure(ExitCode.UNSUPPORTED_PROTOCOL, str(exc))


def _timeout(seen: Seen, detail: str = "") -> Failure:
    milliseconds = round(seen.elapsed * 1000)
    text = (
        f"Operation timed out after {milliseconds} milliseconds "
        f"with {seen.body_bytes} bytes received"
    )
    return Failure(ExitCode.OPERATION_TIMEDOUT, f"{text} ({detail})" if detail else text)


def _tls(exc: TLSError) -> Failure:
    for cause in causes(exc):
        if isinstance(cause, ssl.SSLCertVerificationError):
            return Failure(
                ExitCode.PEER_FAILED_VERIFICATION,
                f"SSL certificate problem: {cause.verify_message} ({_where(exc)}); "
                "pass --cacert FILE with its issuer, or -k not to verify",
            )
    reason = next((str(c) for c in causes(exc) if isinstance(c, ssl.SSLError)), str(exc))
    return Failure(ExitCode.SSL_CONNECT_ERROR, f"TLS connect error with {_where(exc)}: {reason}")


def _connect(exc: ConnectError) -> Failure:
    for cause in causes(exc):
        if isinstance(cause, socket.gaierror):
            host = exc.request.url.host if exc.request is not None else "?"
            return Failure(
                ExitCode.COULDNT_RESOLVE_HOST, f"Could not resolve host: {host} ({cause.strerror})"
            )
    errors = [cause for cause in causes(exc) if type(cause) is not OSError and _is_os(cause)]
    refused = any(isinstance(e, ConnectionRefusedError) for e in errors)
    detail = "Connection refused" if refused else str(errors[0]) if errors else str(exc)
    return Failure(ExitCode.COULDNT_CONNECT, f"Failed to connect to {_where(exc)}: {detail}")


def _proxy(exc: ProxyError) -> Failure:
    """As curl: the proxy unresolvable (5) or unreachable (7), its TLS
    handshake failed (60 for its certificate, else 35, as for a server's),
    its CONNECT answer not 2xx (56), its SOCKS5 handshake failed (97)."""
    proxy = exc.proxy
    if proxy is None:
        return Failure(ExitCode.PROXY, str(exc))
    where = f"{proxy.host} port {proxy.port}"
    if not exc.connected:
        for cause in causes(exc):
            if isinstance(cause, socket.gaierror):
                text = f"Could not resolve proxy: {proxy.host} ({cause.strerror})"
                return Failure(ExitCode.COULDNT_RESOLVE_PROXY, text)
        return Failure(ExitCode.COULDNT_CONNECT, f"Failed to connect to {where}: {exc}")
    if (tls := _proxy_tls(exc, "proxy " + where)) is not None:
        return tls
    if proxy.speaks_http:
        return Failure(ExitCode.RECV_ERROR, f"CONNECT tunnel failed: {exc}")
    return Failure(ExitCode.PROXY, f"SOCKS5 handshake failed: {exc}")


def _proxy_tls(exc: ProxyError, where: str) -> Failure | None:
    """An https proxy's TLS handshake failure (an ssl error chained), worded
    as :func:`_tls` words a server's, with the proxy options to try."""
    errors = [cause for cause in causes(exc) if isinstance(cause, ssl.SSLError)]
    for cause in errors:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return Failure(
                ExitCode.PEER_FAILED_VERIFICATION,
                f"SSL certificate problem: {cause.verify_message} ({where}); "
                "pass --proxy-cacert FILE with its issuer, or --proxy-insecure not to verify",
            )
    if errors:
        return Failure(ExitCode.SSL_CONNECT_ERROR, f"TLS connect error with {where}: {exc}")
    return None


def _is_os(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno is not None


def _where(exc: RequestError) -> str:
    if exc.request is None:
        return "the server"
    url = exc.request.url
    return f"{url.host} port {url.port}"


def _remote(exc: RemoteProtocolError, seen: Seen) -> Failure:
    """A broken exchange: reset (56), HTTP/2 (16), cut-off body (18),
    nothing at all (52), or something that is not HTTP (8)."""
    if any(isinstance(cause, ConnectionResetError) for cause in causes(exc)):
        return Failure(ExitCode.RECV_ERROR, f"Recv failure: Connection reset by peer ({exc})")
    if seen.stream_id is not None:
        return Failure(ExitCode.HTTP2, f"Error in the HTTP2 framing layer: {exc}")
    if seen.headers_received:
        if seen.content_length is not None:
            left = seen.content_length - seen.body_bytes
            return Failure(
                ExitCode.PARTIAL_FILE, f"transfer closed with {left} bytes remaining to read"
            )
        return Failure(ExitCode.PARTIAL_FILE, f"transfer closed with outstanding read data ({exc})")
    # Our HTTP/1.1 driver words it so: "invalid response" once any byte of
    # the response had arrived, else "closed ... without sending a response".
    if str(exc).startswith("invalid response"):
        return Failure(ExitCode.WEIRD_SERVER_REPLY, f"Weird server reply: {exc}")
    return Failure(ExitCode.GOT_NOTHING, f"Empty reply from server ({exc})")


def causes(exc: BaseException) -> Iterator[BaseException]:
    """*exc*, what it was raised from, what that was raised from, ... and
    the members of any exception group on the way (happy eyeballs)."""
    todo: list[BaseException] = [exc]
    seen: set[int] = set()
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        if isinstance(current, BaseExceptionGroup):
            todo.extend(current.exceptions)
        if current.__cause__ is not None:
            todo.append(current.__cause__)
        elif current.__context__ is not None and not current.__suppress_context__:
            todo.append(current.__context__)
