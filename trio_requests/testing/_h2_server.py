"""The scriptable HTTP/2 server: :func:`open_h2_server`, :class:`H2Server`, :class:`ResetStream`."""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from functools import partial

import h2.settings
import trio

from ._h2_connection import H2Connection, ResetReply
from ._h2_faults import (
    ChangeSettings,
    DropConnection,
    GoAway,
    H2Fault,
    ResetRule,
    SentGoAway,
    applies,
)
from ._h11_connection import H11Connection
from ._script import Handler, Reply
from ._server import ConnectionSlot, Ending, ServerBase, check_common_options, serve

__all__ = ["H2Server", "ResetStream", "open_h2_server"]


@dataclass(frozen=True)
class ResetStream:
    """An HTTP/2-only route reply: answer with RST_STREAM carrying ``error_code``.

    ``Reply(reset=True)`` already means RST_STREAM(INTERNAL_ERROR) on HTTP/2;
    this picks the code, e.g. ``ResetStream(h2.errors.ErrorCodes.REFUSED_STREAM)``
    to test that a client retries a request the server never processed
    (RFC 9113 §8.7). It is accepted by :meth:`H2Server.route` only, alone or
    in a sequence with :class:`Reply` values. With REFUSED_STREAM or
    HTTP_1_1_REQUIRED the request counts as refused
    (:attr:`H2Server.refused_requests`), otherwise as processed. On a
    connection that ALPN made HTTP/1.1 it is a TCP reset, and processed; a
    :class:`ResetRule` resets HTTP/2 streams only.

    Attributes:
        error_code: the RST_STREAM error code (RFC 9113 §7).
        delay: seconds to wait, after reading the request, before the reset.
    """

    error_code: int
    delay: float = 0.0

    def __post_init__(self) -> None:
        if not 0 <= self.error_code < 2**32:
            raise ValueError(f"ResetStream: error_code must fit 32 bits, not {self.error_code}")
        if self.delay < 0:
            raise ValueError(f"ResetStream: delay must be >= 0, not {self.delay}")

    def _as_reply(self) -> Reply:
        return ResetReply(reset=True, delay_headers=self.delay, error_code=self.error_code)


