"""Choosing a proxy from the environment, the way curl and requests do.

Pure functions over a mapping of environment variables: no I/O, no DNS, no
trio. The caller passes ``os.environ`` (or a test's dict) and parses and
validates the URL it gets back.

Which variable
    For a request to ``scheme://host:port`` the first *non-empty* one of
    ``{scheme}_proxy``, ``{SCHEME}_PROXY``, ``all_proxy``, ``ALL_PROXY`` is
    the proxy (so ``http_proxy``/``HTTP_PROXY`` for http and
    ``https_proxy``/``HTTPS_PROXY`` for https). The scheme is compared
    case-insensitively. Lowercase wins over uppercase: that is curl's order,
    and lowercase is the older, more widely honoured convention. An empty
    value counts as unset, so ``http_proxy=`` falls through to
    ``HTTP_PROXY`` rather than forcing a direct connection; shells and
    container runtimes often export empty variables by accident.

httpoxy (CVE-2016-5385)
    When ``REQUEST_METHOD`` is present we are running as a CGI script, and
    the web server turns a client's ``Proxy:`` request header into the
    ``HTTP_PROXY`` variable, letting any client route our outgoing requests
    through its own server. So uppercase ``HTTP_PROXY`` is then ignored, as
    Python's ``urllib.request.getproxies_environment`` does. Lowercase
    ``http_proxy`` and the other variables cannot be set through a header
    and are still honoured.

The URL
    A value without ``://`` gets ``http://`` prepended (``proxy:3128``
    means ``http://proxy:3128``), as curl does. Otherwise the value is
    returned unchanged.

NO_PROXY
    The first non-empty one of ``no_proxy``, ``NO_PROXY`` lists exemptions.
    It is only consulted when some proxy variable is set. Entries are
    separated by commas and/or whitespace (curl accepts both). The value
    ``*`` on its own exempts every host. Each entry is one of:

    * a host or domain name: ``example.com`` and ``.example.com`` both
      match ``example.com`` itself and every subdomain (``a.example.com``)
      but not ``badexample.com``, since the match is on whole labels.
      ``*.example.com`` is read as ``.example.com`` (Go accepts this form
      and people write it);
    * an IP address literal, IPv6 with or without brackets;
    * a CIDR block, ``10.0.0.0/8`` or ``::1/128`` (``[::1/128]`` too).

    Any entry may end in ``:port`` to exempt only that port; for IPv6 this
    needs brackets, ``[::1]:8080``, because ``::1:8080`` is itself a valid
    address. Names match case-insensitively and ignore a trailing dot
    (``example.com.`` is the same host); non-ASCII names are IDNA-encoded,
    as request hosts are.

    Names never match IP hosts and addresses never match named hosts:
    nothing is resolved, because the proxy decision must not depend on (or
    leak queries to) DNS, and the proxy may be the only route to a
    resolver. An IPv4-mapped IPv6 host (``::ffff:10.0.0.1``) is also
    checked as its IPv4 address, since that is where it connects.

    Malformed entries (``host:abc``, ``[::1``) are skipped rather than
    raising: the value comes from the environment, and one typo should not
    break every request.

    ``localhost`` and loopback addresses get no special treatment (curl
    doesn't either): they go through the proxy unless NO_PROXY says
    otherwise.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass

_IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
_IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_SEPARATORS = re.compile(r"[,\s]+")
_PORT = re.compile(r"[0-9]+")


def proxy_from_env(
    scheme: str, host: str, port: int, environ: Mapping[str, str], no_proxy: str | None = None
) -> str | None:
    """The proxy URL for a request to scheme://host:port, or None for a
    direct connection. *no_proxy*, if given, replaces the environment's."""
    proxy = _first_set(environ, _proxy_variables(scheme, cgi="REQUEST_METHOD" in environ))
    if proxy is None:
        return None
    if no_proxy is None:
        no_proxy = no_proxy_from_env(environ)
    if no_proxy is not None and bypasses_proxy(host, port, no_proxy):
        return None
    return proxy if "://" in proxy else f"http://{proxy}"


def no_proxy_from_env(environ: Mapping[str, str]) -> str | None:
    """The environment's NO_PROXY list (``no_proxy`` first), if set."""
    return _first_set(environ, ("no_proxy", "NO_PROXY"))


