"""Benchmark client: bare trio + h2, no pool (runs in the project's environment).

The reference ceiling for HTTP/2, as h11_client.py is for HTTP/1.1: ONE TLS
connection (ALPN ``h2``) carrying C concurrent tasks' GETs (or, with
``--upload-bytes``, POSTs of one in-memory body) as streams, with
no pool, no Session, no header merging and no retries beyond what the
protocol forces. What trio_requests costs on top of this is the price of its
pool and Session.

The connection is driven the way a hand-written client would:

* one reader task feeds ``h2`` everything the socket delivers and dispatches
  the events to per-stream records (status, body length, a ``trio.Event``);
  response DATA is acknowledged at once (``acknowledge_received_data``), so
  the windows reopen as fast as the responses arrive;
* one writer task sends whatever ``h2`` has pending (``data_to_send()``) in
  one ``send_all``, so the HEADERS of many tasks and the reader's
  WINDOW_UPDATEs go out together;
* a ``trio.CapacityLimiter`` sized from the server's SETTINGS
  (MAX_CONCURRENT_STREAMS, also when a later SETTINGS frame changes it) is
  the stream slot a task holds from HEADERS to END_STREAM;
* a request body goes out as DATA frames as the flow-control windows allow
  (Content-Length set), waiting for the server's WINDOW_UPDATEs.

nginx ends a connection after ``keepalive_requests`` requests (1000 in the
harness) with GOAWAY: the streams it names as processed (up to
``last_stream_id``) still complete, the later ones it never saw are sent again
on a new connection (counted in ``refused``), like h11_client.py reconnects.
The ``h2`` library closes its whole state machine on GOAWAY, so the frames
of the streams still being answered raise ``ProtocolError`` (python-hyper/h2
#1199; httpx trips on it, encode/httpcore#46), although RFC 9113 §6.8 lets
them finish: :class:`H2Connection` keeps it open for them.
"""

from __future__ import annotations

import ssl
import sys
from importlib.metadata import version
from urllib.parse import urlsplit

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import trio
from bench_common import H2, Args, Tally, measure, parse_args, report, split, unsupported
from h2.events import Event
from h2.settings import SettingCodes
from hyperframe.frame import Frame, GoAwayFrame

CLIENT = "trio+h2 (bare)"
READ_SIZE = 65536
#: a task tries a request on at most this many connections (each GOAWAY
#: that refuses its stream costs one); beyond that it is an error.
MAX_ATTEMPTS = 5
#: the server's first SETTINGS frame arrives with its first bytes.
MAX_PREFACE_READS = 100
#: stream slots when the server sets no MAX_CONCURRENT_STREAMS.
MAX_SLOTS = 2**31
#: DATA frames plus window waits one request body may take (64 KiB: 4 frames).
MAX_BODY_STEPS = 100_000


class ConnectionEnded(Exception):
    """The connection failed or closed under a stream."""


class Refused(Exception):
    """The server never processed this stream (GOAWAY): send it again elsewhere."""


class Target:
    """Where to connect and the request to send, prepared once."""

    def __init__(self, args: Args) -> None:
        parts = urlsplit(args.url)
        if parts.scheme != "https":
            raise ValueError("this loop speaks HTTP/2 over TLS (ALPN h2) only")
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 443
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.headers = [
            (b":method", args.method.encode("ascii")),
            (b":scheme", b"https"),
            (b":authority", parts.netloc.encode("ascii")),
            (b":path", path.encode("ascii")),
            (b"user-agent", b"bench-h2"),
            (b"accept", b"*/*"),
        ]
        self.body = args.body
        if self.body:
            self.headers.append((b"content-length", str(len(self.body)).encode("ascii")))
        context = args.ssl_context()
        assert context is not None  # an https:// URL
        context.set_alpn_protocols(["h2"])
        self.context: ssl.SSLContext = context


class H2Connection(h2.connection.H2Connection):
    """h2's connection, except that GOAWAY leaves it open for the streams the
    server still answers (h2 closes its state machine, so their frames, often
    in the same read as the GOAWAY, would raise ProtocolError)."""

    def _receive_goaway_frame(self, frame: GoAwayFrame) -> tuple[list[Frame], list[Event]]:
        state = self.state_machine.state
        frames, events = super()._receive_goaway_frame(frame)
        self.state_machine.state = state  # no new streams: Connection.usable says so
        return frames, events


class Stream:
    """One request's response as the reader assembles it."""

    __slots__ = ("done", "error", "length", "status")

    def __init__(self) -> None:
        self.status = 0
        self.length = 0
        self.error: Exception | None = None
        self.done = trio.Event()


