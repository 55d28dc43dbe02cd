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
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TextIO

from .._models import Request, Response
from .._urls import masked_url
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

    def __call__(self, event: str, info: Mapping[str, Any]) -> None:
        state = CURRENT.get()
        if event in ("connect.started", "connection.reused") and state is not None:
            state.stream_id = None  # a new attempt: HTTP/1 until a stream opens
        elif event == "stream.opened" and state is not None:
            state.stream_id = info.get("stream_id")
        self.timings.observe(event, state)
        if self._stream is not None:
            self._print(event, info, state)

    def _print(self, event: str, info: Mapping[str, Any], state: TransferState | None) -> None:
        lines = _describe(event, info, state)
        if lines:
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


def _describe(event: str, info: Mapping[str, Any], state: TransferState | None) -> list[str]:
    if event == "connect.started":
        endpoint = info.get("endpoint")
        where = f"{endpoint.host}:{endpoint.port}" if endpoint is not None else "?"
        return [f"*   Trying {where}..."]
    if event == "connect.finished":
        return _connected(info)
    if event == "connection.reused":
        peer = _address(info.get("peer"))
        return [f"* Re-using existing connection with {peer} (lease #{info.get('use_count')})"]
    if event == "stream.opened":
        url = "?" if state is None else masked_url(str(state.url))
        if state is not None and state.request is not None:
            url = str(state.request.url.without_credentials())
        return [f"* [HTTP/2] [{info.get('stream_id')}] OPENED stream for {url}"]
    if event == "request.sent" and state is not None and state.request is not None:
        return _request_head(state.request, http2=state.stream_id is not None)
    if event == "retry":
        return [f"* Retrying: {info.get('reason')}; waiting {info.get('sleep', 0):.1f} s"]
    return []


def _connected(info: Mapping[str, Any]) -> list[str]:
    lines = [f"* Connected to {_address(info.get('peer'))}"]
    tls_version = info.get("tls_version")
    if tls_version:
        if info.get("tls_session_reused"):
            lines.append("* SSL re-using session ID")  # curl's words for a resumed session
        lines.append(f"* SSL connection using {tls_version}")
        alpn = info.get("alpn")
        if alpn:
            lines.append(f"* ALPN: server accepted {alpn}")
        else:
            lines.append("* ALPN: server did not agree on a protocol. Uses HTTP/1.1")
    if info.get("alpn") == "h2":
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
