"""A small cookie jar following RFC 6265 §5 (the user-agent side).

Theory of operation
-------------------
The jar is a dict keyed by (domain, path, name), RFC 6265 §5.3 step 11's
identity of a cookie. Dict order is creation order: replacing a cookie
assigns to its existing key, which keeps its place, as step 11.3 keeps the old
creation-time. :meth:`Cookies.extract` parses each ``Set-Cookie`` value
(§5.2) and stores or replaces it (§5.3); :meth:`Cookies.header_for` picks
what a request may carry (§5.4). Both take ``now`` from the caller, so the
jar does no I/O and reads no clock.

Deliberately not done: public-suffix lists (only single-label domains such as
``com`` or ``localhost`` are treated as public suffixes), SameSite (a client
has no sites), HttpOnly (stored, but a client has no scripts to hide from).
"""

from __future__ import annotations

import calendar
import ipaddress
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

#: RFC 6265 §6.1 asks for at least 3000 cookies; more are evicted oldest
#: first, so a server cannot grow the jar without bound.
MAX_COOKIES = 3000

#: RFC 6265bis §5.7 step 4: name + value longer than this is ignored.
MAX_NAME_VALUE = 4096

_DELIMITER = re.compile(r"[\x09\x20-\x2f\x3b-\x40\x5b-\x60\x7b-\x7e]+")  # §5.1.1
_TIME = re.compile(r"([0-9]{1,2}):([0-9]{1,2}):([0-9]{1,2})(?:[^0-9].*)?", re.DOTALL)
_DAY = re.compile(r"([0-9]{1,2})(?:[^0-9].*)?", re.DOTALL)
_YEAR = re.compile(r"([0-9]{2,4})(?:[^0-9].*)?", re.DOTALL)
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_CTL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # CTLs but HTAB


@dataclass(frozen=True, slots=True)
class _Cookie:
    name: str
    value: str
    domain: str  # "" for cookies the user set without one: sent to every host
    path: str
    host_only: bool
    secure: bool
    http_only: bool
    expires: float | None  # Unix time; None for a session cookie


def parse_cookie_date(text: str) -> float | None:
    """RFC 6265 §5.1.1's lenient cookie-date algorithm; Unix time or None."""
    time = day = month = year = None
    for token in _DELIMITER.split(text):
        if time is None and (m := _TIME.fullmatch(token)):
            time = tuple(int(g) for g in m.groups())
        elif day is None and (m := _DAY.fullmatch(token)):
            day = int(m[1])
        elif month is None and token[:3].lower() in _MONTHS:
            month = _MONTHS.index(token[:3].lower()) + 1
        elif year is None and (m := _YEAR.fullmatch(token)):
            year = int(m[1])
    if time is None or day is None or month is None or year is None:
        return None
    year += 1900 if 70 <= year <= 99 else 2000 if year <= 69 else 0
    hour, minute, second = time
    if not 1 <= day <= 31 or year < 1601 or hour > 23 or minute > 59 or second > 59:
        return None
    if day > calendar.monthrange(year, month)[1]:
        return None  # "the day-of-month ... does not exist": fail
    return float(calendar.timegm((year, month, day, hour, minute, second)))


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def domain_match(host: str, domain: str) -> bool:
    """RFC 6265 §5.1.3: identical, or *host* a name ending in ``.domain``."""
    return host == domain or (host.endswith("." + domain) and not _is_ip(host))


def path_match(request_path: str, cookie_path: str) -> bool:
    """RFC 6265 §5.1.4: the cookie path is the request path or a
    ``/``-bounded prefix of it."""
    if request_path == cookie_path:
        return True
    return request_path.startswith(cookie_path) and (
        cookie_path.endswith("/") or request_path[len(cookie_path)] == "/"
    )


def default_path(request_path: str) -> str:
    """RFC 6265 §5.1.4: the request path up to, not including, its last ``/``."""
    if not request_path.startswith("/") or request_path.count("/") == 1:
        return "/"
    return request_path[: request_path.rfind("/")]


