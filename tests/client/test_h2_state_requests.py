"""H2State.send_request, h2's send_headers for our requests: the same
frames and the same limit on concurrent streams."""

from __future__ import annotations

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
import pytest

from trio_requests._h2_state import H2State

CLIENT = h2.config.H2Configuration(client_side=True, header_encoding=None)
SERVER = h2.config.H2Configuration(client_side=False, header_encoding=None)
GET = [(b":method", b"GET"), (b":scheme", b"https"), (b":authority", b"x"), (b":path", b"/")]


def _pair(max_streams: int, in_flight: list[int]) -> tuple[H2State, h2.connection.H2Connection]:
    """A client and a server past their prefaces (the server's SETTINGS
    limit MAX_CONCURRENT_STREAMS)."""
    client = H2State(in_flight, config=CLIENT)
    client.initiate_connection()
    server = h2.connection.H2Connection(config=SERVER)
    server.initiate_connection()
    server.update_settings({h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: max_streams})
    server.receive_data(client.data_to_send())
    client.receive_data(server.data_to_send())
    server.receive_data(client.data_to_send())  # the SETTINGS ACK
    server.data_to_send()
    return client, server


def test_a_request_reaches_the_server_as_h2_would_send_it() -> None:
    client, server = _pair(10, [])
    client.send_request(1, GET, True)
    events = server.receive_data(client.data_to_send())
    (received,) = [e for e in events if isinstance(e, h2.events.RequestReceived)]
    assert (received.stream_id, list(received.headers)) == (1, GET)
    assert any(isinstance(e, h2.events.StreamEnded) for e in events)


def test_no_stream_beyond_the_peers_max_concurrent_streams() -> None:
    in_flight = [1]  # the connection's table: one stream open
    client, _ = _pair(1, in_flight)
    with pytest.raises(h2.exceptions.TooManyStreamsError):
        client.send_request(3, GET, True)
    in_flight.clear()
    client.send_request(3, GET, True)
    assert client.data_to_send()
