"""The cache of received HTTP/2 header blocks that passed h2's checks
(trio_requests._h2_state._RevalidationCache): the same block gives the same
result as h2's own validation, or the same error, the first time and every
time after; the cache stays bounded."""

from __future__ import annotations

from typing import Any

import h2.config
import h2.exceptions
import h2.stream
import pytest
from h2.utilities import HeaderValidationFlags
from hypothesis import given
from hypothesis import strategies as st

from trio_requests._h2_state import _REVALIDATION, _CachingStream, _RevalidationCache

CONFIG = h2.config.H2Configuration(client_side=True, header_encoding=None)


def _stream(cls: type[h2.stream.H2Stream]) -> h2.stream.H2Stream:
    stream = h2.stream.H2Stream(
        1, config=CONFIG, inbound_window_size=65535, outbound_window_size=65535
    )
    stream.__class__ = cls
    return stream


def _outcome(stream: h2.stream.H2Stream, headers: list[Any], flags: HeaderValidationFlags) -> Any:
    try:
        return ("ok", stream._process_received_headers(list(headers), flags, None))
    except h2.exceptions.ProtocolError as exc:
        return ("error", type(exc), str(exc))


names = st.sampled_from(
    [b":status", b":path", b":method", b"content-type", b"Content-Type", b"connection",
     b"te", b"x-a", b"", b" x", b"set-cookie", b"cookie", b"x\x00y"]
)  # fmt: skip
values = st.sampled_from([b"200", b"text/html", b" padded", b"a\r\nb", b"trailers", b"x", b""])
blocks = st.lists(st.tuples(names, values), max_size=6)
flags = st.builds(
    HeaderValidationFlags,
    is_client=st.just(True),
    is_trailer=st.booleans(),
    is_response_header=st.booleans(),
    is_push_promise=st.just(False),
)


@given(block=blocks, flag=flags)
def test_a_cached_block_gives_what_h2_gives_every_time(
    block: list[tuple[bytes, bytes]], flag: HeaderValidationFlags
) -> None:
    expected = _outcome(_stream(h2.stream.H2Stream), block, flag)
    caching = _stream(_CachingStream)
    assert _outcome(caching, block, flag) == expected  # first time: maybe a miss
    assert _outcome(caching, block, flag) == expected  # then from the cache if it passed


def test_a_hit_is_a_fresh_list() -> None:
    block = [(b":status", b"200"), (b"content-length", b"3")]
    flag = HeaderValidationFlags(True, False, True, False)
    first = _stream(_CachingStream)._process_received_headers(block, flag, None)
    first.append((b"x", b"y"))
    again = _stream(_CachingStream)._process_received_headers(block, flag, None)
    assert again == [(b":status", b"200"), (b"content-length", b"3")]


def test_the_cache_is_bounded_in_entries_and_block_size() -> None:
    cache = _RevalidationCache()
    flag = HeaderValidationFlags(True, False, True, False)
    for i in range(cache.MAX_ENTRIES + 50):
        fields = ((b":status", b"200"), (b"x-n", str(i).encode()))
        cache.keep((fields, flag, None), list(fields))
    assert len(cache._done) == cache.MAX_ENTRIES
    oldest = ((b":status", b"200"), (b"x-n", b"0"))
    assert cache.lookup((oldest, flag, None)) is None  # went first
    big = ((b":status", b"200"), (b"x-big", b"v" * cache.MAX_BYTES))
    cache.keep((big, flag, None), list(big))
    assert cache.lookup((big, flag, None)) is None


@pytest.mark.parametrize("block", [[(b":status", b"200"), (b"Upper", b"x")], [(b"x", b"a\nb")]])
def test_a_bad_block_is_never_kept(block: list[tuple[bytes, bytes]]) -> None:
    flag = HeaderValidationFlags(True, False, True, False)
    stream = _stream(_CachingStream)
    for _ in range(2):
        with pytest.raises(h2.exceptions.ProtocolError):
            stream._process_received_headers(block, flag, None)
    assert (tuple(block), flag, None) not in _REVALIDATION._done
