"""Fixtures for client tests: scripted servers from trio_requests.testing."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator

import pytest

from trio_requests.testing import H11Server, open_h11_server


@pytest.fixture
async def server() -> AsyncIterator[H11Server]:
    async with open_h11_server() as s:
        yield s


@pytest.fixture
async def tls_server(server_ssl_context: ssl.SSLContext) -> AsyncIterator[H11Server]:
    async with open_h11_server(ssl_context=server_ssl_context) as s:
        yield s
