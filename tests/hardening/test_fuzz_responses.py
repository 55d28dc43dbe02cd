"""Fuzz: random and mutated responses through a real loopback socket.

A raw TCP server writes what hypothesis draws, HTTP/1.1 bytes (valid
responses mutated: bytes flipped, inserted, deleted, lines repeated, the
whole cut short) or HTTP/2 frames (valid and broken, with lying lengths, on
any stream), then closes or stays silent. Whatever it sends, the client must
either return a response whose body reads, or raise a documented
``trio_requests.RequestError``; never another exception, never a hang (each
example is bounded in virtual and in real time); and afterwards the pool is
clean and the same Session still works against a good server.

``HYPOTHESIS_PROFILE=slow`` runs 2000 examples of each instead of 100.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from functools import partial

import hpack
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import trio_requests as tr
from tests.helpers import assert_pool_clean, within_real_time
from trio_requests.testing import Reply, h2_frame, open_h2_server, open_h11_server

#: Real-time bound per example: virtual time hides a busy loop, this does not.
REAL_TIME_BOUND = 20.0

H1_RESPONSES = [
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n",
    b"HTTP/1.1 302 Found\r\nLocation: /next\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
    b"HTTP/1.0 200 OK\r\n\r\nuntil close",
    b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 25\r\n\r\n"
    b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff\xcbH\xcd\xc9\xc9\x07\x00\x86\xa6\x106\x05\x00\x00\x00",
]


@st.composite
def mutated(draw: st.DrawFn, data: bytes) -> bytes:
    """*data* after a few random edits."""
    out = bytearray(data)
    for _ in range(draw(st.integers(0, 4))):
        where = draw(st.integers(0, len(out)))
        edit = draw(st.sampled_from(["flip", "insert", "delete", "repeat"]))
        if edit == "flip" and where < len(out):
            out[where] ^= draw(st.integers(1, 255))
        elif edit == "insert":
            out[where:where] = draw(st.binary(min_size=1, max_size=8))
        elif edit == "delete":
            del out[where : where + draw(st.integers(1, 8))]
        else:
            end = out.find(b"\n", where) + 1 or len(out)
            out[end:end] = out[where:end]
    if draw(st.booleans()):
        out = out[: draw(st.integers(0, len(out)))]
    return bytes(out)


def h1_payloads() -> st.SearchStrategy[bytes]:
    valid = st.sampled_from(H1_RESPONSES)
    return st.one_of(valid.flatmap(mutated), st.binary(max_size=200), valid)


HEADER_FIELDS = st.lists(
    st.sampled_from(
        [
            (":status", "200"),
            (":status", "404"),
            (":status", "103"),
            (":status", "x"),
            (":path", "/"),
            ("content-length", "5"),
            ("content-length", "-1"),
            ("content-encoding", "gzip"),
            ("connection", "close"),
            ("X-Upper", "1"),
            ("x-a", "a\r\nb"),
            ("location", "/next"),
            ("x{y", "1"),  # not a token, which h2 lets through: must not look like our error
        ]
    ),
    max_size=5,
)


@st.composite
def h2_frames(draw: st.DrawFn) -> bytes:
    kind = draw(st.one_of(st.integers(0, 10), st.integers(0, 255)))
    stream_id = draw(st.sampled_from([0, 1, 1, 1, 3, 2**31 - 1]))
    payload = draw(
        st.one_of(
            HEADER_FIELDS.map(lambda fields: hpack.Encoder().encode(fields)),
            st.binary(max_size=40),
            st.just(b"hello"),
        )
    )
    flags = draw(st.sampled_from([0, 0x1, 0x4, 0x5, 0x8, 0x20, 0xFF]))
    length = draw(st.one_of(st.none(), st.integers(0, 2**24 - 1)))
    return h2_frame(kind, payload, stream_id=stream_id, flags=flags, length=length)


def good_h2_response() -> bytes:
    block = hpack.Encoder().encode([(":status", "200"), ("content-length", "5")])
    return h2_frame(0x1, block, stream_id=1, flags=0x4) + h2_frame(
        0x0, b"hello", stream_id=1, flags=0x1
    )


@st.composite
def h2_payloads(draw: st.DrawFn) -> bytes:
    preface = draw(st.sampled_from([h2_frame(0x4, b""), h2_frame(0x4, b""), b"", b"\0" * 9]))
    frames = draw(st.lists(h2_frames(), max_size=6))
    if draw(st.booleans()):
        frames.insert(draw(st.integers(0, len(frames))), good_h2_response())
    return preface + b"".join(frames)


@dataclass(frozen=True)
class Script:
    protocol: str
    payload: bytes
    keep_open: bool


async def serve(script: Script, stream: trio.SocketStream) -> None:
    """Read and discard whatever comes; write the payload; close, or wait
    for the client to give up."""
    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
        async with stream, trio.open_nursery() as nursery:
            nursery.start_soon(_discard, stream)
            await stream.send_all(script.payload)
            if not script.keep_open:
                nursery.cancel_scope.cancel()


async def _discard(stream: trio.SocketStream) -> None:
    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
        async for _ in stream:
            pass


async def exchange(script: Script) -> None:
    """One fuzzed response, then one good one, on the same Session."""
    h2 = script.protocol == "h2"
    opener = open_h2_server if h2 else open_h11_server
    async with opener() as good, trio.open_nursery() as nursery:
        good.route("GET", "/", Reply(200, body=b"good"))
        listeners = await nursery.start(partial(trio.serve_tcp, partial(serve, script), 0))
        port = listeners[0].socket.getsockname()[1]
        async with tr.Session(http2_prior_knowledge=h2, timeout=5) as session:
            with contextlib.suppress(tr.RequestError):
                response = await session.get(f"http://127.0.0.1:{port}/")
                assert isinstance(response.content, bytes) and 100 <= response.status_code < 1000
            assert_pool_clean(session)
            assert (await session.get(good.url + "/")).content == b"good"
            assert_pool_clean(session)
        nursery.cancel_scope.cancel()


async def bounded(script: Script) -> None:
    with trio.fail_after(300):  # virtual seconds: a hang
        await within_real_time(REAL_TIME_BOUND, partial(exchange, script))


def run(script: Script) -> None:
    trio.run(bounded, script, clock=trio.testing.MockClock(autojump_threshold=0))


FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(payload=h1_payloads(), keep_open=st.booleans())
def test_http11_fuzzed_responses_raise_only_documented_errors(
    payload: bytes, keep_open: bool
) -> None:
    run(Script("h1", payload, keep_open))


@FUZZ
@given(payload=h2_payloads(), keep_open=st.booleans())
def test_http2_fuzzed_frames_raise_only_documented_errors(payload: bytes, keep_open: bool) -> None:
    run(Script("h2", payload, keep_open))


async def test_a_trailer_name_h2_lets_through_is_delivered_not_refused_as_ours() -> None:
    """Found by this fuzzer: fields a server sends are taken as its parser
    accepted them; only the fields *we* send are checked as tokens."""
    fields = hpack.Encoder()
    payload = (
        h2_frame(0x1, fields.encode([(":status", "200")]), stream_id=1, flags=0x4)
        + h2_frame(0x0, b"ok", stream_id=1)
        + h2_frame(0x1, fields.encode([("x{y", "1")]), stream_id=1, flags=0x5)
    )
    async with open_h2_server() as server:
        server.route("GET", "/", Reply(200, raw=payload))
        async with tr.Session(http2_prior_knowledge=True) as session:
            response = await session.get(server.url + "/")
    assert response.content == b"ok"
    assert response.trailers["x{y"] == "1"
