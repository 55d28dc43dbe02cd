"""TLSStream while the server changes keys: ``openssl s_server`` renegotiates
(TLS 1.2) or sends a KeyUpdate asking for ours (TLS 1.3) when told on its
stdin, in the middle of a conversation where the client reads and writes
from two tasks at once. This is the path where a write needs the peer's
handshake records that another task is reading."""

from __future__ import annotations

import ssl
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio
import trustme

from trio_conpool import SocketStream, TLSStream

OPENSSL = "openssl"
LIMIT = 10.0  # seconds for a whole test: the server is local


class SServer:
    """An ``openssl s_server``: what the client sends appears on its stdout,
    what we write to its stdin goes to the client (``r``/``k``/``K`` lines
    are its commands: renegotiate, key update, key update requesting ours)."""

    def __init__(self, process: trio.Process) -> None:
        self.process = process
        self.output = b""
        self.port = 0

    async def read_until(self, marker: bytes) -> None:
        assert self.process.stdout is not None
        while marker not in self.output:
            chunk = await self.process.stdout.receive_some(4096)
            assert chunk, f"s_server ended; its output: {self.output!r}"
            self.output += chunk

    async def command(self, line: bytes) -> None:
        assert self.process.stdin is not None
        await self.process.stdin.send_all(line + b"\n")


@asynccontextmanager
async def s_server(tmp_path: Path, ca: trustme.CA, version: str) -> AsyncIterator[SServer]:
    pem = tmp_path / "server.pem"
    ca.issue_cert("localhost").private_key_and_cert_chain_pem.write_to_path(str(pem))
    argv = [OPENSSL, "s_server", "-accept", "127.0.0.1:0", "-cert", str(pem), "-state", version]
    process = await trio.lowlevel.open_process(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    server = SServer(process)
    try:
        await server.read_until(b"ACCEPT 127.0.0.1:")
        server.port = int(server.output.split(b"ACCEPT 127.0.0.1:")[1].split()[0])
        yield server
    finally:
        process.kill()  # only the process this test started
        await process.wait()


async def _connect(server: SServer, ca: trustme.CA) -> TLSStream:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    tcp = SocketStream.adopt(await trio.open_tcp_stream("127.0.0.1", server.port))
    tls = TLSStream(tcp, context, "localhost")
    await tls.do_handshake()
    return tls


@pytest.mark.parametrize(
    ("version", "command"),
    [("-tls1_2", b"r"), ("-tls1_3", b"K")],
    ids=["TLSv1.2-renegotiation", "TLSv1.3-key-update"],
)
async def test_keys_change_mid_conversation(
    tmp_path: Path, ca: trustme.CA, version: str, command: bytes
) -> None:
    with trio.fail_after(LIMIT):
        async with s_server(tmp_path, ca, version) as server:
            tls = await _connect(server, ca)
            received = bytearray()

            async def read_until(marker: bytes) -> None:
                while marker not in received:
                    data = await tls.receive_some()
                    assert data, "the server closed the connection"
                    received.extend(data)

            await tls.send_all(b"before\n")
            await server.read_until(b"before\n")
            async with trio.open_nursery() as nursery:
                nursery.start_soon(read_until, b"last from server\n")
                await server.command(command)  # the server starts changing keys
                for n in range(20):  # our writes overlap the handshake reads
                    await tls.send_all(b"client line %d\n" % n)
                    await server.command(b"server line %d" % n)
                    await trio.sleep(0.01)
                await server.command(b"last from server")
            await server.read_until(b"client line 19\n")
            assert b"server line 19\n" in received
            await tls.send_all(b"after\n")
            await server.read_until(b"after\n")
            await tls.aclose()
    # s_server -state logs its handshake steps: the new keys were agreed.
    if version == "-tls1_2":
        assert b"write hello request" in server.output
        assert server.output.count(b"TLS read finished") == 2  # two handshakes done
    else:
        assert b"write server key update" in server.output
        assert b"read client key update" in server.output  # we answered in kind
