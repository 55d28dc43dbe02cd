"""Fixtures for tests against a real nginx and nghttpd (tests/interop/nginx.py, nghttpd.py).

The servers are session-scoped: starting nginx costs a few tens of
milliseconds, and each test reads the accepted-connections counter before
and after its own traffic, so sharing a server does not blur what a test
counts (tests in one process run one after another).

A missing server binary is a failure, never a skip: CI must run these tests.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import trustme

from tests.interop import nghttpd as nghttpd_server
from tests.interop import proxies
from tests.interop.nginx import INSTALL_HINT, NGINX, Nginx, run_nginx


@contextmanager
def _nginx(
    ca: trustme.CA, workdir: Path, keepalive_requests: int, *, access_log: bool = False
) -> Iterator[Nginx]:
    if not os.access(NGINX, os.X_OK):
        pytest.fail(INSTALL_HINT.format(binary=NGINX), pytrace=False)
    with run_nginx(
        keepalive_requests=keepalive_requests, access_log=access_log, ca=ca, workdir=workdir
    ) as server:
        yield server


@pytest.fixture(scope="session")
def nginx(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nginx]:
    """nginx with ``keepalive_requests 1000`` (the default)."""
    with _nginx(ca, tmp_path_factory.mktemp("nginx"), keepalive_requests=1000) as server:
        yield server


@pytest.fixture(scope="session")
def nginx_ka10(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nginx]:
    """nginx that closes every connection after its 10th request."""
    with _nginx(ca, tmp_path_factory.mktemp("nginx-ka10"), keepalive_requests=10) as server:
        yield server


@pytest.fixture(scope="session")
def nginx_ka100(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nginx]:
    """nginx that ends every connection after its 100th request (over HTTP/2:
    a GOAWAY), and logs each TLS request's URI and status (``access_log``)."""
    workdir = tmp_path_factory.mktemp("nginx-ka100")
    with _nginx(ca, workdir, keepalive_requests=100, access_log=True) as server:
        yield server


@pytest.fixture(scope="session")
def nghttpd(
    ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[nghttpd_server.Nghttpd]:
    """nghttpd over TLS (ALPN h2) with /1k.bin, /1m.bin and echoed uploads."""
    binary = nghttpd_server.NGHTTPD
    if not os.access(binary, os.X_OK):
        pytest.fail(nghttpd_server.INSTALL_HINT.format(binary=binary), pytrace=False)
    with nghttpd_server.run_nghttpd(ca=ca, workdir=tmp_path_factory.mktemp("nghttpd")) as server:
        yield server


# -- proxies (tests/interop/proxies.py) -------------------------------------------------

#: the credentials of the ``tinyproxy_auth`` and ``microsocks_auth`` proxies.
PROXY_AUTH = ("alice", "s3cret")


def _require(binary: str) -> None:
    if not os.access(binary, os.X_OK):
        pytest.fail(proxies.INSTALL_HINT.format(binary=binary), pytrace=False)


@pytest.fixture(scope="session")
def tinyproxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[proxies.ProxyServer]:
    """tinyproxy (HTTP proxy, CONNECT to any port) without authentication."""
    _require(proxies.TINYPROXY)
    with proxies.run_tinyproxy(tmp_path_factory.mktemp("tinyproxy")) as server:
        yield server


@pytest.fixture(scope="session")
def tinyproxy_auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[proxies.ProxyServer]:
    """tinyproxy that wants ``Proxy-Authorization: Basic`` for alice:s3cret (else 407)."""
    _require(proxies.TINYPROXY)
    workdir = tmp_path_factory.mktemp("tinyproxy-auth")
    with proxies.run_tinyproxy(workdir, auth=PROXY_AUTH) as server:
        yield server


@pytest.fixture(scope="session")
def microsocks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[proxies.ProxyServer]:
    """microsocks (SOCKS5) without authentication."""
    _require(proxies.MICROSOCKS)
    with proxies.run_microsocks(tmp_path_factory.mktemp("microsocks")) as server:
        yield server


@pytest.fixture(scope="session")
def microsocks_auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[proxies.ProxyServer]:
    """microsocks that wants RFC 1929 username/password alice:s3cret on every connection."""
    _require(proxies.MICROSOCKS)
    workdir = tmp_path_factory.mktemp("microsocks-auth")
    with proxies.run_microsocks(workdir, auth=PROXY_AUTH) as server:
        yield server
