"""open_transport, peek_idle and probe_tls_idle over real loopback sockets."""

from __future__ import annotations

import datetime
import errno
import math
import os
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, suppress
from functools import partial
from pathlib import Path

import pytest
import trio
import trio.testing
import trustme

from tests.pool.servers import plain_http_400
from trio_conpool import ConnectError, ConnectTimeout, Endpoint, TLSConfig, TLSError, TLSStream
from trio_conpool._connect import open_transport
from trio_conpool._idle_probe import IdleCheck, peek_idle, probe_tls_idle
from trio_conpool._socket_stream import SocketStream
from trio_conpool._transport import Transport

Handler = Callable[[trio.SocketStream], Awaitable[None]]


async def serve(nursery: trio.Nursery, handler: Handler, host: str = "127.0.0.1") -> int:
    """Serve *handler* on an ephemeral loopback port until the test ends."""
    listeners = await nursery.start(partial(trio.serve_tcp, handler, 0, host=host))
    port: int = listeners[0].socket.getsockname()[1]
    return port


async def echo_line(stream: trio.SocketStream) -> None:
    async with stream:
        async for data in stream:
            await stream.send_all(data)


async def hold_until_eof(stream: trio.SocketStream) -> None:
    async with stream:
        async for _ in stream:
            pass


@asynccontextmanager
async def connected(endpoint: Endpoint) -> AsyncIterator[Transport]:
    transport = await open_transport(endpoint, timeout=5)
    async with transport.stream:
        yield transport


async def roundtrip(stream: trio.abc.Stream) -> None:
    await stream.send_all(b"ping\n")
    assert await stream.receive_some() == b"ping\n"


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


# ---------------------------------------------------------------- plain text


async def test_tcp_transport_info(nursery: trio.Nursery) -> None:
    port = await serve(nursery, echo_line)
    async with connected(Endpoint("127.0.0.1", port)) as t:
        assert isinstance(t.stream, SocketStream)
        assert t.socket is t.stream.socket
        assert (t.alpn_protocol, t.tls_version) == (None, None)
        assert t.peer_address == ("127.0.0.1", port)
        assert t.local_address == t.socket.getsockname()
        assert t.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        await roundtrip(t.stream)


async def test_ipv6_loopback(nursery: trio.Nursery) -> None:
    try:
        port = await serve(nursery, echo_line, host="::1")
    except OSError:
        pytest.skip("no IPv6 loopback on this machine")
    async with connected(Endpoint("::1", port)) as t:
        assert t.peer_address[:2] == ("::1", port)
        await roundtrip(t.stream)


async def test_unix_socket(nursery: trio.Nursery, tmp_path: Path) -> None:
    path = str(tmp_path / "s.sock")
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    await sock.bind(path)
    sock.listen()
    nursery.start_soon(trio.serve_listeners, echo_line, [trio.SocketListener(sock)])
    async with connected(Endpoint.unix(path)) as t:
        assert t.peer_address == path
        await roundtrip(t.stream)


async def test_refused_port_is_connect_error() -> None:
    # A bound socket that does not listen: the port answers with RST and
    # nobody else can take it meanwhile.
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))
        endpoint = Endpoint("127.0.0.1", bound.getsockname()[1])
        with pytest.raises(ConnectError) as info:
            await open_transport(endpoint, timeout=5)
    assert type(info.value) is ConnectError
    assert str(info.value) == f"cannot connect to {endpoint}: connection refused"
    assert info.value.endpoint == endpoint
    group = info.value.__cause__.__cause__  # type: ignore[union-attr]
    assert isinstance(group, ExceptionGroup)
    [attempt] = group.exceptions
    assert isinstance(attempt, OSError)
    assert attempt.errno == errno.ECONNREFUSED


async def test_missing_unix_socket_is_connect_error(tmp_path: Path) -> None:
    endpoint = Endpoint.unix(str(tmp_path / "nobody.sock"))
    with pytest.raises(ConnectError, match="No such file") as info:
        await open_transport(endpoint, timeout=5)
    assert str(endpoint) in str(info.value)
    assert isinstance(info.value.__cause__, FileNotFoundError)


