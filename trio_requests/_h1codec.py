"""The common HTTP/1.1 exchange without h11: a strict subset, h11 for the rest.

Most exchanges are alike: a request with its body in memory, answered by a
``HTTP/1.1`` response framed by one Content-Length. For those, h11's
per-field validation and event machinery were a quarter of a request's
time. This module writes such a request head and reads such a response head
with a few whole-block regular expressions, as strict as h11 (the patterns
are h11's own grammar, ``h11/_abnf.py``, spelled out for latin-1 text):

* :func:`request_head` returns the exact bytes h11 would write, or None
  for anything h11 would refuse or that changes the connection's state
  (``Connection``, ``Upgrade``, ``Expect``, ``Transfer-Encoding``, a
  Content-Length other than the body's, ``HEAD``/``CONNECT``): the driver
  then sends the request through h11, which raises its usual errors.
* :func:`parse_head` accepts a response head only if h11 would accept it
  and frame its body by that one Content-Length; anything else (1xx, 204,
  304, chunked, HTTP/1.0, obs-fold, bare LF, a malformed or oversize head)
  is :data:`FALLBACK`: the driver hands the bytes to h11, which parses them,
  or raises exactly the error it always raised.

``tests/client/test_h1codec.py`` checks both against h11 with hypothesis.
"""

from __future__ import annotations

import re
from typing import Final, NamedTuple

from ._headers import SECRET_FIELDS, Headers

# h11's grammar (h11/_abnf.py) over latin-1 text: its bytes class [^\x00\s]
# is spelled out, since \s means more in a str pattern than in a bytes one.
# A field value (vchars, inner runs of SP/HTAB) with the optional whitespace
# around it is any run of vchars, SP and HTAB: the value is that run
# stripped, so the patterns below need no nested repetition (the re engine
# walks a plain character class several times faster).
_TOKEN = r"[-!#$%&'*+.^_`|~0-9a-zA-Z]+"
_VCHAR = r"[\x01-\x08\x0e-\x1f\x21-\xff]"
_VCHAR_OR_WS = r"[^\x00\n\r\x0b\x0c]"
#: a field value alone: empty, or starting and ending with a vchar.
_CONTENT = rf"{_VCHAR}(?:{_VCHAR_OR_WS}*{_VCHAR})?"
#: our header block (see _valid): h11 checks its names and values one by one.
_OUT_FIELDS = re.compile(rf"(?:{_TOKEN}: (?:{_CONTENT})?\r\n)*")
_TARGET = re.compile(r"[\x21-\x7e]+")
#: a response head: status line, fields, blank line (CRLF only).
_HEAD = re.compile(
    rf"HTTP/1\.1 ([0-9]{{3}})(?: ({_VCHAR_OR_WS}*))?\r\n((?:{_TOKEN}:{_VCHAR_OR_WS}*\r\n)*)\r\n"
)
#: one field of a head _HEAD matched: its name and its value, unstripped.
_FIELD = re.compile(rf"({_TOKEN}):({_VCHAR_OR_WS}*)\r\n")
#: where h11 ends a head (h11/_receivebuffer.py): bare LF lines included.
_BLANK_LINE = re.compile(rb"\n\r?\n")
#: request fields that change framing or connection state: h11's business.
_STATEFUL = frozenset({"connection", "upgrade", "expect", "transfer-encoding"})
#: Header blocks :func:`_block` built, with their Content-Length value, by
#: their fields: a client sends the same few over and over (the Session's
#: headers and a Host), and a dict lookup costs a fraction of building and
#: matching the block. Process-wide, so never fields with credentials;
#: emptied when full.
_BLOCKS: dict[tuple[tuple[str, str, str], ...], tuple[str, str | None]] = {}
_BLOCKS_MAX = 256
#: h11 refuses a Content-Length of more digits (CONTENT_LENGTH_MAX_DIGITS).
_MAX_LENGTH_DIGITS = 20


