"""Request and Response."""

from __future__ import annotations

import codecs
import datetime
import json as jsonlib
import re
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from email.message import Message
from typing import Any, Protocol

from ._decoders import ContentDecoder
from ._errors import (
    DecodingError,
    HTTPStatusError,
    LocalProtocolError,
    ResponseClosed,
    StreamConsumed,
)
from ._headers import HeaderInput, Headers, is_token
from ._urls import URL

RequestContent = bytes | str | AsyncIterable[bytes] | Iterable[bytes]

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
#: tokens all: checked by a set lookup rather than a pattern match
_STANDARD_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"})


class Request:
    """An HTTP request, ready to send.

    Attributes:
        method: upper-case method.
        url: the :class:`URL`.
        headers: the :class:`Headers` to send (Host and framing headers are
            added when sending).
        content: the body if it is in memory (replayable on retry and
            redirect); None if it streams from an iterable.
        stream: the body as chunks, if it is not in memory.
    """

    __slots__ = ("content", "headers", "method", "stream", "url")

    def __init__(
        self,
        method: str,
        url: URL | str,
        *,
        headers: HeaderInput = None,
        content: RequestContent | None = None,
    ) -> None:
        if method not in _STANDARD_METHODS and not is_token(method):
            raise LocalProtocolError(
                f"invalid method {method!r}: a method is a token (RFC 9110 §9.1), "
                "letters, digits and !#$%&'*+-.^_`|~"
            )
        self.method = method.upper()
        self.url = url if isinstance(url, URL) else URL(url)
        self.headers = Headers(headers)
        self.content: bytes | None = None
        self.stream: AsyncIterable[bytes] | Iterable[bytes] | None = None
        if isinstance(content, str):
            content = content.encode()
        if isinstance(content, bytes):
            self.content = content
        elif content is not None:
            self.stream = content

    @property
    def replayable(self) -> bool:
        """Can the body be sent again (retry, 307/308 redirect)?"""
        return self.stream is None

    def __repr__(self) -> str:
        return f"<Request [{self.method} {self.url.without_credentials()}]>"


class ResponseStream(Protocol):
    """What a connection hands a Response: the body, chunk by chunk."""

    async def receive_some(self) -> bytes:
        """The next piece of the (still encoded) body; b"" at the end."""
        ...

    async def receive_rest(self) -> bytes | None:
        """The rest of the body in one piece (the stream then ends, as after
        receive_some() returned b"", and needs no aclose()), if the stream
        can read it faster than chunk by chunk; None if not. Lets aread()
        skip the chunk loop."""
        ...

    async def aclose(self) -> None:
        """Give the connection back (body fully read) or discard it."""
        ...


