"""H2State: the h2 connection object, with the few changes our driver needs.

Each override is narrow, says why, and is proven by a test; they touch h2's
private parts, which is why pyproject pins ``h2<4.5``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sized
from typing import Any

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.frame_buffer
import h2.stream
from h2.utilities import HeaderValidationFlags, authority_from_headers, extract_method_header
from hyperframe.exceptions import InvalidDataError, InvalidFrameError
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    RstStreamFrame,
    WindowUpdateFrame,
)

from ._hpack_cache import CachingDecoder, CachingEncoder

__all__ = ["MAX_IDLE_CONTROL_FRAMES", "BodyLengthMismatch", "ControlFrameFlood", "H2State"]

#: Frames that make no progress (SETTINGS, PING, RST_STREAM, PRIORITY, empty
#: DATA, unknown types) the server may send between two that do (HEADERS,
#: DATA with data, or a stream we open). Each costs us work or an answer
#: (the PING / SETTINGS floods of CVE-2019-9512/9515, the empty frames of
#: 9518). A server's keepalive PINGs or SETTINGS changes come to a few an
#: hour; Go's x/net/http2 allows 10000 queued control frames.
MAX_IDLE_CONTROL_FRAMES = 10_000


_CLIENT_IDS = h2.connection.AllowedStreamIDs.ODD
_Header = tuple[bytes, bytes]


class ControlFrameFlood(h2.exceptions.ProtocolError):
    """More than :data:`MAX_IDLE_CONTROL_FRAMES` frames without progress."""

    error_code = h2.errors.ErrorCodes.ENHANCE_YOUR_CALM


class BodyLengthMismatch(h2.events.Event):
    """A stream's DATA disagreed with its Content-Length (our event).

    RFC 9113 §8.1.1 makes this a malformed *stream*; h2 raises
    InvalidBodyLengthError from ``receive_data`` instead, as if the whole
    connection were broken, which would fail every other stream on it.
    """

    def __init__(self, stream_id: int, expected: int, actual: int) -> None:
        self.stream_id = stream_id
        self.expected = expected
        self.actual = actual

    def __repr__(self) -> str:
        return f"<BodyLengthMismatch stream_id:{self.stream_id}, {self.expected} != {self.actual}>"


class H2State(h2.connection.H2Connection):
    """h2's client connection, except that:

    * **a graceful GOAWAY does not end it.** h2 treats every received
      GOAWAY as the end of the connection: it moves its state machine to
      CLOSED and drops queued output, so the frames still due to streams the
      server promised to finish (id <= last_stream_id) raise ProtocolError
      (python-hyper/h2 issue 1181). RFC 9113 §6.8 says a NO_ERROR GOAWAY
      only stops *new* streams. So for NO_ERROR we report the event and
      change nothing else; our connection stops opening streams itself. A
      GOAWAY with an error code keeps h2's behaviour, except that frames
      after it in the same read are dropped instead of raising (the peer is
      closing; h2 would raise before returning the GOAWAY's event, and the
      streams above its last id could not learn they may be retried).
    * **opening a stream raises nothing** (h2 catches a KeyError per new stream).
    * **counting open streams is O(1).** h2 counts them by walking every
      stream on each new one (and deletes closed ones as it goes): O(streams)
      per request, 5% of a request at 100 streams. Our connection's table
      holds exactly the streams leased on it, which is what the count guards
      (the pool never leases beyond MAX_CONCURRENT_STREAMS), and a stream
      that ends is deleted here by :meth:`forget`.
    * **a flood of frames that make no progress ends the connection**
      (:data:`MAX_IDLE_CONTROL_FRAMES`, GOAWAY ENHANCE_YOUR_CALM).
    * **a body longer or shorter than its Content-Length resets only its
      stream** (PROTOCOL_ERROR) and is reported as :class:`BodyLengthMismatch`.
    * **a received frame is parsed from a view of the buffer**, not from a
      copy of it (:class:`_FrameBuffer`).
    * **a header block seen before is not decoded again, and a request's
      fields sent before are not encoded again** (:mod:`._hpack_cache`);
      nor is a received block validated again (:class:`_RevalidationCache`).
    """

    def __init__(self, in_flight: Sized, *, config: h2.config.H2Configuration) -> None:
        super().__init__(config=config)
        decoder = CachingDecoder()
        decoder.max_header_list_size = self.decoder.max_header_list_size
        decoder.max_allowed_table_size = self.decoder.max_allowed_table_size
        self.decoder = decoder
        self.encoder = CachingEncoder()
        self.incoming_buffer = _FrameBuffer()
        self._in_flight = in_flight
        self._ended_by_peer = False
        self._idle_frames = 0

    def _begin_new_stream(self, stream_id: int, allowed_ids: Any) -> h2.stream.H2Stream:
        stream = super()._begin_new_stream(stream_id, allowed_ids)
        stream.__class__ = _CachingStream  # same state, one method changed
        return stream

    def _get_or_create_stream(self, stream_id: int, allowed_ids: Any) -> h2.stream.H2Stream:
        # h2 looks the stream up and catches the KeyError: one exception
        # raised and caught per request, since every request opens one.
        stream = self.streams.get(stream_id)
        if stream is None:
            stream = self._begin_new_stream(stream_id, allowed_ids)
        return stream

    @property
    def open_outbound_streams(self) -> int:
        return len(self._in_flight)

    def forget(self, stream_id: int) -> None:
        """Drop a closed stream, as h2's own count would have (later frames
        for it are then answered as for any closed stream)."""
        stream = self.streams.get(stream_id)
        if stream is not None and stream.closed:
            del self.streams[stream_id]
            self._closed_streams[stream_id] = stream.closed_by

    def _receive_goaway_frame(self, frame: GoAwayFrame) -> tuple[list[Any], list[h2.events.Event]]:
        if frame.error_code != h2.errors.ErrorCodes.NO_ERROR:
            self._ended_by_peer = True
            return super()._receive_goaway_frame(frame)
        event = h2.events.ConnectionTerminated()
        event.error_code = h2.errors.ErrorCodes.NO_ERROR
        event.last_stream_id = frame.last_stream_id
        event.additional_data = frame.additional_data or None
        return [], [event]

    def _receive_data_frame(self, frame: DataFrame) -> tuple[list[Any], list[h2.events.Event]]:
        try:
            return super()._receive_data_frame(frame)
        except h2.exceptions.InvalidBodyLengthError as exc:
            stream_id = frame.stream_id
            # Nobody will read the frame's bytes: the connection window gets
            # them back now (the stream's is gone with the reset).
            with contextlib.suppress(h2.exceptions.ProtocolError):
                self.reset_stream(stream_id, h2.errors.ErrorCodes.PROTOCOL_ERROR)
            self.acknowledge_received_data(frame.flow_controlled_length, stream_id)
            return [], [BodyLengthMismatch(stream_id, exc.expected_length, exc.actual_length)]

    def _receive_frame(self, frame: Frame) -> list[h2.events.Event]:
        if self._ended_by_peer:
            return []
        if isinstance(frame, HeadersFrame | ContinuationFrame) or (
            isinstance(frame, DataFrame) and (frame.data or "END_STREAM" in frame.flags)
        ):
            self._idle_frames = 0
        elif not isinstance(frame, WindowUpdateFrame | GoAwayFrame):
            # WINDOW_UPDATEs are what a long upload is made of, and ask nothing.
            self._idle_frames += 1
            if self._idle_frames > MAX_IDLE_CONTROL_FRAMES:
                self.close_connection(ControlFrameFlood.error_code)
                raise ControlFrameFlood(
                    f"a flood of {self._idle_frames} frames without a response "
                    "(SETTINGS, PING, RST_STREAM, PRIORITY, empty DATA...)"
                )
        return self._handle_frame(frame)

    def _handle_frame(self, frame: Frame) -> list[h2.events.Event]:
        """h2's ``_receive_frame`` minus its first line, a trace log whose
        argument, ``repr(frame)``, is built even though nothing logs it: it
        copies the body of a DATA frame and hex-encodes all of it (a third
        of the client's CPU for a large download)."""
        try:
            frames, events = self._frame_dispatch_table[frame.__class__](frame)
        except h2.exceptions.StreamClosedError as exc:
            # Closed by our RST_STREAM: a stream error, answered in kind.
            if not self._stream_is_closed_by_reset(exc.stream_id):
                raise
            self._reset_closed(exc.stream_id, exc.error_code)
            return exc._events
        except h2.exceptions.StreamIDTooLowError as exc:
            # A stream already gone: a stream error if we reset it, else
            # a connection error (STREAM_CLOSED or PROTOCOL_ERROR).
            if self._stream_is_closed_by_reset(exc.stream_id):
                self._reset_closed(exc.stream_id, h2.errors.ErrorCodes.STREAM_CLOSED)
                return []
            if self._stream_is_closed_by_end(exc.stream_id):
                raise h2.exceptions.StreamClosedError(exc.stream_id) from exc
            raise
        self._prepare_for_sending(frames)
        return events  # type: ignore[no-any-return]

    def _reset_closed(self, stream_id: int, error_code: int) -> None:
        frame = RstStreamFrame(stream_id)
        frame.error_code = error_code
        self._prepare_for_sending([frame])

    def send_headers(self, *args: Any, **kwargs: Any) -> None:
        self._idle_frames = 0  # the server's answers to a new stream are progress
        super().send_headers(*args, **kwargs)

    def send_request(self, stream_id: int, fields: list[_Header], end_stream: bool) -> None:
        """``send_headers`` for a request's fields: h2's, without the
        priority arguments (we never send any), and with the allowed stream
        ids looked up once (h2 builds an enum from its config per call)."""
        self._idle_frames = 0
        if stream_id not in self.streams:
            limit = self.remote_settings.max_concurrent_streams
            if self.open_outbound_streams + 1 > limit:
                raise h2.exceptions.TooManyStreamsError(
                    f"Max outbound streams is {limit}, {self.open_outbound_streams} open"
                )
        self.state_machine.process_input(h2.connection.ConnectionInputs.SEND_HEADERS)
        stream = self._get_or_create_stream(stream_id, _CLIENT_IDS)
        frames: list[Frame] = list(stream.send_headers(fields, self.encoder, end_stream))
        self._prepare_for_sending(frames)

    @property
    def has_output(self) -> bool:
        """Frames are queued (h2 offers no public way to ask without
        taking them): lets a stream skip waking the writer for nothing."""
        return bool(self._data_to_send)


class _FrameBuffer(h2.frame_buffer.FrameBuffer):
    """h2's client-side FrameBuffer, except that frames are parsed from views
    of the bytes received, kept as they came with an offset: h2 copies each
    read into a bytearray, each frame out of it (which hyperframe copies
    again to keep), and the bytearray shrinks by reallocating. A read that
    ends on a frame boundary is now never copied, and any other only once,
    with the partial frame before it."""

    def __init__(self) -> None:
        super().__init__(server=False)
        self._received = b""
        self._at = 0  # where the first unparsed frame starts

    def add_data(self, data: Any) -> None:
        if self._at < len(self._received):
            self._received = self._received[self._at :] + data
        else:
            self._received = bytes(data)
        self._at = 0

    def __next__(self) -> Frame:
        while True:
            # A HEADERS frame without END_HEADERS waits for its CONTINUATIONs.
            frame = self._update_header_buffer(self._parse_next())
            if frame is not None:
                return frame

    def _parse_next(self) -> Frame:
        received, at = self._received, self._at
        if len(received) - at < 9:
            raise StopIteration
        view = memoryview(received)
        try:
            frame, length = Frame.parse_frame_header(view[at : at + 9])
        except (InvalidDataError, InvalidFrameError) as exc:
            raise h2.exceptions.ProtocolError(f"Received frame with invalid header: {exc}") from exc
        end = at + 9 + length
        if len(received) < end:
            raise StopIteration
        self._validate_frame_length(length)
        try:
            frame.parse_body(view[at + 9 : end])
        except InvalidDataError as exc:
            raise h2.exceptions.ProtocolError("Received frame with non-compliant data") from exc
        except InvalidFrameError as exc:
            raise h2.exceptions.FrameDataMissingError("Frame data missing or invalid") from exc
        self._at = end
        return frame


_Key = tuple[tuple[_Header, ...], HeaderValidationFlags, Any]


class _RevalidationCache:
    """Received header blocks that passed h2's checks, and what they became.

    h2 validates each received block through a chain of generators (names,
    values, pseudo-fields, connection-specific fields): about 6 % of a
    request's CPU when a server answers 1 KiB files. A server sends the same
    block again and again (the HPACK cache already skips decoding it), and
    the checks are a pure function of the fields and h2's flags for the
    block (response or trailers, client side), so a block that passed once
    passes again with the same result. Only blocks that passed are kept
    (a bad one raises every time), only small ones (:data:`MAX_BYTES`), and
    at most :data:`MAX_ENTRIES`, oldest out first.
    """

    MAX_ENTRIES = 128
    MAX_BYTES = 4096

    def __init__(self) -> None:
        self._done: dict[_Key, list[_Header]] = {}

    def lookup(self, key: _Key) -> list[_Header] | None:
        found = self._done.get(key)
        return None if found is None else list(found)

    def keep(self, key: _Key, result: list[_Header]) -> None:
        if sum(len(name) + len(value) for name, value in key[0]) > self.MAX_BYTES:
            return
        if len(self._done) >= self.MAX_ENTRIES:
            del self._done[next(iter(self._done))]
        self._done[key] = list(result)


_REVALIDATION = _RevalidationCache()


class _CachingStream(h2.stream.H2Stream):
    """h2's stream, taking a received block's checks from
    :class:`_RevalidationCache` when the same block passed them before, and
    sending a client's header fields as they are."""

    def send_headers(self, headers: Any, encoder: Any, end_stream: bool = False) -> list[Any]:
        """h2's, for a client (which sends no informational response), minus
        ``utf8_encode_headers``: our fields are bytes already (built by
        ``_h2_stream._request_headers``, see ``_http2._CONFIG``), and h2
        rebuilt the list field by field on every request."""
        fields = list(headers)
        machine = self.state_machine
        events = machine.process_input(h2.stream.StreamInputs.SEND_HEADERS)
        flags = self._build_hdr_validation_flags(events)
        frames = self._build_headers_frames(fields, encoder, HeadersFrame(self.stream_id), flags)
        if end_stream:
            machine.process_input(h2.stream.StreamInputs.SEND_END_STREAM)
            frames[0].flags.add("END_STREAM")
        if machine.trailers_sent and not end_stream:
            raise h2.exceptions.ProtocolError("Trailers must have END_STREAM set.")
        if self._authority is None:
            self._authority = authority_from_headers(fields)
        self.request_method = extract_method_header(fields)
        return frames

    def _process_received_headers(
        self,
        headers: Any,
        header_validation_flags: HeaderValidationFlags,
        header_encoding: bool | str | None,
    ) -> list[Any]:
        fields = tuple(headers)
        key = (fields, header_validation_flags, header_encoding)
        found = _REVALIDATION.lookup(key)
        if found is not None:
            return found
        result = super()._process_received_headers(fields, header_validation_flags, header_encoding)
        _REVALIDATION.keep(key, result)
        return result
