"""The Session's events: what ``Session(trace=...)`` receives.

The trace callback gets these and every :mod:`trio_conpool.events` event
of the Session's pool (waits, connects, reuses, closes with their reason),
each once, synchronously, in the task where it happened. For one request
that is the task that called :meth:`~trio_requests.Session.send` (or
``request``, ``get``, ...): from :class:`RequestStarted` to
:class:`RequestFinished` the events of that request arrive in that task, so
a context variable tells requests apart (:mod:`trio_requests.opentelemetry`
keeps its span in one). :class:`GoAwayReceived` comes from the HTTP/2
connection's reader task; :class:`StreamClosed` from whichever task ended
the stream (usually the requesting one, as it finishes the body), and a
connection's close from a pool task.

With no callback the Session pays one ``is None`` check per event site.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from trio_conpool.events import Event

if TYPE_CHECKING:
    from ._models import Request

__all__ = [
    "Event",
    "GoAwayReceived",
    "Redirected",
    "RequestFinished",
    "RequestSent",
    "RequestStarted",
    "ResponseHeadersReceived",
    "RetryCause",
    "RetryScheduled",
    "StreamClosed",
    "StreamOpened",
]


@dataclass(frozen=True, slots=True)
class RequestStarted(Event):
    """:meth:`~trio_requests.Session.send` began (before redirects and
    retries). *request* may still be changed: a listener can add headers
    (trace context) here.

    Attributes:
        url: the URL without user and password.
    """

    name: ClassVar[str] = "request.started"
    request: Request
    method: str
    url: str


@dataclass(frozen=True, slots=True)
class RequestSent(Event):
    """One attempt's request head and body went out."""

    name: ClassVar[str] = "request.sent"
    method: str
    url: str


@dataclass(frozen=True, slots=True)
class ResponseHeadersReceived(Event):
    """One attempt got its response head.

    Attributes:
        http_version: ``"HTTP/1.1"``, ``"HTTP/1.0"`` or ``"HTTP/2"``.
        stream_id: the HTTP/2 stream; None over HTTP/1.
    """

    name: ClassVar[str] = "response.headers_received"
    status: int
    http_version: str
    stream_id: int | None = None


@dataclass(frozen=True, slots=True)
class RequestFinished(Event):
    """:meth:`~trio_requests.Session.send` returned the final response's
    head, or raised. Every :class:`RequestStarted` has one, cancellation
    included.

    Attributes:
        status: the final status; None if it raised.
        http_version: of the last response head; None if there was none.
        error: what it raised (``trio.Cancelled`` included); None if it returned.
        duration: seconds since :class:`RequestStarted`.

    The attempts sent again in between are its :class:`RetryScheduled` events.
    """

    name: ClassVar[str] = "request.finished"
    method: str
    url: str
    status: int | None
    http_version: str | None
    error: BaseException | None
    duration: float


@dataclass(frozen=True, slots=True)
class Redirected(Event):
    """A redirect is followed to *url* (without credentials)."""

    name: ClassVar[str] = "redirect"
    status: int
    url: str


class RetryCause(enum.Enum):
    """Why a request is sent again (:class:`RetryScheduled`)."""

    #: the HTTP/2 server sent GOAWAY before it took the stream.
    GOAWAY = "goaway"
    #: the server did not take the request (REFUSED_STREAM,
    #: HTTP_1_1_REQUIRED, a keep-alive connection closed before the reply,
    #: a connection lost before the request went out).
    UNPROCESSED = "unprocessed"
    #: a failed attempt that ``Retry`` allows again (connect error, read
    #: timeout, protocol error).
    ERROR = "error"
    #: a status in ``Retry.status_forcelist``.
    STATUS = "status"


@dataclass(frozen=True, slots=True)
class RetryScheduled(Event):
    """The request will be sent again after *sleep* seconds.

    Attributes:
        reason: in words (the exception type, the status, or what the server did).
        attempt: 1 for the first resend.
        goaway_last_stream_id: with :attr:`RetryCause.GOAWAY`, the server's
            last processed stream.
    """

    name: ClassVar[str] = "retry"
    reason: str
    sleep: float
    cause: RetryCause
    attempt: int
    goaway_last_stream_id: int | None = None


@dataclass(frozen=True, slots=True)
class StreamOpened(Event):
    """An HTTP/2 stream opened; *active_streams*: the connection's open
    streams, this one included."""

    name: ClassVar[str] = "stream.opened"
    stream_id: int
    peer: Any
    active_streams: int


@dataclass(frozen=True, slots=True)
class StreamClosed(Event):
    """An HTTP/2 stream is over; *active_streams* left on its connection."""

    name: ClassVar[str] = "stream.closed"
    stream_id: int
    active_streams: int


@dataclass(frozen=True, slots=True)
class GoAwayReceived(Event):
    """The HTTP/2 server sent GOAWAY: streams above *last_stream_id* go
    elsewhere; *error_code* 0 is a graceful shutdown."""

    name: ClassVar[str] = "http2.goaway"
    peer: Any
    last_stream_id: int
    error_code: int