class H2Server(ServerBase):
    """An HTTP/2 server on loopback, scripted per route. Get one from :func:`open_h2_server`.

    It has the methods of :class:`H11Server`, and HTTP/2 faults on top:
    declared ones (:meth:`add_faults`: :class:`GoAway`, :class:`ResetRule`,
    :class:`DropConnection`, :class:`ChangeSettings`), :class:`ResetStream`
    route replies, and ones a test triggers itself: :meth:`send_goaway`,
    :meth:`set_max_concurrent_streams`, :meth:`set_initial_window_size`,
    :meth:`pause_window_updates`. It counts what a client's stream and
    flow-control logic did: :attr:`peak_open_streams` per connection and
    :attr:`data_bytes_received`; and what it did itself:
    :attr:`refused_requests` apart from :attr:`requests`, and
    :attr:`goaways_sent`.

    Of the :class:`Reply` fields, ``reason`` is ignored (HTTP/2 has no
    reason phrase); ``chunked`` omits ``content-length``; ``chunks`` become
    separate DATA frames; ``reset`` and ``truncate_to`` reset the stream
    (INTERNAL_ERROR); ``close_after`` sends a graceful GOAWAY;
    ``close_silently_after`` closes without one; ``no_response`` leaves the
    stream open; ``raw`` writes its bytes on the connection between whole
    frames (see :func:`h2_frame` for malformed ones), then closes it unless
    ``keep_open``.

    A TLS connection whose ALPN selected ``http/1.1`` is served as HTTP/1.1,
    with the same routes (as :class:`H11Server` serves them); faults do not
    apply to it.
    """

    def __init__(
        self,
        *,
        host: str,
        port: int,
        ssl_context: ssl.SSLContext | None,
        settings: dict[h2.settings.SettingCodes | int, int],
        max_requests_per_connection: int | None,
        faults: Sequence[H2Fault] = (),
    ) -> None:
        super().__init__(host=host, port=port, ssl_context=ssl_context)
        self._settings = settings
        self._max_requests = max_requests_per_connection
        self._faults: list[H2Fault] = []
        self._resets_left: dict[int, int] = {}  # id() of a ResetRule with times -> resets left
        self._goaways: list[SentGoAway] = []
        if max_requests_per_connection is not None:
            # nginx's keepalive_requests for h2: a graceful GOAWAY after the last one.
            self.add_faults(GoAway(after_streams=max_requests_per_connection))
        self.add_faults(*faults)
        self._connections: list[H2Connection] = []
        self._peaks: dict[int, int] = {}  # connection index -> most streams open at once
        self._data_bytes = 0
        self._window_updates_paused = False

    # -- what tests read -------------------------------------------------------

    @property
    def peak_open_streams(self) -> list[int]:
        """The most streams each connection had open at once, in accept order.

        One entry per accepted connection (``connections_accepted`` of them),
        kept after it closes; 0 for a connection that opened no stream (or
        never got past TLS and ALPN). A stream is open from its HEADERS until
        both sides have ended it or either side reset it: the streams
        MAX_CONCURRENT_STREAMS limits (RFC 9113 §5.1.2). The count is taken
        as each HEADERS arrives; since the server ends its side before the
        client can see it ended, a client that keeps to the limit never shows
        more than the limit here.
        """
        return [self._peaks.get(index, 0) for index in range(self.connections_accepted)]

    @property
    def max_open_streams(self) -> int:
        """The largest of :attr:`peak_open_streams` (0 before any stream opened)."""
        return max(self._peaks.values(), default=0)

    @property
    def goaways_sent(self) -> list[SentGoAway]:
        """Every GOAWAY frame the server sent so far, in order: on which
        connection, with which last stream id (as clamped) and error code."""
        return list(self._goaways)

    @property
    def faults(self) -> list[H2Fault]:
        """The declared faults, in the order they were added."""
        return list(self._faults)

    @property
    def data_bytes_received(self) -> int:
        """DATA bytes received on all connections so far, as flow control
        counts them (payload plus any padding), acknowledged or not."""
        return self._data_bytes

    # -- what tests do ---------------------------------------------------------

    def reset_peak_open_streams(self) -> None:
        """Measure the peaks afresh, e.g. after :meth:`set_max_concurrent_streams`.

        Every entry of :attr:`peak_open_streams` reads 0 until the next stream
        opens on that connection; that stream then counts every stream open at
        that moment, older ones included. Peaks of closed connections are lost.
        """
        self._peaks.clear()

    def add_faults(self, *faults: H2Fault) -> None:
        """Declare faults, in addition to those given to :func:`open_h2_server`.

        They apply to new connections and to open ones alike, from the next
        trigger on: a :class:`GoAway` or :class:`ChangeSettings` fires when a
        connection receives its ``after_streams``-th stream, a
        :class:`ResetRule` is matched against each new stream, and a
        :class:`DropConnection` budget is checked at each write (counting
        from the connection's start). Faults of the same kind are looked at in
        the order they were added: of two matching ResetRules the first
        resets, and a connection sends at most one :class:`GoAway` (its first
        to fire; :meth:`send_goaway` can still add more).
        """
        for fault in faults:
            _check_fault("add_faults", fault)
            if isinstance(fault, ResetRule) and fault.times is not None:
                self._resets_left[id(fault)] = fault.times
            self._faults.append(fault)

    def clear_faults(self) -> None:
        """Forget every declared fault (for new streams and writes on open
        connections too). A GOAWAY already under way still goes out."""
        self._faults.clear()
        self._resets_left.clear()

    async def wait_for_data_bytes(self, count: int) -> None:
        """Block until :attr:`data_bytes_received` is at least ``count``."""
        await self._wait_until(lambda: self._data_bytes >= count)

    def route(
        self,
        method: str,
        path: str,
        reply: Reply | ResetStream | Sequence[Reply | ResetStream] | Handler,
    ) -> None:
        """Like :meth:`ServerBase.route`, also accepting :class:`ResetStream` replies."""
        if isinstance(reply, ResetStream):
            super().route(method, path, reply._as_reply())
        elif isinstance(reply, Sequence):
            replies = [r._as_reply() if isinstance(r, ResetStream) else r for r in reply]
            super().route(method, path, replies)
        else:
            super().route(method, path, reply)

    async def send_goaway(
        self,
        last_stream_id: int | None = None,
        error_code: int = 0,
        *,
        two_step: bool = False,
        delay: float = 0.0,
    ) -> None:
        """Send GOAWAY on every open HTTP/2 connection, as a server shutting down does.

        Args:
            last_stream_id: the highest stream the server still serves; None
                for the highest stream each connection has received so far.
                Clamped as for :class:`GoAway` (never above the highest
                stream received, never below one already being answered),
                and streams above it that the server had not begun to answer
                are abandoned and counted as refused.
            error_code: 0 (NO_ERROR) is a graceful shutdown: streams up to
                ``last_stream_id`` are answered, newer ones refused with
                REFUSED_STREAM, and the connection closes once drained. Any
                other code closes the connection right after the frame.
            two_step: first send GOAWAY(2**31-1, NO_ERROR), then the real
                one ``delay`` seconds later (RFC 9113 §6.8).
            delay: seconds to wait before the (real) GOAWAY.

        Returns once the frames are written (not when the connections close).
        """
        async with trio.open_nursery() as nursery:
            for connection in list(self._connections):
                nursery.start_soon(
                    partial(
                        connection.send_goaway,
                        last_stream_id,
                        error_code,
                        two_step=two_step,
                        delay=delay,
                    )
                )

    def set_max_concurrent_streams(self, count: int) -> None:
        """Change SETTINGS_MAX_CONCURRENT_STREAMS on open connections and for new ones.

        The SETTINGS frame is written by a task of each connection, so this
        returns before the client has it; the client sees it as a
        ``RemoteSettingsChanged`` event, and the limit binds once it acknowledges.
        """
        if count < 0:
            raise ValueError(f"set_max_concurrent_streams: count must be >= 0, not {count}")
        self._change_setting(h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS, count)

    def set_initial_window_size(self, size: int) -> None:
        """Change SETTINGS_INITIAL_WINDOW_SIZE on open connections and for new ones.

        This is the window of each stream the client uploads on. Once the
        client acknowledges the SETTINGS frame (which, as for
        :meth:`set_max_concurrent_streams`, is written by a task), the windows
        of its open streams move by the difference, possibly below zero
        (RFC 9113 §6.9.2). The connection's own window stays as it is: no
        setting changes it.
        """
        if not 0 <= size < 2**31:
            raise ValueError(f"set_initial_window_size: size must be in [0, 2**31), not {size}")
        self._change_setting(h2.settings.SettingCodes.INITIAL_WINDOW_SIZE, size)

    def pause_window_updates(self) -> None:
        """Stop handing flow-control window back, to test that uploads wait for it.

        From now on, on open and new connections, DATA is still read and
        counted (:attr:`data_bytes_received`) but not acknowledged, so no
        WINDOW_UPDATE goes out. A client can then send at most its stream
        windows (:meth:`set_initial_window_size`) and, over all streams, what
        is left of the connection window (65535 bytes on a new connection,
        RFC 9113 §6.9.2) before it must wait. One that sends more violates
        flow control: the server ends the connection with a GOAWAY
        (FLOW_CONTROL_ERROR). Requests whose body cannot finish wait too.
        """
        self._window_updates_paused = True

    def resume_window_updates(self) -> None:
        """Acknowledge the DATA held since :meth:`pause_window_updates`, and go
        back to acknowledging at once. The WINDOW_UPDATE frames are written by
        a task of each connection, so this returns before the client has them.
        """
        self._window_updates_paused = False
        for connection in self._connections:
            connection.release_window_updates()

    # -- what the connections call -----------------------------------------------

    def _change_setting(self, code: h2.settings.SettingCodes, value: int) -> None:
        self._settings = {**self._settings, code: value}
        for connection in self._connections:
            connection.update_settings({code: value})

    def _faults_for(self, index: int) -> list[H2Fault]:
        """The declared faults that apply to connection ``index``."""
        return [fault for fault in self._faults if applies(fault, index)]

    def _drops_for(self, index: int) -> list[DropConnection]:
        return [f for f in self._faults if isinstance(f, DropConnection) and applies(f, index)]

    def _take_reset_rule(self, index: int, ordinal: int, target: str) -> ResetRule | None:
        """The first ResetRule matching this stream, with one of its ``times`` used."""
        for fault in self._faults:
            if not isinstance(fault, ResetRule) or not applies(fault, index):
                continue
            if not fault.matches(ordinal=ordinal, target=target):
                continue
            left = self._resets_left.get(id(fault))
            if left is None:
                return fault
            if left > 0:
                self._resets_left[id(fault)] = left - 1
                return fault
        return None

    def _record_goaway(self, sent: SentGoAway) -> None:
        self._goaways.append(sent)
        self._notify()

    def _record_open_streams(self, index: int, count: int) -> None:
        """Note that connection ``index`` has ``count`` streams open right now."""
        self._peaks[index] = max(self._peaks.get(index, 0), count)

    def _record_data(self, length: int) -> None:
        self._data_bytes += length
        self._notify()

    # -- serving a connection ------------------------------------------------------

    async def _speak(self, stream: trio.abc.Stream, slot: ConnectionSlot) -> Ending:
        if isinstance(stream, trio.SSLStream):
            try:
                await stream.do_handshake()
            except trio.BrokenResourceError:
                return Ending.ABORT
            # RFC 9113 §3.2: over TLS, HTTP/2 is only what ALPN agreed on.
            alpn = stream.selected_alpn_protocol()
            if alpn == "http/1.1":
                return await self._speak_h11(stream, slot)
            if alpn != "h2":
                return Ending.CLOSE
        return await self._speak_h2(stream, slot)

    async def _speak_h11(self, stream: trio.abc.Stream, slot: ConnectionSlot) -> Ending:
        """ALPN chose HTTP/1.1: serve the same routes as the h11 server would."""
        connection = H11Connection(
            self, stream, slot, max_requests=self._max_requests, send_100_continue=True
        )
        return await connection.serve()

    async def _speak_h2(self, stream: trio.abc.Stream, slot: ConnectionSlot) -> Ending:
        connection = H2Connection(self, stream, slot, settings=self._settings)
        self._connections.append(connection)
        try:
            return await connection.serve()
        finally:
            self._connections.remove(connection)


