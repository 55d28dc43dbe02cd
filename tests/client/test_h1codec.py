"""The HTTP/1.1 fast path (trio_requests._h1codec) against h11 itself.

The fast path may decline anything (h11 then handles it, as before), but
what it accepts it must treat exactly as h11 would: the same request bytes,
the same response head, the same body framing and keep-alive decision; and
it must never accept what h11 refuses, nor wait for data where h11 would
already have decided.
"""

from __future__ import annotations

import h11
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_requests._h1codec import (
    _BLOCKS,
    FALLBACK,
    Head,
    HeadParser,
    head_end,
    parse_head,
    request_head,
)
from trio_requests._headers import Headers

#: bytes that make the grammar's edge cases: controls, whitespace, separators, latin-1
EDGY = '\x00\x01\x08\t\n\x0b\x0c\r\x0e\x1f \x7f\x80\xa0\xb2\xff:;,"()/=@é'
TEXT = st.text(alphabet=st.sampled_from("abcXYZ09-_.!~" + EDGY), max_size=12)
#: mostly fields h11 takes, so that both answers are well exercised
TOKENS = st.text(alphabet=st.sampled_from("abcXYZ09-_.!~|`"), min_size=1, max_size=8)
VCHARS = st.text(alphabet=st.sampled_from("az09 \t,;=/\x80\xff\x01"), max_size=8)
NAMES = st.one_of(
    TOKENS,
    st.sampled_from(
        ["Host", "host", "Accept", "X-A", "Content-Length", "content-length", "Connection"]
    ),
    st.sampled_from(["Upgrade", "Expect", "Transfer-Encoding"]),
    TEXT,
)
VALUES = st.one_of(
    VCHARS.map(lambda v: v.strip(" \t")),
    st.sampled_from(["", "0", "5", "05", "close", "chunked", "a b", " a", "a ", "a\tb"]),
    TEXT,
)
TARGETS = st.one_of(st.sampled_from(["/", "/a?b=c", "http://x/y", "*"]), TEXT)
METHODS = st.sampled_from(["GET", "POST", "PUT", "HEAD", "CONNECT", "PATCH", "X"])
CONTENTS = st.one_of(st.none(), st.sampled_from([b"", b"hello"]))


def h11_request(
    method: str, target: str, fields: list[tuple[str, str]], content: bytes | None
) -> tuple[bytes, h11.Connection] | None:
    """What h11 writes for this request (head, body, end), or None if it refuses."""
    conn = h11.Connection(h11.CLIENT)
    try:
        raw = [(n.encode("latin-1"), v.encode("latin-1")) for n, v in fields]
        data = conn.send(h11.Request(method=method, target=target, headers=raw)) or b""
        if content:
            data += conn.send(h11.Data(data=content)) or b""
        data += conn.send(h11.EndOfMessage()) or b""
    except (h11.LocalProtocolError, UnicodeEncodeError):
        return None
    return data, conn


@settings(max_examples=1000)
@given(
    method=METHODS,
    target=TARGETS,
    fields=st.lists(st.tuples(NAMES, VALUES), max_size=4),
    host_first=st.booleans(),
    content=CONTENTS,
)
def test_request_head_is_h11s_bytes_or_declined(
    method: str,
    target: str,
    fields: list[tuple[str, str]],
    host_first: bool,
    content: bytes | None,
) -> None:
    if host_first:  # as a Session sends it
        fields = [("Host", "example.com"), *fields]
        if content:
            fields.append(("Content-Length", str(len(content))))
    headers = Headers._from_items([(n.lower(), n, v) for n, v in fields])
    ours = request_head(method, target, headers, content)
    # Asked again, the block may come from _BLOCKS: the same answer.
    assert request_head(method, target, headers, content) == ours
    if ours is None:
        return
    theirs = h11_request(method, target, fields, content)
    assert theirs is not None, "the fast path accepted a request h11 refuses"
    data, conn = theirs
    assert ours + (content or b"") == data
    assert conn.our_state is h11.DONE  # no Connection: close, no upgrade, no 100-continue