async def test_dns_failure_is_connect_error() -> None:
    endpoint = Endpoint("nothing-here.invalid", 80)  # RFC 6761: never resolves
    with trio.fail_after(5), pytest.raises(ConnectError) as info:
        await open_transport(endpoint, timeout=None)
    assert type(info.value) is ConnectError
    assert str(info.value).startswith("cannot resolve host 'nothing-here.invalid'")
    assert str(endpoint) in str(info.value)
    assert isinstance(info.value.__cause__, socket.gaierror)


# ------------------------------------------------------------------------ TLS


def tls_endpoint(
    port: int,
    context: ssl.SSLContext | None,
    alpn: tuple[str, ...] = (),
    server_hostname: str | None = None,
) -> Endpoint:
    tls = TLSConfig(ssl_context=context, alpn=alpn, server_hostname=server_hostname)
    return Endpoint("127.0.0.1", port, tls=tls)


def tls_server(context: ssl.SSLContext) -> Handler:
    """Handshake, then echo; a failed handshake is the client's business."""

    async def handler(stream: trio.SocketStream) -> None:
        async with trio.SSLStream(stream, context, server_side=True) as tls:
            with suppress(trio.BrokenResourceError):
                async for data in tls:
                    await tls.send_all(data)

    return handler


async def test_tls_negotiates_alpn(
    nursery: trio.Nursery, server_ssl_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext
) -> None:
    server_ssl_context.set_alpn_protocols(["h2", "http/1.1"])
    port = await serve(nursery, tls_server(server_ssl_context))
    async with connected(tls_endpoint(port, client_ssl_context, alpn=("h2", "http/1.1"))) as t:
        assert isinstance(t.stream, TLSStream)
        assert (t.alpn_protocol, t.tls_version) == ("h2", "TLSv1.3")
        assert t.peer_address == ("127.0.0.1", port)
        await roundtrip(t.stream)


async def test_alpn_offer_leaves_callers_context_unchanged(
    nursery: trio.Nursery, server_ssl_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext
) -> None:
    server_ssl_context.set_alpn_protocols(["h2", "http/1.1"])
    port = await serve(nursery, tls_server(server_ssl_context))
    async with connected(tls_endpoint(port, client_ssl_context, alpn=("h2",))) as t:
        assert t.alpn_protocol == "h2"
    async with connected(tls_endpoint(port, client_ssl_context)) as t:
        assert t.alpn_protocol is None


def untrusted_ca_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    trustme.CA().configure_trust(context)
    return context


@pytest.mark.parametrize(
    ("identities", "client", "hostname", "reason"),
    [
        pytest.param(
            ("127.0.0.1",), "other-ca", None,
            "certificate is not trusted: unable to get local issuer certificate; "
            "pass a CA bundle that contains the issuer",
            id="unknown-ca",
        ),
        pytest.param(
            ("127.0.0.1",), "default", None,
            "certificate is not trusted: unable to get local issuer certificate; "
            "pass a CA bundle that contains the issuer",
            id="default-context",
        ),
        pytest.param(
            ("other.example",), "ca", "localhost",
            "certificate is not valid for host 'localhost' (Hostname mismatch, "
            "certificate is not valid for 'localhost'.)",
            id="wrong-host",
        ),
        pytest.param(
            ("other.example",), "ca", None,
            "certificate is not valid for host '127.0.0.1' (IP address mismatch, "
            "certificate is not valid for '127.0.0.1'.)",
            id="wrong-ip",
        ),
    ],
)  # fmt: skip
async def test_certificate_problems_stated_plainly(
    nursery: trio.Nursery,
    ca: trustme.CA,
    client_ssl_context: ssl.SSLContext,
    identities: tuple[str, ...],
    client: str,
    hostname: str | None,
    reason: str,
) -> None:
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*identities).configure_cert(server_context)
    port = await serve(nursery, tls_server(server_context))
    contexts = {"ca": client_ssl_context, "other-ca": untrusted_ca_context(), "default": None}
    endpoint = tls_endpoint(port, contexts[client], server_hostname=hostname)
    with pytest.raises(TLSError) as info:
        await open_transport(endpoint, timeout=5)
    assert str(info.value) == f"TLS certificate of {endpoint}: {reason}"
    assert isinstance(info.value.__cause__, ssl.SSLCertVerificationError)