def bypasses_proxy(host: str, port: int, no_proxy: str) -> bool:
    """Whether a NO_PROXY value exempts host:port."""
    if no_proxy.strip() == "*":
        return True
    target = _parse_host(host)
    for text in _SEPARATORS.split(no_proxy):
        entry = _parse_entry(text)
        if entry is not None and entry.matches(target, port):
            return True
    return False


def _proxy_variables(scheme: str, *, cgi: bool) -> tuple[str, ...]:
    """The variables naming the proxy for scheme, in order of precedence."""
    lower = scheme.lower()
    names = (f"{lower}_proxy", f"{scheme.upper()}_PROXY", "all_proxy", "ALL_PROXY")
    if cgi:
        # httpoxy: a CGI client sets HTTP_PROXY with a "Proxy:" header.
        return tuple(name for name in names if name != "HTTP_PROXY")
    return names


def _first_set(environ: Mapping[str, str], names: tuple[str, ...]) -> str | None:
    """The value of the first of names that is set and non-empty."""
    for name in names:
        value = environ.get(name)
        if value:
            return value
    return None


@dataclass(frozen=True)
class _Entry:
    """One parsed NO_PROXY entry: a name or an IP network, maybe with a port."""

    name: str | None
    network: _IPNetwork | None
    port: int | None

    def matches(self, host: str | tuple[_IPAddress, ...], port: int) -> bool:
        """Whether this entry exempts host (a name, or its candidate addresses) on port."""
        if self.port is not None and self.port != port:
            return False
        if isinstance(host, str):
            return self.name is not None and _name_matches(host, self.name)
        network = self.network
        return network is not None and any(address in network for address in host)


def _name_matches(host: str, name: str) -> bool:
    """Whether host is name or a subdomain of it (whole labels only)."""
    return host == name or host.endswith("." + name)


def _parse_host(host: str) -> str | tuple[_IPAddress, ...]:
    """A request host as a normalized name, or as the addresses to check it as."""
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    address = _ip_address(bare)
    if address is None:
        return _normalize_name(host)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return (address, address.ipv4_mapped)
    return (address,)


def _parse_entry(text: str) -> _Entry | None:
    """Parse one NO_PROXY entry; None if it is empty or malformed."""
    try:
        return _parse_entry_or_raise(text)
    except ValueError:
        return None


def _parse_entry_or_raise(text: str) -> _Entry:
    """Parse one NO_PROXY entry, raising ValueError if it is empty or malformed."""
    if text.startswith("["):
        inner, bracket, rest = text[1:].partition("]")
        if not bracket:
            raise ValueError(f"unclosed bracket in {text!r}")
        return _Entry(None, ipaddress.ip_network(inner, strict=False), _parse_port(rest))
    if text.count(":") > 1:  # unbracketed IPv6: "::1:8080" is an address, not a port
        return _Entry(None, ipaddress.ip_network(text, strict=False), None)
    head, colon, tail = text.partition(":")
    port = _parse_port(colon + tail)
    network = _ip_network(head)
    if network is not None:
        return _Entry(None, network, port)
    name = _normalize_name(head.removeprefix("*.").lstrip("."))
    if not name:
        raise ValueError(f"no host name in {text!r}")
    return _Entry(name, None, port)


def _parse_port(suffix: str) -> int | None:
    """The port in a ":port" suffix, or None if there is no suffix."""
    if not suffix:
        return None
    if suffix.startswith(":") and _PORT.fullmatch(suffix[1:]):
        return int(suffix[1:])
    raise ValueError(f"bad port suffix {suffix!r}")


def _normalize_name(name: str) -> str:
    """Lower-case, drop one trailing dot, and IDNA-encode if non-ASCII."""
    name = name.lower().removesuffix(".")
    if name.isascii():
        return name
    try:
        return name.encode("idna").decode("ascii")
    except UnicodeError:
        return name


def _ip_address(text: str) -> _IPAddress | None:
    """text as an IP address, or None if it is not one."""
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _ip_network(text: str) -> _IPNetwork | None:
    """text as an IP network (a lone address is a /32 or /128), or None."""
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None
