"""Shared fixtures: a trustme CA with server/client TLS contexts; hypothesis profiles."""

from __future__ import annotations

import os
import ssl

import pytest
import trustme
from hypothesis import settings

# Hypothesis profiles, chosen by HYPOTHESIS_PROFILE: "default" (hypothesis's
# own: 100 examples, which CI runs) or "slow" for deeper runs by hand:
#   HYPOTHESIS_PROFILE=slow python -m pytest tests/client/test_http2_fault_properties.py
# Tests whose examples are costly scale the profile's max_examples down
# rather than fixing a count, so "slow" deepens them too.
settings.register_profile("slow", max_examples=2000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

# Sessions take proxies from the environment (trust_env=True). The tests talk
# to loopback servers of their own, so a proxy set on the machine running
# them must not apply; the proxy tests pass their proxies explicitly.
for _name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
    os.environ.pop(_name, None)
    os.environ.pop(_name.upper(), None)


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def server_cert(ca: trustme.CA) -> trustme.LeafCert:
    return ca.issue_cert("localhost", "127.0.0.1", "::1")


@pytest.fixture
def server_ssl_context(server_cert: trustme.LeafCert) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_cert.configure_cert(ctx)
    return ctx


@pytest.fixture
def client_ssl_context(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    return ctx