def _parse_max_age(value: str, now: float) -> float | None:
    """§5.2.2: ``-``? DIGITs; zero or less expires at once."""
    if not re.fullmatch(r"-?[0-9]+", value):
        return None
    seconds = int(value)
    return now + seconds if seconds > 0 else float("-inf")


@dataclass(slots=True)
class _Attributes:
    """Parsed cookie-av list; for repeated attributes the last wins (§5.3)."""

    expires: float | None = None
    max_age: float | None = None
    domain: str | None = None
    path: str | None = None  # None: the default-path
    secure: bool = False
    http_only: bool = False

    @classmethod
    def parse(cls, parts: list[str], now: float) -> _Attributes:
        attrs = cls()
        for part in parts:
            key, _, value = part.partition("=")
            key, value = key.strip(" \t").lower(), value.strip(" \t")
            if key == "expires":  # §5.2.1: an unparsable date is ignored
                if (when := parse_cookie_date(value)) is not None:
                    attrs.expires = when
            elif key == "max-age":
                if (when := _parse_max_age(value, now)) is not None:
                    attrs.max_age = when
            elif key == "domain" and value:  # §5.2.3: an empty one is ignored
                attrs.domain = value.removeprefix(".").lower()
            elif key == "path":  # §5.2.4: no leading "/" means the default
                attrs.path = value if value.startswith("/") else None
            elif key == "secure":
                attrs.secure = True
            elif key == "httponly":
                attrs.http_only = True
        return attrs


def _cookie_domain(host: str, domain: str | None) -> tuple[str, bool] | None:
    """§5.3 steps 5-6: the cookie's domain and host-only flag, or None to
    ignore the cookie. Single-label domains count as public suffixes, and
    cookies for IP addresses are host-only: "x.1.2.3.4" is not inside 1.2.3.4."""
    if domain is None or (domain == host and ("." not in domain or _is_ip(host))):
        return host, True
    if "." not in domain or _is_ip(host) or not domain_match(host, domain):
        return None
    return domain, False


def _parse(set_cookie: str, url: str, now: float) -> _Cookie | None:
    """One ``Set-Cookie`` value received from *url* → a cookie, or None if
    RFC 6265 §5.2-5.3 (or 6265bis) says to ignore it."""
    parts = urlsplit(url)
    pair, *rest = set_cookie.split(";")
    name, eq, value = pair.partition("=")
    name, value = name.strip(" \t"), value.strip(" \t")
    if not (parts.hostname and eq and name) or _CTL.search(set_cookie):
        return None  # 6265bis §5.7 steps 2-3: CTLs or no name: ignore
    if len(name) + len(value) > MAX_NAME_VALUE:
        return None
    attrs = _Attributes.parse(rest, now)
    placed = _cookie_domain(parts.hostname, attrs.domain)
    if placed is None or (attrs.secure and parts.scheme != "https"):
        return None  # 6265bis §5.7 step 14: no Secure cookies over http
    expires = attrs.max_age if attrs.max_age is not None else attrs.expires  # §5.3 step 3
    return _Cookie(
        name=name,
        value=value,
        domain=placed[0],
        path=attrs.path or default_path(parts.path or "/"),
        host_only=placed[1],
        secure=attrs.secure,
        http_only=attrs.http_only,
        expires=expires,
    )


_Key = tuple[str, str, str]  # (domain, path, name): a cookie's identity (§5.3 step 11)


