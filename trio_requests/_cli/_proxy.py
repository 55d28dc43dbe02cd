"""The proxy a command line asks for: ``-x``, ``--socks5``, ``--socks5-hostname``, ``-U``.

As in curl: a ``-x`` value without a scheme is an HTTP proxy; the SOCKS
options take ``host[:port]`` and win over ``-x``; ``-U user:password`` gives
the proxy credentials (over any in the URL); ``-x ''`` means no proxy at all,
not even one from the environment, which is otherwise read as curl does.
``--noproxy hosts`` lists the hosts reached directly; without it the
environment's ``no_proxy`` applies, to a ``-x`` proxy too (as in curl).

An ``https://`` proxy (from ``-x`` or the environment) is verified against
``--proxy-cacert FILE``, or not at all with ``--proxy-insecure``, else
against the system trust store: ``--cacert`` and ``-k`` are for the servers
only, as in curl.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import quote

import trio_conpool as cp

from .._proxy_env import no_proxy_from_env
from .._verify import Verify
from ._options import Options, UsageError


def proxy_of(options: Options) -> str | None:
    """The proxy URL for every transfer (checked here, so that a bad one is a
    usage error; the Session applies :func:`proxy_verify` to it); None:
    direct, or the environment's.

    Raises:
        UsageError: the proxy URL is not one we can use.
    """
    if options.socks5_hostname is not None:
        option, url = "--socks5-hostname", "socks5h://" + options.socks5_hostname
    elif options.socks5 is not None:
        option, url = "--socks5", "socks5://" + options.socks5
    elif options.proxy:
        option, url = "-x", options.proxy if "://" in options.proxy else "http://" + options.proxy
    else:
        return None
    try:
        proxy = cp.Proxy(url)
        if options.proxy_user is not None:
            url = _with_credentials(proxy, options.proxy_user)
            cp.Proxy(url)
    except ValueError as exc:
        raise UsageError(f"option {option}: {exc}") from None
    return url


def proxy_verify(options: Options) -> Verify:
    """How an https proxy's certificate is checked (see the module docstring)."""
    if options.proxy_insecure:
        return False
    return options.proxy_cacert if options.proxy_cacert is not None else True


def no_proxy_of(options: Options, environ: Mapping[str, str]) -> str | None:
    """The hosts that bypass the proxy: ``--noproxy``, else the environment's."""
    if options.noproxy is not None:
        return options.noproxy
    return no_proxy_from_env(environ) if trust_env(options) else None


def trust_env(options: Options) -> bool:
    """Whether proxy environment variables apply (not after ``-x ''``)."""
    return options.proxy != ""


def _with_credentials(proxy: cp.Proxy, user: str) -> str:
    name, _, password = user.partition(":")
    host = f"[{proxy.host}]" if ":" in proxy.host else proxy.host
    userinfo = f"{quote(name, safe='')}:{quote(password, safe='')}"
    return f"{proxy.scheme}://{userinfo}@{host}:{proxy.port}"