class Response:
    """An HTTP response.

    The body is read by :meth:`aread` (done for you unless you used
    :meth:`Session.stream`) or streamed with the ``aiter_*`` methods;
    either way the connection returns to the pool when the body ends or
    :meth:`aclose` is called.
    """

    # No __dict__: one object fewer per response, for the cyclic GC to track.
    __slots__ = (
        "_closed",
        "_consumed",
        "_content",
        "_decoder",
        "_elapsed",
        "_history",
        "_stream",
        "_trailers",
        "headers",
        "http_version",
        "num_bytes_downloaded",
        "reason",
        "request",
        "status_code",
    )

    def __init__(
        self,
        status_code: int,
        *,
        request: Request,
        headers: Headers | None = None,
        reason: str = "",
        http_version: str = "HTTP/1.1",
        stream: ResponseStream | None = None,
        content: bytes | None = None,
        decoder: ContentDecoder | None = None,
    ) -> None:
        self.status_code = status_code
        self.request = request
        self.headers = headers if headers is not None else Headers()
        self.reason = reason
        self.http_version = http_version
        # history, trailers and elapsed are made when first read: most
        # responses never are, and each is an object (or two) per request.
        self._history: list[Response] | None = None
        self._trailers: Headers | None = None
        self._elapsed = 0.0  # seconds
        self.num_bytes_downloaded = 0
        self._stream = stream
        self._content = content
        self._decoder = decoder
        self._consumed = content is not None
        self._closed = stream is None

    @property
    def history(self) -> list[Response]:
        """The redirect responses that led here, oldest first."""
        if self._history is None:
            self._history = []
        return self._history

    @history.setter
    def history(self, responses: list[Response]) -> None:
        self._history = responses

    @property
    def trailers(self) -> Headers:
        """Trailer fields (HTTP/2 or chunked HTTP/1.1), once the body is read."""
        if self._trailers is None:
            self._trailers = Headers()
        return self._trailers

    @trailers.setter
    def trailers(self, fields: Headers) -> None:
        self._trailers = fields

    @property
    def elapsed(self) -> datetime.timedelta:
        """From sending the request until the response headers arrived."""
        return datetime.timedelta(seconds=self._elapsed)

    @elapsed.setter
    def elapsed(self, elapsed: datetime.timedelta) -> None:
        self._elapsed = elapsed.total_seconds()

    # -- metadata -----------------------------------------------------------

    @property
    def url(self) -> URL:
        return self.request.url

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300

    @property
    def is_redirect(self) -> bool:
        return self.status_code in (301, 302, 303, 307, 308) and "location" in self.headers

    @property
    def is_error(self) -> bool:
        return self.status_code >= 400

    @property
    def is_closed(self) -> bool:
        return self._closed

    def raise_for_status(self) -> Response:
        """Raise :class:`HTTPStatusError` for a 4xx or 5xx status; return self."""
        if self.status_code < 400:
            return self
        kind = "client error" if self.status_code < 500 else "server error"
        raise HTTPStatusError(
            f"{kind} '{self.status_code} {self.reason}' for url '{self.url.without_credentials()}'",
            request=self.request,
            response=self,
        )

    @property
    def encoding(self) -> str:
        """The charset from Content-Type, if Python knows it; else utf-8
        (RFC 8259 for JSON, the de-facto default for text on the web)."""
        message = Message()
        message["content-type"] = self.headers.get("content-type", "")
        charset = message.get_param("charset")
        if isinstance(charset, str):
            try:
                return codecs.lookup(charset.strip("'\"")).name
            except LookupError:
                pass
        return "utf-8"

    # -- the body -------------------------------------------------------------

    @property
    def content(self) -> bytes:
        if self._content is None:
            raise ResponseClosed(
                "the body was not read: call `await response.aread()` first "
                "(responses from Session.stream() are not read for you)",
                request=self.request,
            )
        return self._content

    @property
    def text(self) -> str:
        return self.content.decode(self.encoding, errors="replace")

    def json(self, **kwargs: Any) -> Any:
        try:
            return jsonlib.loads(self.content, **kwargs)
        except (ValueError, UnicodeDecodeError) as exc:
            raise DecodingError(
                f"response body is not valid JSON: {exc}", request=self.request
            ) from exc

    async def aread(self) -> bytes:
        """Read the whole body (once; later calls return it again)."""
        if self._content is None:
            if self._decoder is None:  # the common case: no iterator layers
                self._content = await self._read_raw()
            else:
                self._content = b"".join([chunk async for chunk in self.aiter_bytes()])
        return self._content

    async def _read_raw(self) -> bytes:
        if self._consumed:
            raise StreamConsumed("the response body was already read", request=self.request)
        if self._stream is not None and not self._closed:
            self._consumed = True
            try:
                whole = await self._stream.receive_rest()
            except BaseException:
                await self.aclose()
                raise
            if whole is not None:
                self.num_bytes_downloaded += len(whole)
                self._closed = True  # the stream has ended and released its connection
                return whole
        chunks = []
        while chunk := await self._receive_raw():
            chunks.append(chunk)
        return b"".join(chunks)

    def aiter_raw(self) -> AsyncIterator[bytes]:
        """The body as received, still content-encoded."""
        return _RawChunks(self)

    def aiter_bytes(self) -> AsyncIterator[bytes]:
        """The body, decompressed according to Content-Encoding."""
        if self._content is not None:
            return _RawChunks(self, preread=self._content)
        if self._decoder is None:  # no Content-Encoding: nothing to undo
            return _RawChunks(self)
        return _DecodedChunks(_RawChunks(self), self._decoder, self.request)

    def aiter_text(self) -> AsyncIterator[str]:
        """The body as text, decoded with :attr:`encoding`."""
        return _TextChunks(self.aiter_bytes(), self.encoding)

    def aiter_lines(self) -> AsyncIterator[str]:
        """Lines without their ending (LF, CRLF or CR)."""
        return _Lines(self.aiter_text())

    async def _receive_raw(self) -> bytes:
        """The next raw chunk; b"" at the end, when the connection is released."""
        if not self._consumed:
            if self._closed:
                raise ResponseClosed("the response is closed", request=self.request)
            self._consumed = True
        elif self._stream is None or self._closed:
            return b""
        assert self._stream is not None
        try:
            chunk = await self._stream.receive_some()
        except BaseException:
            await self.aclose()
            raise
        if not chunk:
            await self.aclose()
        self.num_bytes_downloaded += len(chunk)
        return chunk

    async def aclose(self) -> None:
        """Release the connection; an unread body makes it unusable, so it is
        closed instead. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._stream is not None:
            await self._stream.aclose()

    def __repr__(self) -> str:
        return f"<Response [{self.status_code} {self.reason}]>"


# The body iterators are classes, not async generators: a caller that stops
# iterating early leaves nothing for the garbage collector to finalise
# "sometime later, somewhere else" (trio's warning about async generators);
# the connection is released by Response.aclose(), which Session.stream()
# and Session.request() always call.


class _RawChunks:
    __slots__ = ("_preread", "_response", "_started")

    def __init__(self, response: Response, preread: bytes | None = None) -> None:
        self._response = response
        self._preread = preread
        self._started = False

    def __aiter__(self) -> _RawChunks:
        return self

    async def __anext__(self) -> bytes:
        if self._preread is not None:
            chunk, self._preread = self._preread, b""
        else:
            if not self._started and self._response._consumed:
                request = self._response.request
                raise StreamConsumed("the response body was already read", request=request)
            self._started = True
            chunk = await self._response._receive_raw()
        if not chunk:
            raise StopAsyncIteration
        return chunk


class _DecodedChunks:
    __slots__ = ("_decoder", "_done", "_raw", "_request")

    def __init__(self, raw: _RawChunks, decoder: ContentDecoder, request: Request) -> None:
        self._raw = raw
        self._decoder = decoder
        self._request = request
        self._done = False

    def __aiter__(self) -> _DecodedChunks:
        return self

    async def __anext__(self) -> bytes:
        try:
            while not self._done:
                try:
                    chunk = await self._raw.__anext__()
                except StopAsyncIteration:
                    self._done = True
                    if tail := self._decoder.flush():
                        return tail
                    break
                if data := self._decoder.decode(chunk):
                    return data
        except DecodingError as exc:
            exc.request = self._request
            await self._raw._response.aclose()
            raise
        raise StopAsyncIteration


class _TextChunks:
    __slots__ = ("_bytes", "_decoder", "_done")

    def __init__(self, chunks: AsyncIterator[bytes], encoding: str) -> None:
        self._bytes = chunks
        self._decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
        self._done = False

    def __aiter__(self) -> _TextChunks:
        return self

    async def __anext__(self) -> str:
        while not self._done:
            try:
                chunk = await self._bytes.__anext__()
            except StopAsyncIteration:
                self._done = True
                if tail := self._decoder.decode(b"", final=True):
                    return tail
                break
            if text := self._decoder.decode(chunk):
                return text
        raise StopAsyncIteration


class _Lines:
    __slots__ = ("_buffer", "_done", "_ready", "_text")

    def __init__(self, text: AsyncIterator[str]) -> None:
        self._text = text
        self._buffer = ""
        self._ready: list[str] = []
        self._done = False

    def __aiter__(self) -> _Lines:
        return self

    async def __anext__(self) -> str:
        while not self._ready and not self._done:
            try:
                self._buffer += await self._text.__anext__()
            except StopAsyncIteration:
                self._done = True
                if self._buffer:
                    self._ready.append(self._buffer.rstrip("\r"))
                break
            # A trailing CR may be the first half of a CRLF split across chunks.
            held = "\r" if self._buffer.endswith("\r") else ""
            lines = _LINE_BREAK.split(self._buffer[:-1] if held else self._buffer)
            self._buffer = lines.pop() + held
            self._ready.extend(lines)
        if self._ready:
            return self._ready.pop(0)
        raise StopAsyncIteration
