"""A throwaway nginx on loopback ports of its own, for interop tests and benchmarks.

:func:`run_nginx` starts Debian's ``/usr/sbin/nginx`` as a child process (not a
daemon) with a generated configuration in a temporary prefix directory, waits
until it answers, and stops exactly the process it started when the block ends.
It is plain synchronous code so that both the pytest fixtures
(tests/interop/conftest.py) and ``benchmarks/http_bench.py`` use this one copy.

What the server offers (on 127.0.0.1 only):

* ``http_url``: plain HTTP/1.1, with ``/status`` (``stub_status``);
* ``https_url``: TLS with a trustme certificate for ``localhost``/``127.0.0.1``,
  ALPN ``h2`` and ``http/1.1`` (clients that offer only ``http/1.1`` get it);
* on both: ``/1k.bin`` (1024 bytes) and ``/1m.bin`` (1 MiB) as static files,
  ``/upload`` which answers ``200`` with the number of body bytes nginx received,
  ``/discard`` which answers ``200 ok`` without a handler reading the body, and
  ``/read`` which answers a POST ``200 ok`` after reading the whole body;
* on the TLS listener: ``/small?id=N``, which answers ``200`` with the body
  ``N\n`` (text/plain), so that each response can be matched to its request.

Access log: ``run_nginx(access_log=True)`` makes the TLS listener log every
request as one line ``<request URI> <status>`` to :attr:`Nginx.access_log`.
nginx writes each line when the request ends (no ``buffer=``), but that can be
a moment after the client has the whole response: :meth:`Nginx.read_access_log`
waits, boundedly, for the lines a test expects. It is off by default, so the
benchmark pays no write per request.

Uploads: nginx's ``return`` never reads a request body; the core discards it
(reads and drops it, after answering, so the connection stays usable for
keep-alive): that is ``/discard``. To show that an upload really arrived,
``/upload`` is ``proxy_pass``-ed to a sink listener of the same nginx: the proxy
reads the whole body first (chunked ones too, as it speaks HTTP/1.0 upstream)
and forwards it with a ``Content-Length``, which the sink sends back as the
response body. Over HTTP/2, nginx counts DATA it discards against the client:
after about 8 MiB discarded on one connection (``/discard`` bodies) it ends the
connection as a flood ("http2 flood detected"). ``/read`` reads the body
instead, without a proxy hop or an extra connection (a ``mirror`` subrequest
with ``mirror_request_body on`` makes nginx read it in memory first), so
upload benchmarks can run over one HTTP/2 connection.

nginx 1.25.1 changed how HTTP/2 is switched on (``http2 on;`` instead of
``listen ... http2``); :func:`tls_listen` writes whichever the installed
version (``nginx -v``) understands. Debian 12 ships 1.22.

Counting connections: nginx's ``stub_status`` counts every accepted connection,
including the one that asks for the status. :meth:`Nginx.accepted` subtracts the
probes it made itself, so the difference of two readings is the number of
connections clients opened in between (plus one per ``/upload`` request, which
nginx proxies to a sink listener of its own).
"""

from __future__ import annotations

import grp
import hashlib
import os
import pwd
import re
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import trio
import trustme

NGINX = "/usr/sbin/nginx"
INSTALL_HINT = (
    "nginx is not installed ({binary} not found); run `bash scripts/install-test-servers` "
    "(CI does). The nginx interop tests and the HTTP benchmark need it and are never skipped."
)
#: the static files nginx serves, by URL path.
FILES = {"/1k.bin": 1024, "/1m.bin": 1024 * 1024}
#: the largest request body /upload and /discard accept.
MAX_UPLOAD = 64 * 1024 * 1024
START_TIMEOUT = 10.0
STATUS_TIMEOUT = 5.0
STOP_TIMEOUT = 5.0
#: a status reply is a few hundred bytes; anything past this is not nginx's.
MAX_STATUS_REPLY = 64 * 1024


class NginxNotInstalled(RuntimeError):
    """The nginx binary is missing: install it, never skip the tests."""


class NginxFailed(RuntimeError):
    """nginx exited or never answered; the message carries its error log."""


