"""Content-Encoding decoding: round trips, error paths and the bomb guard."""

from __future__ import annotations

import gzip
import itertools
import random
import sys
import time
import tracemalloc
import types
import zlib
from collections.abc import Callable, Iterable

import brotli  # type: ignore[import-untyped]  # ships no type information
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_requests._decoders import (
    DEFAULT_MAX_DECOMPRESSION_RATIO,
    ContentDecoder,
    accept_encoding,
    get_decoder,
)
from trio_requests._errors import DecodingError

MiB = 1 << 20
GiB = 1 << 30


def _br(data: bytes, quality: int = 5) -> bytes:
    return bytes(brotli.compress(data, quality=quality))


def _raw_deflate(data: bytes) -> bytes:
    co = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    return co.compress(data) + co.flush()


ENCODERS: dict[str, tuple[str, Callable[[bytes], bytes]]] = {
    "gzip": ("gzip", lambda d: gzip.compress(d, mtime=0)),
    "x-gzip": ("x-gzip", lambda d: gzip.compress(d, mtime=0)),
    "deflate": ("deflate", zlib.compress),
    "raw-deflate": ("deflate", _raw_deflate),
    "br": ("br", _br),
    "zstd": ("zstd", zstandard.ZstdCompressor().compress),
}
KINDS = sorted(ENCODERS)


def encode(kind: str, data: bytes) -> tuple[str, bytes]:
    coding, fn = ENCODERS[kind]
    return coding, fn(data)


def decode_all(decoder: ContentDecoder, chunks: Iterable[bytes]) -> bytes:
    return b"".join(decoder.decode(c) for c in chunks) + decoder.flush()


def split(blob: bytes, cuts: Iterable[int]) -> list[bytes]:
    points = sorted({0, len(blob), *(c % (len(blob) + 1) for c in cuts)})
    return [blob[a:b] for a, b in itertools.pairwise(points)]


def decoder(coding: str | None) -> ContentDecoder:
    return get_decoder(coding, max_size=None, max_ratio=DEFAULT_MAX_DECOMPRESSION_RATIO)


@settings(max_examples=150, deadline=None)
@given(
    kind=st.sampled_from(KINDS),
    body=st.binary(max_size=3000),
    repeat=st.integers(1, 40),
    cuts=st.lists(st.integers(0, 10**6), max_size=12),
)
def test_round_trip_at_any_split_points(
    kind: str, body: bytes, repeat: int, cuts: list[int]
) -> None:
    data = body * repeat
    coding, blob = encode(kind, data)
    assert decode_all(decoder(coding), split(blob, cuts)) == data


