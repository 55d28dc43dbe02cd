"""Content-Encoding decoding (RFC 9110 §8.4) with a decompression-bomb guard.

Theory of operation
-------------------
:func:`get_decoder` turns a ``Content-Encoding`` value into a pipeline of
*stages*, one per coding, last applied first (RFC 9110 §8.4 lists them in
the order applied). A stage never returns the whole expansion of its input:
it pushes bounded pieces through a *sink* callback to the next stage, or
finally to the :class:`_Guard`:

* zlib (gzip, deflate): ``decompress(data, max_length=_PIECE)``;
* brotli: ``process(data, output_buffer_limit=_PIECE)`` (brotli >= 1.2);
* zstandard has no output limit, so its input is fed in slices of
  :data:`_ZSTD_SLICE` bytes: a zstd block decodes to at most 128 KiB and
  takes at least 4 bytes (RFC 8878 §3.1.1.2), so a slice yields <= 8 MiB.

The guard counts what reaches it and raises :class:`DecodingError` the moment
the total passes ``max_size`` or its ratio to the compressed bytes fed so far
passes ``max_ratio``. Input is fed :data:`_STEP` bytes at a time, so a bomb is
caught within ``max_ratio * _STEP`` bytes of output (16 MiB by default),
however large the chunks given to ``decode()``.

Corrupt input raises ``DecodingError`` chained to the library's error, and a
stream cut before its end marker raises on ``flush()``; an empty body is fine
(HEAD, 204 and 304 responses carry ``Content-Encoding`` but no body).
"""

from __future__ import annotations

import importlib
import zlib
from collections.abc import Callable
from typing import Protocol, cast

from ._errors import DecodingError

#: No absolute cap by default: downloads of many GiB are legitimate, and the
#: ratio below already stops bombs, whose point is a tiny transfer.
DEFAULT_MAX_DECOMPRESSED_SIZE: int | None = None

#: Deflate cannot exceed about 1032:1 (a 258-byte match costs at least 2 bits,
#: RFC 1951 §3.2.5), and real HTML/JSON/logs compress 1:5 to about 1:100, so
#: 1000 never rejects a plausible response. Brotli and zstd bombs reach
#: 1:10^5-10^6, and so does gzip stacked on gzip; those are what this stops.
#: (Apache's mod_deflate uses 200 for request bodies: DeflateInflateRatioLimit.)
DEFAULT_MAX_DECOMPRESSION_RATIO: float | None = 1000.0

#: The ratio is only judged past 1 MiB of output, so small, very compressible
#: bodies (10 KB of zeros gzips to 30 bytes) are fine whatever their ratio.
_RATIO_FLOOR = 1 << 20

#: Largest piece one stage hands to the next.
_PIECE = 1 << 16

#: Compressed input is fed, and counted for the ratio, this much at a time.
_STEP = 1 << 14

#: zstd input slice: 256 bytes hold at most 64 blocks, so at most 8 MiB out.
_ZSTD_SLICE = 256

_GZIP_WBITS = 16 + zlib.MAX_WBITS  # gzip header and trailer (RFC 1952)

Sink = Callable[[bytes], None]


class ContentDecoder(Protocol):
    """Decodes one response body: ``decode`` takes each received chunk and
    returns the decoded bytes available so far (possibly none); ``flush``,
    called once at the end, returns the rest. Both raise :class:`DecodingError`."""

    def decode(self, data: bytes) -> bytes: ...

    def flush(self) -> bytes: ...


class _Stage(Protocol):
    def feed(self, data: bytes, sink: Sink) -> None: ...

    def finish(self, sink: Sink) -> None: ...


class _BrotliDecompressor(Protocol):
    def process(self, data: bytes, output_buffer_limit: int = ...) -> bytes: ...

    def is_finished(self) -> bool: ...


class _BrotliModule(Protocol):
    error: type[Exception]
    Decompressor: Callable[[], _BrotliDecompressor]


class _ZstdObj(Protocol):
    eof: bool
    unused_data: bytes

    def decompress(self, data: bytes) -> bytes: ...


class _ZstdDecompressor(Protocol):
    def decompressobj(self) -> _ZstdObj: ...


class _ZstdModule(Protocol):
    ZstdError: type[Exception]
    ZstdDecompressor: Callable[[], _ZstdDecompressor]


def _import(name: str) -> object | None:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def _brotli() -> _BrotliModule | None:
    """brotli (CPython) or brotlicffi (PyPy) >= 1.2, which added ``output_buffer_limit``
    (and ``can_accept_more_data``): older ones cannot bound memory."""
    for name in ("brotli", "brotlicffi"):
        module = _import(name)
        if hasattr(getattr(module, "Decompressor", None), "can_accept_more_data"):
            return cast("_BrotliModule", module)
    return None


def _zstd() -> _ZstdModule | None:
    return cast("_ZstdModule | None", _import("zstandard"))