def file_content(size: int) -> bytes:
    """The deterministic content of a served file of *size* bytes (not all
    zeros, so a client that mixes up or drops chunks fails the hash)."""
    block = bytes(range(256))
    return (block * (size // 256 + 1))[:size]


def file_sha256(path: str) -> str:
    return hashlib.sha256(file_content(FILES[path])).hexdigest()


def nginx_version(binary: str = NGINX) -> tuple[int, int, int]:
    """``nginx -v`` (it prints to stderr) as a tuple, e.g. ``(1, 22, 1)``."""
    out = subprocess.run([binary, "-v"], capture_output=True, text=True, timeout=10, check=True)
    match = re.search(r"nginx/(\d+)\.(\d+)\.(\d+)", out.stderr + out.stdout)
    if match is None:
        raise NginxFailed(f"cannot read the version from `{binary} -v`: {out.stderr!r}")
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


def tls_listen(port: int, version: tuple[int, int, int]) -> str:
    """The TLS+h2 ``listen`` lines: nginx 1.25.1 replaced ``listen ... http2``
    (Debian 12 has 1.22) with a separate ``http2 on;`` directive."""
    if version >= (1, 25, 1):
        return f"listen 127.0.0.1:{port} ssl;\n        http2 on;"
    return f"listen 127.0.0.1:{port} ssl http2;"


@dataclass(frozen=True)
class StubStatus:
    """One reading of ``stub_status``; every counter includes the probe itself."""

    active: int
    accepts: int
    handled: int
    requests: int


_STATUS_RE = re.compile(
    r"Active connections:\s*(\d+)\s*\n"
    r"\s*server accepts handled requests\s*\n"
    r"\s*(\d+)\s+(\d+)\s+(\d+)"
)


def parse_stub_status(text: str) -> StubStatus:
    """Parse ``Active connections: N`` and the ``accepts handled requests`` line."""
    match = _STATUS_RE.search(text)
    if match is None:
        raise NginxFailed(f"not a stub_status page: {text[:200]!r}")
    active, accepts, handled, requests = (int(part) for part in match.groups())
    return StubStatus(active, accepts, handled, requests)


def _status_request(port: int) -> bytes:
    return (f"GET /status HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n").encode(
        "ascii"
    )


def _status_body(reply: bytes) -> str:
    head, sep, body = reply.partition(b"\r\n\r\n")
    if not sep or not head.startswith(b"HTTP/1.1 200"):
        raise NginxFailed(f"unexpected /status reply: {reply[:200]!r}")
    return body.decode("ascii", "replace")


@dataclass
class Nginx:
    """A running nginx: its URLs, CA and counters. Made by :func:`run_nginx`."""

    process: subprocess.Popen[bytes]
    prefix: Path
    http_port: int
    https_port: int
    ca: trustme.CA
    ca_path: Path
    keepalive_requests: int
    version: tuple[int, int, int]
    #: the TLS listener's access log (``<request URI> <status>`` lines), or
    #: None if :func:`run_nginx` was not asked for one.
    access_log: Path | None = None
    #: the TLS listener's ``http2_max_concurrent_streams`` (None: nginx's 128).
    max_concurrent_streams: int | None = None
    _probes: int = field(default=0, repr=False)

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def https_url(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def error_log(self) -> Path:
        return self.prefix / "error.log"

    def access_log_size(self) -> int:
        """The access log's length in bytes now: pass it to
        :meth:`read_access_log` to read only the lines logged after this."""
        log = self._access_log_path()
        return log.stat().st_size if log.exists() else 0

    async def read_access_log(
        self, offset: int = 0, *, expect: int = 0, timeout: float = STATUS_TIMEOUT
    ) -> list[str]:
        """The access log lines from byte *offset* on (see :meth:`access_log_size`).

        nginx logs a request when it frees it, which on HTTP/2 is just after
        it wrote the last frame, so the client may be done a moment before
        the line is: this polls (every 10 ms, for at most *timeout* seconds)
        until there are at least *expect* lines, then returns what is there,
        fewer if the time ran out (the caller's assertions say what is missing).
        """
        log = self._access_log_path()
        lines: list[str] = []
        with trio.move_on_after(timeout):
            while True:
                if log.exists():
                    with log.open("rb") as file:
                        file.seek(offset)
                        text = file.read().decode("ascii", "replace")
                    # A line nginx is still writing has no newline yet: leave it.
                    lines = text[: text.rfind("\n") + 1].splitlines()
                if len(lines) >= expect:
                    break
                await trio.sleep(0.01)
        return lines

    def _access_log_path(self) -> Path:
        if self.access_log is None:
            raise NginxFailed("this nginx keeps no access log: use run_nginx(access_log=True)")
        return self.access_log

    def client_ssl_context(self) -> ssl.SSLContext:
        """A verifying client context that trusts only this server's CA."""
        return ssl.create_default_context(cafile=str(self.ca_path))

    # -- counters ---------------------------------------------------------------------

    def status_sync(self, timeout: float = STATUS_TIMEOUT) -> StubStatus:
        """Read ``/status`` with a blocking socket (for synchronous callers)."""
        with socket.create_connection(("127.0.0.1", self.http_port), timeout=timeout) as sock:
            self._probes += 1  # connected: nginx counts it, so do we
            sock.sendall(_status_request(self.http_port))
            reply = b""
            while len(reply) <= MAX_STATUS_REPLY:  # bounded; nginx closes after the reply
                chunk = sock.recv(4096)
                if not chunk:
                    break
                reply += chunk
        return parse_stub_status(_status_body(reply))

    async def status(self) -> StubStatus:
        """Read ``/status`` over a trio stream (for async callers)."""
        with trio.fail_after(STATUS_TIMEOUT):
            stream = await trio.open_tcp_stream("127.0.0.1", self.http_port)
            self._probes += 1  # connected: nginx counts it, so do we
            async with stream:
                await stream.send_all(_status_request(self.http_port))
                reply = b""
                while len(reply) <= MAX_STATUS_REPLY:  # bounded; nginx closes after the reply
                    chunk = await stream.receive_some(4096)
                    if not chunk:
                        break
                    reply += chunk
        return parse_stub_status(_status_body(reply))

    def accepted_sync(self) -> int:
        """Connections nginx accepted so far, not counting our own probes."""
        return self.status_sync().accepts - self._probes

    async def accepted(self) -> int:
        """Connections nginx accepted so far, not counting our own probes."""
        return (await self.status()).accepts - self._probes


# -- configuration ----------------------------------------------------------------------


def free_ports(count: int) -> list[int]:
    """*count* distinct ports that were free a moment ago (nginx may still lose
    the race for one: :func:`run_nginx` then retries with new ports)."""
    with ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket())
            sock.bind(("127.0.0.1", 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


def _user_line() -> str:
    """Run the workers as the user running the tests: the prefix directory is
    0700 and holds the files they serve and the body temp files they write.
    (As root, nginx would otherwise switch its workers to ``nobody``.)"""
    if os.geteuid() != 0:
        return ""  # nginx cannot switch users anyway; workers keep ours
    user = pwd.getpwuid(os.geteuid()).pw_name
    group = grp.getgrgid(os.getegid()).gr_name
    return f"user {user} {group};"


def render_config(
    prefix: Path,
    *,
    http_port: int,
    https_port: int,
    sink_port: int,
    keepalive_requests: int,
    version: tuple[int, int, int],
    access_log: Path | None = None,
    max_concurrent_streams: int | None = None,
) -> str:
    """The whole nginx.conf. Every path nginx writes is inside *prefix*
    (nginx running as root would otherwise use /var/lib/nginx and /var/log).
    With *access_log*, the TLS listener logs ``<request URI> <status>`` there;
    *max_concurrent_streams* sets its ``http2_max_concurrent_streams``."""
    tls_log = f"access_log {access_log} uri_status;" if access_log is not None else ""
    streams = (
        f"http2_max_concurrent_streams {max_concurrent_streams};"
        if max_concurrent_streams is not None
        else ""
    )
    locations = f"""
        location = /1k.bin {{ }}
        location = /1m.bin {{ }}
        location = /upload {{
            client_max_body_size {MAX_UPLOAD};
            client_body_buffer_size 2m;  # keep 1 MiB test bodies in memory
            proxy_pass http://127.0.0.1:{sink_port}/sink;
        }}
        location = /discard {{
            client_max_body_size {MAX_UPLOAD};
            return 200 "ok\\n";
        }}
        location = /read {{
            # Reads the whole body (the mirror subrequest needs it), then the
            # static module refuses the POST (405), which becomes 200 "ok\\n".
            client_max_body_size {MAX_UPLOAD};
            client_body_buffer_size 2m;
            mirror /read-done;
            mirror_request_body on;
            alias {prefix}/html/1k.bin;
            error_page 405 =200 @read-ok;
        }}
        location = /read-done {{ internal; return 204; }}
        location @read-ok {{ return 200 "ok\\n"; }}
        location / {{ return 404; }}"""
    return f"""# generated by tests/interop/nginx.py
daemon off;
master_process on;
worker_processes 1;
{_user_line()}
error_log {prefix}/error.log notice;
pid {prefix}/nginx.pid;

events {{
    worker_connections 2048;
}}

http {{
    access_log off;
    log_format uri_status '$request_uri $status';
    default_type application/octet-stream;
    sendfile on;
    tcp_nodelay on;
    keepalive_requests {keepalive_requests};
    keepalive_timeout 75s;
    client_body_temp_path {prefix}/client_body_temp;
    proxy_temp_path {prefix}/proxy_temp;
    fastcgi_temp_path {prefix}/fastcgi_temp;
    uwsgi_temp_path {prefix}/uwsgi_temp;
    scgi_temp_path {prefix}/scgi_temp;
    root {prefix}/html;

    server {{
        listen 127.0.0.1:{http_port};
        server_name localhost;
        location = /status {{ stub_status; }}{locations}
    }}

    server {{
        {tls_listen(https_port, version)}
        server_name localhost;
        ssl_certificate {prefix}/server.pem;
        ssl_certificate_key {prefix}/server.key;
        ssl_protocols TLSv1.2 TLSv1.3;
        {tls_log}
        {streams}
        location = /small {{
            default_type text/plain;
            return 200 "$arg_id\n";
        }}{locations}
    }}

    server {{
        # The /upload sink: answers with the body length the proxy forwarded.
        listen 127.0.0.1:{sink_port};
        location = /sink {{
            client_max_body_size {MAX_UPLOAD};
            return 200 "$http_content_length";
        }}
    }}
}}
"""


def write_site(
    prefix: Path, ca: trustme.CA, docroot: str = "html", files: Mapping[str, int] = FILES
) -> Path:
    """Static files under ``prefix/docroot``, a server certificate
    (``server.key``, ``server.pem``) and the CA bundle (``ca.pem``); returns
    the CA path. Shared by the nginx and nghttpd fixtures."""
    (prefix / docroot).mkdir(parents=True, exist_ok=True)
    for path, size in files.items():
        (prefix / docroot / path.lstrip("/")).write_bytes(file_content(size))
    cert = ca.issue_cert("localhost", "127.0.0.1", "::1")
    cert.private_key_pem.write_to_path(str(prefix / "server.key"))
    cert.cert_chain_pems[0].write_to_path(str(prefix / "server.pem"))
    for extra in cert.cert_chain_pems[1:]:
        extra.write_to_path(str(prefix / "server.pem"), append=True)
    ca_path = prefix / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    return ca_path


def _log_tail(prefix: Path, limit: int = 4000) -> str:
    try:
        return (prefix / "error.log").read_text(errors="replace")[-limit:]
    except OSError:
        return "(no error log)"


def _wait_ready(server: Nginx, timeout: float) -> bool:
    """Poll /status until nginx answers (True) or exits (False). nginx gives no
    readiness signal when it runs in the foreground, so a bounded connect poll
    is the signal: an answer means the config loaded and a worker accepts."""
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / 0.01) + 1):  # bounded in count and in time
        if server.process.poll() is not None:
            return False
        try:
            server.status_sync(timeout=1.0)
        except (OSError, NginxFailed):
            pass  # not listening yet, or a worker not started yet
        else:
            return True
        if time.monotonic() > deadline:
            break
        time.sleep(0.01)  # poll interval between connect attempts
    raise NginxFailed(
        f"nginx (pid {server.pid}) did not answer on port {server.http_port} in {timeout} s; "
        f"error log:\n{_log_tail(server.prefix)}"
    )


def stop(process: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT) -> None:
    """Stop the nginx we started: SIGTERM (nginx's fast shutdown: the master
    tells its worker to close every connection and exit), then SIGKILL to its
    process group if it lingers. The group was made for it (start_new_session),
    so it holds only that master and its worker; killing just the master would
    leave the worker orphaned. (SIGQUIT, the graceful stop, would wait for
    client connections that sent nothing yet, up to client_header_timeout.)"""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=timeout)


@contextmanager
def run_nginx(
    *,
    keepalive_requests: int = 1000,
    access_log: bool = False,
    max_concurrent_streams: int | None = None,
    ca: trustme.CA | None = None,
    workdir: Path | None = None,
    binary: str = NGINX,
    start_timeout: float = START_TIMEOUT,
) -> Iterator[Nginx]:
    """Start nginx on free 127.0.0.1 ports; stop it when the block ends.

    Args:
        keepalive_requests: requests per connection before nginx closes it
            (it sends ``Connection: close`` on the last one; over HTTP/2, a
            GOAWAY naming the last stream as that stream's HEADERS arrive).
        access_log: log the TLS listener's requests to ``Nginx.access_log``.
        max_concurrent_streams: the streams an HTTP/2 client may have open on
            one connection (SETTINGS_MAX_CONCURRENT_STREAMS; None: nginx's 128).
        ca: the trustme CA that issues the server certificate (a new one if
            None); its PEM is also written to ``ca_path``.
        workdir: an empty directory to use as nginx's prefix (a new temporary
            one, removed afterwards, if None).

    Raises:
        NginxNotInstalled: no nginx binary.
        NginxFailed: nginx would not start (the message has its error log).
    """
    if not os.access(binary, os.X_OK):
        raise NginxNotInstalled(INSTALL_HINT.format(binary=binary))
    version = nginx_version(binary)
    with ExitStack() as cleanup:
        if workdir is None:
            workdir = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="nginx-")))
        prefix = workdir.resolve()
        authority = ca if ca is not None else trustme.CA()
        ca_path = write_site(prefix, authority)
        log_path = prefix / "access.log" if access_log else None
        for attempt in range(3):  # another process may take a port we picked
            http_port, https_port, sink_port = free_ports(3)
            conf = prefix / "nginx.conf"
            conf.write_text(
                render_config(
                    prefix,
                    http_port=http_port,
                    https_port=https_port,
                    sink_port=sink_port,
                    keepalive_requests=keepalive_requests,
                    version=version,
                    access_log=log_path,
                    max_concurrent_streams=max_concurrent_streams,
                )
            )
            # -e: the early error log, before the config's error_log applies.
            args = [binary, "-p", f"{prefix}/", "-c", str(conf), "-e", f"{prefix}/error.log"]
            with (prefix / "stderr.log").open("ab") as stderr:
                process = subprocess.Popen(
                    args,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=stderr,
                    start_new_session=True,
                )
            server = Nginx(
                process=process,
                prefix=prefix,
                http_port=http_port,
                https_port=https_port,
                ca=authority,
                ca_path=ca_path,
                keepalive_requests=keepalive_requests,
                version=version,
                access_log=log_path,
                max_concurrent_streams=max_concurrent_streams,
            )
            try:
                ready = _wait_ready(server, start_timeout)
            except BaseException:
                stop(process)
                raise
            if ready:
                break
            stop(process)
            if attempt == 2 or "Address already in use" not in _log_tail(prefix):
                raise NginxFailed(
                    f"nginx exited with status {process.returncode}; "
                    f"error log:\n{_log_tail(prefix)}"
                )
        try:
            yield server
        finally:
            stop(server.process)
