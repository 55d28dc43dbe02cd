"""Throwaway HTTP and SOCKS5 proxies on loopback ports of their own, for interop tests.

Testing a client's proxy support against a proxy written for the test proves
little: both sides would share the tester's reading of RFC 9110 §9.3.6
(CONNECT), RFC 7617 (Basic) and RFC 1928/1929 (SOCKS5 and its username and
password). So :func:`run_tinyproxy` and :func:`run_microsocks` start Debian's
real servers, ``/usr/bin/tinyproxy`` (an HTTP forward proxy with CONNECT) and
``/usr/bin/microsocks`` (a SOCKS5 server), as child processes in the
foreground, on a free 127.0.0.1 port, wait until they answer, and stop exactly
the process they started when the block ends. Like tests/interop/nginx.py it is
plain synchronous code, so fixtures (tests/interop/conftest.py) and scripts
can share it.

tinyproxy runs with a generated configuration in *workdir*: ``Listen
127.0.0.1``, no ``ConnectPort`` line (with none, CONNECT to every port is
allowed, and tests tunnel to random high ports), no ``Allow`` line (every
client is allowed), ``LogLevel Info`` to a ``LogFile`` in *workdir*, and
``BasicAuth`` when asked for credentials. As root it would warn that no
``User`` is set and keep running as root; it is told to stay the current user
and group, so the log file it writes stays the test's. microsocks takes
everything on its command line; its stderr (where it logs) goes to a file in
*workdir*. Without ``-1`` it checks the username and password on every
connection.

A tinyproxy quirk to mind in client tests: a request without
``Proxy-Authorization`` gets ``407`` with ``Proxy-Authenticate: Basic``, but
one with wrong (or non-Basic) credentials gets ``401 Unauthorized`` with
``WWW-Authenticate``, up to tinyproxy 1.11.x (Debian's is 1.11.1); later
versions answer 407 (tinyproxy issue #532, fixed by PR #549).

Counting connections, the same way for both proxies:

* :meth:`ProxyServer.open_connections` is the number of client connections the
  proxy holds open now: TCP sockets owned by the proxy's process (the
  ``socket:[inode]`` links in ``/proc/PID/fd``) that ``/proc/PID/net/tcp``
  lists as ESTABLISHED with the proxy's port as their local port. A connection
  counts once the proxy accepted it (so certainly once the client got any
  answer from the proxy), and stops counting when either side closes it (the
  client's FIN turns the proxy's socket to CLOSE_WAIT; the proxy's own close
  to FIN_WAIT). Both happen within moments on loopback, but not at the instant
  the client's ``connect()`` or ``close()`` returns, so pass ``expect=`` to
  wait, boundedly, for the number a test expects. The readiness probe made at
  start is closed before the server is handed out.
* :meth:`ProxyServer.upstream_connections` is the number of connections the
  proxy has opened to targets so far (a CONNECT tunnel or SOCKS CONNECT each
  open one; tinyproxy also opens one per plain-HTTP forwarded request), read
  from the log: tinyproxy's ``Established connection to host "..."`` lines,
  microsocks' ``client[N] ...: connected to HOST:PORT`` lines. Both servers
  log that line after their connect to the target succeeded and before they
  tell the client so, and neither holds log lines back in a buffer (tinyproxy
  writes each one to its log file as it happens, microsocks to stderr, which
  is unbuffered; tests/interop/test_proxy_fixtures.py relies on it), so once a
  client holds a ``200 Connection established`` or a SOCKS success reply, its
  tunnel is counted: no wait is needed. A refused authentication opens
  nothing and counts nothing.

(tinyproxy also logs ``Connect (file descriptor N): 127.0.0.1`` for every
client connection it accepts, but microsocks logs nothing for a connection
whose tunnel fails, so there is no accepted-so-far counter that means the same
for both; the readiness probe would show up in tinyproxy's, too.)
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from tests.interop.nghttpd import stop
from tests.interop.nginx import free_ports

TINYPROXY = "/usr/bin/tinyproxy"
MICROSOCKS = "/usr/bin/microsocks"
INSTALL_HINT = (
    "{binary} is not installed; run `bash scripts/install-test-servers` (CI does; it "
    "installs Debian's tinyproxy and microsocks). The proxy interop tests need it and "
    "are never skipped."
)
HOST = "127.0.0.1"
START_TIMEOUT = 10.0
COUNT_TIMEOUT = 5.0
#: attempts at starting on a free port, in case another process takes it first.
START_ATTEMPTS = 3

#: ``/proc/net/tcp`` ``st`` values (include/net/tcp_states.h).
_TCP_ESTABLISHED = "01"
_TCP_LISTEN = "0A"

#: the line each proxy logs when it has connected to a target.
_UPSTREAM_RE = {
    "http": re.compile(rb'\]: Established connection to host "'),
    "socks5": re.compile(rb"^client\[\d+\] .*: connected to ", re.MULTILINE),
}
#: what each proxy writes when another process holds the port.
_PORT_TAKEN = {
    "http": "Could not create listening sockets",
    "socks5": "Address already in use",
}


class ProxyNotInstalled(RuntimeError):
    """The proxy binary is missing: install it, never skip the tests."""


class ProxyFailed(RuntimeError):
    """The proxy exited or never answered; the message carries its log."""


@dataclass(frozen=True)
class ProxyServer:
    """A running proxy on ``host:port``. Made by :func:`run_tinyproxy` and
    :func:`run_microsocks`; valid until their block ends."""

    #: ``"http"`` (tinyproxy) or ``"socks5"`` (microsocks).
    scheme: str
    host: str
    port: int
    pid: int
    username: str | None
    password: str | None
    #: tinyproxy's log file, or the file microsocks' stderr goes to.
    log: Path | None

    def url(self, *, scheme: str | None = None, credentials: bool = True) -> str:
        """The proxy URL, e.g. ``http://alice:s3cret@127.0.0.1:40123``.

        *scheme* replaces :attr:`scheme` (e.g. ``"socks5h"``); with
        ``credentials=False``, or if the proxy has none, there is no userinfo.
        Credentials are percent-encoded.
        """
        userinfo = ""
        if credentials and self.username is not None:
            userinfo = quote(self.username, safe="")
            if self.password is not None:
                userinfo += ":" + quote(self.password, safe="")
            userinfo += "@"
        return f"{scheme or self.scheme}://{userinfo}{self.host}:{self.port}"

    def open_connections(self, *, expect: int | None = None, timeout: float = COUNT_TIMEOUT) -> int:
        """The client connections the proxy holds open now (see the module docstring).

        With *expect*, poll (every 10 ms, for at most *timeout* seconds) until
        the count equals it, then return the last count, whatever it is (the
        caller's assertion says what differs).
        """
        count = self._established()
        if expect is None:
            return count
        deadline = time.monotonic() + timeout
        while count != expect and time.monotonic() < deadline:
            time.sleep(0.01)  # poll interval
            count = self._established()
        return count

    def _established(self) -> int:
        try:
            return _established(self.pid, self.port)
        except OSError as exc:
            raise ProxyFailed(f"proxy pid {self.pid} is not running ({exc})") from exc

    def upstream_connections(self) -> int:
        """Connections the proxy opened to targets so far (see the module docstring)."""
        if self.log is None:
            raise ProxyFailed("this proxy keeps no log")
        try:
            text = self.log.read_bytes()
        except FileNotFoundError:
            return 0
        return len(_UPSTREAM_RE[self.scheme].findall(text))


# -- /proc ------------------------------------------------------------------------------


def _socket_inodes(pid: int) -> set[int]:
    """The inodes of the sockets process *pid* has open (its threads share them)."""
    inodes = set()
    with os.scandir(f"/proc/{pid}/fd") as entries:
        for entry in entries:
            try:
                target = os.readlink(entry.path)
            except OSError:
                continue  # closed since the listing
            if target.startswith("socket:[") and target.endswith("]"):
                inodes.add(int(target[len("socket:[") : -1]))
    return inodes


def _tcp_inodes(pid: int, port: int, state: str) -> list[int]:
    """The inodes of the TCP sockets in *pid*'s network namespace whose local
    port is *port* and whose state is *state* (0 for an established connection
    still in the accept queue: it has no file yet)."""
    inodes = []
    for table in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()
        except FileNotFoundError:
            continue  # no IPv6 in this kernel
        for line in lines[1:]:
            # sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode ...
            fields = line.split()
            local_port = int(fields[1].rpartition(":")[2], 16)
            if local_port == port and fields[3] == state:
                inodes.append(int(fields[9]))
    return inodes


def _established(pid: int, port: int) -> int:
    """Established TCP connections on local *port* that process *pid* owns."""
    owned = _socket_inodes(pid)
    return sum(1 for inode in _tcp_inodes(pid, port, _TCP_ESTABLISHED) if inode in owned)


def _listening(pid: int, port: int) -> bool:
    """Whether process *pid* itself (not some other process) listens on *port*."""
    owned = _socket_inodes(pid)
    return any(inode in owned for inode in _tcp_inodes(pid, port, _TCP_LISTEN))


# -- starting and stopping --------------------------------------------------------------


def free_port() -> int:
    """A port that was free on 127.0.0.1 a moment ago (the proxy may still lose
    the race for it: the runners then retry with another)."""
    (port,) = free_ports(1)
    return port


def _check_auth(auth: tuple[str, str] | None) -> None:
    """Credentials both proxies take as they are: tinyproxy's ``BasicAuth USER
    PASSWORD`` line splits on whitespace, RFC 7617 forbids ``:`` in the user,
    and RFC 1929 caps each at 255 bytes."""
    if auth is None:
        return
    for part in auth:
        if not part or len(part.encode()) > 255 or not part.isprintable() or " " in part:
            raise ValueError(f"unusable proxy credential {part!r}")
    if ":" in auth[0]:
        raise ValueError(f"a Basic username cannot contain ':': {auth[0]!r}")


def _read_tail(paths: Sequence[Path], limit: int = 4000) -> str:
    parts = []
    for path in paths:
        try:
            text = path.read_text(errors="replace")[-limit:]
        except OSError:
            text = "(missing)"
        parts.append(f"--- {path}:\n{text}")
    return "\n".join(parts)


def _wait_ready(
    binary: str,
    process: subprocess.Popen[bytes],
    port: int,
    logs: Sequence[Path],
    timeout: float,
) -> bool:
    """Poll until the proxy listens and answers a TCP connect (True) or exits
    (False). Neither server signals readiness in the foreground, so a bounded
    connect poll is the signal; the listener must also be the proxy's own (per
    /proc), so a process that took the port meanwhile is not mistaken for it.
    The probe connection is closed, and the proxy seen to hold no connection,
    before this returns, so it never shows in :meth:`ProxyServer.open_connections`."""
    deadline = time.monotonic() + timeout
    probed = False
    for _ in range(int(timeout / 0.01) + 1):  # bounded in count and in time
        if process.poll() is not None:
            return False
        try:
            if not probed and _listening(process.pid, port):
                with socket.create_connection((HOST, port), timeout=1.0):
                    probed = True
            if probed and _established(process.pid, port) == 0:
                return True
        except OSError:
            pass  # not accepting yet, or it just exited (the next poll() says)
        if time.monotonic() > deadline:
            break
        time.sleep(0.01)  # poll interval
    if process.poll() is not None:
        return False
    raise ProxyFailed(
        f"{binary} (pid {process.pid}) did not answer on {HOST}:{port} "
        f"in {timeout} s; its log:\n{_read_tail(logs)}"
    )


@contextmanager
def _run(
    scheme: str,
    binary: str,
    auth: tuple[str, str] | None,
    prepare: Callable[[int], tuple[list[str], Path, list[Path]]],
    start_timeout: float,
) -> Iterator[ProxyServer]:
    """Start *binary* on a free port and yield it; *prepare(port)* writes what
    the proxy needs and returns its argv, the file its stdout and stderr go
    to, and the files to show if it fails (its log first)."""
    if not os.access(binary, os.X_OK):
        raise ProxyNotInstalled(INSTALL_HINT.format(binary=binary))
    _check_auth(auth)
    for attempt in range(START_ATTEMPTS):
        port = free_port()
        args, output, logs = prepare(port)
        for path in {output, *logs}:
            path.unlink(missing_ok=True)  # a fresh log for each start
        with output.open("wb") as out:
            process = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a terminal's Ctrl-C is for pytest, not the proxy
            )
        try:
            ready = _wait_ready(binary, process, port, logs, start_timeout)
        except BaseException:
            stop(process)
            raise
        if ready:
            break
        stop(process)
        if attempt == START_ATTEMPTS - 1 or _PORT_TAKEN[scheme] not in _read_tail(logs):
            raise ProxyFailed(
                f"{binary} exited with status {process.returncode}; its log:\n{_read_tail(logs)}"
            )
    username, password = auth if auth is not None else (None, None)
    server = ProxyServer(scheme, HOST, port, process.pid, username, password, logs[0])
    try:
        yield server
    finally:
        stop(process)


def _tinyproxy_config(port: int, log: Path, auth: tuple[str, str] | None) -> str:
    lines = [
        "# generated by tests/interop/proxies.py",
        f"Port {port}",
        f"Listen {HOST}",
        "Timeout 60",
        "MaxClients 200",
        "LogLevel Info",
        f'LogFile "{log}"',
    ]
    if os.geteuid() == 0:
        # Without User, root tinyproxy warns and stays root; name who we are,
        # so it stays that and its log file stays ours.
        lines.append(f"User {pwd.getpwuid(os.geteuid()).pw_name}")
        lines.append(f"Group {grp.getgrgid(os.getegid()).gr_name}")
    if auth is not None:
        lines.append(f"BasicAuth {auth[0]} {auth[1]}")
    # No ConnectPort: with none, tinyproxy allows CONNECT to every port.
    return "\n".join(lines) + "\n"


@contextmanager
def run_tinyproxy(
    workdir: Path,
    *,
    auth: tuple[str, str] | None = None,
    binary: str = TINYPROXY,
    start_timeout: float = START_TIMEOUT,
) -> Iterator[ProxyServer]:
    """Start tinyproxy (an HTTP proxy with CONNECT) on a free 127.0.0.1 port;
    stop it when the block ends.

    Args:
        workdir: an existing directory for its configuration, log and output
            (files named after the port, so proxies can share one).
        auth: ``(username, password)`` for ``BasicAuth``: requests without a
            matching ``Proxy-Authorization: Basic`` get ``407``.

    Raises:
        ProxyNotInstalled: no tinyproxy binary.
        ProxyFailed: tinyproxy would not start (the message has its log).
        ValueError: credentials tinyproxy's config cannot hold.
    """
    workdir = workdir.resolve()
    if '"' in str(workdir) or not str(workdir).isprintable():
        raise ValueError(f"tinyproxy's config cannot name {workdir!r}")

    def prepare(port: int) -> tuple[list[str], Path, list[Path]]:
        log = workdir / f"tinyproxy-{port}.log"
        conf = workdir / f"tinyproxy-{port}.conf"
        conf.write_text(_tinyproxy_config(port, log, auth))
        # Errors before the log file opens (a taken port, a bad config) go to stderr.
        output = workdir / f"tinyproxy-{port}.out"
        return [binary, "-d", "-c", str(conf)], output, [log, output]

    with _run("http", binary, auth, prepare, start_timeout) as server:
        yield server


@contextmanager
def run_microsocks(
    workdir: Path,
    *,
    auth: tuple[str, str] | None = None,
    binary: str = MICROSOCKS,
    start_timeout: float = START_TIMEOUT,
) -> Iterator[ProxyServer]:
    """Start microsocks (a SOCKS5 server) on a free 127.0.0.1 port; stop it
    when the block ends.

    Args:
        workdir: an existing directory for its output (``microsocks-PORT.log``).
        auth: ``(username, password)``: then it selects method 0x02 (RFC 1929)
            and answers 0xFF to a client that offers only 0x00.

    Raises:
        ProxyNotInstalled: no microsocks binary.
        ProxyFailed: microsocks would not start (the message has its output).
        ValueError: unusable credentials.
    """
    workdir = workdir.resolve()

    def prepare(port: int) -> tuple[list[str], Path, list[Path]]:
        args = [binary, "-i", HOST, "-p", str(port)]
        if auth is not None:
            args += ["-u", auth[0], "-P", auth[1]]
        output = workdir / f"microsocks-{port}.log"
        return args, output, [output]

    with _run("socks5", binary, auth, prepare, start_timeout) as server:
        yield server
