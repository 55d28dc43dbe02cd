"""CachingDecoder and CachingEncoder work exactly as hpack's Decoder and
Encoder do, only faster on repeats: hypothesis properties feed both the same
sequences (fresh, replayed, with and without indexing, sensitive fields,
table size updates) and compare results and tables."""

from __future__ import annotations

from typing import Any

import hpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_requests._hpack_cache import MAX_ENTRIES, CachingDecoder, CachingEncoder

NAMES = [b"server", b"date", b"content-type", b"x-a", b"x-b", b":status"]
VALUES = [b"nginx", b"Sun, 06 Dec 2026", b"text/plain", b"1", b"2" * 40, b"200"]

headers = st.lists(
    st.tuples(st.sampled_from(NAMES), st.sampled_from(VALUES), st.booleans()),
    min_size=1,
    max_size=6,
)
Fields = list[tuple[bytes, bytes, bool]]
Step = tuple[Fields, bool, int | None] | int
#: a step: a new block (headers, huffman, table size update or None), or a
#: replay of the n-th block made so far.
steps = st.lists(
    st.one_of(
        st.tuples(headers, st.booleans(), st.sampled_from([None, 0, 64, 4096])),
        st.integers(min_value=0, max_value=20),
    ),
    min_size=1,
    max_size=30,
)


def _outcome(decoder: hpack.Decoder, block: bytes) -> object:
    try:
        return list(decoder.decode(block, raw=True))
    except hpack.HPACKError as exc:
        return type(exc)


@settings(max_examples=200, deadline=None)
@given(steps)
def test_same_results_and_table_as_hpack(plan: list[Step]) -> None:
    encoder = hpack.Encoder()
    reference, caching = hpack.Decoder(), CachingDecoder()
    blocks: list[bytes] = []
    for step in plan:
        if isinstance(step, int):
            if not blocks:
                continue
            block = blocks[step % len(blocks)]
        else:
            fields, huffman, resize = step
            if resize is not None:
                encoder.header_table_size = resize
            triples = [
                hpack.NeverIndexedHeaderTuple(n, v) if never else hpack.HeaderTuple(n, v)
                for n, v, never in fields
            ]
            # A fresh encoder refers to no dynamic entry (nginx's blocks).
            fresh = resize == 64
            block = (hpack.Encoder() if fresh else encoder).encode(triples, huffman=huffman)
            blocks.append(block)
        assert _outcome(caching, block) == _outcome(reference, block)
        assert caching.header_table.dynamic_entries == reference.header_table.dynamic_entries
        assert caching.header_table.maxsize == reference.header_table.maxsize


def _unindexed(*fields: tuple[bytes, bytes]) -> bytes:
    """A block of literals without indexing, as nginx sends its responses."""
    return hpack.Encoder().encode([hpack.NeverIndexedHeaderTuple(n, v) for n, v in fields])


def test_a_repeated_block_is_decoded_once(monkeypatch: pytest.MonkeyPatch) -> None:
    decoder = CachingDecoder()
    block = _unindexed((b":status", b"200"), (b"server", b"nginx"))
    calls = 0
    decode = hpack.Decoder.decode

    def counting(self: hpack.Decoder, data: bytes, raw: bool = False) -> object:
        nonlocal calls
        calls += 1
        return decode(self, data, raw)

    monkeypatch.setattr(hpack.Decoder, "decode", counting)
    results = [list(decoder.decode(block, raw=True)) for _ in range(5)]
    assert calls == 1
    assert all(r == [(b":status", b"200"), (b"server", b"nginx")] for r in results)
    results[0].append(hpack.HeaderTuple(b"x", b"y"))  # callers get their own list
    assert decoder.decode(block, raw=True) == results[1]


def test_blocks_that_read_the_dynamic_table_are_not_kept() -> None:
    decoder = CachingDecoder()
    encoder = hpack.Encoder()
    first = encoder.encode([(b"x-new", b"v")])  # adds to the table, reads nothing
    again = encoder.encode([(b"x-new", b"v")])  # refers to what first added
    assert decoder.decode(first, raw=True) == decoder.decode(again, raw=True)
    assert [key[0] for key in decoder._cache] == [first]


