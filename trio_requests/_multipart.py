"""multipart/form-data request bodies (RFC 7578), streamed.

A body is a list of parts, each a head (the boundary line and header fields)
and a content: bytes, or a binary file object read in 64 KiB pieces only when
the body is iterated, so a large upload never sits in memory. Its length is
known up front unless a file cannot seek (a pipe, a socket); then the body
goes out chunked.
"""

from __future__ import annotations

import io
import mimetypes
import os
import re
import secrets
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import BinaryIO, TypeAlias, TypeVar

FileContent: TypeAlias = bytes | str | BinaryIO
#: A file: its content, or ``(filename, content)``, or ``(filename, content,
#: content_type)`` as in requests and httpx. A None filename sends the part
#: without one; a None content type is guessed from the filename.
FileValue: TypeAlias = (
    FileContent | tuple[str | None, FileContent] | tuple[str | None, FileContent, str | None]
)
FieldValue: TypeAlias = str | bytes | int | float
Fields: TypeAlias = (
    Mapping[str, FieldValue | Sequence[FieldValue]]
    | Sequence[tuple[str, FieldValue | Sequence[FieldValue]]]
)
Files: TypeAlias = Mapping[str, FileValue] | Sequence[tuple[str, FileValue]]

_T = TypeVar("_T")

#: Pieces read from files, and the size small pieces are gathered to before
#: being yielded, so each write to the connection is worth a system call.
CHUNK = 64 * 1024

# RFC 2046 §5.1.1 allows more, but only these also form a token (RFC 9110
# §5.6.2), so the boundary never needs quoting in the Content-Type.
_BOUNDARY = re.compile(rb"[0-9A-Za-z'+_.-]{1,70}")


@dataclass(frozen=True, slots=True)
class _Part:
    head: bytes
    content: bytes | BinaryIO


def _quote(text: str) -> bytes:
    """Field names and filenames as the HTML standard's multipart/form-data
    encoding sends them: UTF-8, with ``"``, CR and LF percent-encoded."""
    raw = text.encode("utf-8")
    return raw.replace(b'"', b"%22").replace(b"\r", b"%0D").replace(b"\n", b"%0A")


def _head(boundary: bytes, name: str, filename: str | None, content_type: str | None) -> bytes:
    """RFC 7578 §4.2 Content-Disposition, §4.4 Content-Type."""
    disposition = b'Content-Disposition: form-data; name="' + _quote(name) + b'"'
    if filename is not None:
        disposition += b'; filename="' + _quote(filename) + b'"'
    lines = [b"--" + boundary, disposition]
    if content_type is not None:
        if not content_type.isascii() or not content_type.isprintable():
            raise ValueError(f"invalid content type {content_type!r} for field {name!r}")
        lines.append(b"Content-Type: " + content_type.encode("ascii"))
    return b"\r\n".join(lines) + b"\r\n\r\n"


def _pairs(items: Mapping[str, _T] | Sequence[tuple[str, _T]]) -> Iterable[tuple[str, _T]]:
    return items.items() if isinstance(items, Mapping) else items


def _field_parts(boundary: bytes, data: Fields | None) -> Iterator[_Part]:
    for name, value in _pairs(data or {}):
        for item in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(item, str):
                content = item.encode("utf-8")
            elif isinstance(item, bytes):
                content = item
            elif isinstance(item, (int, float)):
                content = str(item).encode("ascii")  # as urlencode() writes it
            else:
                raise TypeError(
                    f"form field {name!r}: expected str, bytes, int or float, got {item!r}"
                )
            yield _Part(_head(boundary, name, None, None), content)


def _default_filename(name: str, content: object) -> str:
    """A bare file's own name (``open("a/b.png")`` → ``b.png``), else the field name."""
    path = getattr(content, "name", None)
    if isinstance(path, str) and path and not path.startswith("<"):
        return os.path.basename(path)
    return name


