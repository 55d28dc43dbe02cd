"""A throwaway nghttpd (nghttp2's HTTP/2 server) on a loopback port, for interop tests.

:func:`run_nghttpd` starts Debian's ``/usr/sbin/nghttpd`` (package
``nghttp2-server``) as a child process, waits until it listens, and stops
exactly the process it started when the block ends. Like tests/interop/nginx.py
it is plain synchronous code, so fixtures and benchmarks can share it.

What the server offers on ``https_url`` (127.0.0.1 only, TLS with a trustme
certificate for ``localhost``/``127.0.0.1``, ALPN ``h2`` only: nghttpd speaks
nothing else and closes a connection that did not select it):

* ``/1k.bin`` (1024 bytes) and ``/1m.bin`` (1 MiB) as static files, with the
  same content as nginx's (:func:`tests.interop.nginx.file_content`);
* a POST or PUT to any path echoes its body back (``--echo-upload``);
* anything else is a 404.

Counting connections: nghttpd has no status page, so it runs with ``-v``, which
logs every frame it sends or receives to stdout, written here to a file. Each
TCP connection it accepts takes the next session id at once, and its log lines
carry ``[id=N]``: when it starts HTTP/2 (nghttpd's own SETTINGS) and when it
closes; even a connection that fails TLS or ALPN, or sends nothing, logs
``[id=N] ... closed``. :meth:`Nghttpd.connections_accepted` is the number of
distinct ids logged, so it needs no probe connection of its own (a probe would
take an id). Its one blind spot is a connection still in its TLS handshake.
:meth:`Nghttpd.h2_connections` counts the ids that received a client
connection preface (a SETTINGS frame without ACK, RFC 9113 §3.4).
nghttpd writes each log line as it happens, and logs a connection's SETTINGS
before it answers anything on it, so once a client holds a response, its
connection is counted.

Readiness is read from the same log: with ``-v`` nghttpd prints ``IPv4: listen
127.0.0.1:PORT`` once it listens.
"""

from __future__ import annotations

import os
import re
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import trustme

from tests.interop.nginx import FILES, free_ports, write_site

NGHTTPD = "/usr/sbin/nghttpd"
INSTALL_HINT = (
    "nghttpd is not installed ({binary} not found); run `bash scripts/install-test-servers` "
    "(CI does; it installs Debian's nghttp2-server). The nghttpd interop tests need it and "
    "are never skipped."
)
START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0

#: any line of one connection: ``[id=3] [  0.946] send SETTINGS frame <...>``.
_SESSION_RE = re.compile(rb"^\[id=(\d+)\] ")
#: a client's SETTINGS that is not an ACK (SETTINGS defines no other flag).
_PREFACE_RE = re.compile(rb"^\[id=(\d+)\] \[\s*[\d.]+\] recv SETTINGS frame <[^>]*flags=0x00,")


class NghttpdNotInstalled(RuntimeError):
    """The nghttpd binary is missing: install it, never skip the tests."""


class NghttpdFailed(RuntimeError):
    """nghttpd exited or never listened; the message carries its output."""


@dataclass(eq=False)
class SessionLog:
    """The session ids in nghttpd's ``-v`` log, read incrementally.

    Only complete lines are parsed, and each byte once, so reading the
    counters stays cheap however long the log grows.
    """

    path: Path
    sessions: set[int] = field(default_factory=set)
    h2_sessions: set[int] = field(default_factory=set)
    _offset: int = 0

    def update(self) -> None:
        with self.path.open("rb") as log:
            log.seek(self._offset)
            data = log.read()
        complete = data.rfind(b"\n") + 1  # a line still being written waits
        self._offset += complete
        for line in data[:complete].splitlines():
            if (match := _SESSION_RE.match(line)) is not None:
                self.sessions.add(int(match[1]))
                if (preface := _PREFACE_RE.match(line)) is not None:
                    self.h2_sessions.add(int(preface[1]))


@dataclass
class Nghttpd:
    """A running nghttpd: its URL, CA and connection counts. Made by :func:`run_nghttpd`."""

    process: subprocess.Popen[bytes]
    workdir: Path
    port: int
    ca: trustme.CA
    ca_path: Path
    max_concurrent_streams: int
    log: SessionLog

    @property
    def https_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def client_ssl_context(self) -> ssl.SSLContext:
        """A verifying client context that trusts only this server's CA (no ALPN set)."""
        return ssl.create_default_context(cafile=str(self.ca_path))

    def connections_accepted(self) -> int:
        """TCP connections nghttpd accepted so far (those it has logged: see the module doc)."""
        self.log.update()
        return len(self.log.sessions)

    def h2_connections(self) -> int:
        """Connections whose client sent the HTTP/2 connection preface."""
        self.log.update()
        return len(self.log.h2_sessions)


