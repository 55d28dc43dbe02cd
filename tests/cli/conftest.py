"""Fixtures for the command-line tests: the CA as a file, and the servers."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trustme

from tests.cli.helpers import Servers, open_servers


@pytest.fixture(scope="session")
def ca_file(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The test CA's certificate as a PEM file, for ``--cacert``."""
    path = tmp_path_factory.mktemp("cli-ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture
async def servers(server_ssl_context: ssl.SSLContext, ca_file: str) -> AsyncIterator[Servers]:
    async with open_servers(server_ssl_context, ca_file) as running:
        yield running


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """An empty directory for -o files (and nothing else)."""
    path = tmp_path / "out"
    path.mkdir()
    return path
