"""HTTP/2 faults a test declares up front: the *what* of :func:`open_h2_server`'s ``faults``.

Each fault is a frozen, keyword-only value; the per-connection driver
(``_h2_connection.py``) decides when it fires. Triggers count what the
connection received, so a schedule reads like a server's log: "after the
third stream, GOAWAY with last stream 3", "reset whichever stream asks for
``id=7``", "die instead of sending the 500th byte".

Every fault has ``connections``: the indices (accept order, as in
:attr:`ReceivedRequest.connection_index`) of the connections it applies to,
or None for all. A retry test usually wants the fault on connection 0 only,
so the replay on a new connection meets a well-behaved server.

Faults apply to HTTP/2 connections only; a connection that TLS ALPN made
HTTP/1.1 ignores them.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass

__all__ = [
    "ChangeSettings",
    "DropConnection",
    "GoAway",
    "H2Fault",
    "OutputMeter",
    "ResetRule",
    "SentGoAway",
    "h2_frame",
]

#: The largest stream id (RFC 9113 §5.1.1): the first GOAWAY of a graceful
#: shutdown names it, meaning "every stream you have sent so far" (§6.8).
MAX_STREAM_ID = 2**31 - 1


def _check(owner: str, name: str, value: float | None, *, below: int | None = None) -> None:
    if value is not None and (value < 0 or (below is not None and value >= below)):
        limit = f" and < {below}" if below is not None else ""
        raise ValueError(f"{owner}: {name} must be >= 0{limit}, not {value}")


def _frozen(connections: Collection[int] | None) -> frozenset[int] | None:
    return None if connections is None else frozenset(connections)


@dataclass(frozen=True, kw_only=True)
class GoAway:
    """Send GOAWAY once a connection has received ``after_streams`` streams.

    Attributes:
        after_streams: how many request streams (HEADERS) the connection
            receives first; the GOAWAY is decided as the last of them
            arrives, before any later stream of the same read is looked at.
            0 sends it right after the connection preface.
        last_stream_id: the highest stream the server will still answer.
            None: the highest stream received when the GOAWAY is decided
            (nginx's ``keepalive_requests``). The value sent is clamped to
            at most that highest stream (a server cannot promise streams it
            has not seen: the client could not tell them from refused ones)
            and at least the highest stream already being answered (an
            answer once begun cannot be taken back). Streams above it that
            the server had taken on but not begun to answer are abandoned
            (their tasks cancelled) and count as refused; streams above it
            that arrive later are reset with REFUSED_STREAM.
        error_code: 0 (NO_ERROR) is a graceful shutdown: streams up to
            ``last_stream_id`` are answered, and the connection closes once
            they are. Any other code closes the connection right after the
            frame (RFC 9113 §5.4.1).
        delay: seconds between the trigger and the GOAWAY (a ``trio.sleep``:
            virtual under ``autojump_clock``). Streams keep arriving meanwhile.
        two_step: the graceful shutdown of RFC 9113 §6.8: at the trigger, a
            first GOAWAY with last stream 2**31-1 and NO_ERROR ("stop opening
            streams"); after ``delay``, the real one, as described above.
        connections: the connection indices it applies to; None for all.
    """

    after_streams: int
    last_stream_id: int | None = None
    error_code: int = 0
    delay: float = 0.0
    two_step: bool = False
    connections: Collection[int] | None = None

    def __post_init__(self) -> None:
        _check("GoAway", "after_streams", self.after_streams)
        _check("GoAway", "last_stream_id", self.last_stream_id, below=2**31)
        _check("GoAway", "error_code", self.error_code, below=2**32)
        _check("GoAway", "delay", self.delay)
        object.__setattr__(self, "connections", _frozen(self.connections))


@dataclass(frozen=True, kw_only=True)
class ResetRule:
    """Reset the streams that match with RST_STREAM ``error_code``, instead of answering.

    Streams are matched as their HEADERS arrive, in order, and a matching
    one is reset (after ``delay``) without reading its body or consulting
    its route. Every condition given must hold; with none, every stream
    matches.

    A reset with REFUSED_STREAM or HTTP_1_1_REQUIRED is a refusal: the
    request lands in :attr:`H2Server.refused_requests`. Any other code
    counts the request as processed (:attr:`H2Server.requests`): the client
    cannot know how far the server got.

    Attributes:
        error_code: the RST_STREAM code (RFC 9113 §7).
        streams: stream ordinals on their connection: 1 for the first
            request stream the connection received, 2 for the second...
        path: the request path, without the query.
        query: one ``name=value`` pair the query string must contain, e.g.
            ``"id=7"`` for ``/items?id=7&x=1``.
        times: reset at most this many streams in all (then the rule is
            spent); None for no limit. ``times=1`` fails only a first try.
        delay: seconds to wait before the reset.
        connections: the connection indices it applies to; None for all.
    """

    error_code: int
    streams: Collection[int] | None = None
    path: str | None = None
    query: str | None = None
    times: int | None = None
    delay: float = 0.0
    connections: Collection[int] | None = None

    def __post_init__(self) -> None:
        _check("ResetRule", "error_code", self.error_code, below=2**32)
        _check("ResetRule", "times", self.times)
        _check("ResetRule", "delay", self.delay)
        if self.streams is not None:
            object.__setattr__(self, "streams", frozenset(self.streams))
        object.__setattr__(self, "connections", _frozen(self.connections))

    def matches(self, *, ordinal: int, target: str) -> bool:
        """Does a stream, the ``ordinal``-th of its connection, asking for ``target``, match?"""
        path, _, query = target.partition("?")
        return (
            (self.streams is None or ordinal in self.streams)
            and (self.path is None or path == self.path)
            and (self.query is None or self.query in query.split("&"))
        )


@dataclass(frozen=True, kw_only=True)
class DropConnection:
    """End the connection abruptly, without GOAWAY, at a chosen point of what it sends.

    Give exactly one of ``after_bytes`` and ``after_frames``. The connection
    sends up to that budget and is dropped the moment it would send more,
    so a budget inside a response cuts it mid-stream (``after_bytes`` may
    cut mid-frame). Streams in flight die with it.

    Attributes:
        after_bytes: bytes the connection may send, counted from its first
            (the server's SETTINGS), TLS excluded.
        after_frames: stream frames the connection may send: HEADERS, DATA,
            RST_STREAM... on any stream; connection-level frames (SETTINGS,
            PING, WINDOW_UPDATE on stream 0, GOAWAY) do not count.
        reset: abort with a TCP RST (the client's next read or write fails
            with ECONNRESET) instead of closing (TLS close_notify, then FIN).
        connections: the connection indices it applies to; None for all.
    """

    after_bytes: int | None = None
    after_frames: int | None = None
    reset: bool = False
    connections: Collection[int] | None = None

    def __post_init__(self) -> None:
        if (self.after_bytes is None) == (self.after_frames is None):
            raise ValueError("DropConnection: give exactly one of after_bytes and after_frames")
        _check("DropConnection", "after_bytes", self.after_bytes)
        _check("DropConnection", "after_frames", self.after_frames)
        object.__setattr__(self, "connections", _frozen(self.connections))


@dataclass(frozen=True, kw_only=True)
class ChangeSettings:
    """Send a SETTINGS frame once a connection has received ``after_streams`` streams.

    Attributes:
        after_streams: as for :class:`GoAway` (0: right after the preface).
        max_concurrent_streams: the new SETTINGS_MAX_CONCURRENT_STREAMS.
        initial_window_size: the new SETTINGS_INITIAL_WINDOW_SIZE, which
            moves the client's open upload windows by the difference (RFC
            9113 §6.9.2): a tiny value throttles uploads already under way.
        connections: the connection indices it applies to; None for all.
    """

    after_streams: int
    max_concurrent_streams: int | None = None
    initial_window_size: int | None = None
    connections: Collection[int] | None = None

    def __post_init__(self) -> None:
        _check("ChangeSettings", "after_streams", self.after_streams)
        _check("ChangeSettings", "max_concurrent_streams", self.max_concurrent_streams)
        _check("ChangeSettings", "initial_window_size", self.initial_window_size, below=2**31)
        if self.max_concurrent_streams is None and self.initial_window_size is None:
            raise ValueError("ChangeSettings: give at least one setting")
        object.__setattr__(self, "connections", _frozen(self.connections))


H2Fault = GoAway | ResetRule | DropConnection | ChangeSettings
"""Any fault :func:`open_h2_server` and :meth:`H2Server.add_faults` accept."""


def applies(fault: H2Fault, connection_index: int) -> bool:
    """Is ``fault`` meant for the connection with this index?"""
    return fault.connections is None or connection_index in fault.connections


@dataclass(frozen=True)
class SentGoAway:
    """A GOAWAY frame the server sent (:attr:`H2Server.goaways_sent`).

    Attributes:
        connection_index: the connection it went out on.
        last_stream_id: the last stream id it carried, as sent.
        error_code: its error code; 0 is NO_ERROR.
    """

    connection_index: int
    last_stream_id: int
    error_code: int


def h2_frame(
    frame_type: int,
    payload: bytes = b"",
    *,
    stream_id: int = 0,
    flags: int = 0,
    length: int | None = None,
) -> bytes:
    """The bytes of one HTTP/2 frame (RFC 9113 §4.1), free to break the rules.

    For malformed-frame tests: ``Reply(raw=h2_frame(0x0, b"x", stream_id=1,
    length=100))`` is a DATA frame whose header announces more payload than
    follows, and ``h2_frame(0x4, b"\\x00" * 5)`` a SETTINGS frame whose
    length is not a multiple of 6 (a FRAME_SIZE_ERROR). No check beyond the
    field widths is made.

    Args:
        frame_type: the type octet (0 DATA, 1 HEADERS, 3 RST_STREAM, 4 SETTINGS...).
        payload: the payload bytes, sent as they are.
        stream_id: the stream identifier (the reserved bit is left 0).
        flags: the flags octet.
        length: the length field; None for the real ``len(payload)``.

    Raises:
        ValueError: a field does not fit its width.
    """
    length = len(payload) if length is None else length
    _check("h2_frame", "length", length, below=2**24)
    _check("h2_frame", "frame_type", frame_type, below=256)
    _check("h2_frame", "flags", flags, below=256)
    _check("h2_frame", "stream_id", stream_id, below=2**31)
    header = length.to_bytes(3, "big") + bytes((frame_type, flags)) + stream_id.to_bytes(4, "big")
    return header + payload


class OutputMeter:
    """Counts what one connection sent and applies its :class:`DropConnection` budget.

    The connection hands over its output as segments: ``(bytes, framed)``,
    where framed bytes are whole HTTP/2 frames (h2's output, our GOAWAYs)
    and unframed ones are opaque (``Reply(raw=...)``: one piece, counted as
    bytes only).
    """

    def __init__(self) -> None:
        self.bytes_sent = 0
        self.frames_sent = 0  # stream frames only

    def take(
        self, segments: Sequence[tuple[bytes, bool]], drops: Sequence[DropConnection]
    ) -> tuple[bytes, DropConnection | None]:
        """The bytes to write, and the drop that stops the output, if one does."""
        out = bytearray()
        for piece, stream_frame in _pieces(segments):
            for drop in drops:
                if drop.after_bytes is not None and self.bytes_sent + len(piece) > drop.after_bytes:
                    keep = drop.after_bytes - self.bytes_sent
                    out += piece[: max(keep, 0)]
                    self.bytes_sent += max(keep, 0)
                    return bytes(out), drop
                if (
                    drop.after_frames is not None
                    and stream_frame
                    and self.frames_sent >= drop.after_frames
                ):
                    return bytes(out), drop
            out += piece
            self.bytes_sent += len(piece)
            self.frames_sent += stream_frame
        return bytes(out), None


def _pieces(segments: Sequence[tuple[bytes, bool]]) -> Iterator[tuple[bytes, bool]]:
    """Split framed segments into frames: ``(frame bytes, is a stream frame)``."""
    for data, framed in segments:
        if not framed:
            if data:
                yield data, False
            continue
        at = 0
        while at < len(data):
            end = at + 9 + int.from_bytes(data[at : at + 3], "big")
            stream_id = int.from_bytes(data[at + 5 : at + 9], "big") & MAX_STREAM_ID
            yield data[at:end], stream_id != 0
            at = end