def nghttpd_version(binary: str = NGHTTPD) -> str:
    """The nghttp2 version ``nghttpd --version`` prints, e.g. ``nghttp2/1.52.0``."""
    out = subprocess.run(
        [binary, "--version"], capture_output=True, text=True, timeout=10, check=True
    )
    match = re.search(r"nghttp2/[\w.-]+", out.stdout + out.stderr)
    if match is None:
        raise NghttpdFailed(f"cannot read the version from `{binary} --version`: {out.stdout!r}")
    return match[0]


def _output(workdir: Path, limit: int = 4000) -> str:
    parts = []
    for name in ("stderr.log", "stdout.log"):
        try:
            parts.append(f"{name}:\n{(workdir / name).read_text(errors='replace')[-limit:]}")
        except OSError:
            parts.append(f"{name}: (none)")
    return "\n".join(parts)


def _wait_listening(server: Nghttpd, timeout: float) -> bool:
    """Poll the log until nghttpd says it listens (True) or exits (False)."""
    announcement = f"listen 127.0.0.1:{server.port}\n".encode()
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / 0.01) + 1):  # bounded in count and in time
        if server.process.poll() is not None:
            return False
        if announcement in server.log.path.read_bytes():
            return True
        if time.monotonic() > deadline:
            break
        time.sleep(0.01)  # poll interval
    raise NghttpdFailed(
        f"nghttpd (pid {server.pid}) did not listen on port {server.port} in {timeout} s;\n"
        f"{_output(server.workdir)}"
    )


def stop(process: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT) -> None:
    """Stop the nghttpd we started, by its PID: SIGTERM (nghttpd dies at once,
    it has no graceful shutdown), then SIGKILL if it lingers. It is one
    process (its workers are threads), so there is nothing else to stop."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout)


def _start(
    binary: str, workdir: Path, port: int, max_concurrent_streams: int
) -> subprocess.Popen[bytes]:
    args = [binary, "-v", "--echo-upload", "-a", "127.0.0.1", "-d", str(workdir / "htdocs")]
    args += ["-m", str(max_concurrent_streams), str(port)]
    args += [str(workdir / "server.key"), str(workdir / "server.pem")]
    with (workdir / "stdout.log").open("wb") as stdout, (workdir / "stderr.log").open("wb") as err:
        return subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=stdout, stderr=err)


@contextmanager
def run_nghttpd(
    *,
    ca: trustme.CA | None = None,
    workdir: Path | None = None,
    files: Mapping[str, int] = FILES,
    max_concurrent_streams: int = 100,
    binary: str = NGHTTPD,
    start_timeout: float = START_TIMEOUT,
) -> Iterator[Nghttpd]:
    """Start nghttpd on a free 127.0.0.1 port; stop it when the block ends.

    Args:
        ca: the trustme CA that issues the server certificate (a new one if
            None); its PEM is also written to ``ca_path``.
        workdir: an empty directory for the docroot, certificates and logs (a
            new temporary one, removed afterwards, if None).
        files: the static files to serve, URL path to size in bytes.
        max_concurrent_streams: SETTINGS_MAX_CONCURRENT_STREAMS (``-m``;
            nghttpd's default is 100).

    Raises:
        NghttpdNotInstalled: no nghttpd binary.
        NghttpdFailed: nghttpd would not start (the message has its output).
    """
    if not os.access(binary, os.X_OK):
        raise NghttpdNotInstalled(INSTALL_HINT.format(binary=binary))
    with ExitStack() as cleanup:
        if workdir is None:
            workdir = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="nghttpd-")))
        workdir = workdir.resolve()
        authority = ca if ca is not None else trustme.CA()
        ca_path = write_site(workdir, authority, "htdocs", files)
        for attempt in range(3):  # another process may take the port we picked
            (port,) = free_ports(1)
            process = _start(binary, workdir, port, max_concurrent_streams)
            server = Nghttpd(
                process=process,
                workdir=workdir,
                port=port,
                ca=authority,
                ca_path=ca_path,
                max_concurrent_streams=max_concurrent_streams,
                log=SessionLog(workdir / "stdout.log"),
            )
            try:
                listening = _wait_listening(server, start_timeout)
            except BaseException:
                stop(process)
                raise
            if listening:
                break
            stop(process)
            if attempt == 2 or "Address already in use" not in _output(workdir):
                raise NghttpdFailed(
                    f"nghttpd exited with status {process.returncode};\n{_output(workdir)}"
                )
        try:
            yield server
        finally:
            stop(server.process)
