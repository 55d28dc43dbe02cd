"""The bad-input matrix: every hostile response we know of, and what it raises.

One :class:`BadInput` per row of the table in ``docs/hardening.md``; the
table is generated from this list (``python -m tests.hardening.bad_inputs``)
and ``test_bad_inputs.py`` checks that the two agree, so the documentation
cannot promise what the tests do not prove.

Each row says how the server misbehaves over HTTP/1.1 and over HTTP/2
(``None`` where the fault cannot be expressed in that protocol) and what the
client does about it: an :class:`Raises` (exception class and a regex its
message must match) or, for the few inputs the RFCs tell a client to accept,
a :class:`Delivers` that states and checks what the application sees.
"""

from __future__ import annotations

import datetime
import functools
import ssl
import warnings
import zlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import brotli  # type: ignore[import-untyped]  # ships no type information
import h2.errors
import hpack
import trustme
import zstandard

import trio_requests as tr
from trio_requests.testing import H11Server, Reply, ResetStream, h2_frame

Server = H11Server  # H2Server is a subclass of the same base; both route alike


@dataclass(frozen=True)
class Raises:
    """The request fails with *error*, whose message matches *match*."""

    error: type[tr.RequestError]
    match: str


@dataclass(frozen=True)
class Delivers:
    """The response is delivered; *check* proves what the docs say about it."""

    what: str
    check: Callable[[tr.Response, tr.Session, Any], Awaitable[None]]


Outcome = Raises | Delivers
#: How a protocol misbehaves: a route reply, a list played in order, or a
#: function making either when the test runs (for costly bodies).
Script = Reply | ResetStream | Sequence[Reply] | Callable[[], Reply]


@dataclass(frozen=True)
class Side:
    """One protocol's column of a row: the fault and what comes of it."""

    script: Script
    outcome: Outcome
    #: called with the server before the request, for faults that are calls
    setup: Callable[[Any], None] | None = None


@dataclass(frozen=True)
class BadInput:
    """A row of the matrix.

    Attributes:
        name: the bad input, as the docs table names it.
        h1, h2: the fault over HTTP/1.1 and HTTP/2; None if it has no form there.
        session: extra Session keywords (tighter limits or timeouts).
        attempt: what the client does; by default ``GET /bad``.
    """

    name: str
    h1: Side | None
    h2: Side | None
    session: dict[str, Any] = field(default_factory=dict)
    attempt: str = "get"


# -- helpers to build the faults --------------------------------------------------------------


def raw(data: bytes, *, keep_open: bool = False) -> Reply:
    """These bytes as the response; then the server closes, unless *keep_open*
    (it goes on serving as if they were one complete response)."""
    return Reply(200, raw=data, keep_open=keep_open)


def frames_headers(fields: list[tuple[str, str]], *, end: bool = True, stream_id: int = 1) -> bytes:
    """A HEADERS frame for our first stream, its block HPACK-encoded as given."""
    flags = 0x4 | (0x1 if end else 0)
    return h2_frame(0x1, hpack.Encoder().encode(fields), stream_id=stream_id, flags=flags)


def frames_data(data: bytes, *, end: bool = True, stream_id: int = 1) -> bytes:
    return h2_frame(0x0, data, stream_id=stream_id, flags=0x1 if end else 0)


def frames_split_headers(fields: list[tuple[str, str]], piece: int = 16000) -> bytes:
    """A header block too big for one frame: HEADERS, then CONTINUATIONs."""
    block = hpack.Encoder().encode(fields)
    out = h2_frame(0x1, block[:piece], stream_id=1, flags=0x1)
    for start in range(piece, len(block), piece):
        last = start + piece >= len(block)
        out += h2_frame(0x9, block[start : start + piece], stream_id=1, flags=0x4 if last else 0)
    return out


OK_HEAD = [(":status", "200"), ("content-length", "2")]


def h1_head(*lines: bytes, status: bytes = b"200 OK") -> bytes:
    return b"HTTP/1.1 " + status + b"\r\n" + b"".join(line + b"\r\n" for line in lines) + b"\r\n"


