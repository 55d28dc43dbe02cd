"""Headers: case-insensitive, multi-valued, order-preserving."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from typing import TypeVar, Union, overload

from ._errors import LocalProtocolError

HeaderInput = Union[Mapping[str, str], Iterable[tuple[str, str]], "Headers", None]

_FORBIDDEN = re.compile(r"[\r\n\x00]")
is_token = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+").fullmatch
_T = TypeVar("_T")


class Headers(MutableMapping[str, str]):
    """HTTP header fields.

    Lookups ignore case; ``headers["x"]`` joins repeated fields with ``", "``
    (RFC 9110 §5.3), :meth:`get_list` returns them apart (needed for
    ``Set-Cookie``, which must not be joined). Order is kept as given.
    """

    __slots__ = ("_items",)

    def __init__(self, headers: HeaderInput = None) -> None:
        self._items: list[tuple[str, str, str]] = []  # (lower name, name, value)
        if headers is None:
            return
        if isinstance(headers, Headers):
            self._items = list(headers._items)
            return
        pairs = headers.items() if isinstance(headers, Mapping) else headers
        for name, value in pairs:
            self.add(name, value)

    @classmethod
    def from_raw(cls, raw: Iterable[tuple[bytes, bytes]], *, lowercase: bool = False) -> Headers:
        """From h11/h2 pairs (already validated by the parser); latin-1
        decoding is lossless, as RFC 9110 §5.5 advises for field values.
        *lowercase*: the names are known to be lowercase (HTTP/2 requires it)."""
        headers = cls()
        if lowercase:
            items = headers._items
            for n, v in raw:
                name = n.decode("latin-1")
                items.append((name, name, v.decode("latin-1")))
        else:
            headers._items = [
                (n.decode("latin-1").lower(), n.decode("latin-1"), v.decode("latin-1"))
                for n, v in raw
            ]
        return headers

    @classmethod
    def _from_items(cls, items: list[tuple[str, str, str]]) -> Headers:
        """Taking *items* as they are, ``(lower name, name, value)``: from a
        parser that validated and decoded them (no copy, no checks)."""
        headers = cls()
        headers._items = items
        return headers

    def extend_raw(self, raw: Iterable[tuple[bytes, bytes]]) -> None:
        """Append fields a parser (h11, h2) already validated, as :meth:`from_raw`
        does: a server's fields are taken as sent, not checked as ours are."""
        self._items += [
            (n.decode("latin-1").lower(), n.decode("latin-1"), v.decode("latin-1")) for n, v in raw
        ]

    def add(self, name: str, value: str) -> None:
        """Append a field, keeping any existing ones of that name."""
        _check(name, value)
        self._items.append((name.lower(), name, value))

    def _add_valid(self, key: str, name: str, value: str) -> None:
        """Append a field known to be valid (say, a parsed URL's authority),
        *key* being *name* lowercased, without :meth:`add`'s checks."""
        self._items.append((key, name, value))

    @overload
    def get(self, name: str, /) -> str | None: ...
    @overload
    def get(self, name: str, /, default: str | _T) -> str | _T: ...
    def get(self, name: str, /, default: object = None) -> object:
        """Mapping.get without the KeyError that Mapping's version raises and
        catches for every absent field (on the hot path: Content-Encoding)."""
        key = name.lower()
        found = None
        # Plain loops here and below: faster than a comprehension (a
        # function call of its own) over a head's few fields.
        for k, _, v in self._items:
            if k == key:
                found = v if found is None else f"{found}, {v}"
        return default if found is None else found

    def get_list(self, name: str) -> list[str]:
        key = name.lower()
        values = []
        for k, _, v in self._items:
            if k == key:
                values.append(v)
        return values

    def multi_items(self) -> list[tuple[str, str]]:
        return [(n, v) for _, n, v in self._items]

    def raw(self, *, lowercase: bool = False) -> list[tuple[bytes, bytes]]:
        """Encoded for the wire (names ASCII, values latin-1); *lowercase*
        names for HTTP/2."""
        out = []
        for key, name, value in self._items:
            try:
                out.append(((key if lowercase else name).encode("ascii"), value.encode("latin-1")))
            except UnicodeEncodeError as exc:
                raise LocalProtocolError(
                    f"header {name!r} has characters that cannot be sent: {_shown(name, value)}"
                ) from exc
        return out

    def copy(self) -> Headers:
        return Headers(self)

    def __getitem__(self, name: str) -> str:
        values = self.get_list(name)
        if not values:
            raise KeyError(name)
        return ", ".join(values)

    def __setitem__(self, name: str, value: str) -> None:
        _check(name, value)
        key = name.lower()
        self._items = [item for item in self._items if item[0] != key]
        self._items.append((key, name, value))

    def __delitem__(self, name: str) -> None:
        key = name.lower()
        kept = [item for item in self._items if item[0] != key]
        if len(kept) == len(self._items):
            raise KeyError(name)
        self._items = kept

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        key = name.lower()
        for k, _, _ in self._items:  # noqa: SIM110 - any() costs a generator, on a hot path
            if k == key:
                return True
        return False

    def __iter__(self) -> Iterator[str]:
        seen: dict[str, str] = {}
        for key, name, _ in self._items:
            seen.setdefault(key, name)
        return iter(seen.values())

    def __len__(self) -> int:
        return len({k for k, _, _ in self._items})

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Mapping):
            return NotImplemented
        mine = sorted((k, v) for k, _, v in self._items)
        theirs = Headers(other)
        return mine == sorted((k, v) for k, _, v in theirs._items)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        shown = [(n, "[secure]" if n.lower() in SECRET_FIELDS else v) for _, n, v in self._items]
        return f"Headers({shown!r})"


#: fields whose values are credentials: never shown, never kept beyond a request
SECRET_FIELDS = frozenset({"authorization", "proxy-authorization", "cookie"})


def _shown(name: object, value: object) -> str:
    """*value* for an error message: a credential's is hidden, as in
    :meth:`Headers.__repr__`, because messages end up in logs."""
    if isinstance(name, str) and name.lower() in SECRET_FIELDS:
        return "[secure]"
    return repr(value)


def _check(name: str, value: str) -> None:
    """Refuse a field that would split the message (RFC 9110 §5.5) at the
    moment it is set, so a bad header fails before any I/O."""
    if not isinstance(name, str) or not isinstance(value, str):
        raise TypeError(f"header names and values must be str, got {name!r}: {_shown(name, value)}")
    if _FORBIDDEN.search(value) or _FORBIDDEN.search(name):
        raise LocalProtocolError(f"header {name!r} contains CR, LF or NUL: {_shown(name, value)}")
    if not is_token(name):
        raise LocalProtocolError(
            f"header name {name!r} is not a token (RFC 9110 §5.1: letters, digits "
            "and !#$%&'*+-.^_`|~; no spaces, colons or other separators)"
        )
    if not value.isascii():
        try:
            value.encode("latin-1")
        except UnicodeEncodeError:
            raise LocalProtocolError(
                f"header {name!r} has a value that is not latin-1: {_shown(name, value)} "
                "(percent-encode it, or use RFC 8187 encoding)"
            ) from None
