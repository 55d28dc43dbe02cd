"""URL: a parsed, validated, immutable http(s) URL.

Parsing happens once, when a request is built, so every later step (pool
key, request target, redirect join, cookie matching) reads fields instead
of re-parsing strings; and a bad URL fails with :class:`InvalidURL` before
any I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import cached_property, lru_cache
from typing import cast
from urllib.parse import SplitResult, quote, urlencode, urljoin, urlsplit

from ._errors import InvalidURL

DEFAULT_PORTS = {"http": 80, "https": 443}

ParamValue = str | int | float | bool | None
Params = Mapping[str, ParamValue | Sequence[ParamValue]] | Sequence[tuple[str, ParamValue]]

_CONTROL_OR_SPACE = re.compile(r"[\x00-\x20\x7f]")

# Characters left as they are in paths and queries: RFC 3986 unreserved,
# sub-delims, ":" "@" "/" "?" and "%" (already-encoded input stays as is).
_SAFE = "!$&'()*+,;=:@/?%~-._"


class URL:
    """An absolute ``http`` or ``https`` URL.

    Raises:
        InvalidURL: unsupported scheme, no host, bad port, control
            characters or whitespace.
    """

    __slots__ = ("__dict__", "_parts")

    def __init__(self, url: str | URL) -> None:
        if isinstance(url, URL):
            self._parts: SplitResult = url._parts
            return
        if not isinstance(url, str):
            raise InvalidURL(f"URL must be a str, got {type(url).__name__}")
        # Error messages show masked_url(url): never a user:password.
        if _CONTROL_OR_SPACE.search(url):
            raise InvalidURL(f"URL contains whitespace or control characters: {masked_url(url)!r}")
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            reason = _without(url, exc)
            # A cause that quotes user:password would show it in tracebacks.
            cause = exc if reason == str(exc) else None
            raise InvalidURL(f"invalid URL {masked_url(url)!r}: {reason}") from cause
        scheme = parts.scheme.lower()
        if scheme not in DEFAULT_PORTS:
            raise InvalidURL(
                f"unsupported URL scheme {parts.scheme!r} in {masked_url(url)!r}: "
                "use http:// or https://"
            )
        if not parts.hostname:
            raise InvalidURL(f"URL has no host: {masked_url(url)!r}")
        if port == 0:
            raise InvalidURL(f"URL has port 0: {masked_url(url)!r}")
        path = quote(parts.path, safe=_SAFE) or "/"
        query = quote(parts.query, safe=_SAFE)
        self._parts = parts._replace(scheme=scheme, path=path, query=query)

    @property
    def scheme(self) -> str:
        return self._parts.scheme

    @cached_property
    def host(self) -> str:
        """The host, lower-cased, IDNA-encoded; IPv6 without brackets."""
        host = self._parts.hostname or ""
        try:
            host.encode("ascii")
        except UnicodeEncodeError:
            try:
                host = host.encode("idna").decode("ascii")
            except UnicodeError as exc:
                raise InvalidURL(f"invalid host name {host!r}") from exc
        return host

    @cached_property
    def port(self) -> int:
        return self._parts.port or DEFAULT_PORTS[self.scheme]

    @cached_property
    def username(self) -> str | None:
        return self._parts.username  # parsed from the netloc on each access

    @cached_property
    def password(self) -> str | None:
        return self._parts.password

    @property
    def path(self) -> str:
        return self._parts.path

    @property
    def query(self) -> str:
        return self._parts.query

    @property
    def fragment(self) -> str:
        return self._parts.fragment

    @cached_property
    def target(self) -> str:
        """The request target (RFC 9112 §3.2.1 origin-form): path and query."""
        return f"{self.path}?{self.query}" if self.query else self.path

    @property
    def absolute_target(self) -> str:
        """The request target in absolute-form (RFC 9112 §3.2.2), what a
        forward proxy is sent: the URL without credentials or fragment."""
        return f"{self.scheme}://{self.authority}{self.target}"

    @cached_property
    def authority(self) -> str:
        """``host[:port]`` for the Host header, the port omitted if default."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == DEFAULT_PORTS[self.scheme] else f"{host}:{self.port}"

    @cached_property
    def origin(self) -> tuple[str, str, int]:
        """(scheme, host, port): what "same origin" compares (RFC 6454)."""
        return (self.scheme, self.host, self.port)

    def join(self, reference: str) -> URL:
        """Resolve *reference* (e.g. a redirect ``Location``) against this URL."""
        return URL(urljoin(str(self), reference))

    def with_params(self, params: Params | None) -> URL:
        """This URL with *params* appended to its query string."""
        if not params:
            return self
        items = params.items() if isinstance(params, Mapping) else params
        pairs: list[tuple[str, str]] = []
        for key, value in items:
            values = cast(
                "Sequence[ParamValue]", value if isinstance(value, (list, tuple)) else [value]
            )
            pairs.extend((key, _param_str(v)) for v in values)
        extra = urlencode(pairs)
        query = f"{self.query}&{extra}" if self.query else extra
        return URL(self._parts._replace(query=query).geturl())

    def without_credentials(self) -> URL:
        if self.username is None and self.password is None:
            return self
        netloc = self._parts.netloc.rpartition("@")[2]
        return URL(self._parts._replace(netloc=netloc).geturl())

    def __str__(self) -> str:
        return self._text

    @cached_property
    def _text(self) -> str:
        return self._parts.geturl()

    def __repr__(self) -> str:
        return f"URL({str(self.without_credentials())!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, str):
            return str(self) == other
        return isinstance(other, URL) and str(self) == str(other)

    def __hash__(self) -> int:
        return hash(str(self))


def masked_url(text: str) -> str:
    """*text* (a URL, maybe malformed) with its userinfo, if any, shown as
    ``***``: for error messages, which end up in logs and bug reports."""
    span = _userinfo_span(text)
    return text if span is None else f"{text[: span[0]]}***{text[span[1] :]}"


def _userinfo_span(text: str) -> tuple[int, int] | None:
    """Where the userinfo of URL *text* is, if it has one.

    Read off the raw string, without parsing, because it serves the messages
    about URLs that do not parse: the authority runs from ``//`` to the first
    ``/``, ``?`` or ``#``, and its userinfo ends at the last ``@`` in it
    (RFC 3986 §3.2; :func:`urllib.parse.urlsplit` splits it the same way).
    """
    start = text.find("//")
    if start == -1:
        return None
    start += 2
    end = next((i for i in range(start, len(text)) if text[i] in "/?#"), len(text))
    at = text.rfind("@", start, end)
    return None if at == -1 else (start, at)


def _without(url: str, exc: Exception) -> str:
    """*exc*'s message with *url*'s userinfo masked, should it quote it
    (urlsplit's NFKC check quotes the whole netloc)."""
    span = _userinfo_span(url)
    message = str(exc)
    return message if span is None else message.replace(url[span[0] : span[1]], "***")


def _param_str(value: ParamValue) -> str:
    if value is True or value is False:
        return "true" if value else "false"
    return "" if value is None else str(value)


@lru_cache(maxsize=1024)
def parse_url(url: str) -> URL:
    """``URL(url)``, remembered: API clients send the same few URLs over and
    over, and a URL is immutable, so one parsed object can serve them all."""
    return URL(url)