@functools.cache
def bombs() -> dict[str, bytes]:
    """Bodies that decode to 1 GiB of zeros: gzip twice (1.8 KB), brotli
    (1.6 KB) and zstd (32 KB; its blocks cap the ratio near 32000:1)."""
    mib = b"\0" * (1 << 20)
    inner = zlib.compressobj(9, zlib.DEFLATED, 31)
    once = b"".join(inner.compress(mib) for _ in range(1024)) + inner.flush()
    outer = zlib.compressobj(9, zlib.DEFLATED, 31)
    br = brotli.Compressor(quality=5)
    zstd = zstandard.ZstdCompressor(level=19).compressobj()
    return {
        "gzip, gzip": outer.compress(once) + outer.flush(),
        "br": b"".join(br.process(mib) for _ in range(1024)) + br.finish(),
        "zstd": b"".join(zstd.compress(mib) for _ in range(1024)) + zstd.flush(),
    }


def bomb(coding: str) -> Callable[[], Reply]:
    return lambda: Reply(200, body=bombs()[coding], headers=[("content-encoding", coding)])


# -- what the application sees when a bad input is accepted -----------------------------------


async def _connections_after_next(session: tr.Session, server: Any) -> int:
    """Connections the server saw once one more request went through."""
    assert (await session.get(server.url + "/ok")).content == b"ok"
    return int(server.connections_accepted)


def delivers(
    what: str, body: bytes, *, connections: int, header: tuple[str, str] | None = None
) -> Delivers:
    """The response arrives with *body*; afterwards one more request makes
    the server's connection count *connections* (2: not reused)."""

    async def check(response: tr.Response, session: tr.Session, server: Any) -> None:
        assert response.content == body
        if header is not None:
            assert response.headers[header[0]] == header[1]
        assert await _connections_after_next(session, server) == connections

    return Delivers(what, check)


# -- the matrix ---------------------------------------------------------------------------------

RPE = tr.RemoteProtocolError
BROKE_H2 = "the server broke the HTTP/2 protocol"
HEAD_TOO_BIG = "the response head is .* bytes, more than max_header_bytes=65536"
BLOCK_TOO_BIG = "a header block larger than max_header_bytes=65536"


def both(script_h1: Script, script_h2: Script, outcome: Outcome) -> tuple[Side, Side]:
    return Side(script_h1, outcome), Side(script_h2, outcome)


def row(name: str, sides: tuple[Side | None, Side | None], **options: Any) -> BadInput:
    return BadInput(name, *sides, **options)


