"""What a test server is told to do (:class:`Reply`) and what it saw (:class:`ReceivedRequest`).

Both are protocol-neutral value objects: the HTTP/1.1 server drives them through
h11 today, and an HTTP/2 server can drive the same script through h2 later.
Every :class:`Reply` field beyond status, headers and body is a *fault* a client
must survive; validation happens at construction so a mistyped script fails in
the test that wrote it, not in a connection task on the far side of a socket.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import KW_ONLY, dataclass
from http import HTTPStatus
from typing import Literal

__all__ = ["Handler", "ReceivedRequest", "RefusedRequest", "Refusal", "Reply"]


@dataclass(frozen=True, eq=False)
class ReceivedRequest:
    """One request as the server received it, body included.

    Attributes:
        method: e.g. ``"GET"``.
        target: the request target exactly as sent, e.g. ``"/search?q=trio"``.
        headers: ``(name, value)`` pairs in wire order, names lower-cased,
            both decoded as ISO-8859-1 (so any byte round-trips).
        body: the request body, de-chunked; ``b""`` when the reply said
            ``read_body=False`` (the server never read it).
        http_version: ``"HTTP/1.1"``, ``"HTTP/1.0"`` or ``"HTTP/2"``.
        connection_index: which connection carried it: 0 for the first one
            the server accepted, 1 for the second, and so on. Two requests
            with the same index were sent over one kept-alive connection.
        stream_id: the HTTP/2 stream that carried it; None over HTTP/1.x.
    """

    method: str
    target: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    http_version: str
    connection_index: int
    stream_id: int | None = None

    @property
    def path(self) -> str:
        """The target without its query string: ``"/search"``."""
        return self.target.partition("?")[0]

    @property
    def query(self) -> str:
        """The query string without the ``?``: ``"q=trio"``, or ``""``."""
        return self.target.partition("?")[2]

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (any case), or None if absent."""
        wanted = name.lower()
        return next((value for key, value in self.headers if key == wanted), None)


Refusal = Literal["REFUSED_STREAM", "HTTP_1_1_REQUIRED", "GOAWAY"]
"""Why a server refused a request without processing it (RFC 9113 §8.7):
RST_STREAM with REFUSED_STREAM or HTTP_1_1_REQUIRED, or a stream above the
``last_stream_id`` of a GOAWAY the server sent."""


@dataclass(frozen=True)
class RefusedRequest:
    """A request the server refused without processing it.

    A client may send such a request again whatever its method, so a test of
    exactly-once delivery counts these apart from the processed ones.

    Attributes:
        request: the request as far as it was received: its body may be
            partial or empty, since a refusal need not wait for it.
        reason: how the client was told (:data:`Refusal`).
    """

    request: ReceivedRequest
    reason: Refusal