async def test_expired_certificate(
    nursery: trio.Nursery, ca: trustme.CA, client_ssl_context: ssl.SSLContext
) -> None:
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    long_ago = datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC)
    cert = ca.issue_cert(
        "127.0.0.1", not_before=long_ago, not_after=long_ago + datetime.timedelta(days=1)
    )
    cert.configure_cert(server_context)
    port = await serve(nursery, tls_server(server_context))
    endpoint = tls_endpoint(port, client_ssl_context)
    with pytest.raises(TLSError) as info:
        await open_transport(endpoint, timeout=5)
    assert str(info.value) == f"TLS certificate of {endpoint}: certificate has expired"


async def test_self_signed_certificate(
    nursery: trio.Nursery, client_ssl_context: ssl.SSLContext
) -> None:
    # A CA certificate is self-signed; serve one the client does not trust.
    stranger = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    with stranger.cert_pem.tempfile() as cert, stranger.private_key_pem.tempfile() as key:
        server_context.load_cert_chain(cert, key)
    port = await serve(nursery, tls_server(server_context))
    endpoint = tls_endpoint(port, client_ssl_context)
    with pytest.raises(TLSError, match=r"certificate is not trusted: self.signed cert") as info:
        await open_transport(endpoint, timeout=5)
    assert "pass a CA bundle that contains the issuer" in str(info.value)


async def test_server_not_speaking_tls(
    nursery: trio.Nursery, client_ssl_context: ssl.SSLContext
) -> None:
    port = await serve(nursery, plain_http_400)
    endpoint = tls_endpoint(port, client_ssl_context)
    with pytest.raises(TLSError, match=r"^TLS handshake with .* failed: .*WRONG_VERSION") as info:
        await open_transport(endpoint, timeout=5)
    assert str(endpoint) in str(info.value)
    assert isinstance(info.value.__cause__, ssl.SSLError)


async def test_server_closing_during_handshake(
    nursery: trio.Nursery, client_ssl_context: ssl.SSLContext
) -> None:
    async def hang_up(stream: trio.SocketStream) -> None:
        await stream.aclose()

    port = await serve(nursery, hang_up)
    endpoint = tls_endpoint(port, client_ssl_context)
    with pytest.raises(TLSError) as info:
        await open_transport(endpoint, timeout=5)
    assert isinstance(info.value.__cause__, OSError)  # ssl.SSLError or a reset
    assert str(info.value).startswith(f"TLS handshake with {endpoint} failed: ")


# ------------------------------------------------- timeouts and cancellation


def silent_tls_server(hello: trio.Event, eof: trio.Event) -> Handler:
    """Accepts TCP, reads the ClientHello, never answers; notes the client's EOF."""

    async def handler(stream: trio.SocketStream) -> None:
        async with stream:
            assert await stream.receive_some()
            hello.set()
            async for _ in stream:
                pass
        eof.set()

    return handler


async def test_connect_timeout_during_handshake(
    nursery: trio.Nursery,
    autojump_clock: trio.testing.MockClock,
    client_ssl_context: ssl.SSLContext,
) -> None:
    # Virtual time stands still (no autojump) until the handshake is under
    # way, so the deadline is known to hit the handshake and nothing earlier.
    autojump_clock.autojump_threshold = math.inf
    hello, eof = trio.Event(), trio.Event()
    port = await serve(nursery, silent_tls_server(hello, eof))

    async def jump_once_handshaking() -> None:
        await hello.wait()
        autojump_clock.autojump_threshold = 0

    nursery.start_soon(jump_once_handshaking)
    endpoint = tls_endpoint(port, client_ssl_context)
    start = trio.current_time()
    with pytest.raises(ConnectTimeout) as info:
        await open_transport(endpoint, timeout=2.5)
    assert trio.current_time() == start + 2.5
    assert str(info.value) == f"connecting to {endpoint} timed out after 2.5 s"
    with trio.fail_after(1):
        await eof.wait()  # the socket was closed