class Connection:
    """One HTTP/2 connection: its h2 state, streams, reader and writer."""

    def __init__(self, stream: trio.SSLStream[trio.SocketStream]) -> None:
        self.stream = stream
        config = h2.config.H2Configuration(client_side=True, header_encoding=None)
        self.h2 = H2Connection(config=config)
        self.streams: dict[int, Stream] = {}
        self.slots = trio.CapacityLimiter(1)  # resized by the server's SETTINGS
        self.usable = True  # False once GOAWAY came or the connection failed
        self.goaway_last_id: int | None = None
        self.settings_seen = False
        self.cancel_scope = trio.CancelScope()
        self._wake = trio.Event()
        #: set (and replaced) when a flow-control window opens or streams end,
        #: so that a body waiting for window space looks again.
        self._window = trio.Event()

    @classmethod
    async def open(cls, target: Target) -> Connection:
        """Connect, check ALPN, exchange prefaces, and read the server's
        SETTINGS (the stream limit) before any request is sent."""
        tcp = await trio.open_tcp_stream(target.host, target.port)
        tls = trio.SSLStream(tcp, target.context, server_hostname=target.host)
        try:
            return await cls._start(tls)
        except BaseException:
            await trio.aclose_forcefully(tls)
            raise

    @classmethod
    async def _start(cls, tls: trio.SSLStream[trio.SocketStream]) -> Connection:
        await tls.do_handshake()
        if tls.selected_alpn_protocol() != "h2":
            raise ConnectionEnded(f"ALPN chose {tls.selected_alpn_protocol()!r}, not h2")
        conn = cls(tls)
        conn.h2.initiate_connection()
        await tls.send_all(conn.h2.data_to_send())
        for _ in range(MAX_PREFACE_READS):
            data = await tls.receive_some(READ_SIZE)
            if not data:
                raise ConnectionEnded("the server closed the connection during the preface")
            conn.handle(conn.h2.receive_data(data))
            if conn.settings_seen:
                return conn
        raise ConnectionEnded("no SETTINGS from the server")

    async def run(self) -> None:
        """Reader and writer until the connection is drained or fails."""
        try:
            with self.cancel_scope:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._writer)
                    self.wake()  # the SETTINGS ack and anything else pending
                    await self._reader()
                    nursery.cancel_scope.cancel()  # drained after GOAWAY
        finally:
            self.usable = False
            self.fail_all(ConnectionEnded("the connection closed"))
            await trio.aclose_forcefully(self.stream)

    def wake(self) -> None:
        self._wake.set()

    def window_changed(self) -> None:
        """Wake the bodies waiting for flow-control window (or for their end)."""
        self._window.set()
        self._window = trio.Event()

    async def _writer(self) -> None:
        try:
            while True:
                await self._wake.wait()
                self._wake = trio.Event()
                data = self.h2.data_to_send()
                if data:
                    await self.stream.send_all(data)
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            self.fail(exc)

    async def _reader(self) -> None:
        try:
            await self._read()
        except (
            OSError,
            trio.BrokenResourceError,
            trio.ClosedResourceError,
            h2.exceptions.ProtocolError,
            ConnectionEnded,
        ) as exc:
            self.fail(exc)

    async def _read(self) -> None:
        """Feed h2 until the server closes, or GOAWAY came and no stream is left."""
        while self.goaway_last_id is None or self.streams:
            data = await self.stream.receive_some(READ_SIZE)
            if not data:
                raise ConnectionEnded("the server closed the connection")
            self.handle(self.h2.receive_data(data))
            self.wake()

    def handle(self, events: list[h2.events.Event]) -> None:
        """Dispatch h2's events to the streams (most frequent first)."""
        streams = self.streams
        for event in events:
            if isinstance(event, h2.events.DataReceived):
                if event.flow_controlled_length:
                    self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                record = streams.get(event.stream_id)
                if record is not None:
                    record.length += len(event.data)
            elif isinstance(event, h2.events.ResponseReceived):
                record = streams.get(event.stream_id)
                if record is not None:
                    for name, value in event.headers:
                        if name == b":status":
                            record.status = int(value)
                            break
            elif isinstance(event, h2.events.StreamEnded):
                record = streams.pop(event.stream_id, None)
                if record is not None:
                    record.done.set()
            elif isinstance(event, h2.events.StreamReset):
                record = streams.pop(event.stream_id, None)
                if record is not None:
                    record.error = ConnectionEnded(f"RST_STREAM {event.error_code!r}")
                    record.done.set()
            elif isinstance(event, h2.events.RemoteSettingsChanged):
                codes = event.changed_settings
                if not self.settings_seen or SettingCodes.MAX_CONCURRENT_STREAMS in codes:
                    # h2's default when the server names no limit is 2**32 + 1.
                    limit = self.h2.remote_settings.max_concurrent_streams
                    self.slots.total_tokens = max(1, min(limit, MAX_SLOTS))
                self.settings_seen = True
                self.window_changed()  # INITIAL_WINDOW_SIZE may have grown
            elif isinstance(event, h2.events.WindowUpdated):
                self.window_changed()
            elif isinstance(event, h2.events.ConnectionTerminated):
                self.goaway(event)

    def goaway(self, event: h2.events.ConnectionTerminated) -> None:
        """GOAWAY: refuse the streams past its last id; let the others finish."""
        self.usable = False
        last = event.last_stream_id if event.last_stream_id is not None else 0
        if self.goaway_last_id is not None:
            last = min(last, self.goaway_last_id)
        self.goaway_last_id = last
        if event.error_code != h2.errors.ErrorCodes.NO_ERROR:
            self.fail(ConnectionEnded(f"GOAWAY {event.error_code!r}"))
            return
        for stream_id in [sid for sid in self.streams if sid > last]:
            record = self.streams.pop(stream_id)
            record.error = Refused(f"stream {stream_id} > GOAWAY's last stream {last}")
            record.done.set()
        self.window_changed()

    def fail_all(self, exc: Exception) -> None:
        for record in self.streams.values():
            record.error = exc
            record.done.set()
        self.streams.clear()
        self.window_changed()

    def fail(self, exc: Exception) -> None:
        """The connection is unusable: fail its streams and stop its tasks."""
        self.usable = False
        if not isinstance(exc, ConnectionEnded):
            exc = ConnectionEnded(f"{type(exc).__module__}.{type(exc).__qualname__}: {exc}")
        self.fail_all(exc)
        self.cancel_scope.cancel()

    async def get(self, target: Target) -> tuple[int, int]:
        """One request (GET, or POST with the target's body) as a stream of
        this connection: (status, body length)."""
        async with self.slots:
            if not self.usable:
                raise Refused("the connection is going away")
            stream_id = self.h2.get_next_available_stream_id()
            self.h2.send_headers(stream_id, target.headers, end_stream=not target.body)
            record = Stream()
            self.streams[stream_id] = record
            self.wake()
            if target.body:
                await self.send_body(stream_id, target.body, record)
            await record.done.wait()
        if record.error is not None:
            raise record.error
        return record.status, record.length

    async def send_body(self, stream_id: int, body: bytes, record: Stream) -> None:
        """DATA frames as fast as the stream's and the connection's windows
        allow, END_STREAM on the last; waits for WINDOW_UPDATE when they are
        shut. Stops early if the stream ends first (the server may answer
        before it has read the whole body, then reset the stream)."""
        sent = 0
        for _ in range(MAX_BODY_STEPS):  # bounded: each step sends a frame or waits once
            if record.done.is_set():
                return
            window = self.h2.local_flow_control_window(stream_id)
            size = min(window, self.h2.max_outbound_frame_size, len(body) - sent)
            if size <= 0:
                await self._window.wait()
                continue
            sent += size
            self.h2.send_data(stream_id, body[sent - size : sent], end_stream=sent == len(body))
            self.wake()
            if sent == len(body):
                return
        raise ConnectionEnded(f"body not sent in {MAX_BODY_STEPS} steps")


