"""Limits: how much a response may ask of us."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True, slots=True)
class Limits:
    """Bounds on what a server can make the client hold or do.

    Attributes:
        max_header_bytes: the response head (status line and header fields)
            may not exceed this. 64 KiB: nginx and Apache refuse request
            heads past 8-16 KiB, and real response heads stay well below;
            h11 itself defaults to 16 KiB, which some CDNs' cookie-laden
            heads exceed.
        max_header_count: at most this many header fields (Apache's
            LimitRequestFields default is 100).
        max_decompressed_size: bytes a decompressed body may reach; None
            means no cap (large downloads are legitimate; the ratio guards
            against bombs).
        max_decompression_ratio: decompressed/compressed size above which a
            body is treated as a decompression bomb; see ``_decoders``.
        http2_stream_window: the HTTP/2 receive window of each stream: the
            most an unread response body can make us buffer. 1 MiB fills a
            1 Gbit/s link at 8 ms round trip; the connection window is 128
            times that (capped at 2 GiB), so slow readers never stall the
            other streams. An HTTP/1.1 body is read as the application
            asks for it, at most 64 KiB at a time, so it buffers no more.
        http2_max_concurrent_streams: streams the client opens at most on one
            HTTP/2 connection, whatever the server's MAX_CONCURRENT_STREAMS
            (which may be "unlimited"). 1000: ten times the common 100, while
            a misconfigured server cannot make one connection hold unbounded
            requests and their buffers.
    """

    max_header_bytes: int = 65536
    max_header_count: int = 100
    max_decompressed_size: int | None = None
    max_decompression_ratio: float | None = 1000.0
    http2_stream_window: int = 1 << 20
    http2_max_concurrent_streams: int = 1000

    def __post_init__(self) -> None:
        window = self.http2_stream_window
        if isinstance(window, bool) or not isinstance(window, int) or not 1 <= window < 2**31:
            raise ValueError(
                f"Limits.http2_stream_window must be an int in [1, 2**31), got {window!r}"
            )
        for name in ("max_header_bytes", "max_header_count", "http2_max_concurrent_streams"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"Limits.{name} must be a positive int, got {value!r}")
        size = self.max_decompressed_size
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
            raise ValueError(
                f"Limits.max_decompressed_size must be a positive int or None, got {size!r}"
            )
        ratio = self.max_decompression_ratio
        if ratio is not None and (isinstance(ratio, bool) or not ratio > 1):
            raise ValueError(f"Limits.max_decompression_ratio must be > 1 or None, got {ratio!r}")