FRAMING = [
    row(
        "malformed status line",
        (Side(raw(b"HTTP/1.1200 OK\r\n\r\n"), Raises(RPE, "illegal status line")), None),
    ),
    row(
        "non-numeric status",
        (
            Side(raw(h1_head(status=b"abc OK")), Raises(RPE, "illegal status line")),
            Side(raw(frames_headers([(":status", "abc")])), Raises(RPE, "not a three-digit")),
        ),
    ),
    row(
        "duplicated, conflicting Content-Length",
        (
            Side(
                raw(h1_head(b"Content-Length: 2", b"Content-Length: 3") + b"hi"),
                Raises(RPE, "conflicting Content-Length"),
            ),
            Side(
                raw(frames_headers([*OK_HEAD, ("content-length", "3")])),
                Raises(RPE, "Conflicting content-length"),
            ),
        ),
    ),
    row(
        "non-numeric Content-Length",
        (
            Side(raw(h1_head(b"Content-Length: -1")), Raises(RPE, "bad Content-Length")),
            Side(
                raw(frames_headers([(":status", "200"), ("content-length", "abc")])),
                Raises(RPE, "Invalid content-length"),
            ),
        ),
    ),
    row(
        "Content-Length and Transfer-Encoding together",
        (
            Side(
                raw(h1_head(b"Content-Length: 5", b"Transfer-Encoding: chunked") + b"0\r\n\r\n"),
                Raises(RPE, "both Content-Length and Transfer-Encoding"),
            ),
            Side(
                raw(frames_headers([(":status", "200"), ("transfer-encoding", "chunked")])),
                Raises(RPE, "Connection-specific header field present: b'transfer-encoding'"),
            ),
        ),
    ),
    row(
        "invalid chunk size",
        (
            Side(
                raw(h1_head(b"Transfer-Encoding: chunked") + b"zz\r\nhi\r\n0\r\n\r\n"),
                Raises(RPE, "illegal chunk header"),
            ),
            None,
        ),
    ),
    row(
        "body truncated (connection closed mid-body)",
        (
            Side(
                Reply(200, body=b"0123456789", truncate_to=4),
                Raises(RPE, r"received 4 bytes, expected 10"),
            ),
            Side(
                raw(frames_headers([(":status", "200"), ("content-length", "10")], end=False)),
                Raises(RPE, "^the server closed the connection$"),
            ),
        ),
    ),
    row(
        "chunked body without its last chunk",
        (
            Side(
                Reply(200, chunks=[b"ab", b"cd"], chunked=True, truncate_to=2),
                Raises(RPE, "incomplete chunked read"),
            ),
            Side(
                raw(frames_headers(OK_HEAD, end=False) + frames_data(b"o")),
                Raises(RPE, r"shorter than its Content-Length \(2 bytes announced, 1 received\)"),
            ),
        ),
    ),
    row(
        "body longer than Content-Length",
        (
            Side(
                raw(h1_head(b"Content-Length: 2") + b"hiEXTRA"),
                delivers(
                    "the 2 announced bytes; the connection is closed, never reused",
                    b"hi",
                    connections=2,
                ),
            ),
            Side(
                raw(frames_headers(OK_HEAD, end=False) + frames_data(b"okEXTRA")),
                Raises(RPE, r"longer than its Content-Length \(2 bytes announced, 7 received\)"),
            ),
        ),
    ),
    row(
        "no Content-Length (body ends at close)",
        (
            Side(
                raw(h1_head() + b"until-close"),
                delivers("the body up to the close (RFC 9112 §6.3)", b"until-close", connections=2),
            ),
            None,
        ),
    ),
    row(
        "101 Switching Protocols nobody asked for",
        (
            Side(
                raw(h1_head(status=b"101 Switching Protocols")), Raises(RPE, "asked for no upgrade")
            ),
            Side(raw(frames_headers([(":status", "101")])), Raises(RPE, "informational")),
        ),
    ),
    row(
        "interim 1xx response, then the connection closes",
        (
            Side(raw(h1_head(status=b"100 Continue")), Raises(RPE, r"after an interim \(1xx\)")),
            Side(
                raw(frames_headers([(":status", "103")], end=False)),
                Raises(RPE, "^the server closed the connection$"),
            ),
        ),
    ),
    row(
        "connection closed before any response",
        (
            Side(raw(b""), Raises(RPE, "closed the connection without sending a response")),
            Side(raw(b""), Raises(RPE, "^the server closed the connection$")),
        ),
    ),
    row(
        "reset instead of a response (TCP RST; RST_STREAM)",
        (
            Side(
                Reply(200, reset=True), Raises(RPE, "broke while reading.*Connection reset by peer")
            ),
            Side(Reply(200, reset=True), Raises(tr.StreamReset, "INTERNAL_ERROR")),
        ),
    ),
]

BIG_VALUE = "v" * 70_000
MANY_FIELDS = [(f"x-{i}", "v" * 900) for i in range(80)]