@dataclass(frozen=True)
class Reply:
    """A scripted response, or a scripted way of *not* responding.

    Only ``status`` is positional: ``Reply(200, body=b"hi")``. The defaults
    describe a well-behaved server; each other field injects one fault.

    Attributes:
        status: the status code (200-999; 1xx are not final responses).
        body: the body, sent in one write.
        headers: extra ``(name, value)`` pairs, sent in this order. The server
            adds ``server``, and ``content-length`` (the body's total length)
            or ``transfer-encoding: chunked``, unless you set them yourself.
        reason: the reason phrase; the standard one for ``status`` if None.
        chunks: the body as separate writes (instead of ``body``).
        chunked: frame the body with ``Transfer-Encoding: chunked`` (each
            element of ``chunks`` becomes one chunk) instead of Content-Length.
        delay_headers: seconds to wait, after reading the request, before the
            status line (or the ``raw`` bytes, or the reset). It is a
            ``trio.sleep``, so ``autojump_clock`` makes it virtual.
        delay_body: seconds to wait before each body write (the whole ``body``
            counts as one write).
        trickle: if set, send the body one byte per write, waiting this many
            seconds before each byte.
        close_after: send ``Connection: close`` and close after the response.
        close_silently_after: close after the response *without* saying so, as
            a server whose keep-alive timeout fires does: the client only finds
            out when it tries to reuse the connection.
        truncate_to: announce the full body but send only its first N bytes,
            then close (for chunked replies: no terminating chunk either).
        raw: skip HTTP framing: write these exact bytes as the response (bad
            status lines, conflicting framing headers, obs-fold...), then close.
        keep_open: with ``raw``, keep serving the connection afterwards instead
            of closing it, as if ``raw`` had been one complete response.
        reset: abort the connection with a TCP RST instead of answering.
        no_response: never answer; the server keeps reading (and discarding)
            until the client gives up and closes. With ``read_body=False`` it
            stops reading too, so an uploading client eventually blocks.
        read_body: False answers (or not) without reading the request body,
            like a server rejecting an upload early; the connection is then
            closed, since it is no longer in a known state. Only for static
            replies: a handler runs after the body was read.
    """

    status: int = 200
    _: KW_ONLY
    body: bytes = b""
    headers: Sequence[tuple[str, str]] = ()
    reason: str | None = None
    chunks: Sequence[bytes] | None = None
    chunked: bool = False
    delay_headers: float = 0.0
    delay_body: float = 0.0
    trickle: float | None = None
    close_after: bool = False
    close_silently_after: bool = False
    truncate_to: int | None = None
    raw: bytes | None = None
    keep_open: bool = False
    reset: bool = False
    no_response: bool = False
    read_body: bool = True

    def __post_init__(self) -> None:
        # Freeze the sequences so a Reply can be shared between routes safely.
        object.__setattr__(self, "headers", tuple((str(n), str(v)) for n, v in self.headers))
        if self.chunks is not None:
            if self.body:
                raise ValueError("Reply: give either body or chunks, not both")
            object.__setattr__(self, "chunks", tuple(self.chunks))
        self._validate()

    def _validate(self) -> None:
        if not 200 <= self.status <= 999:
            raise ValueError(f"Reply: status must be in 200..999, not {self.status}")
        for name in ("delay_headers", "delay_body", "trickle"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"Reply: {name} must be >= 0, not {value}")
        modes = [name for name in ("raw", "reset", "no_response") if getattr(self, name)]
        if len(modes) > 1:
            raise ValueError(f"Reply: {' and '.join(modes)} exclude each other")
        if self.keep_open and (self.raw is None or not self.read_body):
            raise ValueError("Reply: keep_open needs raw and read_body=True")
        if self.truncate_to is not None and not 0 <= self.truncate_to <= self.body_length:
            raise ValueError(
                f"Reply: truncate_to must be in 0..{self.body_length}, not {self.truncate_to}"
            )

    @property
    def pieces(self) -> tuple[bytes, ...]:
        """The non-empty body writes: ``chunks``, or ``(body,)``."""
        pieces = self.chunks if self.chunks is not None else (self.body,)
        return tuple(piece for piece in pieces if piece)

    def writes(self) -> Iterator[tuple[float, bytes]]:
        """The body as the server sends it: ``(seconds to wait first, bytes)``
        pairs after ``truncate_to``, ``delay_body`` and ``trickle``, so every
        protocol driver sends the same schedule."""
        budget = self.body_length if self.truncate_to is None else self.truncate_to
        for piece in self.pieces:
            if budget <= 0:
                return
            piece = piece[:budget]
            budget -= len(piece)
            if self.trickle is None:
                yield self.delay_body, piece
                continue
            for offset in range(len(piece)):
                first_delay = self.delay_body if offset == 0 else 0.0
                yield first_delay + self.trickle, piece[offset : offset + 1]

    @property
    def body_length(self) -> int:
        """The length of the whole body, ``body`` or ``chunks``."""
        return sum(len(piece) for piece in self.pieces)

    @property
    def reason_phrase(self) -> str:
        """``reason``, or the standard phrase for ``status`` (``""`` if unknown)."""
        if self.reason is not None:
            return self.reason
        try:
            return HTTPStatus(self.status).phrase
        except ValueError:
            return ""


Handler = Callable[[ReceivedRequest], Awaitable[Reply]]
"""An async callable computing the reply to a request (whose body has been read).

An exception it raises is answered with a 500 and re-raised when the server's
``async with`` block exits, so a buggy handler fails its test instead of hanging it.
"""
