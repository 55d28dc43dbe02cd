"""Routes: which pool endpoint a URL is sent to, directly or by proxy.

Decided once per origin (the Session caches the answer), from the Session's
``proxy=`` or, with ``trust_env``, the proxy environment variables read when
the Session was made (:mod:`._proxy_env`). Three shapes:

* direct: ``Endpoint(host, port, tls)``;
* tunnel: ``Endpoint(host, port, tls, proxy=...)``: CONNECT or SOCKS5 to the
  target, TLS and ALPN (so HTTP/2) inside it, end to end. Every https URL,
  and every URL through a SOCKS5 proxy, goes this way; through an https
  proxy the CONNECT runs in TLS with the proxy, and the target's TLS
  inside that;
* forward: an http:// URL through an HTTP proxy is sent to the proxy itself
  in absolute-form (RFC 9112 §3.2.2), as curl and requests do, so one
  connection to the proxy serves every plain-text origin; to an https
  proxy that connection is TLS (HTTP/1.1 by ALPN, with the proxy's
  ``ssl_context``). With ``http2_prior_knowledge`` it is tunnelled
  instead: a proxy cannot be assumed to speak h2c.

The proxy's certificate is checked with the Session's ``verify=`` when the
proxy is given as a URL (or comes from the environment), as curl and
requests check it against the same trust store as the target's; a
:class:`trio_conpool.Proxy` object is used as it is, with its own
``ssl_context`` (None: the system trust store).
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass

import trio_conpool as cp

from ._errors import ProxyError
from ._models import Request
from ._proxy_env import bypasses_proxy, proxy_from_env
from ._urls import URL

ProxyArg = str | cp.Proxy | None


@dataclass(frozen=True, slots=True)
class Route:
    """Where requests to one origin go.

    Attributes:
        endpoint: the pool key.
        forward: the HTTP proxy *endpoint* is, when requests are sent to it
            in absolute-form; None otherwise.
    """

    endpoint: cp.Endpoint
    forward: cp.Proxy | None = None


class ProxyChooser:
    """The proxy, if any, for a URL: the fixed one, or the environment's.

    *ssl_context* verifies https proxies given by URL (see the module
    docstring).

    Raises:
        ValueError: *proxy* is not a valid proxy URL.
    """

    def __init__(
        self,
        proxy: ProxyArg,
        *,
        trust_env: bool,
        ssl_context: ssl.SSLContext,
        no_proxy: str | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self._ssl_context = ssl_context
        self._fixed = self._parse(proxy) if isinstance(proxy, str) else proxy
        self._no_proxy = no_proxy
        self._environ: dict[str, str] | None = None
        if self._fixed is None and trust_env:
            self._environ = dict(os.environ if environ is None else environ)

    def proxy_for(self, url: URL, request: Request) -> cp.Proxy | None:
        """Raises ProxyError for an invalid proxy URL in the environment."""
        if self._no_proxy is not None and bypasses_proxy(url.host, url.port, self._no_proxy):
            return None
        if self._fixed is not None or self._environ is None:
            return self._fixed
        found = proxy_from_env(url.scheme, url.host, url.port, self._environ, self._no_proxy)
        if found is None:
            return None
        try:
            return self._parse(found)
        except ValueError as exc:
            raise ProxyError(f"from the environment: {exc}", request=request) from None

    def _parse(self, url: str) -> cp.Proxy:
        proxy = cp.Proxy(url)
        if proxy.scheme != "https":
            return proxy
        return cp.Proxy(url, ssl_context=self._ssl_context)


def route(url: URL, proxy: cp.Proxy | None, tls: cp.TLSConfig | None, *, h2c: bool) -> Route:
    """The route for *url*'s origin (see the module docstring)."""
    if proxy is None:
        return Route(cp.Endpoint(url.host, url.port, tls=tls))
    if proxy.speaks_http and url.scheme == "http" and not h2c:
        return Route(cp.Endpoint(proxy.host, proxy.port, tls=_tls_to(proxy)), forward=proxy)
    return Route(cp.Endpoint(url.host, url.port, tls=tls, proxy=proxy))


def _tls_to(proxy: cp.Proxy) -> cp.TLSConfig | None:
    """TLS with an https proxy requests are forwarded to: HTTP/1.1 only,
    since the forwarding connection is kept to HTTP/1.1 (one request at a
    time, absolute-form)."""
    if proxy.scheme != "https":
        return None
    return cp.TLSConfig(ssl_context=proxy.ssl_context, alpn=("http/1.1",))
