"""Benchmark client: bare trio + h11, no pool (runs in the project's environment).

The reference ceiling for HTTP/1.1: C tasks, each with a keep-alive
connection of its own, each looping requests on it (GETs, or with
``--upload-bytes`` POSTs of one in-memory body): no pool, no Session,
no header merging, no retries. What trio_requests costs on top of this is the
price of its pool and Session. A task reconnects only when the server closes
the connection (or an error leaves it unusable).

Under ``--protocol h2`` it reports itself unsupported: the bare HTTP/2 loop
is h2_client.py.
"""

from __future__ import annotations

import ssl
import sys
from importlib.metadata import version
from urllib.parse import urlsplit

import h11
import trio
from bench_common import H1, Args, Tally, measure, parse_args, report, split, unsupported

CLIENT = "trio+h11 (bare)"
#: a 1 MiB response arrives in a few dozen reads; this bounds a broken one.
MAX_READS_PER_RESPONSE = 10_000
READ_SIZE = 65536


class Target:
    """Where to connect and the request to send, prepared once."""

    def __init__(self, args: Args) -> None:
        parts = urlsplit(args.url)
        self.tls = parts.scheme == "https"
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (443 if self.tls else 80)
        self.target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.headers = [("Host", parts.netloc), ("User-Agent", "bench-h11"), ("Accept", "*/*")]
        self.method = args.method
        self.body = args.body
        if self.body:
            self.headers.append(("Content-Length", str(len(self.body))))
        self.context: ssl.SSLContext | None = args.ssl_context()
        if self.context is not None:
            self.context.set_alpn_protocols(["http/1.1"])

    async def connect(self) -> trio.abc.Stream:
        tcp = await trio.open_tcp_stream(self.host, self.port)
        if self.context is None:
            return tcp
        stream = trio.SSLStream(tcp, self.context, server_hostname=self.host)
        await stream.do_handshake()
        return stream


async def exchange(
    stream: trio.abc.Stream, conn: h11.Connection, target: Target
) -> tuple[int, int]:
    """One request/response on *conn*: (status, body length). A body goes out
    in the same send_all as the head (Content-Length framing)."""
    request = h11.Request(method=target.method, target=target.target, headers=target.headers)
    head = conn.send(request)
    body = conn.send(h11.Data(data=target.body)) if target.body else b""
    await stream.send_all(head + body + conn.send(h11.EndOfMessage()))
    status = 0
    length = 0
    for _ in range(MAX_READS_PER_RESPONSE):
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(bytes(await stream.receive_some(READ_SIZE)))
        elif isinstance(event, h11.Response):
            status = event.status_code
        elif isinstance(event, h11.Data):
            length += len(event.data)
        elif isinstance(event, h11.EndOfMessage):
            return status, length
        elif isinstance(event, h11.ConnectionClosed):
            raise h11.RemoteProtocolError("connection closed before the response ended")
    raise h11.RemoteProtocolError("response never ended")


async def run(args: Args, tally: Tally) -> None:
    target = Target(args)
    connections = 0

    async def worker(count: int) -> None:
        nonlocal connections
        stream: trio.abc.Stream | None = None
        conn = h11.Connection(h11.CLIENT)
        try:
            for _ in range(count):  # bounded by this task's share
                try:
                    if stream is None:
                        stream = await target.connect()
                        conn = h11.Connection(h11.CLIENT)
                        connections += 1
                    status, length = await exchange(stream, conn, target)
                except (OSError, trio.BrokenResourceError, h11.ProtocolError) as exc:
                    tally.exception(exc)
                    if stream is not None:
                        await trio.aclose_forcefully(stream)
                    stream = None
                    continue
                tally.check(status, length)
                if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
                    conn.start_next_cycle()
                else:  # the server said Connection: close (keepalive_requests)
                    await trio.aclose_forcefully(stream)
                    stream = None
        finally:
            if stream is not None:
                await trio.aclose_forcefully(stream)

    with trio.move_on_after(args.time_limit):
        async with trio.open_nursery() as nursery:
            for count in split(args.requests, args.concurrency):
                nursery.start_soon(worker, count)
    tally.extra["client_connections"] = connections


def main() -> int:
    args = parse_args()
    versions = f"h11 {version('h11')}, trio {version('trio')}"
    if args.protocol != H1:
        return unsupported(CLIENT, versions, args, "the bare HTTP/2 loop is h2_client.py")
    tally = Tally(expect_length=args.expect_length)
    with measure() as phase:
        trio.run(run, args, tally)
    report(CLIENT, versions, args, tally, phase)
    return 0


if __name__ == "__main__":
    sys.exit(main())