def open_h2_server(
    *,
    host: str = "127.0.0.1",
    ssl_context: ssl.SSLContext | None = None,
    max_concurrent_streams: int = 100,
    initial_window_size: int = 65535,
    max_requests_per_connection: int | None = None,
    faults: Sequence[H2Fault] = (),
) -> AbstractAsyncContextManager[H2Server]:
    """Start an HTTP/2 test server on a free port: ``async with open_h2_server() as server``.

    Entering and leaving behave as for :func:`open_h11_server`: leaving closes
    everything, then re-raises the block's exception or an ExceptionGroup of
    handler errors.

    Args:
        host: the IP address to listen on.
        ssl_context: serve h2 over TLS with this server-side context, which the
            server never modifies: call ``set_alpn_protocols(["h2"])`` on it,
            or ``(["h2", "http/1.1"])`` to serve clients that choose HTTP/1.1
            too (with the same routes). A connection whose ALPN selected
            neither is closed after the handshake. None serves cleartext h2c
            with prior knowledge (RFC 9113 §3.3).
        max_concurrent_streams: SETTINGS_MAX_CONCURRENT_STREAMS (100 is the
            minimum RFC 9113 §6.5.2 recommends, and what nginx sends).
        initial_window_size: SETTINGS_INITIAL_WINDOW_SIZE for the client's
            uploads; 65535 is the protocol default.
        max_requests_per_connection: after this many streams, send a graceful
            GOAWAY (nginx's ``keepalive_requests``: the same as the fault
            ``GoAway(after_streams=n)``); None for no limit. HTTP/1.1
            connections answer this many requests, the last with
            ``Connection: close``.
        faults: HTTP/2 faults declared up front (:meth:`H2Server.add_faults`).

    Raises:
        ValueError: ``host`` is not an IP address, or a limit is out of range.
        TypeError: ``faults`` holds something that is not a fault.
    """
    check_common_options("open_h2_server", host, max_requests_per_connection)
    for fault in faults:
        _check_fault("open_h2_server", fault)
    if max_concurrent_streams < 0 or not 0 <= initial_window_size < 2**31:
        raise ValueError("open_h2_server: a setting is out of range")
    settings: dict[h2.settings.SettingCodes | int, int] = {
        h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: max_concurrent_streams,
        h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: initial_window_size,
    }
    return serve(
        host,
        lambda port: H2Server(
            host=host,
            port=port,
            ssl_context=ssl_context,
            settings=settings,
            max_requests_per_connection=max_requests_per_connection,
            faults=tuple(faults),
        ),
    )


def _check_fault(caller: str, fault: object) -> None:
    if not isinstance(fault, GoAway | ResetRule | DropConnection | ChangeSettings):
        raise TypeError(f"{caller}: not an HTTP/2 fault: {fault!r}")