@pytest.mark.parametrize("whole", [False, True], ids=["small-chunks", "one-chunk"])
@pytest.mark.parametrize("kind", KINDS)
def test_large_body_expanding_past_one_piece(kind: str, whole: bool) -> None:
    rng = random.Random(kind)
    # Hex text and long runs of zeros: some chunks expand past one 64 KiB piece.
    data = rng.randbytes(100_000).hex().encode() + bytes(400_000) + rng.randbytes(50_000)
    coding, blob = encode(kind, data)
    cuts = [] if whole else [rng.randrange(len(blob)) for _ in range(len(blob) // 2000)]
    assert decode_all(decoder(coding), split(blob, cuts)) == data


@pytest.mark.parametrize(
    ("header", "layers"),
    [
        ("gzip, br", ["gzip", "br"]),
        ("br, gzip", ["br", "gzip"]),
        ("deflate, zstd", ["deflate", "zstd"]),
        (" GZIP ,identity, Br ", ["gzip", "br"]),
        ("gzip, gzip", ["gzip", "gzip"]),
    ],
)
def test_stacked_encodings_are_undone_in_reverse(header: str, layers: list[str]) -> None:
    data = b"stacked " * 5000
    blob = data
    for kind in layers:  # applied in the order listed (RFC 9110 §8.4)
        blob = encode(kind, blob)[1]
    assert decode_all(decoder(header), split(blob, [7, 100, 1000])) == data


def test_multi_member_gzip_and_multi_frame_zstd() -> None:
    parts = [b"first member ", b"", b"second " * 1000]
    gz = b"".join(gzip.compress(p) for p in parts)
    zs = b"".join(zstandard.ZstdCompressor().compress(p) for p in parts)
    for coding, blob in (("gzip", gz), ("zstd", zs)):
        assert decode_all(decoder(coding), split(blob, range(0, len(blob), 5))) == b"".join(parts)


def test_raw_deflate_is_recognised_even_byte_by_byte() -> None:
    data = b"servers send raw deflate for Content-Encoding: deflate " * 100
    blob = _raw_deflate(data)
    with pytest.raises(zlib.error):  # not a zlib stream
        zlib.decompress(blob)
    assert decode_all(decoder("deflate"), [bytes([b]) for b in blob]) == data


@pytest.mark.parametrize("header", [None, "", "identity", "compress", "gzip, x-unknown", "exi"])
def test_identity_and_unknown_codings_pass_through_without_limits(header: str | None) -> None:
    d = get_decoder(header, max_size=10, max_ratio=1.5)
    body = bytes(3 * MiB)
    assert d.decode(body) is body
    assert d.flush() == b""


@pytest.mark.parametrize("kind", ["gzip", "deflate", "raw-deflate", "br", "zstd"])
def test_corrupt_data_raises_with_the_library_error_chained(kind: str) -> None:
    coding, blob = encode(kind, b"hello corrupt world " * 50)
    if kind == "raw-deflate":
        blob = b"\xff" * 40  # BTYPE=11 is reserved (RFC 1951 §3.2.3)
    else:
        blob = blob[:10] + bytes(b ^ 0x5A for b in blob[10:30]) + blob[30:]
    with pytest.raises(DecodingError, match="corrupt") as info:
        decode_all(decoder(coding), [blob])
    assert info.value.__cause__ is not None
    assert coding in str(info.value)


@pytest.mark.parametrize("kind", ["gzip", "deflate", "raw-deflate", "br", "zstd"])
@pytest.mark.parametrize("keep", ["first-byte", "half", "all-but-last"])
def test_truncated_stream_raises_on_flush(kind: str, keep: str) -> None:
    coding, blob = encode(kind, b"truncate me " * 4000)
    end = {"first-byte": 1, "half": len(blob) // 2, "all-but-last": len(blob) - 1}[keep]
    d = decoder(coding)
    d.decode(blob[:end])
    with pytest.raises(DecodingError, match="ended early"):
        d.flush()


@pytest.mark.parametrize("kind", ["deflate", "br"])
def test_data_after_a_single_stream_end_is_an_error(kind: str) -> None:
    coding, blob = encode(kind, b"one stream only")
    with pytest.raises(DecodingError, match="after the end"):
        decode_all(decoder(coding), [blob, b"junk"])


@pytest.mark.parametrize("coding", ["gzip", "deflate", "br", "zstd", "gzip, br"])
def test_empty_body_is_not_an_error(coding: str) -> None:
    d = decoder(coding)
    assert d.decode(b"") == b""
    assert d.flush() == b""


def test_accept_encoding_lists_what_is_installed() -> None:
    assert accept_encoding() == "gzip, deflate, br, zstd"


@pytest.mark.parametrize(
    ("coding", "modules", "extra"),
    [("br", ["brotli", "brotlicffi"], "brotli"), ("zstd", ["zstandard"], "zstd")],
)
def test_missing_library_is_not_advertised_and_fails_on_first_byte(
    monkeypatch: pytest.MonkeyPatch, coding: str, modules: list[str], extra: str
) -> None:
    for name in modules:
        monkeypatch.setitem(sys.modules, name, None)  # makes `import name` fail
    assert coding not in accept_encoding().split(", ")
    assert decode_all(decoder(coding), []) == b""  # e.g. a HEAD response
    with pytest.raises(DecodingError, match=rf"pip install trio-requests\[{extra}\]"):
        decoder(coding).decode(b"\x00")


def test_brotli_older_than_1_2_counts_as_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    old = types.SimpleNamespace(Decompressor=type("Decompressor", (), {}), error=Exception)
    monkeypatch.setitem(sys.modules, "brotli", old)  # 1.1 has no output_buffer_limit
    monkeypatch.setitem(sys.modules, "brotlicffi", None)
    assert "br" not in accept_encoding()
    with pytest.raises(DecodingError, match=r"brotli >= 1\.2 is not installed"):
        decoder("br").decode(b"\x00")


def test_brotlicffi_is_used_when_brotli_is_absent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "brotli", None)
    monkeypatch.setitem(sys.modules, "brotlicffi", brotli)  # same API since 1.2
    assert decode_all(decoder("br"), [_br(b"via cffi")]) == b"via cffi"


# -- decompression bombs -----------------------------------------------------------------


def _gzip_bomb() -> bytes:
    """A gzip stream of 1 GiB of zeros (~1 MiB) without its last block and
    trailer, which the decoder must never reach. A full flush resets the
    compressor, so every further 1 MiB of zeros encodes to the same bytes
    and the stream is built without compressing 1 GiB."""
    zeros = bytes(MiB)
    co = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    head = co.compress(zeros) + co.flush(zlib.Z_FULL_FLUSH)
    segment = co.compress(zeros) + co.flush(zlib.Z_FULL_FLUSH)
    assert segment == co.compress(zeros) + co.flush(zlib.Z_FULL_FLUSH)
    return head + segment * (GiB // MiB - 1)


def _br_bomb() -> bytes:
    """1 GiB of zeros, streamed through the compressor (~190 KB)."""
    compressor = brotli.Compressor(quality=1)
    zeros = bytes(MiB)
    parts = [compressor.process(zeros) for _ in range(GiB // MiB)]
    return b"".join([*parts, compressor.finish()])


def _zstd_bomb() -> bytes:
    """1 GiB of zeros as 16 zstd frames of 64 MiB (~33 KB, RFC 8878 §3.1)."""
    frame = zstandard.ZstdCompressor(level=1).compress(bytes(64 * MiB))
    return frame * (GiB // (64 * MiB))


BOMBS: dict[str, Callable[[], bytes]] = {
    "gzip": _gzip_bomb,
    "br": _br_bomb,
    "zstd": _zstd_bomb,
    "gzip, gzip": lambda: gzip.compress(_gzip_bomb(), mtime=0),
}


@pytest.fixture(scope="module")
def bombs() -> dict[str, bytes]:
    return {coding: make() for coding, make in BOMBS.items()}


def detonate(d: ContentDecoder, blob: bytes, chunk: int = 16 * 1024) -> tuple[str, int, float, int]:
    """Feed *blob* until DecodingError; return its message, the bytes decoded
    before it, the time taken and the peak of traced memory."""
    produced = 0
    tracemalloc.start()
    start = time.perf_counter()
    try:
        for i in range(0, len(blob), chunk):
            produced += len(d.decode(blob[i : i + chunk]))
        d.flush()
    except DecodingError as exc:
        message = str(exc)
    else:
        pytest.fail("the whole bomb was decoded")
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return message, produced, time.perf_counter() - start, peak


@pytest.mark.parametrize("chunk", [16 * 1024, GiB], ids=["16KiB-chunks", "one-chunk"])
@pytest.mark.parametrize("coding", sorted(BOMBS))
def test_bomb_is_stopped_by_the_ratio_quickly_in_bounded_memory(
    bombs: dict[str, bytes], coding: str, chunk: int
) -> None:
    d = get_decoder(coding, max_size=None, max_ratio=DEFAULT_MAX_DECOMPRESSION_RATIO)
    message, produced, elapsed, peak = detonate(d, bombs[coding], chunk)
    assert "expands more than 1000:1" in message and "max_decompression_ratio" in message
    assert coding in message
    assert produced < 32 * MiB
    assert elapsed < 1.0
    assert peak < 32 * MiB  # measured: 16-24 MiB; without bounded pieces 45-1000+


@pytest.mark.parametrize("coding", sorted(BOMBS))
def test_bomb_is_stopped_by_the_size_cap_without_a_ratio(
    bombs: dict[str, bytes], coding: str
) -> None:
    d = get_decoder(coding, max_size=10 * MiB, max_ratio=None)
    message, produced, _, peak = detonate(d, bombs[coding])
    assert f"max_decompressed_size={10 * MiB}" in message
    assert produced <= 10 * MiB
    assert peak < 24 * MiB


@pytest.mark.parametrize(("kind", "size"), [("gzip", 10_000), ("br", MiB), ("zstd", MiB)])
def test_small_very_compressible_bodies_are_not_bombs(kind: str, size: int) -> None:
    coding, blob = encode(kind, bytes(size))
    assert size / len(blob) > 200  # far past the limit for br and zstd
    assert decode_all(decoder(coding), [blob]) == bytes(size)


def test_size_cap_is_inclusive() -> None:
    blob = zlib.compress(b"x" * 5000)
    assert decode_all(get_decoder("deflate", max_size=5000, max_ratio=None), [blob]) == b"x" * 5000
    with pytest.raises(DecodingError, match="max_decompressed_size=4999"):
        decode_all(get_decoder("deflate", max_size=4999, max_ratio=None), [blob])
