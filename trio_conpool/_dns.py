"""DNS: a per-host cache over a pluggable resolver, and happy eyeballs over
the addresses it returns.

Theory of operation: every new connection used to call ``getaddrinfo``,
which runs in a thread and, behind it, may cost a round trip to a DNS server:
a burst of 100 connects to one host made 100 lookups. :class:`DNSCache`
keeps each host's answer for ``ttl`` seconds (``getaddrinfo`` does not tell
the record's real TTL, so the pool bounds staleness itself; 0 disables the
cache), makes concurrent lookups of one host share a single query
(single-flight), and remembers a failure for ``negative_ttl`` seconds so a
misspelt host does not hammer the resolver. :func:`connect_any` then races
the addresses as RFC 8305 does (the next attempt starts when the previous
one fails or 250 ms pass; the first to connect wins, the rest are
cancelled), which is what :func:`trio.open_tcp_stream` does for a host name.
"""

from __future__ import annotations

import copy
import ipaddress
import socket as stdlib_socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import trio

#: ``(family, sockaddr)`` pairs, in the order to try them.
Addresses = list[tuple[int, tuple[object, ...]]]
#: ``async (host, port) -> Addresses``; raise :class:`socket.gaierror` (or any
#: OSError) when the name does not resolve.
Resolver = Callable[[str, int], Awaitable[Addresses]]

#: RFC 8305 §5: the recommended "Connection Attempt Delay".
HAPPY_EYEBALLS_DELAY = 0.25


async def system_resolver(host: str, port: int) -> Addresses:
    """The operating system's resolver (``getaddrinfo``, in a thread)."""
    infos = await trio.socket.getaddrinfo(host, port, type=stdlib_socket.SOCK_STREAM)
    return _interleave([(int(family), tuple(addr)) for family, _, _, _, addr in infos])


def _interleave(addresses: Addresses) -> Addresses:
    """Alternate families, keeping the resolver's preference first (RFC 8305 §4)."""
    if not addresses:
        return addresses
    first = addresses[0][0]
    same = [a for a in addresses if a[0] == first]
    other = [a for a in addresses if a[0] != first]
    out: Addresses = []
    for i in range(max(len(same), len(other))):
        out += same[i : i + 1] + other[i : i + 1]
    return out


@dataclass
class _Entry:
    expires: float
    addresses: Addresses | None = None
    error: OSError | None = None


class _Flight:
    """A lookup under way that later askers wait for instead of repeating."""

    def __init__(self) -> None:
        self.done = trio.Event()
        self.entry: _Entry | None = None  # None: the leader was cancelled


class DNSCache:
    """Host -> addresses, kept *ttl* seconds (failures *negative_ttl*)."""

    def __init__(self, resolver: Resolver, *, ttl: float, negative_ttl: float) -> None:
        self.resolver = resolver
        self.ttl = ttl
        self.negative_ttl = negative_ttl
        self._entries: dict[tuple[str, int], _Entry] = {}
        self._flights: dict[tuple[str, int], _Flight] = {}
        self.lookups = 0  # queries sent to the resolver, ever

    async def resolve(self, host: str, port: int) -> Addresses:
        """The addresses of *host*; an OSError if it does not resolve."""
        key = (host, port)
        while True:
            entry = self._entries.get(key)
            if entry is not None and trio.current_time() < entry.expires:
                await trio.lowlevel.checkpoint()
                return _result(entry)
            flight = self._flights.get(key)
            if flight is None:
                return _result(await self._lookup(key))
            await flight.done.wait()
            if flight.entry is not None:
                return _result(flight.entry)
            # The leader was cancelled: the next one round asks again.

    async def _lookup(self, key: tuple[str, int]) -> _Entry:
        flight = self._flights[key] = _Flight()
        try:
            self.lookups += 1
            try:
                entry = _Entry(trio.current_time() + self.ttl, addresses=await self.resolver(*key))
            except OSError as exc:
                entry = _Entry(trio.current_time() + self.negative_ttl, error=exc)
            if self.ttl > 0:
                self._entries[key] = entry
            flight.entry = entry
            return entry
        finally:
            del self._flights[key]
            flight.done.set()


def _result(entry: _Entry) -> Addresses:
    if entry.error is not None:
        # A fresh instance per raise: one shared by many tasks would collect
        # all their tracebacks.
        raise copy.copy(entry.error)
    assert entry.addresses is not None
    return entry.addresses


def is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


async def connect_any(
    addresses: Addresses, delay: float = HAPPY_EYEBALLS_DELAY
) -> trio.SocketStream:
    """Connect to the first of *addresses* that answers (RFC 8305 racing).

    Raises:
        OSError: every attempt failed; chained to the group of their errors.
    """
    if not addresses:
        raise OSError("the host resolved to no address")
    winner: list[trio.socket.SocketType] = []
    errors: list[OSError] = []

    async def attempt(family: int, sockaddr: tuple[object, ...], failed: trio.Event) -> None:
        sock = trio.socket.socket(family, stdlib_socket.SOCK_STREAM)
        try:
            await sock.connect(sockaddr)
        except OSError as exc:
            sock.close()
            errors.append(exc)
            failed.set()
            return
        except BaseException:
            sock.close()
            raise
        winner.append(sock)
        nursery.cancel_scope.cancel()

    try:
        async with trio.open_nursery() as nursery:
            for family, sockaddr in addresses:
                failed = trio.Event()
                nursery.start_soon(attempt, family, sockaddr, failed)
                with trio.move_on_after(delay):
                    await failed.wait()
    except BaseException:
        for sock in winner:  # cancelled from outside just as one connected
            sock.close()
        raise
    for extra in winner[1:]:  # two connected in the same instant
        extra.close()
    if winner:
        return trio.SocketStream(winner[0])
    raise OSError(f"all {len(addresses)} connection attempts failed") from BaseExceptionGroup(
        "connection attempts", errors
    )
