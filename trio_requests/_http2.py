"""The HTTP/2 driver: h2 over one multiplexed pooled connection.

Theory of operation. h2 is a sans-IO state machine; this module gives each
connection its background tasks in the connection's own nursery (which the
pool owns, so closing the connection cancels exactly these tasks):

* the **reader** is the only task that reads the socket. It feeds bytes to
  h2 and files each event in the inbox of the stream it concerns
  (:class:`~._h2_stream.H2Stream`); requests never touch the socket.
* the **writer** is the only task that writes. Requests change h2's state
  synchronously (open a stream, queue DATA, acknowledge data) and *kick* the
  writer, which sends everything h2 has queued in one ``send_all``. Frames
  of all the streams that ran in one scheduler pass go out together, and a
  cancelled request can never cut a frame in half for everyone else.
* the **deadline keeper** wakes streams whose read timeout ran out
  (:mod:`._read_deadlines`), instead of a cancel scope per wait.

Memory is bounded by flow control, not by channel sizes: a stream's inbox
holds at most its receive window (the peer may not send more), and the
window is reopened only as the application consumes the body. The
connection window is large, so one slow reader never stalls the others.

A connection that failed (socket error, protocol error, no PING answer)
fails every stream with a :class:`RemoteProtocolError`, and says so to the
pool through ``ConnectionInfo.notify_state_changed``: it is never leased
again. A GOAWAY makes it *draining* (no new streams; see
:class:`~._h2_state.H2State` for why h2 needs help there).
"""

from __future__ import annotations

import contextlib
import itertools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
import trio

import trio_conpool as cp
from trio_conpool.events import Trace

from ._errors import WriteTimeout
from ._h2_state import BodyLengthMismatch, ControlFrameFlood, H2State
from ._h2_stream import H2Stream, StreamRefused, code_name
from ._read_deadlines import ReadDeadlines
from .events import GoAwayReceived, StreamClosed, StreamOpened

if TYPE_CHECKING:
    from ._models import Request

__all__ = ["H2Counters", "H2Options", "HTTP2Connection"]

#: Bytes asked of the socket per read.
READ_SIZE = 65536
_SETTINGS = h2.settings.SettingCodes


@dataclass(frozen=True, kw_only=True)
class H2Options:
    """Per-connection HTTP/2 knobs the Session derives from its arguments.

    Attributes:
        stream_window: receive window per stream: what an unread response
            may buffer at most.
        max_header_bytes: SETTINGS_MAX_HEADER_LIST_SIZE we announce.
        max_streams: streams we open at most per connection, whatever the
            peer allows (RFC 9113 leaves MAX_CONCURRENT_STREAMS unlimited
            until the peer says).
        ping_after: seconds without a frame from the peer before a PING
            checks that it is still there; None: never.
        ping_timeout: seconds to wait for the PING's answer before the
            connection counts as dead.
    """

    stream_window: int = 1 << 20
    max_header_bytes: int = 65536
    max_streams: int = 1000
    ping_after: float | None = 30.0
    ping_timeout: float = 10.0

    @property
    def connection_window(self) -> int:
        # Room for every stream's window at once (capped by the protocol's
        # 2**31-1), so a slow reader of one stream never stalls the others.
        return min(self.stream_window * 128, 2**31 - 1)


class H2Counters:
    """HTTP/2 activity of one Session, shared by its connections."""

    __slots__ = ("active_streams", "connections", "goaways", "max_concurrent", "total_streams")

    def __init__(self) -> None:
        self.goaways = 0
        self.connections = 0
        self.total_streams = 0
        self.active_streams = 0
        self.max_concurrent = 0


# Outbound fields are built valid by _h2_stream._request_headers (lowercase
# names, no connection-specific fields; Headers rejects CR, LF and NUL), so
# h2's second check of every request is skipped: it was ~10% of a request.
# What the server sends is always validated.
_CONFIG = h2.config.H2Configuration(
    client_side=True,
    header_encoding=None,
    validate_outbound_headers=False,
    normalize_outbound_headers=False,
)
_PING_DATA = itertools.count(1)
#: What a request task reads from its stream. Other events naming a stream
#: (PRIORITY, WINDOW_UPDATE) are the connection's business.
_FOR_STREAMS = (
    h2.events.ResponseReceived,
    h2.events.InformationalResponseReceived,
    h2.events.DataReceived,
    h2.events.TrailersReceived,
    h2.events.StreamEnded,
    h2.events.StreamReset,
    BodyLengthMismatch,
)


