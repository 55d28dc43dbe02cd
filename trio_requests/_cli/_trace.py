"""The Session's trace events, turned into ``-v`` lines and per-transfer facts.

The Session calls its ``trace`` synchronously, in the task that sends the
request, for everything that concerns that request (connect, reuse, stream
opened, request sent); so a :class:`contextvars.ContextVar` set by each
transfer's task tells which transfer an event belongs to. Events from the
connections' own tasks (a stream closing) carry no transfer.

The tracer also hands the events to :class:`~._timings.Timings`, for the
pool-wait and connect times ``--stats`` shows.

``-v`` prints in curl's shape: ``*`` for what happened, ``>`` for the
request head, ``<`` for the response head, credentials masked.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass
from typing import TextIO

from trio_conpool.events import ConnectFinished, ConnectionReused, ConnectStarted, Event

from .._models import Request, Response
from .._urls import masked_url
from ..events import RequestSent, RetryScheduled, StreamOpened
from ._request import masked
from ._timings import Timings


@dataclass
class TransferState:
    """What one transfer's task has seen so far (mutable, owned by that task)."""

    url: str
    request: Request | None = None
    stream_id: int | None = None  # the HTTP/2 stream of the last exchange
    redirects: int = 0
    # The final response, once its head is in:
    status: int | None = None
    http_version: str | None = None
    content_type: str = ""
    content_length: int | None = None
    body_bytes: int = 0
    filename: str = ""  # the -o/-O file written

    def final_response(self, response: Response) -> None:
        """Note the head of the response whose body is the output."""
        length = response.headers.get("content-length", "")
        self.content_length = int(length) if length.isdigit() else None
        self.status = response.status_code
        self.http_version = response.http_version
        self.content_type = response.headers.get("content-type", "")


CURRENT: contextvars.ContextVar[TransferState | None] = contextvars.ContextVar(
    "trio_requests_cli_transfer", default=None
)


class Tracer:
    """The Session's ``trace=`` callable: updates the current transfer's
    :class:`TransferState`, notes pool-wait and connect times in
    :attr:`timings` and, with ``-v``, prints what happened."""

    def __init__(self, stream: TextIO | None) -> None:
        self._stream = stream  # None: collect facts, print nothing
        self.timings = Timings()

    def __call__(self, event: Event) -> None:
        state = CURRENT.get()
        if isinstance(event, ConnectStarted | ConnectionReused) and state is not None:
            state.stream_id = None  # a new attempt: HTTP/1 until a stream opens
        elif isinstance(event, StreamOpened) and state is not None:
            state.stream_id = event.stream_id
        self.timings.observe(event, state)
        if self._stream is not None and (lines := _describe(event, state)):
            self._stream_write(lines)

    def _stream_write(self, lines: list[str]) -> None:
        """A synchronous write, as a trace callback must be: a few lines to
        stderr, like a log line."""
        assert self._stream is not None
        self._stream.write("".join(line + "\n" for line in lines))
        self._stream.flush()

    def note(self, text: str) -> None:
        """A ``* text`` line of our own (redirects, for instance)."""
        if self._stream is not None:
            self._stream_write([f"* {text}"])

    def response(self, response: Response) -> None:
        """``<`` lines: the response head, as received."""
        if self._stream is None:
            return
        if response.http_version == "HTTP/2":
            status = f"< HTTP/2 {response.status_code}"
        else:
            status = f"< {response.http_version} {response.status_code} {response.reason}"
        fields = [f"< {n}: {masked(n, v)}" for n, v in response.headers.multi_items()]
        self._stream_write([status, *fields, "<"])


def _describe(event: Event, state: TransferState | None) -> list[str]:
    match event:
        case ConnectStarted(endpoint=endpoint):
            return [f"*   Trying {endpoint.host}:{endpoint.port}..."]
        case ConnectFinished():
            return _connected(event)
        case ConnectionReused(peer=peer, use_count=uses):
            return [f"* Re-using existing connection with {_address(peer)} (lease #{uses})"]
        case StreamOpened(stream_id=stream_id):
            url = "?" if state is None else masked_url(str(state.url))
            if state is not None and state.request is not None:
                url = str(state.request.url.without_credentials())
            return [f"* [HTTP/2] [{stream_id}] OPENED stream for {url}"]
        case RequestSent() if state is not None and state.request is not None:
            return _request_head(state.request, http2=state.stream_id is not None)
        case RetryScheduled(reason=reason, sleep=sleep):
            return [f"* Retrying: {reason}; waiting {sleep:.1f} s"]
    return []


def _connected(event: ConnectFinished) -> list[str]:
    lines = [f"* Connected to {_address(event.peer)}"]
    if event.tls_version:
        if event.tls_session_reused:
            lines.append("* SSL re-using session ID")  # curl's words for a resumed session
        lines.append(f"* SSL connection using {event.tls_version}")
        if event.alpn:
            lines.append(f"* ALPN: server accepted {event.alpn}")
        else:
            lines.append("* ALPN: server did not agree on a protocol. Uses HTTP/1.1")
    if event.alpn == "h2":
        lines.append("* Using HTTP/2, server supports multiplexing")
    return lines


def _address(peer: object) -> str:
    if isinstance(peer, tuple) and len(peer) >= 2:
        host = f"[{peer[0]}]" if ":" in str(peer[0]) else str(peer[0])
        return f"{host} port {peer[1]}"
    return str(peer)


def _request_head(request: Request, *, http2: bool) -> list[str]:
    version = "HTTP/2" if http2 else "HTTP/1.1"
    lines = [f"> {request.method} {request.url.target} {version}"]
    lines += [f"> {n}: {masked(n, v)}" for n, v in request.headers.multi_items()]
    lines.append(">")
    return lines
