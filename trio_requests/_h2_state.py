"""H2State: the h2 connection object, with the few changes our driver needs.

Each override is narrow, says why, and is proven by a test; they touch h2's
private parts, which is why pyproject pins ``h2<4.5``.
"""

from __future__ import annotations

from collections.abc import Sized
from typing import Any

import h2.config
import h2.connection
import h2.errors
import h2.events
from hyperframe.frame import Frame, GoAwayFrame

__all__ = ["H2State"]


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
    * **counting open streams is O(1).** h2 counts them by walking every
      stream on each new one (and deletes closed ones as it goes): O(streams)
      per request, 5% of a request at 100 streams. Our connection's table
      holds exactly the streams leased on it, which is what the count guards
      (the pool never leases beyond MAX_CONCURRENT_STREAMS), and a stream
      that ends is deleted here by :meth:`forget`.
    """

    def __init__(self, in_flight: Sized, *, config: h2.config.H2Configuration) -> None:
        super().__init__(config=config)
        self._in_flight = in_flight
        self._ended_by_peer = False

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

    def _receive_frame(self, frame: Frame) -> list[h2.events.Event]:
        if self._ended_by_peer:
            return []
        return super()._receive_frame(frame)

    @property
    def has_output(self) -> bool:
        """Frames are queued (h2 offers no public way to ask without
        taking them): lets a stream skip waking the writer for nothing."""
        return bool(self._data_to_send)