def test_fields_that_only_look_valid_together_are_declined() -> None:
    """Found by the test above: a name holding ": ", or a value holding
    CR LF, joined with the rest would read as two valid fields."""
    for name, value in [("0: ", "0"), ("X", "a\r\nY: b"), ("X", "a\0b\0c"), ("x{y", "1")]:
        headers = Headers._from_items([("host", "Host", "h"), (name.lower(), name, value)])
        assert request_head("GET", "/", headers, None) is None


def test_a_session_request_takes_the_fast_path() -> None:
    headers = Headers({"Host": "example.com", "User-Agent": "t", "Accept": "*/*"})
    assert request_head("GET", "/x", headers, None) == (
        b"GET /x HTTP/1.1\r\nHost: example.com\r\nUser-Agent: t\r\nAccept: */*\r\n\r\n"
    )
    headers["Content-Length"] = "5"
    assert request_head("POST", "/x", headers, b"hello") is not None
    assert request_head("POST", "/x", headers, b"hell") is None
    assert request_head("HEAD", "/x", Headers({"Host": "h"}), None) is None


GOOD_HEADS = [
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
    b"HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n",
    b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\nConnection: Keep-Alive, Close\r\n\r\nno",
    b"HTTP/1.1 200\r\nContent-Length: 1\r\nX-E:\r\nX-T: a \t b\t \r\n\r\n!",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
    b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok",
    b"HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n",
]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A known head after a few random edits, or random bytes."""
    out = bytearray(draw(st.sampled_from(GOOD_HEADS[:4] * 3 + GOOD_HEADS[4:])))
    for _ in range(draw(st.integers(0, 2))):
        where = draw(st.integers(0, len(out)))
        edit = draw(st.sampled_from(["flip", "insert", "delete"]))
        if edit == "flip" and where < len(out):
            out[where] = draw(st.sampled_from(b"\x00\t\n\r \x0b:5a\x80\xb2"))
        elif edit == "insert":
            out[where:where] = draw(st.sampled_from([b"\r\n", b" ", b"\x00", b"1", b":", b"\xff"]))
        elif edit == "delete":
            del out[where : where + draw(st.integers(1, 3))]
    if draw(st.integers(0, 3)) == 0:
        out = out[: draw(st.integers(0, len(out)))]
    return bytes(out)


def h11_after_get(data: bytes, limit: int) -> h11.Connection:
    conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=limit)
    conn.send(h11.Request(method="GET", target="/", headers=[("Host", "h")]))
    conn.send(h11.EndOfMessage())
    if data:  # b"" would tell h11 the connection closed
        conn.receive_data(data)
    return conn


@settings(max_examples=1000)
@given(
    data=st.one_of(mutated(), st.binary(max_size=60)),
    limit=st.integers(20, 400),
    max_count=st.integers(0, 10),
)
def test_response_head_is_h11s_or_declined(data: bytes, limit: int, max_count: int) -> None:
    end = head_end(data, limit)
    conn = h11_after_get(data, limit)
    if end is None:  # the fast path waits: h11 must wait too
        assert conn.next_event() is h11.NEED_DATA
        return
    if end is FALLBACK:
        return
    assert isinstance(end, int)
    head = parse_head(data, end, limit, max_count)
    if not isinstance(head, Head):
        return
    event = conn.next_event()  # raises if h11 refuses what we accepted
    assert isinstance(event, h11.Response)
    assert event.http_version == b"1.1"
    assert (event.status_code, event.reason.decode("latin-1")) == (head.status_code, head.reason)
    assert [(n.decode("latin-1"), v.decode("latin-1")) for n, v in event.headers.raw_items()] == [
        (n, v) for _, n, v in head.headers._items
    ]
    assert len(event.headers) <= max_count
    size = len(event.reason) + 15 + sum(len(n) + len(v) + 4 for n, v in event.headers.raw_items())
    assert size <= limit  # the driver's head-size rule holds for what we take
    conn.receive_data(data[end:] + b"\0" * head.length)
    body = 0
    while not isinstance(event := conn.next_event(), h11.EndOfMessage):
        assert isinstance(event, h11.Data)
        body += len(event.data)
    assert body == head.length
    assert (conn.their_state is h11.DONE) == head.keep_alive


def test_a_plain_head_is_taken_with_its_framing() -> None:
    data = GOOD_HEADS[2]
    end = head_end(data, 1000)
    assert end == len(data) - 2
    head = parse_head(data, end, 1000, 100)
    assert isinstance(head, Head)
    assert (head.status_code, head.reason) == (404, "Not Found")
    assert (head.length, head.keep_alive) == (2, False)
    assert head.headers["connection"] == "Keep-Alive, Close"


@pytest.mark.parametrize(
    "fields",
    [
        "Connection: close",
        "Connection: CLOSE",
        "Connection:close",
        "Connection: keep-alive,close",
        "Connection: keep-alive , \tclose\t",
        "Connection: close, keep-alive",
        "Connection: closed",
        "Connection: x-close",
        "Connection: close-x, y",
        "Connection: keep-alive\r\nConnection: close",
        "Connection: keep-alive\r\nX-Close: close",
        "X-A: b, close\r\nConnection: keep-alive",
    ],
)
def test_keep_alive_is_h11s_reading_of_the_connection_fields(fields: str) -> None:
    """A "close" anywhere but as a Connection token (another field, a longer
    token) must not end the connection; as one, anywhere, it must."""
    data = f"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n{fields}\r\n\r\n".encode()
    end = head_end(data, 1000)
    assert isinstance(end, int)
    head = parse_head(data, end, 1000, 100)
    assert isinstance(head, Head)
    conn = h11_after_get(data, 1000)
    assert isinstance(conn.next_event(), h11.Response)
    assert isinstance(conn.next_event(), h11.EndOfMessage)
    assert head.keep_alive == (conn.their_state is h11.DONE)


def test_heads_only_h11_may_judge_fall_back() -> None:
    for data in GOOD_HEADS[4:]:
        end = head_end(data, 1000)
        assert not isinstance(end, int) or parse_head(data, end, 1000, 100) is FALLBACK, data
        assert end is not None


def test_header_blocks_are_remembered_without_credentials() -> None:
    _BLOCKS.clear()
    plain = Headers({"Host": "h", "Accept": "*/*"})
    assert request_head("GET", "/", plain, None) is not None
    fields = (("host", "Host", "h"), ("accept", "Accept", "*/*"))
    assert {fields: ("Host: h\r\nAccept: */*\r\n", None)} == _BLOCKS
    for secret in ("Authorization", "Cookie", "Proxy-Authorization"):
        assert request_head("GET", "/", Headers({"Host": "h", secret: "s"}), None) is not None
    assert request_head("GET", "/", Headers({"Host": "h", "X": "a\x0bb"}), None) is None
    assert list(_BLOCKS) == [fields]
    # The same text as a remembered block, but one field whose value holds a
    # CR LF: the counts still refuse it.
    split = Headers._from_items([("host", "Host", "h\r\nAccept: */*")])
    assert request_head("GET", "/", split, None) is None
    # Remembered, the block still frames only the body its Content-Length says.
    sized = Headers({"Host": "h", "Content-Length": "2"})
    assert request_head("POST", "/", sized, b"ok") is not None
    assert request_head("POST", "/", sized, b"no!") is None
    assert request_head("POST", "/", sized, None) is None
    for n in range(300):  # bounded: emptied when full
        request_head("GET", "/", Headers({"Host": f"h{n}"}), None)
    assert 0 < len(_BLOCKS) <= 256


@settings(max_examples=300)
@given(
    heads=st.lists(st.sampled_from(GOOD_HEADS) | mutated(), min_size=1, max_size=6),
    limits=st.lists(st.tuples(st.integers(20, 400), st.integers(0, 10)), min_size=6, max_size=6),
)
def test_a_head_parser_answers_as_parse_head(
    heads: list[bytes], limits: list[tuple[int, int]]
) -> None:
    """Remembered or not, every head (repeated, or under other limits) ends
    where head_end says and gets parse_head's answer, with Headers of its
    own."""
    parser = HeadParser()
    for data, (limit, max_count) in zip(heads, limits, strict=False):
        end = head_end(data, limit)
        assert parser.end(data + b"body", limit) == head_end(data + b"body", limit)
        if not isinstance(end, int):
            continue
        expected = parse_head(data, end, limit, max_count)
        got = parser.parse(data + b"body", end, limit, max_count)
        assert got == expected
        if isinstance(got, Head):
            got.headers["x-changed"] = "by the caller"
