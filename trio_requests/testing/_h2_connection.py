"""One server-side HTTP/2 connection: an h2 frame loop playing a script per stream.

Theory of operation: the connection's own task reads frames and feeds them to
h2; every request stream gets a task in the connection's nursery, which waits
for the request body, records the :class:`ReceivedRequest` and plays its
:class:`Reply`. Since h2 is a sans-IO state machine, every task mutates it
synchronously and then calls :meth:`H2Connection._flush`, which drains h2's
whole output buffer under one lock: frames are always complete when written,
so concurrent streams never interleave mid-frame.

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

h2's state machine treats any GOAWAY as the end of the connection, so a
*graceful* GOAWAY (streams up to ``last_stream_id`` still complete) is written
as a raw hyperframe frame next to h2's output, and newer streams are refused
with REFUSED_STREAM by the driver itself.

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

from ._script import Handler, ReceivedRequest, Reply
from ._server import RECEIVE_SIZE, SERVER_HEADER, Ending

if TYPE_CHECKING:
    from ._h2_server import H2Server
    from ._server import ConnectionSlot

__all__ = ["H2Connection", "ResetReply"]


@dataclass(frozen=True)
class ResetReply(Reply):
    """The internal form of a ``ResetStream`` route: RST_STREAM with this code."""

    error_code: int = h2.errors.ErrorCodes.INTERNAL_ERROR


@dataclass(eq=False)
class _Stream:
    stream_id: int
    headers: list[tuple[bytes, bytes]]
    body: list[bytes] = field(default_factory=list)
    ended: trio.Event = field(default_factory=trio.Event)
    cancel_scope: trio.CancelScope = field(default_factory=trio.CancelScope)


class H2Connection:
    """Serve one transport stream with HTTP/2 until either side ends the connection."""

    def __init__(
        self,
        server: H2Server,
        stream: trio.abc.Stream,
        slot: ConnectionSlot,
        *,
        settings: dict[h2.settings.SettingCodes | int, int],
        max_requests: int | None,
    ) -> None:
        self._server = server
        self._stream = stream
        self._slot = slot
        self._settings = settings
        self._max_requests = max_requests
        config = h2.config.H2Configuration(client_side=False, header_encoding=None)
        self._conn = h2.connection.H2Connection(config=config)
        self._streams: dict[int, _Stream] = {}
        self._requests = 0
        self._send_lock = trio.Lock()
        self._window_changed = trio.Event()
        self._goaway_last_id: int | None = None
        self._held_acks: list[tuple[int, int]] = []  # (flow-controlled length, stream id)
        self._reader_scope = trio.CancelScope()
        self._ending = Ending.CLOSE
        self._nursery: trio.Nursery | None = None

    async def serve(self) -> Ending:
        """Serve streams until the connection should end, and say how to end it."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            try:
                self._conn.initiate_connection()
                self._conn.update_settings(self._settings)
                await self._flush()
                with self._reader_scope:
                    await self._read_frames()
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self._ending = Ending.ABORT  # reset by the peer
            finally:
                self._nursery = None
                nursery.cancel_scope.cancel()  # streams die with their connection
        return self._ending

    # -- server-wide faults ----------------------------------------------------

    def update_settings(self, settings: dict[h2.settings.SettingCodes | int, int]) -> None:
        """Send a SETTINGS frame now (from a sync caller: the write runs as a task)."""
        if self._nursery is None:
            self._settings = {**self._settings, **settings}  # for a connection not yet started
            return
        self._conn.update_settings(settings)
        self._nursery.start_soon(self._flush_quietly)

    def release_window_updates(self) -> None:
        """Acknowledge the DATA held while window updates were paused (the
        WINDOW_UPDATE frames are written by a task, as for :meth:`update_settings`)."""
        held, self._held_acks = self._held_acks, []
        for length, stream_id in held:
            self._acknowledge(length, stream_id)
        if held and self._nursery is not None:
            self._nursery.start_soon(self._flush_quietly)

    async def send_goaway(self, last_stream_id: int | None, error_code: int) -> None:
        """Send GOAWAY: NO_ERROR finishes the streams up to ``last_stream_id`` first."""
        if self._nursery is None:
            return
        if last_stream_id is None:
            last_stream_id = self._conn.highest_inbound_stream_id
        frame = GoAwayFrame(0, last_stream_id=last_stream_id, error_code=error_code)
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await self._flush(extra=frame.serialize())
        # Only now may a drained connection end, so the frame is never cut off.
        self._goaway_last_id = last_stream_id
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
                await self._flush()  # h2 has queued a GOAWAY with the reason
                return
            for event in events:
                if not self._handle(event):
                    await self._flush()
                    return
            await self._flush()  # SETTINGS/PING acks, window updates, refusals

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
        if self._goaway_last_id is not None and stream_id > self._goaway_last_id:
            self._conn.reset_stream(stream_id, h2.errors.ErrorCodes.REFUSED_STREAM)
            return
        stream = _Stream(stream_id, headers)
        self._streams[stream_id] = stream
        self._nursery.start_soon(self._run_stream, stream)
        self._requests += 1
        if self._max_requests is not None and self._requests >= self._max_requests:
            # nginx's keepalive_requests for h2: a graceful GOAWAY after the last one.
            self._nursery.start_soon(self.send_goaway, stream_id, 0)

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
            with contextlib.suppress(h2.exceptions.ProtocolError):
                self._conn.reset_stream(stream.stream_id, h2.errors.ErrorCodes.INTERNAL_ERROR)
                await self._flush()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self._ending = Ending.ABORT
            self._reader_scope.cancel()
        finally:
            del self._streams[stream.stream_id]
            if self._goaway_last_id is not None and not self._streams:
                self._reader_scope.cancel()  # a graceful GOAWAY has drained

    async def _serve_stream(self, stream: _Stream) -> None:
        pseudo = {name: value for name, value in stream.headers if name.startswith(b":")}
        method = pseudo.get(b":method", b"").decode("latin-1")
        target = pseudo.get(b":path", b"").decode("latin-1")
        script = self._server._lookup(method, target.partition("?")[0])
        reads_body = not isinstance(script, Reply) or script.read_body
        if reads_body:
            await stream.ended.wait()
        received = ReceivedRequest(
            method=method,
            target=target,
            headers=tuple(
                (n.decode("latin-1"), v.decode("latin-1"))
                for n, v in stream.headers
                if not n.startswith(b":")
            ),
            body=b"".join(stream.body) if reads_body else b"",
            http_version="HTTP/2",
            connection_index=self._slot.index,
        )
        self._server._record_request(received)
        reply = script if isinstance(script, Reply) else await self._run_handler(script, received)
        await self._answer(stream.stream_id, reply, head_only=method == "HEAD")

    async def _run_handler(self, handler: Handler, request: ReceivedRequest) -> Reply:
        try:
            return await handler(request)
        except Exception as exc:
            self._server._record_error(exc)
            return Reply(500, body=b"the test's handler failed\n")

    # -- sending -------------------------------------------------------------------

    async def _answer(self, stream_id: int, reply: Reply, *, head_only: bool) -> None:
        if reply.delay_headers:
            await trio.sleep(reply.delay_headers)
        if reply.reset or reply.raw is not None:
            if reply.raw is not None:
                self._server._record_error(ValueError("Reply(raw=...) has no HTTP/2 meaning"))
            code = reply.error_code if isinstance(reply, ResetReply) else 2  # INTERNAL_ERROR
            self._conn.reset_stream(stream_id, code)
            await self._flush()
            return
        if reply.no_response:
            await trio.sleep_forever()  # until the client resets the stream or leaves
        no_body = head_only or not reply.pieces
        self._conn.send_headers(stream_id, self._headers(reply), end_stream=no_body)
        await self._flush()
        if not no_body:
            if await self._send_body(stream_id, reply):
                self._conn.end_stream(stream_id)
            else:  # truncate_to: a body cut short is a reset stream in HTTP/2
                self._conn.reset_stream(stream_id, h2.errors.ErrorCodes.INTERNAL_ERROR)
            await self._flush()
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
            await self._flush()

    async def _flush(self, extra: bytes = b"") -> None:
        """Write everything h2 has queued (then ``extra``); one writer at a time."""
        async with self._send_lock:
            data = self._conn.data_to_send() + extra
            if data:
                await self._stream.send_all(data)

    async def _flush_quietly(self) -> None:
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await self._flush()