def accept_encoding() -> str:
    """The ``Accept-Encoding`` value for the codings we can decode here:
    gzip and deflate always, br and zstd when their library is installed."""
    codings = ["gzip", "deflate"]
    if _brotli() is not None:
        codings.append("br")
    if _zstd() is not None:
        codings.append("zstd")
    return ", ".join(codings)


_ENDED_EARLY = "ended early (truncated or cut off)"
_TRAILING = "has data after the end of its stream"


def _error(coding: str, problem: str) -> DecodingError:
    return DecodingError(f"{coding}-encoded response body {problem}")


def _is_zlib_header(head: bytes) -> bool:
    """RFC 1950 §2.2: method 8 (deflate), window <= 32K, FCHECK makes it a multiple of 31."""
    return head[0] & 0x0F == 8 and head[0] >> 4 <= 7 and (head[0] << 8 | head[1]) % 31 == 0


class _ZlibStage:
    """gzip (RFC 9110 §8.4.1.3, RFC 1952) or deflate (§8.4.1.2).

    deflate means zlib-wrapped (RFC 1950), but some servers send raw deflate
    (RFC 1951); the first two bytes tell which. gzip may be several members
    back to back (RFC 1952 §2.2); deflate is one stream.
    """

    def __init__(self, coding: str) -> None:
        self._coding = coding
        self._wbits: int | None = _GZIP_WBITS if coding == "gzip" else None
        self._head = b""  # deflate: bytes held until the header can be recognised
        self._obj: zlib._Decompress | None = None

    def feed(self, data: bytes, sink: Sink) -> None:
        if self._wbits is None:
            data = self._head + data
            if len(data) < 2:
                self._head = data
                return
            self._head = b""
            self._wbits = zlib.MAX_WBITS if _is_zlib_header(data) else -zlib.MAX_WBITS
        while data:
            obj = self._obj
            if obj is None:
                obj = self._obj = zlib.decompressobj(self._wbits)
            elif obj.eof:
                raise _error(self._coding, _TRAILING)
            data = self._inflate(obj, data, sink)
            if obj.eof and self._wbits == _GZIP_WBITS:
                self._obj = None  # what follows is the next member

    def _inflate(self, obj: zlib._Decompress, data: bytes, sink: Sink) -> bytes:
        """Decompress *data* in bounded pieces; return the input left after the stream's end."""
        try:
            while True:
                out = obj.decompress(data, _PIECE)
                if out:
                    sink(out)
                if obj.eof:
                    return obj.unused_data
                data = obj.unconsumed_tail
                # A full piece may leave output pending inside zlib even
                # when all input is consumed: go round again to drain it.
                if not data and len(out) < _PIECE:
                    return b""
        except zlib.error as exc:
            raise _error(self._coding, f"is corrupt: {exc}") from exc

    def finish(self, sink: Sink) -> None:
        if self._head or (self._obj is not None and not self._obj.eof):
            raise _error(self._coding, _ENDED_EARLY)


class _BrotliStage:
    """br (RFC 7932), decoded with ``output_buffer_limit`` to bound each piece."""

    def __init__(self, module: _BrotliModule) -> None:
        self._error = module.error
        self._obj = module.Decompressor()
        self._fed = False

    def feed(self, data: bytes, sink: Sink) -> None:
        if self._obj.is_finished():
            raise _error("br", _TRAILING)
        self._fed = True
        try:
            out = self._obj.process(data, output_buffer_limit=_PIECE)
            while out:
                sink(out)
                # Output past the limit waits inside the decoder until asked for.
                out = self._obj.process(b"", output_buffer_limit=_PIECE)
        except self._error as exc:
            raise _error("br", f"is corrupt: {exc}") from exc

    def finish(self, sink: Sink) -> None:
        if self._fed and not self._obj.is_finished():
            raise _error("br", _ENDED_EARLY)


class _ZstdStage:
    """zstd (RFC 8878): one or more frames (§3.1), fed in small slices."""

    def __init__(self, module: _ZstdModule) -> None:
        self._module = module
        self._obj: _ZstdObj | None = None  # the frame being decoded, if any

    def feed(self, data: bytes, sink: Sink) -> None:
        try:
            for start in range(0, len(data), _ZSTD_SLICE):
                self._feed_slice(data[start : start + _ZSTD_SLICE], sink)
        except self._module.ZstdError as exc:
            raise _error("zstd", f"is corrupt: {exc}") from exc

    def _feed_slice(self, data: bytes, sink: Sink) -> None:
        while data:
            if self._obj is None:
                self._obj = self._module.ZstdDecompressor().decompressobj()
            out = self._obj.decompress(data)
            if out:
                sink(out)
            if not self._obj.eof:
                return
            data = self._obj.unused_data
            self._obj = None

    def finish(self, sink: Sink) -> None:
        if self._obj is not None:
            raise _error("zstd", _ENDED_EARLY)


_NO_BROTLI = "brotli >= 1.2 is not installed: pip install trio-requests[brotli]"
_NO_ZSTD = "zstandard is not installed: pip install trio-requests[zstd]"


