"""An HPACK decoder that decodes a repeated header block once.

Servers answer a run of similar requests with byte-identical header blocks:
nginx, for one, sends its response fields as Huffman-coded literals without
indexing, so within a second (the ``date`` field) every 1 KiB response has
the same block. Decoding it is about a fifth of a small HTTP/2 request's CPU
(Huffman, one bit-twiddling loop per field), redone for the same bytes.

Decoding is a function of the block's bytes, the dynamic table and the two
limits, and it may change the table. So a result is kept only when its
decode left the table untouched, keyed by the bytes and limits, and the
cache is emptied whenever the table changes (every insertion or resize
bumps :attr:`_CountingTable.generation`). A hit therefore returns exactly
what decoding would, with the same (absent) effect on the table.
"""

from __future__ import annotations

from collections.abc import Iterable

from hpack import Decoder, HeaderTuple
from hpack.table import HeaderTable

#: Cached blocks per connection; past it the cache starts again (a server
#: whose blocks never repeat costs one dict lookup per response).
MAX_ENTRIES = 64
#: Larger blocks (cookies, long headers) are decoded every time.
MAX_BLOCK = 4096

_Key = tuple[bytes, bool, int, int]


class _CountingTable(HeaderTable):
    """hpack's dynamic table, counting its changes."""

    def __init__(self) -> None:
        super().__init__()
        self.generation = 0

    def add(self, name: bytes, value: bytes) -> None:
        self.generation += 1
        super().add(name, value)

    @property
    def maxsize(self) -> int:
        return self._maxsize

    @maxsize.setter
    def maxsize(self, newmax: int) -> None:
        self.generation += 1
        HeaderTable.maxsize.fset(self, newmax)  # type: ignore[attr-defined]


class CachingDecoder(Decoder):
    """:class:`hpack.Decoder` with a per-connection cache of decoded blocks."""

    def __init__(self) -> None:
        super().__init__()
        self.header_table = _CountingTable()
        self._table: _CountingTable = self.header_table
        self._cache: dict[_Key, list[HeaderTuple]] = {}
        self._generation = 0

    def decode(self, data: bytes, raw: bool = False) -> Iterable[HeaderTuple]:
        if self._table.generation != self._generation:
            self._cache.clear()
            self._generation = self._table.generation
        key = (bytes(data), raw, self.max_header_list_size, self.max_allowed_table_size)
        cached = self._cache.get(key)
        if cached is not None:
            return list(cached)
        headers = list(super().decode(data, raw))
        if self._table.generation == self._generation and len(data) <= MAX_BLOCK:
            if len(self._cache) >= MAX_ENTRIES:
                self._cache.clear()
            self._cache[key] = headers
        return list(headers)
