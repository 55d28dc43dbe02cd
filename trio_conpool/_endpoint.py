"""Endpoints: the small hashable keys the pool groups connections by."""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field

from ._proxy import Proxy


@dataclass(frozen=True, kw_only=True)
class TLSConfig:
    """How to wrap a connection in TLS.

    Args:
        ssl_context: the context to use; ``None`` builds
            :func:`ssl.create_default_context` (verification on, TLS >= 1.2).
            The pool never changes the context you pass in (see
            :func:`trio_conpool._tls.open_tls` for how ALPN is offered).
        alpn: protocols to offer by ALPN, in order of preference, e.g.
            ``("h2", "http/1.1")``. Empty: offer none.
        server_hostname: name for SNI and certificate checking; defaults to
            the endpoint's host.
    """

    ssl_context: ssl.SSLContext | None = None
    alpn: tuple[str, ...] = ()
    server_hostname: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.alpn, str):
            raise ValueError(
                f"TLSConfig.alpn must be a tuple of names, not the string {self.alpn!r}"
            )
        object.__setattr__(self, "alpn", tuple(self.alpn))
        for name in self.alpn:
            if not name or len(name.encode()) > 255:
                raise ValueError(f"TLSConfig.alpn has an invalid protocol name {name!r}")
        if self.server_hostname is not None and not self.server_hostname:
            raise ValueError("TLSConfig.server_hostname must not be empty (use None for the host)")


@dataclass(frozen=True)
class Endpoint:
    """A destination: ``(host, port, tls, proxy)`` or a Unix socket path.

    Two endpoints that compare equal share pooled connections; a TLS and a
    plain-text endpoint to the same host and port never do, nor do two
    that go through different proxies (or one through a proxy, one not).

    Args:
        host: a DNS name or an IP address literal.
        port: TCP port, 1-65535.
        tls: wrap connections in TLS with this configuration; ``None`` is
            plain text.
        proxy: reach *host* through this proxy's tunnel (HTTP CONNECT, in
            TLS with an https proxy, or SOCKS5); TLS, if any, then runs
            inside the tunnel, end to end (TLS in TLS through an https
            proxy). The proxy's own TLS settings are part of the key.
    """

    host: str
    port: int
    tls: TLSConfig | None = field(default=None, kw_only=True)
    unix_path: str | None = field(default=None, kw_only=True)
    proxy: Proxy | None = field(default=None, kw_only=True)

    def __post_init__(self) -> None:
        if not isinstance(self.host, str) or not self.host:
            raise ValueError(f"Endpoint.host must be a non-empty string, got {self.host!r}")
        if self.unix_path is None:
            if isinstance(self.port, bool) or not isinstance(self.port, int):
                raise ValueError(f"Endpoint.port must be an int, got {self.port!r}")
            if not 1 <= self.port <= 65535:
                raise ValueError(f"Endpoint.port must be in 1..65535, got {self.port!r}")
        elif not self.unix_path:
            raise ValueError("Endpoint.unix_path must not be empty")
        elif self.proxy is not None:
            raise ValueError("a Unix socket endpoint cannot go through a proxy")
        if self.proxy is not None and not isinstance(self.proxy, Proxy):
            raise ValueError(f"Endpoint.proxy must be a Proxy, got {self.proxy!r}")

    @classmethod
    def unix(cls, path: str, *, tls: TLSConfig | None = None, host: str = "localhost") -> Endpoint:
        """An endpoint reached through the Unix domain socket at *path*.

        *host* is only a label (and the TLS server name when *tls* is set).
        """
        return cls(host, 0, tls=tls, unix_path=path)

    def __str__(self) -> str:
        scheme = "tls" if self.tls is not None else "tcp"
        if self.unix_path is not None:
            return f"unix{'+tls' if self.tls else ''}:{self.unix_path}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        via = f" via {self.proxy}" if self.proxy is not None else ""
        return f"{scheme}://{host}:{self.port}{via}"
