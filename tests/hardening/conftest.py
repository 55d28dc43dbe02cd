"""The client tests' scripted-server fixtures, shared."""

from __future__ import annotations

from tests.client.conftest import server, tls_server

__all__ = ["server", "tls_server"]
