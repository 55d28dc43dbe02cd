"""One server-side HTTP/2 connection: an h2 frame loop playing a script per stream.

Theory of operation: the connection's own task reads frames and feeds them to
h2; every request stream gets a task in the connection's nursery, which waits
for the request body, records the :class:`ReceivedRequest` and plays its
:class:`Reply`. Since h2 is a sans-IO state machine, every task mutates it
synchronously and then flushes: the *writer* task (:mod:`._h2_writer`) writes
the connection's whole output and the task waits until it is written.
Only the writer writes, so frames are always complete when written and
concurrent streams never interleave mid-frame; and a stream task cancelled
mid-flush (the client reset its stream) cannot lose the frames of the other
streams it had taken along, or break a TLS stream with a cancelled write.

Bodies respect flow control (RFC 9113 §5.2): a stream task sends at most the
window h2 allows and otherwise waits for a WINDOW_UPDATE or SETTINGS change,
which the reader signals. Received DATA is acknowledged at once, so uploads
never stall on the server, unless the test has paused window updates: then
the acknowledgements are held until it resumes them, so the client's windows
stay closed (:meth:`H2Server.pause_window_updates`).

Open streams are counted when each request's HEADERS arrives, from h2's own
stream states, so a stream leaves the count the moment h2 queues or receives
its last frame, not when its task gets round to ending (RFC 9113 §5.1.2
counts the open and half-closed streams against MAX_CONCURRENT_STREAMS).

Faults (``_h2_faults.py``) fire from the reader as each stream's HEADERS
arrives, synchronously, so a GOAWAY decided at the third stream refuses a
fourth that came in the same read. h2's state machine treats any GOAWAY as
the end of the connection, so GOAWAY frames, and the raw bytes of
``Reply(raw=...)``, are serialized here and queued in an *outbox* behind what
h2 had queued before them: the wire order is the order of decisions. The
driver itself refuses streams above a GOAWAY's last stream. Everything
written passes an :class:`OutputMeter`, which is where a
:class:`DropConnection` cuts the connection.

Exactly-once bookkeeping: a stream is *answering* from its first response
frame on. A GOAWAY never disowns an answering stream (its last stream id is
raised to cover them), and abandons the others above it: their tasks are
cancelled and their requests recorded as refused.

:meth:`H2Connection.serve` returns how the transport should be closed; it never
raises for anything the peer does. Only cancellation escapes.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
import trio
from hyperframe.frame import GoAwayFrame

from ._faults import reset_stream
from ._h2_faults import (
    MAX_STREAM_ID,
    ChangeSettings,
    DropConnection,
    GoAway,
    ResetRule,
    SentGoAway,
)
from ._h2_writer import Dropped, FrameWriter
from ._script import Handler, ReceivedRequest, Refusal, Reply
from ._server import RECEIVE_SIZE, SERVER_HEADER, Ending

if TYPE_CHECKING:
    from ._h2_server import H2Server
    from ._server import ConnectionSlot

__all__ = ["H2Connection", "ResetReply"]

_CODES = h2.errors.ErrorCodes
#: The RST_STREAM codes that say "not processed, send it again" (RFC 9113 §8.7, §7).
_REFUSALS: dict[int, Refusal] = {
    _CODES.REFUSED_STREAM: "REFUSED_STREAM",
    _CODES.HTTP_1_1_REQUIRED: "HTTP_1_1_REQUIRED",
}
_SETTINGS = h2.settings.SettingCodes


@dataclass(frozen=True)
class ResetReply(Reply):
    """The internal form of a ``ResetStream`` route: RST_STREAM with this code."""

    error_code: int = _CODES.INTERNAL_ERROR


@dataclass(eq=False)
class _Stream:
    stream_id: int
    ordinal: int  # 1 for the connection's first request stream
    headers: list[tuple[bytes, bytes]]
    body: list[bytes] = field(default_factory=list)
    ended: trio.Event = field(default_factory=trio.Event)
    cancel_scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    request: ReceivedRequest | None = None  # built once, when first recorded
    processed: bool = False  # recorded in the server's requests
    answering: bool = False  # a response frame was queued: it cannot be disowned
    abandoned: bool = False  # above a GOAWAY's last stream before it answered
    reset_rule: ResetRule | None = None  # matched as its HEADERS arrived

    @property
    def target(self) -> str:
        return self.pseudo(b":path")

    def pseudo(self, name: bytes) -> str:
        return next((v.decode("latin-1") for n, v in self.headers if n == name), "")


class H2Connection:
    """Serve one transport stream with HTTP/2 until either side ends the connection."""

    def __init__(
        self,
        server: H2Server,
        stream: trio.abc.Stream,
        slot: ConnectionSlot,
        *,
        settings: dict[h2.settings.SettingCodes | int, int],
    ) -> None:
        self._server = server
        self._stream = stream
        self._slot = slot
        self._settings = settings
        config = h2.config.H2Configuration(client_side=False, header_encoding=None)
        self._conn = h2.connection.H2Connection(config=config)
        self._streams: dict[int, _Stream] = {}
        self._received = 0  # request streams received: the ordinal of the latest
        self._highest = 0  # the highest request stream id received
        self._answered = 0  # the highest stream id that began its answer
        self._writer = FrameWriter(
            self._conn,
            stream,
            drops=lambda: server._drops_for(slot.index),
            on_drop=self._drop,
            on_lost=self._lost,
        )
        self._window_changed = trio.Event()
        self._refuse_above: int | None = None  # a GOAWAY's last stream id, once decided
        self._goaway_sent = False  # ... and written: the connection may end once drained
        self._goaway_fired = False  # a GoAway fault fired (perhaps still in its delay)
        self._held_acks: list[tuple[int, int]] = []  # (flow-controlled length, stream id)
        self._reader_scope = trio.CancelScope()
        self._ending = Ending.CLOSE
        self._nursery: trio.Nursery | None = None

    async def serve(self) -> Ending:
        """Serve streams until the connection should end, and say how to end it."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            nursery.start_soon(self._writer.run)
            try:
                self._conn.initiate_connection()
                self._conn.update_settings(self._settings)
                self._fire_triggers(0)
                await self._writer.flush()
                with self._reader_scope:
                    await self._read_frames()
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self._lost()
            except Dropped:
                pass
            finally:
                self._nursery = None
                nursery.cancel_scope.cancel()  # streams die with their connection
        return self._ending

    # -- server-wide faults ----------------------------------------------------

    def update_settings(self, settings: dict[h2.settings.SettingCodes | int, int]) -> None:
        """Send a SETTINGS frame now (from a sync caller: the writer task writes it)."""
        if self._nursery is None:
            self._settings = {**self._settings, **settings}  # for a connection not yet started
            return
        self._conn.update_settings(settings)
        self._writer.kick()

    def release_window_updates(self) -> None:
        """Acknowledge the DATA held while window updates were paused (the
        WINDOW_UPDATE frames are written by a task, as for :meth:`update_settings`)."""
        held, self._held_acks = self._held_acks, []
        for length, stream_id in held:
            self._acknowledge(length, stream_id)
        if held and self._nursery is not None:
            self._writer.kick()

    async def send_goaway(
        self,
        last_stream_id: int | None,
        error_code: int,
        *,
        two_step: bool = False,
        delay: float = 0.0,
    ) -> None:
        """Send GOAWAY (two, if ``two_step``) as :class:`GoAway` describes; returns
        once the last frame is written."""
        if self._nursery is None:
            return
        if two_step:
            self._queue_goaway(MAX_STREAM_ID, 0)
            await self._writer.flush_quietly()
        if delay:
            await trio.sleep(delay)
        self._decide_goaway(last_stream_id, error_code)
        await self._finish_goaway(error_code)

    # -- GOAWAY ------------------------------------------------------------------

    def _start_goaway(self, fault: GoAway) -> None:
        """A :class:`GoAway` fault fired (sync: from the reader, at a stream's HEADERS)."""
        assert self._nursery is not None
        if self._goaway_fired:
            return  # one GoAway fault per connection: the first to fire
        self._goaway_fired = True
        if fault.two_step:
            self._queue_goaway(MAX_STREAM_ID, 0)  # the reader flushes after its read
        if fault.two_step or fault.delay:
            self._nursery.start_soon(self._goaway_later, fault)
        else:
            self._decide_goaway(fault.last_stream_id, fault.error_code)
            self._nursery.start_soon(self._finish_goaway, fault.error_code)

    async def _goaway_later(self, fault: GoAway) -> None:
        await trio.sleep(fault.delay)
        self._decide_goaway(fault.last_stream_id, fault.error_code)
        await self._finish_goaway(fault.error_code)

    def _decide_goaway(self, last_stream_id: int | None, error_code: int) -> None:
        """Fix the last stream, queue the frame, abandon the streams above it."""
        last = self._highest if last_stream_id is None else min(last_stream_id, self._highest)
        last = max(last, self._answered)  # an answer begun cannot be taken back
        if self._refuse_above is not None:
            last = min(last, self._refuse_above)  # RFC 9113 §6.8: never increase it
        self._refuse_above = last
        self._queue_goaway(last, error_code)
        for stream in list(self._streams.values()):
            if stream.stream_id > last and not (stream.answering or stream.abandoned):
                stream.abandoned = True
                stream.cancel_scope.cancel()
                self._record(stream, "GOAWAY")

    def _queue_goaway(self, last_stream_id: int, error_code: int) -> None:
        frame = GoAwayFrame(0, last_stream_id=last_stream_id, error_code=error_code)
        self._writer.queue_raw(frame.serialize(), framed=True)
        if error_code:
            self._writer.seal()
        self._server._record_goaway(SentGoAway(self._slot.index, last_stream_id, error_code))

    async def _finish_goaway(self, error_code: int) -> None:
        await self._writer.flush_quietly()
        # Only now may a drained connection end, so the frame is never cut off.
        self._goaway_sent = True
        if error_code or not self._streams:
            self._reader_scope.cancel()

    # -- receiving ---------------------------------------------------------------

    async def _read_frames(self) -> None:
        while True:
            # Idle means: no stream in flight, the moment a keep-alive timeout fires.
            self._slot.idle = not self._streams
            try:
                data = await self._stream.receive_some(RECEIVE_SIZE)
            finally:
                self._slot.idle = False
            if not data:
                return  # EOF: the client is done with us
            try:
                events = self._conn.receive_data(bytes(data))
            except h2.exceptions.ProtocolError:
                await self._writer.flush()  # h2 has queued a GOAWAY with the reason
                return
            for event in events:
                if not self._handle(event):
                    await self._writer.flush()
                    return
            await self._writer.flush()  # SETTINGS/PING acks, window updates, refusals

    def _handle(self, event: h2.events.Event) -> bool:
        """Apply one event; False when the client has ended the connection."""
        if isinstance(event, h2.events.RequestReceived):
            self._start_stream(event.stream_id, list(event.headers))
            count = self._open_streams_up_to(event.stream_id)
            self._server._record_open_streams(self._slot.index, count)
        elif isinstance(event, h2.events.DataReceived):
            stream = self._streams.get(event.stream_id)
            if stream is not None:
                stream.body.append(event.data)
            self._server._record_data(event.flow_controlled_length)
            self._acknowledge(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, h2.events.StreamEnded):
            if (stream := self._streams.get(event.stream_id)) is not None:
                stream.ended.set()
        elif isinstance(event, h2.events.StreamReset):
            if (stream := self._streams.get(event.stream_id)) is not None:
                stream.cancel_scope.cancel()
        elif isinstance(event, h2.events.WindowUpdated | h2.events.RemoteSettingsChanged):
            self._window_changed.set()
            self._window_changed = trio.Event()
        elif isinstance(event, h2.events.ConnectionTerminated):
            return False
        return True

    def _open_streams_up_to(self, stream_id: int) -> int:
        """The client's streams open when ``stream_id``'s HEADERS arrived.

        h2 has already applied the whole read when its events are handled, so
        streams opened later in the same read are left out by their ids, which
        only ever increase (RFC 9113 §5.1.1). Streams the client reset later in
        that read are already closed, so the count can only err low, never high.
        """
        return sum(
            1
            for sid, stream in self._conn.streams.items()
            if sid % 2 == 1 and sid <= stream_id and stream.open
        )

    def _acknowledge(self, length: int, stream_id: int) -> None:
        """Give received DATA's window back to the client, or hold it while
        the server's window updates are paused."""
        if self._server._window_updates_paused:
            self._held_acks.append((length, stream_id))
            return
        # A stream already closed only gets its connection-level window back.
        with contextlib.suppress(h2.exceptions.ProtocolError):
            self._conn.acknowledge_received_data(length, stream_id)

    def _start_stream(self, stream_id: int, headers: list[tuple[bytes, bytes]]) -> None:
        assert self._nursery is not None
        self._received += 1
        self._highest = stream_id
        stream = _Stream(stream_id, self._received, headers)
        if self._refuse_above is not None and stream_id > self._refuse_above:
            self._conn.reset_stream(stream_id, _CODES.REFUSED_STREAM)
            self._record(stream, "GOAWAY")
            return
        self._streams[stream_id] = stream
        # Matched here, in arrival order, so `times` goes to the earliest streams.
        stream.reset_rule = self._server._take_reset_rule(
            self._slot.index, stream.ordinal, stream.target
        )
        self._nursery.start_soon(self._run_stream, stream)
        self._fire_triggers(self._received)

    def _fire_triggers(self, received: int) -> None:
        """Start the faults due once the connection has received ``received`` streams."""
        for fault in self._server._faults_for(self._slot.index):
            if isinstance(fault, GoAway) and fault.after_streams == received:
                self._start_goaway(fault)
            elif isinstance(fault, ChangeSettings) and fault.after_streams == received:
                changes = {
                    _SETTINGS.MAX_CONCURRENT_STREAMS: fault.max_concurrent_streams,
                    _SETTINGS.INITIAL_WINDOW_SIZE: fault.initial_window_size,
                }
                self.update_settings({k: v for k, v in changes.items() if v is not None})

    # -- one stream ----------------------------------------------------------------

    async def _run_stream(self, stream: _Stream) -> None:
        try:
            with stream.cancel_scope:
                await self._serve_stream(stream)
        except h2.exceptions.StreamClosedError:
            pass  # the client reset the stream while we were answering
        except h2.exceptions.ProtocolError as exc:
            # The script asked for something h2 refuses to send (say, a
            # connection-specific header): a bug in the test.
            self._server._record_error(exc)
            with contextlib.suppress(
                h2.exceptions.ProtocolError, Dropped, trio.BrokenResourceError
            ):
                self._conn.reset_stream(stream.stream_id, _CODES.INTERNAL_ERROR)
                await self._writer.flush()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self._lost()
        except Dropped:
            pass
        finally:
            del self._streams[stream.stream_id]
            if self._goaway_sent and not self._streams:
                self._reader_scope.cancel()  # a graceful GOAWAY has drained

    async def _serve_stream(self, stream: _Stream) -> None:
        # The checks for cancellation keep a stream that a GOAWAY abandoned while
        # its task was runnable from going on (they yield only if cancelled).
        await trio.lowlevel.checkpoint_if_cancelled()
        method = stream.pseudo(b":method")
        target = stream.target
        rule = stream.reset_rule
        if rule is not None:
            if rule.delay:
                await trio.sleep(rule.delay)
            await self._reset(stream, rule.error_code)
            return
        script = self._server._lookup(method, target.partition("?")[0])
        reads_body = not isinstance(script, Reply) or script.read_body
        if reads_body:
            await stream.ended.wait()
        await trio.lowlevel.checkpoint_if_cancelled()
        if not (isinstance(script, ResetReply) and script.error_code in _REFUSALS):
            self._record(stream, None)  # a refusal is recorded as the reset goes out
        if isinstance(script, Reply):
            reply = script
        else:
            reply = await self._run_handler(script, self._request(stream))
        await self._answer(stream, reply, head_only=method == "HEAD")

    def _request(self, stream: _Stream) -> ReceivedRequest:
        """The stream's request, built once (with the body received so far)."""
        if stream.request is None:
            stream.request = ReceivedRequest(
                method=stream.pseudo(b":method"),
                target=stream.target,
                headers=tuple(
                    (n.decode("latin-1"), v.decode("latin-1"))
                    for n, v in stream.headers
                    if not n.startswith(b":")
                ),
                body=b"".join(stream.body),
                http_version="HTTP/2",
                connection_index=self._slot.index,
                stream_id=stream.stream_id,
            )
        return stream.request

    def _record(self, stream: _Stream, refusal: Refusal | None) -> None:
        """Record the stream's request as processed, or as refused (which
        takes it back out of the processed ones)."""
        if refusal is not None:
            self._server._record_refused(self._request(stream), refusal)
        elif not (stream.processed or stream.abandoned):
            stream.processed = True
            self._server._record_request(self._request(stream))

    async def _run_handler(self, handler: Handler, request: ReceivedRequest) -> Reply:
        try:
            return await handler(request)
        except Exception as exc:
            self._server._record_error(exc)
            return Reply(500, body=b"the test's handler failed\n")

    # -- sending -------------------------------------------------------------------

    async def _begin_answer(self, stream: _Stream) -> None:
        """The first response frame is about to be queued: no GOAWAY may disown
        it now. Raises Cancelled instead if one already did."""
        await trio.lowlevel.checkpoint_if_cancelled()
        stream.answering = True
        self._answered = max(self._answered, stream.stream_id)

    async def _reset(self, stream: _Stream, code: int) -> None:
        await self._begin_answer(stream)
        self._conn.reset_stream(stream.stream_id, code)
        self._record(stream, _REFUSALS.get(code))
        await self._writer.flush()

    async def _answer(self, stream: _Stream, reply: Reply, *, head_only: bool) -> None:
        stream_id = stream.stream_id
        if reply.delay_headers:
            await trio.sleep(reply.delay_headers)
        if reply.raw is not None:
            # Bytes instead of a response, between whole frames of the others.
            await self._begin_answer(stream)
            self._writer.queue_raw(reply.raw, framed=False)
            await self._writer.flush()
            if not reply.keep_open:
                self._reader_scope.cancel()
            return
        if reply.reset:
            code = reply.error_code if isinstance(reply, ResetReply) else _CODES.INTERNAL_ERROR
            await self._reset(stream, code)
            return
        if reply.no_response:
            await trio.sleep_forever()  # until the client resets the stream or leaves
        no_body = head_only or not reply.pieces
        await self._begin_answer(stream)
        self._conn.send_headers(stream_id, self._headers(reply), end_stream=no_body)
        await self._writer.flush()
        if not no_body:
            if await self._send_body(stream_id, reply):
                self._conn.end_stream(stream_id)
            else:  # truncate_to: a body cut short is a reset stream in HTTP/2
                self._conn.reset_stream(stream_id, _CODES.INTERNAL_ERROR)
            await self._writer.flush()
        if reply.close_after:
            await self.send_goaway(stream_id, 0)
        elif reply.close_silently_after:
            self._reader_scope.cancel()

    def _headers(self, reply: Reply) -> list[tuple[str, str]]:
        headers = [(":status", str(reply.status))]
        headers += [(name.lower(), value) for name, value in reply.headers]
        names = {name for name, _ in headers}
        if "server" not in names:
            headers.append(SERVER_HEADER)
        # RFC 9110 §8.6: no Content-Length in 204 or 304; chunked means "length unknown".
        if "content-length" not in names and reply.status not in (204, 304) and not reply.chunked:
            headers.append(("content-length", str(reply.body_length)))
        return headers

    async def _send_body(self, stream_id: int, reply: Reply) -> bool:
        """Send the body's DATA frames; False if ``truncate_to`` cut it short."""
        for delay, data in reply.writes():
            if delay:
                await trio.sleep(delay)
            await self._send_data(stream_id, data)
        return reply.truncate_to is None or reply.truncate_to == reply.body_length

    async def _send_data(self, stream_id: int, data: bytes) -> None:
        """Send ``data`` as DATA frames, never beyond the peer's flow-control window."""
        while data:
            changed = self._window_changed
            window = min(
                self._conn.local_flow_control_window(stream_id), self._conn.max_outbound_frame_size
            )
            if window <= 0:
                await changed.wait()
                continue
            self._conn.send_data(stream_id, data[:window])
            data = data[window:]
            await self._writer.flush()

    async def _drop(self, drop: DropConnection) -> None:
        if drop.reset:
            await reset_stream(self._stream)
            self._ending = Ending.ABORT
        self._reader_scope.cancel()

    def _lost(self) -> None:
        """The transport broke under us (reset by the peer)."""
        if not self._writer.dropped:
            self._ending = Ending.ABORT
        self._reader_scope.cancel()
