"""H2State's frame buffer (trio_requests._h2_state._FrameBuffer): however
the server's bytes are cut into reads, the client sees the same events as
when they come in one piece, CONTINUATION frames included."""

from __future__ import annotations

from typing import Any

import h2.config
import h2.connection
import h2.events
import pytest

from trio_requests._h2_state import H2State

CLIENT = h2.config.H2Configuration(client_side=True, header_encoding=None)
SERVER = h2.config.H2Configuration(client_side=False, header_encoding=None)


def _client() -> tuple[H2State, bytes]:
    """A client that sent a GET on stream 1, and what it sent."""
    client = H2State((), config=CLIENT)
    client.initiate_connection()
    client.send_headers(1, [(b":method", b"GET"), (b":scheme", b"https"),
                            (b":authority", b"x"), (b":path", b"/")], end_stream=True)  # fmt: skip
    return client, client.data_to_send()


def _answer() -> bytes:
    """The server's answer: a header block too big for one frame (HEADERS +
    CONTINUATION), then DATA."""
    server = h2.connection.H2Connection(config=SERVER)
    server.initiate_connection()
    server.receive_data(_client()[1])
    server.send_headers(1, [(b":status", b"200"), (b"x-big", b"v" * 20000)])
    server.send_data(1, b"a" * 5000)
    server.send_data(1, b"b" * 3, end_stream=True)
    return server.data_to_send()


def _events(cuts: list[int]) -> list[Any]:
    answer = _answer()
    client, _ = _client()
    events: list[Any] = []
    for start, end in zip([0, *cuts], [*cuts, len(answer)], strict=True):
        events.extend(client.receive_data(answer[start:end]))
    return [_summary(e) for e in events]


def _summary(event: Any) -> Any:
    if isinstance(event, h2.events.ResponseReceived):
        return ("head", [(bytes(n), bytes(v)) for n, v in event.headers])
    if isinstance(event, h2.events.DataReceived):
        return ("data", event.data)
    return type(event).__name__


def test_one_read_gives_the_whole_response() -> None:
    events = _events([])
    assert ("data", b"a" * 5000) in events and ("data", b"b" * 3) in events
    (head,) = [e for e in events if e[0] == "head"]
    assert (b"x-big", b"v" * 20000) in head[1]


@pytest.mark.parametrize("step", [1, 5, 9, 10, 4096, 16393])
def test_reads_cut_anywhere_give_the_same_events(step: int) -> None:
    answer = _answer()
    assert _events(list(range(step, len(answer), step))) == _events([])