def _file_part(boundary: bytes, name: str, value: FileValue) -> _Part:
    content_type: str | None = None
    if isinstance(value, tuple):
        filename, content, *rest = value
        content_type = rest[0] if rest else None
    else:
        filename, content = _default_filename(name, value), value
    if content_type is None and filename is not None:
        content_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"
    if isinstance(content, str):
        content = content.encode("utf-8")
    elif not isinstance(content, bytes) and not callable(getattr(content, "read", None)):
        raise TypeError(f"file {name!r}: expected bytes, str or a binary file, got {content!r}")
    return _Part(_head(boundary, name, filename, content_type), content)


def _remaining(file: BinaryIO) -> int | None:
    """Bytes left from the file's current position, or None if it cannot seek."""
    try:
        if not file.seekable():
            return None
        position = file.tell()
        end = file.seek(0, io.SEEK_END)
        file.seek(position)
    except (OSError, ValueError):  # io.UnsupportedOperation is both
        return None
    return end - position


def _pieces(parts: list[_Part], tail: bytes) -> Iterator[bytes]:
    for part in parts:
        yield part.head
        if isinstance(part.content, bytes):
            yield part.content
        else:
            while block := part.content.read(CHUNK):
                if not isinstance(block, bytes):
                    raise TypeError("files must be opened in binary mode ('rb')")
                yield block
        yield b"\r\n"
    yield tail


def _gather(pieces: Iterator[bytes]) -> Iterator[bytes]:
    """Join small pieces up to CHUNK bytes; pass large ones through uncopied."""
    buffer = bytearray()
    for piece in pieces:
        if len(piece) >= CHUNK:
            if buffer:
                yield bytes(buffer)
                buffer.clear()
            yield piece
            continue
        buffer += piece
        if len(buffer) >= CHUNK:
            yield bytes(buffer)
            buffer.clear()
    if buffer:
        yield bytes(buffer)


def encode_multipart(
    data: Fields | None, files: Files, *, boundary: bytes | None = None
) -> tuple[str, int | None, Iterator[bytes]]:
    """Encode form fields and files as a multipart/form-data body (RFC 7578).

    Args:
        data: text fields, as a mapping or a sequence of pairs; a list or
            tuple value sends the field once per item. str is sent as UTF-8,
            numbers as ``str()`` writes them.
        files: file fields, as a mapping or a sequence of pairs (for repeated
            names); see :data:`FileValue`. A file object is read from its
            current position when the body is iterated, so keep it open
            until the request is sent. The content type is guessed from the
            filename with :mod:`mimetypes`, else ``application/octet-stream``.
        boundary: for reproducible output; by default 32 random hex digits,
            which cannot plausibly occur in the content. A given one must be
            1-70 of ``0-9 A-Z a-z ' + _ . -`` and must not occur in any part.

    Returns:
        ``(content_type, length, chunks)``: the Content-Type header value with
        the boundary, the body's length (None if a file cannot seek), and the
        body as a one-shot iterator of chunks of about 64 KiB.

    Raises:
        TypeError: a field or file value of an unsupported type, or a file
            opened in text mode (when iterated).
        ValueError: an invalid boundary or content type.
    """
    if boundary is None:
        boundary = secrets.token_hex(16).encode("ascii")
    elif not _BOUNDARY.fullmatch(boundary):
        raise ValueError(f"invalid multipart boundary {boundary!r}")
    parts = [*_field_parts(boundary, data)]
    parts += [_file_part(boundary, name, value) for name, value in _pairs(files)]
    tail = b"--" + boundary + b"--\r\n"
    sizes = [
        len(p.content) if isinstance(p.content, bytes) else _remaining(p.content) for p in parts
    ]
    length: int | None = len(tail)
    for part, size in zip(parts, sizes, strict=True):
        length = None if length is None or size is None else length + len(part.head) + size + 2
    content_type = "multipart/form-data; boundary=" + boundary.decode("ascii")
    return content_type, length, _gather(_pieces(parts, tail))