class Fallback:
    """The type of :data:`FALLBACK`."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "FALLBACK"


#: :func:`parse_head`'s answer for a head only h11 may judge.
FALLBACK: Final = Fallback()


class Head(NamedTuple):
    """A final response head: one :func:`parse_head` accepted, or one the
    driver took from h11 (one type for both: a response allocates one).

    Attributes:
        length: the body's Content-Length (:func:`parse_head`'s framing;
            h11 frames the bodies of the heads it parses itself).
        keep_alive: False if the server said ``Connection: close`` (as
            *length*).
    """

    status_code: int
    reason: str
    http_version: str
    headers: Headers
    length: int = 0
    keep_alive: bool = True


def request_head(method: str, target: str, headers: Headers, content: bytes | None) -> bytes | None:
    """The request line and header block for a request whose body is
    *content* (sent right after), byte for byte as h11 writes them (Host
    first); None if h11 must send this request (see the module docstring)."""
    if method == "HEAD" or method == "CONNECT" or _TARGET.fullmatch(target) is None:
        return None
    fields = tuple(headers._items)
    known = _BLOCKS.get(fields)
    if known is None:
        known = _block(fields)
        if known is None:
            return None
    block, length = known
    if not _frames(length, len(content) if content else 0):
        return None
    return f"{method} {target} HTTP/1.1\r\n{block}\r\n".encode("latin-1")


def _block(fields: tuple[tuple[str, str, str], ...]) -> tuple[str, str | None] | None:
    """The header block h11 would write for *fields* (Host first) and their
    Content-Length value (None: absent); None if h11 must send them. Kept in
    :data:`_BLOCKS` unless a field holds credentials."""
    host = None
    lines = []
    length = None
    secret = False
    for key, name, value in fields:
        line = f"{name}: {value}\r\n"
        if key == "host":
            if host is not None:
                return None
            host = line
        elif key in _STATEFUL or (key == "content-length" and length is not None):
            return None
        else:
            if key == "content-length":
                length = value
            elif key in SECRET_FIELDS:
                secret = True
            lines.append(line)
    if host is None:
        return None
    block = host + "".join(lines)
    if not _valid(block, len(lines) + 1):
        return None
    if not secret:
        if len(_BLOCKS) >= _BLOCKS_MAX:
            _BLOCKS.clear()
        _BLOCKS[fields] = (block, length)
    return block, length


def _valid(block: str, count: int) -> bool:
    """Would h11 send the *count* fields of *block* (``name: value CRLF``
    each)? One match over the block; the counts first prove that no name or
    value holds a CR LF or a ": " of its own, so the match cannot read one
    field as two or a bad name into a value. (A value with ": " in it is
    declined: h11 sends that request.)"""
    if block.count("\r\n") != count or block.count(": ") != count:
        return False
    return _OUT_FIELDS.fullmatch(block) is not None


def _frames(length: str | None, size: int) -> bool:
    """Does the Content-Length field *length* (None: absent) frame a body of
    *size* bytes the way h11 would send it?"""
    if length is None:
        return size == 0
    return length == str(size)


def head_end(data: bytes, limit: int) -> int | Fallback | None:
    """Where the response head in *data* ends (the index after its blank
    line); None if more data is needed; :data:`FALLBACK` where h11 would
    decide now: a blank line that is not CRLF CRLF, a first byte no status
    line starts with, or an incomplete head over *limit* bytes."""
    found = _BLANK_LINE.search(data)
    if found is None:
        if data and (data[0] < 0x21 or len(data) > limit):
            return FALLBACK
        return None
    start, end = found.span()
    if end - start != 3 or data[start - 1] != 0x0D:
        return FALLBACK
    return end


def parse_head(
    data: bytes, end: int, max_header_bytes: int, max_header_count: int
) -> Head | Fallback:
    """The head ``data[:end]`` (*end* from :func:`head_end`), if it is one
    the fast path takes: ``HTTP/1.1``, a final status with a body, exactly
    one Content-Length, no Transfer-Encoding, within the limits. Else
    :data:`FALLBACK`, and h11 parses it (or refuses it) as before."""
    text = data[:end].decode("latin-1")
    matched = _HEAD.fullmatch(text)
    if matched is None:
        return FALLBACK
    status_text, reason, block = matched.groups()
    status = int(status_text)
    if status < 200 or status == 204 or status == 304:
        return FALLBACK
    fields = _FIELD.findall(block)
    if not _within(end, len(fields), max_header_bytes, max_header_count):
        return FALLBACK
    items = []
    for name, value in fields:  # a loop: cheaper than a comprehension's call
        items.append((name.lower(), name, value.strip(" \t")))
    framing = _framing(items)
    if framing is None:
        return FALLBACK
    length, keep_alive = framing
    return Head(status, reason or "", "HTTP/1.1", Headers._from_items(items), length, keep_alive)


def _within(end: int, count: int, max_header_bytes: int, max_header_count: int) -> bool:
    """Does a head of *end* bytes and *count* fields keep to the limits? The
    driver's head-size rule counts len(name) + len(value) + 4 per field and
    len(reason) + 15; this bound is never below it."""
    return count <= max_header_count and end + count + 1 <= max_header_bytes


class HeadParser:
    """:func:`parse_head` for one connection, remembering the last head it
    took: a server answers alike requests with byte-identical heads (Date
    changes once a second), and comparing the bytes costs a fraction of
    parsing them. Per connection, so no head outlives its connection or is
    seen by another Session."""

    __slots__ = ("_head", "_items", "_raw")

    def __init__(self) -> None:
        self._raw = b""  # the last head taken, as received
        self._head: Head | None = None  # what it parsed to
        #: its fields, kept apart: the caller may change the Headers it got
        self._items: tuple[tuple[str, str, str], ...] = ()

    def end(self, data: bytes, limit: int) -> int | Fallback | None:
        """:func:`head_end`, without the search for a head that starts as
        the last one taken: its first blank line is that one's end."""
        if self._raw and data.startswith(self._raw):
            return len(self._raw)
        return head_end(data, limit)

    def parse(
        self, data: bytes, end: int, max_header_bytes: int, max_header_count: int
    ) -> Head | Fallback:
        """:func:`parse_head`'s answer, with fresh Headers each time."""
        last = self._head
        if (
            last is not None
            and len(self._raw) == end
            and data.startswith(self._raw)
            and _within(end, len(self._items), max_header_bytes, max_header_count)
        ):
            headers = Headers._from_items(list(self._items))
            return Head(
                last.status_code, last.reason, "HTTP/1.1", headers, last.length, last.keep_alive
            )
        head = parse_head(data, end, max_header_bytes, max_header_count)
        if isinstance(head, Head):
            self._raw = data[:end]
            self._head = head
            self._items = tuple(head.headers._items)
        return head


def _framing(items: list[tuple[str, str, str]]) -> tuple[int, bool] | None:
    """(Content-Length, keep-alive) of a head with exactly one plain
    Content-Length and no Transfer-Encoding; None otherwise."""
    length = None
    keep_alive = True
    for key, _, value in items:
        if key == "content-length":
            if length is not None or not _digits(value):
                return None
            length = int(value)
        elif key == "transfer-encoding":
            return None
        elif key == "connection" and _closes(value):
            keep_alive = False
    if length is None:
        return None
    return length, keep_alive


def _digits(value: str) -> bool:
    """h11's Content-Length rule: ASCII digits (str.isdigit alone would take
    latin-1's superscripts), at most 20 of them."""
    return value.isascii() and value.isdigit() and len(value) <= _MAX_LENGTH_DIGITS


def _closes(value: str) -> bool:
    """Does a Connection field's value hold the token ``close``, as h11's
    get_comma_header reads it (split at commas, each token stripped of
    bytes whitespace, of which a parsed value holds only SP and HTAB)? The
    substring test first: most values (``keep-alive``) have none."""
    if "close" not in value.lower():
        return False
    return "close" in [token.strip(" \t").lower() for token in value.split(",")]
