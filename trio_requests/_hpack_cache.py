"""HPACK that does a repeated header block's work once, both ways.

Decoding
--------

Servers answer a run of similar requests with byte-identical header blocks.
nginx, for one, sends its response fields as Huffman-coded literals "with
incremental indexing" of static-table names, and never refers to what they
add to the dynamic table; within a second (the ``date`` field) every 1 KiB
response has the same block. Decoding it is about a fifth of a small HTTP/2
request's CPU (Huffman, one bit-twiddling loop per field), redone for the
same bytes.

A block that refers to no dynamic-table entry and changes no table size
decodes to the same fields whatever the table holds, and its only effect on
the table is the entries it adds, in order. So for such a block we keep the
fields and those entries, keyed by the bytes and the decoder's limits; a
repeat adds the same entries (hpack's own ``add``, evictions included) and
returns the same fields: exactly what decoding it again would do. Blocks that
refer to the dynamic table are decoded every time.

Encoding
--------
A client repeating a request (polling, fan-out to one API) sends the same
fields; once they are in the dynamic table each encodes to the same indexed
form, and encoding changes nothing. The output is a function of the fields
and the table, so :class:`CachingEncoder` keeps it while the table stays as
it was (any insertion or resize empties the cache). A request with a new
field value is encoded as usual and, since that changes the table, not kept.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from hpack import Decoder, Encoder, HeaderTuple
from hpack.table import HeaderTable

#: Cached blocks per connection; past it the cache starts again (a server
#: whose blocks never repeat costs one dict lookup per response).
MAX_ENTRIES = 64
#: Larger blocks (cookies, long headers) are decoded every time.
MAX_BLOCK = 4096

_Key = tuple[bytes, bool, int, int]
_Entry = tuple[list[HeaderTuple], tuple[tuple[bytes, bytes], ...]]


class _WatchedTable(HeaderTable):
    """hpack's dynamic table, telling the caches what happens to it.

    Every change bumps :attr:`generation` (the encoder's cache is valid for
    one generation); :attr:`added` and :attr:`depended` say what one decode
    did (the caller resets them before it).
    """

    def __init__(self) -> None:
        super().__init__()
        self.generation = 0
        self.added: list[tuple[bytes, bytes]] = []
        self.depended = False  # a dynamic entry was read, or the size changed

    def get_by_index(self, index: int) -> tuple[bytes, bytes]:
        if index > HeaderTable.STATIC_TABLE_LENGTH:
            self.depended = True
        return super().get_by_index(index)

    def add(self, name: bytes, value: bytes) -> None:
        self.generation += 1
        self.added.append((name, value))
        super().add(name, value)

    @property
    def maxsize(self) -> int:
        return self._maxsize

    @maxsize.setter
    def maxsize(self, newmax: int) -> None:
        self.generation += 1
        self.depended = True
        HeaderTable.maxsize.fset(self, newmax)  # type: ignore[attr-defined]


class CachingDecoder(Decoder):
    """:class:`hpack.Decoder` with a per-connection cache of decoded blocks."""

    def __init__(self) -> None:
        super().__init__()
        self._table = _WatchedTable()
        self.header_table = self._table
        self._cache: dict[_Key, _Entry] = {}

    def decode(self, data: bytes, raw: bool = False) -> Iterable[HeaderTuple]:
        key = (bytes(data), raw, self.max_header_list_size, self.max_allowed_table_size)
        hit = self._cache.get(key)
        if hit is not None:
            fields, added = hit
            for name, value in added:
                HeaderTable.add(self._table, name, value)
            return list(fields)
        table = self._table
        table.added, table.depended = [], False
        fields = list(super().decode(data, raw))
        if not table.depended and len(data) <= MAX_BLOCK:
            if len(self._cache) >= MAX_ENTRIES:
                self._cache.clear()
            self._cache[key] = (fields, tuple(table.added))
        return list(fields)


class CachingEncoder(Encoder):
    """:class:`hpack.Encoder` with a per-connection cache of encoded blocks."""

    def __init__(self) -> None:
        super().__init__()
        self._table = _WatchedTable()
        self.header_table = self._table
        self._cache: dict[Any, bytes] = {}
        self._generation = 0

    def encode(self, headers: Any, huffman: bool = True) -> bytes:
        table = self._table
        if isinstance(headers, dict) or table.resized:
            return super().encode(headers, huffman)
        if table.generation != self._generation:
            self._cache.clear()
            self._generation = table.generation
        fields = list(headers)
        # Types too: a NeverIndexedHeaderTuple equals the plain tuple.
        key = (tuple(fields), tuple(map(type, fields)), huffman)
        try:
            cached = self._cache.get(key)
        except TypeError:  # an unhashable field (a list): nothing to keep
            return super().encode(fields, huffman)
        if cached is not None:
            return cached
        table.added.clear()  # only decodes read it: keep it from growing
        encoded = super().encode(fields, huffman)
        if table.generation == self._generation and len(encoded) <= MAX_BLOCK:
            if len(self._cache) >= MAX_ENTRIES:
                self._cache.clear()
            self._cache[key] = encoded
        return encoded
