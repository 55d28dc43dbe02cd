"""multipart/form-data encoding, checked by parsing it back with the stdlib."""

from __future__ import annotations

import io
import os
import re
from email.message import Message
from email.parser import BytesParser
from email.policy import HTTP
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_requests._multipart import CHUNK, Fields, Files, encode_multipart

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer


def encode(data: Fields | None, files: Files, **kw: bytes) -> tuple[str, bytes, list[bytes]]:
    content_type, length, chunks = encode_multipart(data, files, **kw)
    pieces = list(chunks)
    body = b"".join(pieces)
    assert length == len(body)
    return content_type, body, pieces


def parse(content_type: str, body: bytes) -> list[Message]:
    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body
    )
    assert message.is_multipart() and not message.defects
    parts = message.get_payload()
    assert isinstance(parts, list)
    return [part for part in parts if isinstance(part, Message)]


def fields(parts: list[Message]) -> list[tuple[str, str | None, bytes]]:
    """(name, filename, content) of each part."""
    found = []
    for part in parts:
        name = part.get_param("name", header="content-disposition")
        content = part.get_payload(decode=True)
        assert isinstance(name, str) and isinstance(content, bytes)
        found.append((name, part.get_filename(), content))
    return found


def test_fields_and_files_parse_back() -> None:
    ct, body, _ = encode(
        {"text": "hello", "num": 3, "ratio": 0.5, "raw": b"\x00\xff", "many": ["a", "b"]},
        {"upload": ("report.txt", b"line 1\r\nline 2\r\n"), "blob": ("x.bin", "ünïcode", "app/x")},
    )
    assert ct.startswith("multipart/form-data; boundary=")
    parts = parse(ct, body)
    assert fields(parts) == [
        ("text", None, b"hello"),
        ("num", None, b"3"),
        ("ratio", None, b"0.5"),
        ("raw", None, b"\x00\xff"),
        ("many", None, b"a"),
        ("many", None, b"b"),
        ("upload", "report.txt", b"line 1\r\nline 2\r\n"),
        ("blob", "x.bin", "ünïcode".encode()),
    ]
    assert [p.get_content_type() for p in parts[-2:]] == ["text/plain", "app/x"]
    assert "content-type" not in parts[0]  # text fields: text/plain by default (RFC 7578 §4.4)


def test_exact_wire_format() -> None:
    ct, body, pieces = encode(
        [("a", "1")], [("f", ("n.png", b"PNG")), ("f", (None, b"no name", None))], boundary=b"XyZ"
    )
    assert ct == "multipart/form-data; boundary=XyZ"
    assert body == (
        b'--XyZ\r\nContent-Disposition: form-data; name="a"\r\n\r\n1\r\n'
        b'--XyZ\r\nContent-Disposition: form-data; name="f"; filename="n.png"\r\n'
        b"Content-Type: image/png\r\n\r\nPNG\r\n"
        b'--XyZ\r\nContent-Disposition: form-data; name="f"\r\n\r\nno name\r\n'
        b"--XyZ--\r\n"
    )
    assert pieces == [body]  # small parts are gathered into one chunk


@pytest.mark.parametrize(
    ("name", "wire"),
    [
        ('say "hi".txt', b"say %22hi%22.txt"),
        ("a\r\nContent-Type: evil", b"a%0D%0AContent-Type: evil"),
        ("résumé.pdf", "résumé.pdf".encode()),
        ("back\\slash", b"back\\slash"),
    ],
)
def test_names_and_filenames_are_escaped_like_browsers(name: str, wire: bytes) -> None:
    ct, body, _ = encode({name: "v"}, {name: (name, b"x")})
    assert b'name="' + wire + b'"\r\n' in body
    assert b'name="' + wire + b'"; filename="' + wire + b'"\r\n' in body
    assert len(parse(ct, body)) == 2  # no injected header or part


def test_content_type_guessing() -> None:
    ct, body, _ = encode(None, {"a": ("a.txt", b""), "b": ("b.unknownext", b""), "c": ("c", b"")})
    types = [p.get_content_type() for p in parse(ct, body)]
    assert types == ["text/plain", "application/octet-stream", "application/octet-stream"]


def test_bare_values_take_the_file_name_or_the_field_name(tmp_path: Path) -> None:
    path = tmp_path / "photo.jpg"
    path.write_bytes(b"JFIF")
    with path.open("rb") as f:
        ct, body, _ = encode(
            None, {"pic": f, "raw": b"data", "txt": "text", "mem": io.BytesIO(b"m")}
        )
    parts = parse(ct, body)
    assert fields(parts) == [
        ("pic", "photo.jpg", b"JFIF"),
        ("raw", "raw", b"data"),
        ("txt", "txt", b"text"),
        ("mem", "mem", b"m"),
    ]
    assert parts[0].get_content_type() == "image/jpeg"