HEADERS = [
    row(
        "oversize status line (70 KB)",
        (Side(raw(h1_head(status=b"200 " + b"O" * 70_000)), Raises(RPE, HEAD_TOO_BIG)), None),
    ),
    row(
        "oversize header line (70 KB value)",
        (
            Side(raw(h1_head(b"X-Big: " + BIG_VALUE.encode())), Raises(RPE, HEAD_TOO_BIG)),
            Side(
                raw(frames_split_headers([(":status", "200"), ("x-big", BIG_VALUE)])),
                Raises(RPE, BLOCK_TOO_BIG),
            ),
        ),
    ),
    row(
        "oversize header block (80 fields, 72 KB)",
        (
            Side(
                raw(h1_head(*(f"{n}: {v}".encode() for n, v in MANY_FIELDS))),
                Raises(RPE, HEAD_TOO_BIG),
            ),
            Side(
                raw(frames_split_headers([(":status", "200"), *MANY_FIELDS])),
                Raises(RPE, BLOCK_TOO_BIG),
            ),
        ),
    ),
    row(
        "too many header fields (200)",
        both(
            Reply(200, headers=[(f"x-{i}", "v") for i in range(200)]),
            Reply(200, headers=[(f"x-{i}", "v") for i in range(200)]),
            Raises(RPE, "more than max_header_count=100"),
        ),
    ),
    row(
        "obs-fold (a header line continued on the next)",
        (
            Side(
                raw(h1_head(b"X-A: a", b" b", b"Content-Length: 2") + b"ok", keep_open=True),
                delivers(
                    "the value unfolded to one space, as RFC 9112 §5.2 tells clients",
                    b"ok",
                    connections=1,
                    header=("x-a", "a b"),
                ),
            ),
            None,
        ),
    ),
    row(
        "NUL in a header value",
        (
            Side(raw(h1_head(b"X-A: a\0b")), Raises(RPE, "illegal header line")),
            Side(
                raw(frames_headers([(":status", "200"), ("x-a", "a\0b")])),
                Raises(RPE, "Illegal character .* in header value"),
            ),
        ),
    ),
    row(
        "CR or LF in a header value",
        (
            Side(raw(h1_head(b"X-A: a\rb")), Raises(RPE, "illegal header line")),
            Side(
                raw(frames_headers([(":status", "200"), ("x-a", "a\r\nb")])),
                Raises(RPE, "Illegal character .* in header value"),
            ),
        ),
    ),
    row(
        "invalid header name (space, colon)",
        (
            Side(raw(h1_head(b"X-A : b")), Raises(RPE, "illegal header line")),
            Side(
                raw(frames_headers([(":status", "200"), ("x a", "b")])),
                Raises(RPE, "Illegal character ' ' in header name"),
            ),
        ),
    ),
    row(
        "bare LF line endings",
        (
            Side(
                raw(b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok", keep_open=True),
                delivers(
                    "the response (RFC 9112 §2.2 lets clients accept LF)", b"ok", connections=1
                ),
            ),
            None,
        ),
    ),
    row(
        "uppercase header name",
        (
            None,
            Side(
                raw(frames_headers([(":status", "200"), ("X-Up", "1")])),
                Raises(RPE, "uppercase header name"),
            ),
        ),
    ),
]

H2_ONLY = [
    row(
        "missing :status",
        (
            None,
            Side(raw(frames_headers([("content-length", "0")])), Raises(RPE, "missing mandatory")),
        ),
    ),
    row(
        "request pseudo-header (:path) in a response",
        (
            None,
            Side(
                raw(frames_headers([(":status", "200"), (":path", "/")])),
                Raises(RPE, "request-only headers"),
            ),
        ),
    ),
    row(
        "duplicated :status",
        (
            None,
            Side(
                raw(frames_headers([(":status", "200"), (":status", "200")])),
                Raises(RPE, "duplicate pseudo-header"),
            ),
        ),
    ),
    row(
        "pseudo-header after a regular field",
        (
            None,
            Side(
                raw(frames_headers([("x-a", "b"), (":status", "200")])),
                Raises(RPE, "pseudo-header field out of sequence"),
            ),
        ),
    ),
    row(
        "invalid HPACK block",
        (
            None,
            Side(
                raw(h2_frame(0x1, b"\xff\xff\xff\xff\xff", stream_id=1, flags=0x5)),
                Raises(RPE, "Error decoding header block"),
            ),
        ),
    ),
    row(
        "DATA on stream 0",
        (
            None,
            Side(raw(h2_frame(0x0, b"xx")), Raises(RPE, f"{BROKE_H2}.*Stream ID must be non-zero")),
        ),
    ),
    row(
        "SETTINGS frame of a wrong length",
        (
            None,
            Side(raw(h2_frame(0x4, b"\0" * 5)), Raises(RPE, f"{BROKE_H2}: FrameDataMissingError")),
        ),
    ),
    row(
        "frame larger than our SETTINGS_MAX_FRAME_SIZE",
        (
            None,
            Side(raw(frames_data(b"x" * 20_000)), Raises(RPE, "overlong frame: length 20000")),
        ),
    ),
    row(
        "frame on a stream never opened",
        (None, Side(raw(frames_data(b"xx", stream_id=99)), Raises(RPE, "NoSuchStreamError: 99"))),
    ),
    row(
        "PUSH_PROMISE though push is disabled",
        (
            None,
            Side(
                raw(
                    h2_frame(
                        0x5,
                        b"\0\0\0\2" + hpack.Encoder().encode([(":path", "/")]),
                        stream_id=1,
                        flags=0x4,
                    )
                ),
                Raises(RPE, BROKE_H2),
            ),
        ),
    ),
    row(
        "DATA after END_STREAM",
        (
            None,
            Side(
                raw(frames_headers(OK_HEAD, end=False) + frames_data(b"ok") + frames_data(b"no")),
                delivers(
                    "the complete response; the connection then ends (STREAM_CLOSED)",
                    b"ok",
                    connections=2,
                ),
            ),
        ),
    ),
    row(
        "unknown frame type",
        (
            None,
            Side(
                raw(
                    h2_frame(0xEE, b"hi") + frames_headers(OK_HEAD, end=False) + frames_data(b"ok"),
                    keep_open=True,
                ),
                delivers(
                    "the response: unknown frames are ignored (RFC 9113 §4.1)", b"ok", connections=1
                ),
            ),
        ),
    ),
    row(
        "WINDOW_UPDATE past 2^31-1",
        (
            None,
            Side(
                raw(h2_frame(0x8, b"\x7f\xff\xff\xff") * 2),
                Raises(RPE, "FlowControlError: May not increment flow control window"),
            ),
        ),
    ),
    row(
        "flow-control window overflow (2 MiB sent into a 1 MiB window)",
        (
            None,
            Side(
                raw(
                    frames_headers([(":status", "200")], end=False)
                    + frames_data(b"x" * 16384, end=False) * 128
                ),
                Raises(RPE, "FlowControlError"),
            ),
        ),
        attempt="stream-then-read",
    ),
    row(
        "GOAWAY with an error code mid-response",
        (
            None,
            Side(
                raw(frames_headers(OK_HEAD, end=False) + h2_frame(0x7, b"\0\0\0\1\0\0\0\2")),
                Raises(RPE, "GOAWAY with error INTERNAL_ERROR"),
            ),
        ),
    ),
    row(
        "SETTINGS flood (12 000 frames)",
        (None, Side(raw(h2_frame(0x4, b"") * 12_000), Raises(RPE, "flooded the connection"))),
    ),
    row(
        "PING flood (12 000 frames)",
        (None, Side(raw(h2_frame(0x6, b"\0" * 8) * 12_000), Raises(RPE, "flooded the connection"))),
    ),
    row(
        "empty DATA flood (12 000 frames)",
        (
            None,
            Side(
                raw(
                    frames_headers([(":status", "200")], end=False)
                    + frames_data(b"", end=False) * 12_000
                ),
                Raises(RPE, "flooded the connection"),
            ),
        ),
    ),
    row(
        "PRIORITY frame for an open stream (deprecated, still legal)",
        (
            None,
            Side(
                raw(
                    frames_headers(OK_HEAD, end=False)
                    + h2_frame(0x2, b"\0\0\0\0\x10", stream_id=1)
                    + frames_data(b"ok"),
                    keep_open=True,
                ),
                delivers(
                    "the response; the frame is ignored (RFC 9113 §5.3.2)", b"ok", connections=1
                ),
            ),
        ),
    ),
    row(
        "PRIORITY flood (12 000 frames)",
        (
            None,
            Side(
                raw(
                    frames_headers([(":status", "200")], end=False)
                    + h2_frame(0x2, b"\0\0\0\0\x10", stream_id=1) * 12_000
                ),
                Raises(RPE, "flooded the connection"),
            ),
        ),
    ),
    row(
        "RST_STREAM(REFUSED_STREAM) on every stream",
        (
            None,
            Side(
                ResetStream(h2.errors.ErrorCodes.REFUSED_STREAM),
                Raises(tr.StreamReset, "REFUSED_STREAM"),
            ),
        ),
        session={"retries": tr.Retry(unprocessed=3, backoff_factor=0)},
    ),
    row(
        "CONTINUATION flood",
        (
            None,
            Side(
                raw(
                    h2_frame(0x1, hpack.Encoder().encode([(":status", "200")]), stream_id=1)
                    + h2_frame(0x9, b"\0" * 1000, stream_id=1) * 2000
                ),
                Raises(RPE, "Too many continuation frames"),
            ),
        ),
    ),
]

DECODING = [
    row(
        f"{coding} bomb ({what})",
        both(bomb(coding), bomb(coding), Raises(tr.DecodingError, "ratio|bomb|limit")),
    )
    for coding, what in [
        ("gzip, gzip", "1.8 KB → 1 GiB"),
        ("br", "1.6 KB → 1 GiB"),
        ("zstd", "32 KB → 1 GiB"),
    ]
] + [
    row(
        f"corrupt {coding} data",
        both(
            Reply(200, body=b"this is not compressed", headers=[("content-encoding", coding)]),
            Reply(200, body=b"this is not compressed", headers=[("content-encoding", coding)]),
            Raises(tr.DecodingError, coding),
        ),
    )
    for coding in ("gzip", "br", "zstd")
]


def redirect(location: bytes) -> bytes:
    return h1_head(b"Location: " + location, b"Content-Length: 0", status=b"302 Found")


def redirect_h2(location: str) -> Reply:
    return Reply(302, headers=[("location", location)])


REDIRECTS = [
    row(
        "redirect loop",
        both(
            Reply(302, headers=[("location", "/bad")]),
            redirect_h2("/bad"),
            Raises(tr.TooManyRedirects, "redirect loop: .* which was already requested"),
        ),
    ),
    row(
        "redirect chain longer than max_redirects",
        both(
            [Reply(302, headers=[("location", f"/bad?{hop}")]) for hop in range(1, 5)],
            [redirect_h2(f"/bad?{hop}") for hop in range(1, 5)],
            Raises(tr.TooManyRedirects, "max_redirects=3"),
        ),
        session={"max_redirects": 3},
    ),
    row(
        "redirect to an unsupported scheme",
        both(
            Reply(302, headers=[("location", "ftp://example.org/")]),
            redirect_h2("ftp://example.org/"),
            Raises(tr.InvalidURL, "unsupported URL scheme 'ftp'"),
        ),
    ),
    row(
        "invalid UTF-8 in a redirect Location",
        both(
            raw(redirect(b"/\xff\xfe")),
            raw(
                h2_frame(
                    0x1,
                    hpack.Encoder().encode([(b":status", b"302"), (b"location", b"/\xff\xfe")]),
                    stream_id=1,
                    flags=0x5,
                )
            ),
            Raises(RPE, r"Location b'/\\xff\\xfe' is not UTF-8"),
        ),
    ),
]

SLOW = [
    row(
        "server that never answers",
        both(
            Reply(200, no_response=True),
            Reply(200, no_response=True),
            Raises(tr.ReadTimeout, "no response data within 0.5s"),
        ),
        session={"timeout": tr.Timeout(read=0.5)},
    ),
    row(
        "server that never reads the upload",
        (
            Side(
                Reply(200, no_response=True, read_body=False),
                Raises(tr.WriteTimeout, "took over 0.5s"),
            ),
            Side(
                Reply(200, no_response=True),
                Raises(tr.WriteTimeout, "took over 0.5s"),
                setup=lambda server: server.pause_window_updates(),
            ),
        ),
        session={"timeout": tr.Timeout(write=0.5)},
        attempt="upload",
    ),
    row(
        "server that trickles a byte every 0.2 s (under the read timeout)",
        both(
            Reply(200, body=b"x" * 50, trickle=0.2),
            Reply(200, body=b"x" * 50, trickle=0.2),
            Raises(tr.TotalTimeout, r"Timeout.total=1.0s"),
        ),
        session={"timeout": tr.Timeout(read=0.5, total=1.0)},
    ),
]

CASES: list[BadInput] = FRAMING + HEADERS + H2_ONLY + DECODING + REDIRECTS + SLOW


@dataclass(frozen=True)
class TLSBadInput:
    """A server certificate or TLS setup the client must refuse. *context*
    makes the server's SSLContext from the CA the client trusts."""

    name: str
    context: Callable[[trustme.CA], ssl.SSLContext]
    outcome: Raises


def _server_context(cert: trustme.LeafCert) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    return context


def _self_signed(_: trustme.CA) -> ssl.SSLContext:
    stranger = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    with stranger.cert_pem.tempfile() as cert, stranger.private_key_pem.tempfile() as key:
        context.load_cert_chain(cert, key)
    return context


def _tls_1_1_only(ca: trustme.CA) -> ssl.SSLContext:
    context = _server_context(ca.issue_cert("127.0.0.1"))
    with warnings.catch_warnings():  # that TLS 1.1 is deprecated is the point
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_1
    return context


_DAY = datetime.timedelta(days=1)
_NOW = datetime.datetime.now(datetime.UTC)
NOT_TRUSTED = "certificate is not trusted"

TLS_CASES = [
    TLSBadInput(
        "expired certificate",
        lambda ca: _server_context(
            ca.issue_cert("127.0.0.1", not_before=_NOW - 2 * _DAY, not_after=_NOW - _DAY)
        ),
        Raises(tr.TLSError, "certificate has expired"),
    ),
    TLSBadInput(
        "certificate not valid yet",
        lambda ca: _server_context(
            ca.issue_cert("127.0.0.1", not_before=_NOW + _DAY, not_after=_NOW + 2 * _DAY)
        ),
        Raises(tr.TLSError, "not valid yet"),
    ),
    TLSBadInput(
        "certificate for another host",
        lambda ca: _server_context(ca.issue_cert("example.org")),
        Raises(tr.TLSError, "not valid for host '127.0.0.1'"),
    ),
    TLSBadInput("self-signed certificate", _self_signed, Raises(tr.TLSError, NOT_TRUSTED)),
    TLSBadInput(
        "certificate from an unknown CA",
        lambda _: _server_context(trustme.CA().issue_cert("127.0.0.1")),
        Raises(tr.TLSError, NOT_TRUSTED),
    ),
    TLSBadInput(
        "server that speaks only TLS 1.1",
        _tls_1_1_only,
        Raises(tr.TLSError, "TLS handshake with .* failed: .*TLS 1.2"),
    ),
]


# -- the docs table -------------------------------------------------------------------------------


def describe(side: Side | None) -> str:
    if side is None:
        return "—"
    outcome = side.outcome
    if isinstance(outcome, Delivers):
        return f"accepted: {outcome.what}"
    return f"`{outcome.error.__name__}`: /{outcome.match}/".replace("|", "\\|")


def render_table() -> str:
    lines = ["| Bad input | HTTP/1.1 | HTTP/2 |", "|---|---|---|"]
    lines += [f"| {case.name} | {describe(case.h1)} | {describe(case.h2)} |" for case in CASES]
    for tls in TLS_CASES:
        outcome = describe(Side(Reply(200), tls.outcome))
        lines.append(f"| TLS: {tls.name} | {outcome} | {outcome} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render_table(), end="")
