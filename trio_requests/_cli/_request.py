"""What to send: the method, the header fields and the body, from the options.

Everything here runs before the event loop starts, so reading ``@file``
arguments (and stdin for ``@-``) may block. The same :class:`RequestPlan`
serves every URL of the run, as in curl.
"""

from __future__ import annotations

import base64
import getpass
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass

from .._decoders import accept_encoding
from .._errors import LocalProtocolError
from .._headers import Headers
from .._multipart import FileValue, encode_multipart
from .._session import __version__
from ._failures import ExitCode, Failure
from ._options import DataArg, DataKind, Options

USER_AGENT = f"trio-requests/{__version__}"
#: Header fields whose values -v shows masked (RFC 9110 §11.6.2, §11.7.1; RFC 6265).
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})

Warn = Callable[[str], None]


@dataclass(frozen=True, kw_only=True)
class RequestPlan:
    """The request every URL of the run gets.

    Attributes:
        method: e.g. ``"GET"``; ``-X`` wins over what ``-d``/``-F``/``-I`` imply.
        headers: the fields to send (Host is added per URL), in order,
            repeated names kept.
        content: the body, or None.
        head: ``-I``: the response has headers only, and they are the output.
    """

    method: str
    headers: tuple[tuple[str, str], ...] = ()
    content: bytes | None = None
    head: bool = False


def build_plan(options: Options, warn: Warn) -> RequestPlan:
    """The :class:`RequestPlan` for *options*.

    Raises:
        Failure: a ``-F`` or ``-H @file`` file cannot be read (26); a
            header field would split the request (43, before any I/O).
    """
    content, content_headers = _body(options, warn)
    method = "HEAD" if options.head else "POST" if content is not None else "GET"
    custom, removed = _custom_headers(options)
    headers = _override(_override(_default_headers(options), content_headers), custom)
    kept = tuple((name, value) for name, value in headers if name.lower() not in removed)
    try:
        Headers(kept)  # refuses CR, LF and NUL (RFC 9110 §5.5)
    except LocalProtocolError as exc:
        raise Failure(ExitCode.BAD_FUNCTION_ARGUMENT, str(exc)) from exc
    return RequestPlan(
        method=options.method or method, headers=kept, content=content, head=options.head
    )


def _override(
    headers: list[tuple[str, str]], overrides: list[tuple[str, str]]
) -> list[tuple[str, str]]:
    """*headers* with every field named in *overrides* replaced by those."""
    names = {name.lower() for name, _ in overrides}
    return [(n, v) for n, v in headers if n.lower() not in names] + overrides


def _default_headers(options: Options) -> list[tuple[str, str]]:
    headers = [("User-Agent", options.user_agent or USER_AGENT), ("Accept", "*/*")]
    if options.user is not None:
        headers.insert(0, ("Authorization", _basic(options.user)))
    if options.referer is not None:
        headers.append(("Referer", options.referer.removesuffix(";auto")))
    if options.compressed:
        headers.append(("Accept-Encoding", accept_encoding()))
    return headers


def _basic(user: str) -> str:
    """curl's ``-u``: ``user:password``, or just ``user`` and a prompt."""
    name, colon, password = user.partition(":")
    if not colon and sys.stdin.isatty():
        password = getpass.getpass(f"Enter host password for user '{name}':")
    token = base64.b64encode(f"{name}:{password}".encode()).decode("ascii")
    return f"Basic {token}"


def _custom_headers(options: Options) -> tuple[list[tuple[str, str]], set[str]]:
    """``-H`` fields, and the names to drop (``-H "Name:"``)."""
    custom: list[tuple[str, str]] = []
    removed: set[str] = set()
    for line in _header_lines(options.headers):
        name, colon, value = line.partition(":")
        name = name.strip()
        if colon and not value.strip():
            removed.add(name.lower())
        elif colon:
            custom.append((name, value.strip()))
        elif name.endswith(";"):  # "Name;" sends the field empty
            custom.append((name[:-1], ""))
    return custom, removed


def _header_lines(headers: tuple[str, ...]) -> list[str]:
    lines: list[str] = []
    for header in headers:
        if header.startswith("@"):
            lines.extend(_read(header[1:], ExitCode.READ_ERROR).decode("latin-1").splitlines())
        else:
            lines.append(header)
    return lines


def _body(options: Options, warn: Warn) -> tuple[bytes | None, list[tuple[str, str]]]:
    if options.form:
        return _form(options.form)
    if not options.data:
        return None, []
    pieces = [_data_piece(arg, warn) for arg in options.data]
    if all(arg.kind is DataKind.JSON for arg in options.data):
        headers = [("Content-Type", "application/json"), ("Accept", "application/json")]
        return b"".join(pieces), headers
    return b"&".join(pieces), [("Content-Type", "application/x-www-form-urlencoded")]


def _data_piece(arg: DataArg, warn: Warn) -> bytes:
    if arg.kind is DataKind.RAW or not arg.value.startswith("@"):
        return os.fsencode(arg.value)
    path = arg.value[1:]
    try:
        data = _read_source(path)
    except OSError:
        warn(f'Couldn\'t read data from file "{path}", this makes an empty POST.')
        return b""
    if arg.kind is DataKind.ASCII:
        data = data.replace(b"\r", b"").replace(b"\n", b"")
    return data


def _form(fields: tuple[str, ...]) -> tuple[bytes, list[tuple[str, str]]]:
    """``-F``: every field, in order, as one multipart/form-data body."""
    parts: list[tuple[str, FileValue]] = [_form_part(spec) for spec in fields]
    content_type, _, chunks = encode_multipart(None, parts)
    return b"".join(chunks), [("Content-Type", content_type)]


def _form_part(spec: str) -> tuple[str, FileValue]:
    """``name=value``, ``name=<file`` (its text as the value) or
    ``name=@file[;type=mime][;filename=name]`` (an uploaded file)."""
    name, equals, value = spec.partition("=")
    if not equals:
        raise Failure(ExitCode.FAILED_INIT, f"-F {spec!r}: expected name=value")
    if value.startswith("<"):
        return name, (None, _read(value[1:], ExitCode.READ_ERROR), None)
    if not value.startswith("@"):
        return name, (None, os.fsencode(value), None)
    path, *params = value[1:].split(";")
    settings = dict(param.partition("=")[::2] for param in params)
    filename = settings.get("filename", os.path.basename(path))
    return name, (filename, _read(path, ExitCode.READ_ERROR), settings.get("type"))


def _read(path: str, code: ExitCode) -> bytes:
    try:
        return _read_source(path)
    except OSError as exc:
        raise Failure(code, f"Failed to open/read local data from file/application: {exc}") from exc


def _read_source(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    with open(path, "rb") as file:
        return file.read()


def masked(name: str, value: str) -> str:
    """*value* as -v shows it: credentials hidden, their scheme kept."""
    if name.lower() not in SECRET_HEADERS:
        return value
    scheme, space, _ = value.partition(" ")
    return f"{scheme} [masked]" if space and name.lower() != "cookie" else "[masked]"