@pytest.fixture
def unanswered_endpoint() -> Iterator[Endpoint]:
    """A loopback port where connect() hangs: the listener's accept queue is
    full, so the kernel drops further SYNs."""
    with socket.socket() as listener, socket.socket() as filler:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        filler.connect(listener.getsockname())
        yield Endpoint("127.0.0.1", listener.getsockname()[1])


async def test_connect_timeout_during_tcp_connect(
    autojump_clock: trio.testing.MockClock, unanswered_endpoint: Endpoint
) -> None:
    start = trio.current_time()
    with pytest.raises(ConnectTimeout, match=r"tcp://127\.0\.0\.1:\d+ timed out after 1\.5 s"):
        await open_transport(unanswered_endpoint, timeout=1.5)
    assert trio.current_time() == start + 1.5


async def test_cancelled_during_tcp_connect_closes_socket(unanswered_endpoint: Endpoint) -> None:
    before = open_fds()
    connecting = open_transport(unanswered_endpoint, timeout=None)
    await _cancel_once_blocked(connecting, fds=before + 1)
    assert open_fds() == before


async def test_cancelled_during_handshake_closes_socket(
    nursery: trio.Nursery, client_ssl_context: ssl.SSLContext
) -> None:
    hello, eof = trio.Event(), trio.Event()
    port = await serve(nursery, silent_tls_server(hello, eof))
    before = open_fds()
    connecting = open_transport(tls_endpoint(port, client_ssl_context), timeout=None)
    await _cancel_once_blocked(connecting, fds=before + 2, ready=hello)
    with trio.fail_after(5):  # a leaked socket would never send EOF
        await eof.wait()
    assert open_fds() == before


async def _cancel_once_blocked(
    attempt: Awaitable[Transport], *, fds: int, ready: trio.Event | None = None
) -> None:
    """Run *attempt* until it blocks with *fds* descriptors open, cancel it,
    and check that nothing but Cancelled came out (trio's happy-eyeballs
    nursery may group several)."""
    caught: list[BaseException] = []

    async def run() -> None:
        try:
            await attempt
        except BaseException as exc:
            caught.append(exc)
            raise

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run)
        if ready is not None:
            await ready.wait()
        await trio.testing.wait_all_tasks_blocked()
        assert open_fds() == fds
        nursery.cancel_scope.cancel()
    [exc] = caught
    if isinstance(exc, BaseExceptionGroup):
        assert exc.split(trio.Cancelled)[1] is None
    else:
        assert isinstance(exc, trio.Cancelled)


# ------------------------------------------------------------------ peek_idle


async def test_peek_idle_clean_on_fresh_connection(nursery: trio.Nursery) -> None:
    port = await serve(nursery, hold_until_eof)
    async with connected(Endpoint("127.0.0.1", port)) as t:
        assert peek_idle(t) is IdleCheck.CLEAN


async def test_peek_idle_data_is_not_consumed(nursery: trio.Nursery) -> None:
    async def say_x(stream: trio.SocketStream) -> None:
        await stream.send_all(b"x")
        await hold_until_eof(stream)

    port = await serve(nursery, say_x)
    async with connected(Endpoint("127.0.0.1", port)) as t:
        await trio.lowlevel.wait_readable(t.socket)
        assert peek_idle(t) is IdleCheck.DATA
        assert peek_idle(t) is IdleCheck.DATA
        assert await t.stream.receive_some() == b"x"
        assert peek_idle(t) is IdleCheck.CLEAN


async def test_peek_idle_closed_after_peer_closes(nursery: trio.Nursery) -> None:
    async def hang_up(stream: trio.SocketStream) -> None:
        await stream.aclose()

    port = await serve(nursery, hang_up)
    async with connected(Endpoint("127.0.0.1", port)) as t:
        await trio.lowlevel.wait_readable(t.socket)
        assert peek_idle(t) is IdleCheck.CLOSED