def test_a_repeated_indexing_block_adds_its_entries_again() -> None:
    """nginx's kind of block: literals with incremental indexing."""
    block = hpack.Encoder().encode([(b"server", b"nginx"), (b"x-id", b"7")])
    caching, reference = CachingDecoder(), hpack.Decoder()
    for _ in range(100):  # enough to evict: the 4 KiB table holds ~50 of these pairs
        assert caching.decode(block, raw=True) == reference.decode(block, raw=True)
    assert caching.header_table.dynamic_entries == reference.header_table.dynamic_entries
    assert len(caching._cache) == 1


def test_the_cache_is_bounded() -> None:
    decoder = CachingDecoder()
    for i in range(MAX_ENTRIES * 3):
        decoder.decode(_unindexed((b"n", str(i).encode())), raw=True)
        assert len(decoder._cache) <= MAX_ENTRIES


Encode = tuple[list[tuple[bytes, bytes, int]], bool, int | None]
encodes = st.lists(
    st.tuples(
        st.lists(
            st.tuples(st.sampled_from(NAMES), st.sampled_from(VALUES), st.sampled_from(range(3))),
            min_size=1,
            max_size=6,
        ),
        st.booleans(),
        st.sampled_from([None, None, None, 0, 64, 4096]),
    ),
    min_size=1,
    max_size=30,
)


def _field(name: bytes, value: bytes, kind: int) -> Any:
    """A plain 2-tuple, a NeverIndexedHeaderTuple, or a sensitive 3-tuple."""
    if kind == 1:
        return hpack.NeverIndexedHeaderTuple(name, value)
    return (name, value) if kind == 0 else (name, value, True)


@settings(max_examples=200, deadline=None)
@given(encodes)
def test_encoder_same_blocks_as_hpack(
    plan: list[tuple[list[tuple[bytes, bytes, int]], bool, int | None]],
) -> None:
    reference, caching = hpack.Encoder(), CachingEncoder()
    decoder = hpack.Decoder()
    for fields, huffman, resize in plan:
        if resize is not None:
            reference.header_table_size = caching.header_table_size = resize
        headers = [_field(*field) for field in fields]
        block = caching.encode(headers, huffman=huffman)
        assert block == reference.encode(headers, huffman=huffman)
        assert [tuple(h) for h in decoder.decode(block, raw=True)] == [f[:2] for f in fields]
        assert caching.header_table.dynamic_entries == reference.header_table.dynamic_entries


def test_a_repeated_request_is_encoded_once(monkeypatch: pytest.MonkeyPatch) -> None:
    encoder = CachingEncoder()
    fields = [(b":method", b"GET"), (b":path", b"/api"), (b"authorization", b"secret")]
    first = encoder.encode(fields)  # adds to the table: not kept
    calls = 0
    add = hpack.Encoder.add

    def counting(self: hpack.Encoder, *args: Any, **kwargs: Any) -> bytes:
        nonlocal calls
        calls += 1
        return add(self, *args, **kwargs)

    monkeypatch.setattr(hpack.Encoder, "add", counting)
    blocks = [encoder.encode(fields) for _ in range(5)]
    assert calls == len(fields)  # the second encode only
    assert len(set(blocks)) == 1 and blocks[0] != first  # indexed now


def test_a_sensitive_field_is_not_confused_with_a_plain_one() -> None:
    """Equal as tuples, different on the wire: the cache tells them apart."""
    encoder, reference = CachingEncoder(), hpack.Encoder()
    sensitive = [hpack.NeverIndexedHeaderTuple(b"authorization", b"secret")]
    plain = [(b"authorization", b"secret")]
    for fields in (sensitive, sensitive, plain, plain):
        assert encoder.encode(fields) == reference.encode(fields)