def test_file_object_is_read_from_its_position() -> None:
    f = io.BytesIO(b"skip|keep")
    f.seek(5)
    ct, body, _ = encode(None, {"f": ("f.txt", f)})
    assert fields(parse(ct, body)) == [("f", "f.txt", b"keep")]


class Unseekable(io.RawIOBase):
    """A pipe-like reader that counts how much was read."""

    def __init__(self, size: int) -> None:
        self.left = size
        self.reads = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer, /) -> int:
        view = memoryview(buffer)
        n = min(len(view), self.left)
        view[:n] = b"z" * n
        self.left -= n
        self.reads += 1
        return n


def test_large_file_is_streamed_lazily_in_chunks() -> None:
    size = 5 * CHUNK + 123
    source = Unseekable(size)
    reader = io.BufferedReader(source)
    content_type, length, chunks = encode_multipart({"a": "1"}, {"f": ("big.bin", reader)})
    assert length is None  # cannot seek: the body goes out chunked
    assert source.reads == 0  # nothing read before iteration
    pieces = list(chunks)
    assert all(len(p) <= CHUNK + 200 for p in pieces) and len(pieces) >= 6
    assert fields(parse(content_type, b"".join(pieces)))[1] == ("f", "big.bin", b"z" * size)


def test_large_seekable_file_has_a_length(tmp_path: Path) -> None:
    path = tmp_path / "big.bin"
    path.write_bytes(os.urandom(3 * CHUNK + 7))
    with path.open("rb") as f:
        ct, body, pieces = encode({"x": "y"}, {"f": f})
    assert max(map(len, pieces)) == CHUNK
    assert fields(parse(ct, body))[1][2] == path.read_bytes()


def test_text_mode_file_is_rejected_when_read() -> None:
    _, _, chunks = encode_multipart(None, {"f": ("a.txt", io.StringIO("text"))})  # type: ignore[dict-item]
    with pytest.raises(TypeError, match="binary mode"):
        list(chunks)


@pytest.mark.parametrize(
    ("data", "files", "message"),
    [
        ({"a": None}, {}, "form field 'a': expected str, bytes, int or float"),
        ({"a": [object()]}, {}, "form field 'a'"),
        (None, {"f": 42}, "file 'f': expected bytes, str or a binary file"),
        (None, {"f": ("n", 42)}, "file 'f'"),
    ],
)
def test_unsupported_values_raise_type_error(data: object, files: object, message: str) -> None:
    with pytest.raises(TypeError, match=re.escape(message)):
        encode_multipart(data, files)  # type: ignore[arg-type]


@pytest.mark.parametrize("boundary", [b"", b"x" * 71, b"has space", b'q"uote', b"a\r\nb", b"a=b"])
def test_invalid_boundary(boundary: bytes) -> None:
    with pytest.raises(ValueError, match="invalid multipart boundary"):
        encode_multipart({"a": "1"}, {}, boundary=boundary)


def test_content_type_with_line_break_is_rejected() -> None:
    with pytest.raises(ValueError, match="invalid content type"):
        encode_multipart(None, {"f": ("a", b"x", "text/plain\r\nX-Evil: 1")})


def test_empty_form_is_just_the_close_delimiter() -> None:  # as browsers send it
    assert encode(None, {}, boundary=b"b")[1] == b"--b--\r\n"


def test_random_boundaries_differ() -> None:
    first, second = (encode_multipart(None, {})[0] for _ in range(2))
    assert first != second
    assert re.fullmatch(r"multipart/form-data; boundary=[0-9a-f]{32}", first)


names = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=12)


@settings(max_examples=50)
@given(
    items=st.lists(
        st.tuples(names, st.one_of(st.binary(max_size=300), st.text(max_size=50))),
        min_size=1,
        max_size=5,
    ),
    uploads=st.lists(st.tuples(names, st.binary(max_size=2000)), max_size=3),
)
def test_any_content_round_trips(
    items: list[tuple[str, bytes | str]], uploads: list[tuple[str, bytes]]
) -> None:
    files: list[tuple[str, tuple[str, BinaryIO]]] = [
        ("file", (name, io.BytesIO(data))) for name, data in uploads
    ]
    ct, body, _ = encode([("field", value) for _, value in items], files)
    got = fields(parse(ct, body))
    expected = [v.encode() if isinstance(v, str) else v for _, v in items] + [d for _, d in uploads]
    assert [content for *_, content in got] == expected
