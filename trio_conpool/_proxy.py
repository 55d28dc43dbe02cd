"""Proxy: where a connection is tunnelled through, parsed once from a URL.

A :class:`Proxy` is part of an :class:`~trio_conpool.Endpoint`'s identity, so
connections through different proxies (or through a proxy and directly) are
never mixed in the pool. Credentials are part of the identity too: a tunnel
opened with one user's credentials is not lent to another.
"""

from __future__ import annotations

import base64
import ssl
from dataclasses import dataclass, field
from functools import cached_property
from urllib.parse import unquote, urlsplit

#: Proxy schemes, and what each tunnels with. ``https`` is ``http`` spoken
#: over TLS to the proxy. ``socks5h`` asks the proxy to resolve the target's
#: name; ``socks5`` resolves it here and sends an address.
SCHEMES = ("http", "https", "socks5", "socks5h")
#: curl's default port for a proxy scheme: 1080 for every one but https.
DEFAULT_PORT = 1080
DEFAULT_HTTPS_PORT = 443


@dataclass(frozen=True)
class Proxy:
    """A proxy to reach endpoints through: ``Proxy("http://user:pass@host:3128")``.

    ``http://``: an HTTP proxy, used with CONNECT (RFC 9110 §9.3.6) for
    tunnels; credentials go in a ``Proxy-Authorization: Basic`` header.
    ``https://``: the same, spoken over TLS to the proxy, so the CONNECT
    request and its credentials (and plain-http requests forwarded to it)
    are encrypted on the way to the proxy; TLS to an https target then runs
    inside that TLS. ``socks5://`` and ``socks5h://``: a SOCKS5 proxy (RFC
    1928), without authentication or with a username and password (RFC
    1929); ``socks5h`` lets the proxy resolve host names (curl's naming).
    The port defaults to 443 for https and to 1080 otherwise, as in curl.
    Percent-escapes in the credentials are decoded.

    Args:
        url: the proxy's URL.
        ssl_context: for ``https://`` only: verifies the proxy's certificate
            (against the proxy's host name); ``None`` uses the system trust
            store. It is part of the proxy's identity, so tunnels made with
            different proxy TLS settings are never shared. The pool never
            changes it (ALPN is offered as :func:`~trio_conpool._tls.open_tls`
            describes).

    Raises:
        ValueError: an unsupported scheme, no host, a bad port, a path in
            the URL, or an *ssl_context* for a proxy that is not https.
    """

    url: str = field(repr=False)
    ssl_context: ssl.SSLContext | None = field(default=None, kw_only=True, repr=False)
    scheme: str = field(init=False)
    host: str = field(init=False)
    port: int = field(init=False)
    username: str | None = field(init=False, default=None)
    password: str | None = field(init=False, default=None, repr=False)

    def __post_init__(self) -> None:
        scheme, host, port, username, password = _parse(self.url)
        for name, value in (
            ("scheme", scheme),
            ("host", host),
            ("port", port),
            ("username", username),
            ("password", password),
        ):
            object.__setattr__(self, name, value)
        object.__setattr__(self, "url", str(self))  # the key: no user:pass spelling variants
        _check_ssl_context(self.scheme, self.ssl_context)

    @property
    def speaks_http(self) -> bool:
        """An HTTP proxy (``http://`` or ``https://``): it takes CONNECT and
        forwarded requests; the others are SOCKS5."""
        return self.scheme in ("http", "https")

    @cached_property  # sent with every forwarded request: encode it once
    def proxy_authorization(self) -> str | None:
        """The ``Proxy-Authorization`` header value for an HTTP(S) proxy with
        credentials (Basic, RFC 7617); None without credentials."""
        if self.username is None:
            return None
        pair = f"{self.username}:{self.password or ''}".encode()
        return "Basic " + base64.b64encode(pair).decode("ascii")

    def __str__(self) -> str:
        """The URL without the password (safe to log)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        user = f"{self.username}@" if self.username is not None else ""
        return f"{self.scheme}://{user}{host}:{self.port}"

    def __repr__(self) -> str:
        return f"Proxy({str(self)!r})"


def _parse(url: str) -> tuple[str, str, int, str | None, str | None]:
    if not isinstance(url, str):
        raise ValueError(f"Proxy needs a URL string, got {type(url).__name__}")
    shown = _masked(url)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ValueError(f"invalid proxy URL {shown!r}: bad port or address") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise ValueError(f"unsupported proxy scheme in {shown!r}: use one of {', '.join(SCHEMES)}")
    if not parts.hostname:
        raise ValueError(f"proxy URL {shown!r} has no host")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"proxy URL {shown!r} must not have a path, query or fragment")
    if port == 0:
        raise ValueError(f"invalid proxy URL {shown!r}: port 0")
    username = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    if scheme.startswith("socks5"):
        _check_socks_credentials(shown, username, password)
    if port is None:
        port = DEFAULT_HTTPS_PORT if scheme == "https" else DEFAULT_PORT
    return scheme, parts.hostname, port, username, password


def _check_ssl_context(scheme: str, context: object) -> None:
    """Only an https proxy has TLS settings; one given for another scheme
    would be silently unused, which hides a mistyped URL."""
    if context is None:
        return
    if not isinstance(context, ssl.SSLContext):
        raise ValueError(f"Proxy ssl_context must be an ssl.SSLContext, got {context!r}")
    if scheme != "https":
        raise ValueError(f"Proxy ssl_context is for https:// proxies, not {scheme}://")


def _check_socks_credentials(shown: str, username: str | None, password: str | None) -> None:
    """RFC 1929 carries each in a length byte: at most 255 bytes, and a
    username of at least one."""
    if username is None:
        return
    if not 0 < len(username.encode()) <= 255 or len((password or "").encode()) > 255:
        raise ValueError(
            f"proxy URL {shown!r}: a SOCKS5 username must be 1 to 255 bytes and "
            "a password at most 255 (RFC 1929)"
        )


def _masked(url: str) -> str:
    """*url* with any password replaced, for error messages, whether or not
    it has a scheme (``user:pass@host`` is a common slip)."""
    scheme_end = url.find("://")
    start = scheme_end + 3 if scheme_end >= 0 else (2 if url.startswith("//") else 0)
    end = min((i for i in (url.find(c, start) for c in "/?#") if i >= 0), default=len(url))
    userinfo, at, _ = url[start:end].rpartition("@")
    if not at or ":" not in userinfo:
        return url
    user = userinfo.split(":", 1)[0]
    return f"{url[:start]}{user}:***@{url[start + len(userinfo) + 1 :]}"