async def test_peek_idle_closed_after_we_close(nursery: trio.Nursery) -> None:
    port = await serve(nursery, hold_until_eof)
    async with connected(Endpoint("127.0.0.1", port)) as t:
        pass
    assert peek_idle(t) is IdleCheck.CLOSED


# ------------------------------------------------------------- probe_tls_idle


class EagerTLSPeer:
    """The server side of TLS driven by hand, so that the test decides what
    goes on the wire in one write. trio's SSLStream holds TLS 1.3 session
    tickets back until its first write (trio#819); OpenSSL servers such as
    nginx send them right after the handshake, which this imitates."""

    def __init__(self, stream: trio.SocketStream, context: ssl.SSLContext) -> None:
        self.stream = stream
        self._in, self._out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = context.wrap_bio(self._in, self._out, server_side=True)

    async def flush(self, extra: bytes = b"") -> None:
        await self.stream.send_all(self._out.read() + extra)

    async def _pump(self, operation: Callable[[], bytes | None]) -> bytes | None:
        while True:
            try:
                return operation()
            except ssl.SSLWantReadError:
                await self.flush()
                self._in.write(await self.stream.receive_some())

    async def handshake(self) -> None:
        """Afterwards the session tickets wait in the outgoing buffer."""
        await self._pump(self.tls.do_handshake)

    async def echo_lines(self) -> None:
        while line := await self._pump(lambda: self.tls.read(1024)):
            self.tls.write(line)
            await self.flush()


def eager_tls_server(context: ssl.SSLContext, then: str) -> Handler:
    async def handler(stream: trio.SocketStream) -> None:
        async with stream:
            peer = EagerTLSPeer(stream, context)
            await peer.handshake()
            if then == "data":
                peer.tls.write(b"unexpected")
            await peer.flush(b"not a TLS record" if then == "garbage" else b"")
            await peer.echo_lines()

    return handler


async def test_probe_tls_idle_true_for_session_tickets(
    nursery: trio.Nursery, server_ssl_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext
) -> None:
    port = await serve(nursery, eager_tls_server(server_ssl_context, then="tickets"))
    async with connected(tls_endpoint(port, client_ssl_context)) as t:
        assert t.tls_version == "TLSv1.3"
        await trio.lowlevel.wait_readable(t.socket)
        assert peek_idle(t) is IdleCheck.DATA
        with trio.fail_after(5):  # must not wait for more records
            assert await probe_tls_idle(t) is True
        assert peek_idle(t) is IdleCheck.CLEAN  # the tickets were read
        await roundtrip(t.stream)


@pytest.mark.parametrize("then", ["data", "garbage"])
async def test_probe_tls_idle_false_for_data_or_garbage(
    nursery: trio.Nursery,
    server_ssl_context: ssl.SSLContext,
    client_ssl_context: ssl.SSLContext,
    then: str,
) -> None:
    port = await serve(nursery, eager_tls_server(server_ssl_context, then=then))
    async with connected(tls_endpoint(port, client_ssl_context)) as t:
        await trio.lowlevel.wait_readable(t.socket)
        assert peek_idle(t) is IdleCheck.DATA
        assert await probe_tls_idle(t) is False


async def test_probe_tls_idle_false_after_close_notify(
    nursery: trio.Nursery, server_ssl_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext
) -> None:
    async def close_after_handshake(stream: trio.SocketStream) -> None:
        tls = trio.SSLStream(stream, server_ssl_context, server_side=True)
        await tls.do_handshake()
        await tls.aclose()  # tickets, close_notify and FIN in one go

    port = await serve(nursery, close_after_handshake)
    async with connected(tls_endpoint(port, client_ssl_context)) as t:
        await trio.lowlevel.wait_readable(t.socket)
        assert peek_idle(t) is IdleCheck.DATA
        assert await probe_tls_idle(t) is False


async def test_probe_tls_idle_rejects_plain_transport(nursery: trio.Nursery) -> None:
    port = await serve(nursery, hold_until_eof)
    async with connected(Endpoint("127.0.0.1", port)) as t:
        with pytest.raises(TypeError):
            await probe_tls_idle(t)