class Cookies:
    """A cookie jar: what a Session stores from ``Set-Cookie`` and sends back.

    Cookies received are scoped as RFC 6265 says (host or domain, path,
    Secure, expiry). Cookies set by hand with :meth:`set` and no ``domain``
    go to every host the Session talks to, like httpx's.

    Iterating yields each cookie's name (a name set for two domains appears
    twice); ``len()`` counts cookies; ``name in jar`` asks if any has it.
    """

    def __init__(self) -> None:
        self._jar: dict[_Key, _Cookie] = {}

    def set(self, name: str, value: str, *, domain: str = "", path: str = "/") -> None:
        """Add or replace a session cookie. ``domain`` (a leading dot is
        dropped) sends it to that domain and its subdomains; "" to every host.

        Raises:
            ValueError: the name is empty or holds ``=``, ``;``, spaces or
                control characters, or the value holds ``;`` or controls.
        """
        if not re.fullmatch(r"[!#-'*+\-.0-9A-Z^-z|~]+", name):  # RFC 6265 §4.1.1 token
            raise ValueError(f"invalid cookie name {name!r}")
        if ";" in value or _CTL.search(value):
            raise ValueError(f"invalid cookie value {value!r}")
        domain = domain.removeprefix(".").lower()
        cookie = _Cookie(
            name, value, domain, path, host_only=False, secure=False, http_only=False, expires=None
        )
        self._jar[(domain, path, name)] = cookie

    def get(
        self,
        name: str,
        default: str | None = None,
        *,
        domain: str | None = None,
        path: str | None = None,
    ) -> str | None:
        """The value of the cookie called *name*, or *default*.

        Raises:
            ValueError: several cookies have that name (for different
                domains or paths) and ``domain``/``path`` do not single one out.
        """
        found = {
            c.value: c
            for c in self._jar.values()
            if c.name == name and domain in (None, c.domain) and path in (None, c.path)
        }
        if len(found) > 1:
            where = ", ".join(f"{c.domain or '*'}{c.path}" for c in found.values())
            raise ValueError(f"several cookies named {name!r} ({where}): pass domain= or path=")
        return next(iter(found), default)

    def delete(self, name: str, *, domain: str | None = None, path: str | None = None) -> None:
        """Remove every cookie called *name* (within ``domain``/``path`` if given)."""
        self._remove(
            lambda c: c.name == name and domain in (None, c.domain) and path in (None, c.path)
        )

    def clear(self, domain: str | None = None) -> None:
        """Remove all cookies, or those whose domain is *domain*."""
        self._remove(lambda c: domain in (None, c.domain))

    def items(self) -> list[tuple[str, str]]:
        """``(name, value)`` of every cookie, oldest first."""
        return [(c.name, c.value) for c in self._jar.values()]

    def __len__(self) -> int:
        return len(self._jar)

    def __iter__(self) -> Iterator[str]:
        return iter([c.name for c in self._jar.values()])

    def __contains__(self, name: object) -> bool:
        return any(c.name == name for c in self._jar.values())

    def __repr__(self) -> str:
        return f"<Cookies {self.items()!r}>"

    def extract(self, url: str, set_cookie_values: Iterable[str], now: float) -> None:
        """Store the ``Set-Cookie`` values of a response to *url* (RFC 6265
        §5.2-5.3). Invalid or out-of-scope cookies are ignored, as the RFC
        requires; an expired one deletes the stored cookie it matches.
        *now* is the Unix time the response arrived."""
        for text in set_cookie_values:
            cookie = _parse(text, url, now)
            if cookie is None:
                continue
            key = (cookie.domain, cookie.path, cookie.name)
            if cookie.expires is not None and cookie.expires <= now:
                self._jar.pop(key, None)
            else:
                self._jar[key] = cookie  # an existing key keeps its place (§5.3 step 11.3)
        while len(self._jar) > MAX_COOKIES:
            del self._jar[next(iter(self._jar))]

    def header_for(self, url: str, now: float) -> str | None:
        """The ``Cookie`` header value for a request to *url* at Unix time
        *now* (RFC 6265 §5.4), or None if no cookie applies. Longer paths
        come first, then older cookies (§5.4 step 2). Expired cookies are
        dropped from the jar."""
        if not self._jar:
            return None
        self._remove(lambda c: c.expires is not None and c.expires <= now)
        parts = urlsplit(url)
        host, request_path = parts.hostname, parts.path or "/"
        if not host:
            return None
        chosen = [
            c
            for c in self._jar.values()
            if (not c.domain or (host == c.domain if c.host_only else domain_match(host, c.domain)))
            and path_match(request_path, c.path)
            and (parts.scheme == "https" or not c.secure)
        ]
        chosen.sort(key=lambda c: -len(c.path))  # stable: equal paths stay oldest first
        return "; ".join(f"{c.name}={c.value}" for c in chosen) or None

    def _remove(self, doomed: Callable[[_Cookie], bool]) -> None:
        for key in [k for k, c in self._jar.items() if doomed(c)]:
            del self._jar[key]