class HTTP2Connection:
    """One HTTP/2 connection's protocol state (what the pool leases, per stream).

    Attributes:
        error: why the connection is dead; None while it works.
        draining: no new streams (GOAWAY received, stream ids used up).
    """

    def __init__(
        self,
        stream: trio.abc.Stream,
        info: cp.ConnectionInfo,
        *,
        options: H2Options,
        counters: H2Counters,
        trace: Trace | None,
    ) -> None:
        self._stream = stream
        self.info = info
        self._options = options
        self.counters = counters
        self.trace = trace
        self.streams: dict[int, H2Stream] = {}
        self.h2 = H2State(self.streams, config=_CONFIG)
        self.error: str | None = None
        self.draining = False
        self.goaway_last_id: int | None = None
        self._peak = 0
        # The writer: requests bump _queued and set _wake; the writer
        # sets _written to the _queued it has sent and fires _flushed.
        self._queued = 0
        self._sending = 0  # the ticket of the write under way (or last begun)
        self._written = 0
        self._wake = trio.Event()
        self._flushed = trio.Event()
        #: fires when send windows may have grown (WINDOW_UPDATE, SETTINGS)
        self.window_changed = trio.Event()
        self._last_frame = trio.current_time()
        self._ping_answered: trio.Event | None = None
        self._closing = False
        self.read_deadlines = ReadDeadlines()

    # -- lifecycle ------------------------------------------------------------

    async def start(self, nursery: trio.Nursery) -> None:
        """Send our preface and start the tasks; returns once the peer's
        SETTINGS arrived, so the first leases already know its limits."""
        self.h2.local_settings = h2.settings.Settings(
            client=True,
            initial_values={
                _SETTINGS.ENABLE_PUSH: 0,
                _SETTINGS.MAX_CONCURRENT_STREAMS: 100,
                _SETTINGS.INITIAL_WINDOW_SIZE: self._options.stream_window,
                _SETTINGS.MAX_HEADER_LIST_SIZE: self._options.max_header_bytes,
            },
        )
        # h2 applies a changed MAX_HEADER_LIST_SIZE to its decoder only when
        # the peer acknowledges it; initial values it takes as they are.
        self.h2.decoder.max_header_list_size = self._options.max_header_bytes
        self.h2.initiate_connection()
        self.h2.increment_flow_control_window(self._options.connection_window - 65535)
        try:
            await self._stream.send_all(self.h2.data_to_send())
            await nursery.start(self._read_frames)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            raise cp.ConnectError(
                f"the HTTP/2 handshake with {self.info.endpoint} failed: {exc}",
                endpoint=self.info.endpoint,
            ) from exc
        nursery.start_soon(self._write_frames)
        nursery.start_soon(self.read_deadlines.keep)
        if self._options.ping_after is not None:
            nursery.start_soon(self._keepalive, self._options.ping_after)
        self.counters.connections += 1

    async def aclose(self) -> None:
        """Say GOAWAY if the connection still works (the pool bounds this)."""
        if self._closing:
            return
        self._closing = True
        self.counters.connections -= 1
        if self.error is None:
            try:
                self.h2.close_connection()
            except h2.exceptions.ProtocolError:
                return
            await self.flush()
        self._fail("the connection was closed by the client")

    # -- what the pool asks -------------------------------------------------------

    def access_mode(self) -> cp.Multiplexed:
        limit = min(self.h2.remote_settings.max_concurrent_streams, self._options.max_streams)
        return cp.Multiplexed(limit, draining=self.draining)

    @property
    def healthy(self) -> bool:
        return self.error is None

    # -- streams ------------------------------------------------------------------

    def open_stream(self, request: Request, max_header_count: int) -> H2Stream:
        """Start a stream for *request* (its HEADERS, and a small body, are
        queued at once). Raises :class:`StreamRefused` if this connection
        cannot take it: the request never left, so any method may retry."""
        if self.error is not None:
            raise StreamRefused(self.error)
        if self.draining:
            raise StreamRefused("the connection is draining", goaway_last_id=self.goaway_last_id)
        try:
            stream_id = self.h2.get_next_available_stream_id()
        except h2.exceptions.NoAvailableStreamIDError:
            self._drain()
            raise StreamRefused("the connection has used up its stream ids") from None
        stream = H2Stream(self, stream_id, request, max_header_count)
        stream.send_headers()  # raises StreamRefused or LocalProtocolError
        self.streams[stream_id] = stream
        self._count_open()
        if self.trace is not None:
            self.trace(StreamOpened(stream_id, self.info.peer_address, len(self.streams)))
        return stream

    def forget(self, stream: H2Stream) -> None:
        """*stream* is over (ended, reset, failed): drop it from the table."""
        if self.streams.pop(stream.stream_id, None) is not None:
            self.h2.forget(stream.stream_id)
            self.counters.active_streams -= 1
            if self.trace is not None:
                self.trace(StreamClosed(stream.stream_id, len(self.streams)))

    def _count_open(self) -> None:
        counters = self.counters
        counters.total_streams += 1
        counters.active_streams += 1
        if len(self.streams) > self._peak:
            self._peak = len(self.streams)
            counters.max_concurrent = max(counters.max_concurrent, self._peak)

    # -- writing ------------------------------------------------------------------

    def kick(self) -> int:
        """Have the writer send what h2 has queued; returns a ticket for
        :meth:`flush`."""
        self._queued += 1
        self._wake.set()
        return self._queued

    def never_sent(self, ticket: int) -> bool:
        """Nothing queued at *ticket* reached the socket: no write holding it
        even began, so the server cannot have seen it."""
        return ticket > self._sending

    async def flush(self, timeout: float | None = None, request: Request | None = None) -> None:
        """Wait until what is queued now is written (backpressure for uploads)."""
        ticket = self.kick()
        deadline = trio.current_time() + timeout if timeout is not None else float("inf")
        while self._written < ticket and self.error is None:
            with trio.move_on_at(deadline):
                await self._flushed.wait()
                continue
            raise WriteTimeout(f"sending the request took over {timeout}s", request=request)

    async def _write_frames(self) -> None:
        try:
            while True:
                await self._wake.wait()
                self._wake = trio.Event()
                ticket = self._sending = self._queued
                data = self.h2.data_to_send()
                if data:
                    await self._stream.send_all(data)
                self._written = ticket
                self._flushed.set()
                self._flushed = trio.Event()
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            self._fail(f"the connection broke while sending: {exc}")

    # -- reading ------------------------------------------------------------------

    async def _read_frames(self, *, task_status: trio.TaskStatus[None]) -> None:
        await self._receive_settings()
        task_status.started()
        try:
            await self._receive_forever()
        except _Known as exc:
            self._fail(str(exc))
        except BaseException as exc:
            # Cancelled (the pool closes us) or a bug, which the pool logs.
            self._fail(_reason(exc))
            raise

    async def _receive_settings(self) -> None:
        """The server's preface: its SETTINGS frame, before anything else."""
        while True:
            data = await self._stream.receive_some(READ_SIZE)
            if not data:
                raise trio.BrokenResourceError("the server closed the connection")
            try:
                events = self.h2.receive_data(bytes(data))
            except h2.exceptions.ProtocolError as exc:
                raise trio.BrokenResourceError(f"invalid HTTP/2 preface: {exc}") from exc
            self.kick()  # our SETTINGS acknowledgement
            self._dispatch(events)
            if any(isinstance(e, h2.events.RemoteSettingsChanged) for e in events):
                return

    async def _receive_forever(self) -> None:
        while True:
            try:
                data = await self._stream.receive_some(READ_SIZE)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
                raise _Known(f"the connection broke: {exc}") from exc
            if not data:
                raise _Known("the server closed the connection")
            self._last_frame = trio.current_time()
            try:
                events = self.h2.receive_data(bytes(data))
            except h2.exceptions.ProtocolError as exc:
                self.kick()  # h2 queued a GOAWAY saying why
                raise _Known(self._violation(exc)) from exc
            self._dispatch(events)
            self.kick()  # SETTINGS and PING acknowledgements, window updates
            if self.error is not None:
                return

    def _violation(self, exc: h2.exceptions.ProtocolError) -> str:
        if isinstance(exc, h2.exceptions.DenialOfServiceError):
            limit = self._options.max_header_bytes
            return f"invalid response: a header block larger than max_header_bytes={limit} ({exc})"
        if isinstance(exc, ControlFrameFlood):
            return f"the server flooded the connection: {exc} (closed with ENHANCE_YOUR_CALM)"
        return f"the server broke the HTTP/2 protocol: {type(exc).__name__}: {exc}"

    def _dispatch(self, events: list[h2.events.Event]) -> None:
        for event in events:
            if isinstance(event, _FOR_STREAMS):
                stream = self.streams.get(event.stream_id)
                if stream is not None:
                    stream.deliver(event)
                elif isinstance(event, h2.events.DataReceived):
                    self._ack_orphan(event)
            elif isinstance(event, h2.events.WindowUpdated | h2.events.RemoteSettingsChanged):
                self.wake_uploaders()
                if isinstance(event, h2.events.RemoteSettingsChanged) and (
                    _SETTINGS.MAX_CONCURRENT_STREAMS in event.changed_settings
                ):
                    self.info.notify_state_changed()
            elif isinstance(event, h2.events.ConnectionTerminated):
                self._goaway(event)
            elif isinstance(event, h2.events.PingAckReceived) and self._ping_answered:
                self._ping_answered.set()

    def _ack_orphan(self, event: h2.events.DataReceived) -> None:
        # Data for a stream we already gave up: give the connection window back.
        with contextlib.suppress(h2.exceptions.ProtocolError):
            self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)

    def wake_uploaders(self) -> None:
        """Send windows may have grown, or a stream stopped: uploads look again."""
        self.window_changed.set()
        self.window_changed = trio.Event()

    async def wait_for_window(self, deadline: float | None) -> bool:
        """Wait for :meth:`wake_uploaders`; False if *deadline* came first."""
        event = self.window_changed
        with trio.move_on_at(math.inf if deadline is None else deadline):
            await event.wait()
            return True
        return False

    def _goaway(self, event: h2.events.ConnectionTerminated) -> None:
        """Streams above last_stream_id were never processed: they retry
        elsewhere. After an error GOAWAY the rest fail too."""
        last_id = event.last_stream_id if event.last_stream_id is not None else 2**31
        self.goaway_last_id = last_id
        self.counters.goaways += 1
        self.draining = True
        if self.trace is not None:
            self.trace(GoAwayReceived(self.info.peer_address, last_id, event.error_code or 0))
        for stream in list(self.streams.values()):
            if stream.stream_id > last_id:
                stream.refuse(f"the server sent GOAWAY (last stream {last_id})", last_id)
        if event.error_code:
            self._fail(f"the server sent GOAWAY with error {code_name(event.error_code)}")
        self.info.notify_state_changed()

    def _drain(self) -> None:
        if not self.draining:
            self.draining = True
            self.info.notify_state_changed()

    # -- failure and health -----------------------------------------------------------

    def _fail(self, reason: str) -> None:
        """The connection is dead: every stream learns why, the pool too."""
        if self.error is None:
            self.error = reason
        for stream in list(self.streams.values()):
            stream.connection_lost(self.error)
        self.wake_uploaders()
        self._flushed.set()
        self.info.notify_state_changed()

    async def _keepalive(self, after: float) -> None:
        """PING a peer that went quiet; no answer in time means it is gone
        (a dead NAT mapping or a half-open socket would otherwise hang the
        next request until its read timeout)."""
        while self.error is None:
            await trio.sleep_until(self._last_frame + after)
            if trio.current_time() < self._last_frame + after:
                continue
            self._ping_answered = answered = trio.Event()
            self.h2.ping(next(_PING_DATA).to_bytes(8, "big"))
            self.kick()
            with trio.move_on_after(self._options.ping_timeout):
                await answered.wait()
                continue
            self._fail(f"no answer to PING within {self._options.ping_timeout}s")


class _Known(Exception):
    """The reader's ways of ending that are the peer's doing, not our bug."""


def _reason(exc: BaseException) -> str:
    if isinstance(exc, trio.Cancelled):
        return "the connection was closed by the client"
    return f"the connection failed: {exc!r}"