class _Missing:
    """A coding we know but whose library is not installed. We never
    advertised it, so a server sending it anyway is wrong: say so on the
    first byte of body (a HEAD or 304 response decodes fine)."""

    def __init__(self, coding: str, missing: str) -> None:
        self._message = f"response is {coding}-encoded but {missing}"

    def feed(self, data: bytes, sink: Sink) -> None:
        raise DecodingError(self._message)

    def finish(self, sink: Sink) -> None:
        pass


class _Guard:
    """The last sink: collects output and enforces the limits."""

    def __init__(self, label: str, max_size: int | None, max_ratio: float | None) -> None:
        self._label = label
        self._max_size = max_size
        self._max_ratio = max_ratio
        self.consumed = 0  # compressed bytes fed to the pipeline
        self.produced = 0
        self.pieces: list[bytes] = []

    def __call__(self, piece: bytes) -> None:
        self.produced += len(piece)
        if self._max_size is not None and self.produced > self._max_size:
            raise DecodingError(
                f"response body ({self._label}) decompresses past max_decompressed_size="
                f"{self._max_size} bytes; raise Session(limits=Limits(max_decompressed_size=…)) "
                "if this response is legitimate"
            )
        ratio = self._max_ratio
        if ratio is not None and self.produced > max(_RATIO_FLOOR, ratio * self.consumed):
            raise DecodingError(
                f"response body ({self._label}) expands more than {ratio:g}:1 "
                f"({self.produced} bytes from {self.consumed}), like a decompression bomb; "
                "raise Session(limits=Limits(max_decompression_ratio=…)) if this response "
                "is legitimate"
            )
        self.pieces.append(piece)

    def take(self) -> bytes:
        out = b"".join(self.pieces)
        self.pieces.clear()
        return out


def _into(stage: _Stage, sink: Sink) -> Sink:
    return lambda data: stage.feed(data, sink)


class _Pipeline:
    """Stages in decoding order; each one's sink feeds the next, the last the guard."""

    def __init__(self, stages: list[_Stage], guard: _Guard) -> None:
        self._stages = stages
        self._guard = guard
        sinks: list[Sink] = [guard]
        for stage in reversed(stages[1:]):
            sinks.insert(0, _into(stage, sinks[0]))
        self._sinks = sinks

    def decode(self, data: bytes) -> bytes:
        for start in range(0, len(data), _STEP):
            step = data[start : start + _STEP]
            self._guard.consumed += len(step)
            self._stages[0].feed(step, self._sinks[0])
        return self._guard.take()

    def flush(self) -> bytes:
        for stage, sink in zip(self._stages, self._sinks, strict=True):
            stage.finish(sink)
        return self._guard.take()


class _Identity:
    def decode(self, data: bytes) -> bytes:
        return data

    def flush(self) -> bytes:
        return b""


def _stage(coding: str) -> _Stage | None:
    if coding in ("gzip", "x-gzip", "deflate"):  # x-gzip: RFC 9110 §8.4.1.3
        return _ZlibStage("deflate" if coding == "deflate" else "gzip")
    if coding == "br":
        brotli = _brotli()
        return _BrotliStage(brotli) if brotli is not None else _Missing("br", _NO_BROTLI)
    if coding == "zstd":
        zstd = _zstd()
        return _ZstdStage(zstd) if zstd is not None else _Missing("zstd", _NO_ZSTD)
    return None


def get_decoder(
    content_encoding: str | None, *, max_size: int | None, max_ratio: float | None
) -> ContentDecoder:
    """A decoder for a body sent with this ``Content-Encoding`` value.

    Args:
        content_encoding: the header value, e.g. ``"gzip"`` or ``"gzip, br"``
            (applied in that order, so decoded br first); None, ``""`` and
            ``identity`` mean no coding. Case and spaces are ignored.
        max_size: decoded bytes allowed in all, or None for no cap.
        max_ratio: decoded bytes allowed per compressed byte received, judged
            once the output passes 1 MiB; None for no limit.

    Returns:
        A :class:`ContentDecoder`. If any listed coding is unknown (not
        gzip, x-gzip, deflate, br, zstd or identity), the whole body passes
        through undecoded, matching the ``Content-Encoding`` header the
        caller sees (undoing only some layers would match neither). Limits
        apply only to decompression, never to a passthrough.

    The returned decoder raises :class:`DecodingError` on corrupt or truncated
    data, on a limit being passed (the message names the limit and the option
    to raise), and on br or zstd bodies whose library is not installed.
    """
    codings = [c.strip().lower() for c in (content_encoding or "").split(",")]
    codings = [c for c in codings if c and c != "identity"]
    stages = [_stage(c) for c in reversed(codings)]
    if not stages or None in stages:
        return _Identity()
    guard = _Guard("Content-Encoding: " + ", ".join(codings), max_size, max_ratio)
    return _Pipeline(cast("list[_Stage]", stages), guard)