class Connections:
    """The one current connection, replaced when it goes away."""

    def __init__(self, target: Target, nursery: trio.Nursery) -> None:
        self.target = target
        self.nursery = nursery
        self.current: Connection | None = None
        self.opened = 0
        self._lock = trio.Lock()

    async def get(self) -> Connection:
        conn = self.current
        if conn is not None and conn.usable:
            return conn
        async with self._lock:  # one task connects; the others wait for it
            conn = self.current
            if conn is None or not conn.usable:
                conn = await Connection.open(self.target)
                self.nursery.start_soon(conn.run)
                self.current = conn
                self.opened += 1
            return conn


async def run(args: Args, tally: Tally) -> None:
    target = Target(args)
    refused = 0

    async def worker(connections: Connections, count: int) -> None:
        nonlocal refused
        for _ in range(count):  # bounded by this task's share
            for _attempt in range(MAX_ATTEMPTS):  # bounded: GOAWAYs refusing this request
                try:
                    conn = await connections.get()
                    status, length = await conn.get(target)
                except Refused:
                    refused += 1
                    continue
                except (
                    OSError,
                    trio.BrokenResourceError,
                    h2.exceptions.ProtocolError,
                    ConnectionEnded,
                ) as exc:
                    tally.exception(exc)
                    break
                tally.check(status, length, "HTTP/2")
                break
            else:
                tally.fail(f"refused by {MAX_ATTEMPTS} connections in a row")

    with trio.move_on_after(args.time_limit):
        async with trio.open_nursery() as conn_nursery:
            connections = Connections(target, conn_nursery)
            async with trio.open_nursery() as nursery:
                for count in split(args.requests, args.concurrency):
                    nursery.start_soon(worker, connections, count)
            conn_nursery.cancel_scope.cancel()  # the last connection's reader and writer
    tally.extra["client_connections"] = connections.opened
    tally.extra["refused"] = refused


def main() -> int:
    args = parse_args()
    versions = f"h2 {version('h2')}, trio {version('trio')}"
    if args.protocol != H2:
        return unsupported(CLIENT, versions, args, "the bare HTTP/1.1 loop is h11_client.py")
    if not args.url.startswith("https://"):
        return unsupported(CLIENT, versions, args, "HTTP/2 over TLS (ALPN) only")
    tally = Tally(expect_length=args.expect_length, expect_version="HTTP/2")
    with measure() as phase:
        trio.run(run, args, tally)
    report(CLIENT, versions, args, tally, phase)
    return 0


if __name__ == "__main__":
    sys.exit(main())
