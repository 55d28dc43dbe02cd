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
    """

    max_header_bytes: int = 65536
    max_header_count: int = 100
    max_decompressed_size: int | None = None
    max_decompression_ratio: float | None = 1000.0

    def __post_init__(self) -> None:
        for name in ("max_header_bytes", "max_header_count"):
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
