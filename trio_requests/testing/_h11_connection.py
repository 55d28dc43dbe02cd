"""One server-side HTTP/1.1 connection: an h11 ``next_event`` loop playing a script.

Theory of operation: h11 does all the framing. The driver reads a request head,
looks the route up, reads the body (answering ``Expect: 100-continue`` first),
records the :class:`ReceivedRequest`, and sends the :class:`Reply` through
h11 event by event, sleeping where the reply asks. The faults need no bypass
of h11 except ``raw`` and ``reset``: a truncated body is simply a body whose
last ``Data`` events and ``EndOfMessage`` are never sent before the close.

:meth:`H11Connection.serve` returns how the transport should be closed; it
never raises for anything the peer does. Only cancellation escapes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import h11
import trio

from ._faults import reset_stream
from ._script import Handler, ReceivedRequest, Reply
from ._server import RECEIVE_SIZE, SERVER_HEADER, Ending

if TYPE_CHECKING:
    from ._server import ConnectionSlot, ServerBase

__all__ = ["H11Connection"]


class H11Connection:
    """Serve one transport stream until either side ends the connection."""

    def __init__(
        self,
        server: ServerBase,
        stream: trio.abc.Stream,
        slot: ConnectionSlot,
        *,
        max_requests: int | None,
        send_100_continue: bool,
    ) -> None:
        self._server = server
        self._stream = stream
        self._slot = slot
        self._max_requests = max_requests
        self._send_100_continue = send_100_continue
        self._conn = h11.Connection(h11.SERVER)
        self._responses = 0

    async def serve(self) -> Ending:
        """Serve requests until the connection should end, and say how to end it."""
        try:
            while True:
                ending = await self._serve_one()
                if ending is not Ending.KEEP_ALIVE:
                    return ending
                if self._conn.states == {h11.CLIENT: h11.DONE, h11.SERVER: h11.DONE}:
                    self._conn.start_next_cycle()
                elif self._conn.states != {h11.CLIENT: h11.IDLE, h11.SERVER: h11.IDLE}:
                    return Ending.CLOSE  # e.g. the client sent Connection: close
        except h11.RemoteProtocolError as exc:
            return await self._send_error(exc.error_status_hint)
        except trio.BrokenResourceError:
            return Ending.ABORT  # reset by the peer, or a failed TLS handshake

    async def _serve_one(self) -> Ending:
        request = await self._receive_head()
        if request is None:
            return Ending.CLOSE
        # ISO-8859-1 maps every byte, so an odd byte h11 let through cannot crash us.
        method = request.method.decode("latin-1")
        target = request.target.decode("latin-1")
        script = self._server._lookup(method, target.partition("?")[0])
        reads_body = not isinstance(script, Reply) or script.read_body
        received = ReceivedRequest(
            method=method,
            target=target,
            headers=tuple((n.decode("latin-1"), v.decode("latin-1")) for n, v in request.headers),
            body=await self._receive_body() if reads_body else b"",
            http_version=f"HTTP/{request.http_version.decode('latin-1')}",
            connection_index=self._slot.index,
        )
        self._server._record_request(received)
        reply = script if isinstance(script, Reply) else await self._run_handler(script, received)
        try:
            ending = await self._answer(reply, head_only=method == "HEAD")
        except h11.LocalProtocolError as exc:
            # The script asked for something h11 refuses to frame (say, a
            # content-length header that contradicts the body): a test bug.
            self._server._record_error(exc)
            return Ending.ABORT
        if ending is Ending.KEEP_ALIVE and not reads_body:
            return Ending.CLOSE  # the unread body stands where the next request would
        return ending

    # -- receiving -----------------------------------------------------------

    async def _next_event(
        self, *, awaiting_head: bool = False
    ) -> type[h11.NEED_DATA | h11.PAUSED] | h11.Event:
        while True:
            event = self._conn.next_event()
            if event is not h11.NEED_DATA:
                return event
            # Idle means: between requests, with no partial request buffered.
            self._slot.idle = awaiting_head and not self._conn.trailing_data[0]
            try:
                data = await self._stream.receive_some(RECEIVE_SIZE)
            finally:
                self._slot.idle = False
            self._conn.receive_data(bytes(data))

    async def _receive_head(self) -> h11.Request | None:
        event = await self._next_event(awaiting_head=True)
        if isinstance(event, h11.Request):
            return event
        return None  # ConnectionClosed: the client is done with us

    async def _receive_body(self) -> bytes:
        if self._conn.they_are_waiting_for_100_continue and self._send_100_continue:
            await self._send(h11.InformationalResponse(status_code=100, headers=[]))
        parts: list[bytes] = []
        while True:
            event = await self._next_event()
            if isinstance(event, h11.Data):
                parts.append(event.data)
            else:  # EndOfMessage; h11 raises for a body cut short
                return b"".join(parts)

    async def _run_handler(self, handler: Handler, request: ReceivedRequest) -> Reply:
        try:
            reply = await handler(request)
        except Exception as exc:
            return self._handler_failed(exc)
        if not reply.read_body:
            error = ValueError("Reply(read_body=False) from a handler: the body was already read")
            return self._handler_failed(error)
        return reply

    def _handler_failed(self, error: Exception) -> Reply:
        self._server._record_error(error)
        return Reply(500, body=b"the test's handler failed\n", close_after=True)

    # -- sending -------------------------------------------------------------

    async def _answer(self, reply: Reply, *, head_only: bool) -> Ending:
        if reply.delay_headers:
            await trio.sleep(reply.delay_headers)
        if reply.reset:
            await reset_stream(self._stream)
            return Ending.ABORT
        if reply.no_response:
            await self._ignore(reply)
            return Ending.ABORT
        if reply.raw is not None:
            await self._stream.send_all(reply.raw)
            if not reply.keep_open:
                return Ending.CLOSE
            self._restart()
            return Ending.KEEP_ALIVE
        self._responses += 1
        await self._send(
            h11.Response(
                status_code=reply.status,
                headers=self._headers(reply),
                reason=reply.reason_phrase.encode("latin-1"),
            )
        )
        if not head_only:
            await self._send_body(reply)
            if reply.truncate_to is not None:
                return Ending.CLOSE
        await self._send(h11.EndOfMessage())
        return Ending.CLOSE if reply.close_silently_after else Ending.KEEP_ALIVE

    def _headers(self, reply: Reply) -> list[tuple[str, str]]:
        headers = list(reply.headers)
        names = {name.lower() for name, _ in headers}
        if "server" not in names:
            headers.append(SERVER_HEADER)
        # RFC 9110 §8.6: no Content-Length in 204 or 304 (h11 frames them as empty).
        if not names & {"content-length", "transfer-encoding"} and reply.status not in (204, 304):
            if reply.chunked:
                headers.append(("transfer-encoding", "chunked"))
            else:
                headers.append(("content-length", str(reply.body_length)))
        last = self._max_requests is not None and self._responses >= self._max_requests
        if reply.close_after or last:
            headers.append(("connection", "close"))
        return headers

    async def _send_body(self, reply: Reply) -> None:
        for delay, data in reply.writes():
            if delay:
                await trio.sleep(delay)
            await self._send(h11.Data(data=data))

    async def _send(self, event: h11.Event) -> None:
        data = self._conn.send(event)
        if data:
            await self._stream.send_all(data)

    async def _send_error(self, status: int) -> Ending:
        """Answer a request h11 could not parse, if the connection still allows it."""
        if self._conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return Ending.ABORT
        body = b"malformed request\n"
        headers = [SERVER_HEADER, ("content-length", str(len(body))), ("connection", "close")]
        try:
            await self._send(h11.Response(status_code=status, headers=headers))
            await self._send(h11.Data(data=body))
            await self._send(h11.EndOfMessage())
        except trio.BrokenResourceError:
            return Ending.ABORT
        return Ending.CLOSE

    # -- faults --------------------------------------------------------------

    async def _ignore(self, reply: Reply) -> None:
        """Never answer: read until the client leaves, or not read at all."""
        if not reply.read_body:
            await trio.sleep_forever()
        while await self._stream.receive_some(RECEIVE_SIZE):
            pass

    def _restart(self) -> None:
        """Forget the raw exchange: a fresh h11 state, fed what was already read."""
        data, closed = self._conn.trailing_data
        self._conn = h11.Connection(h11.SERVER)
        if data:
            self._conn.receive_data(data)
        if closed:
            self._conn.receive_data(b"")  # h11's way of saying EOF
