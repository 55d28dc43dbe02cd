"""trio_conpool: a protocol-agnostic connection pool for trio."""

from __future__ import annotations

from ._breaker import CircuitBreaker, CircuitOpen
from ._config import PoolConfig
from ._endpoint import Endpoint, TLSConfig
from ._errors import (
    ConnectError,
    ConnectTimeout,
    LeaseClosed,
    PoolClosed,
    PoolError,
    PoolTimeout,
    ProxyError,
    TLSError,
)
from ._handler import AccessMode, ConnectionInfo, Exclusive, Multiplexed, ProtocolHandler, RawStream
from ._lease import Lease, LeaseContext
from ._pool import Pool, WarmResult, open_pool
from ._proxy import Proxy
from ._socket_stream import SocketStream
from ._stats import EndpointStats
from ._tls_stream import TLSStream

__all__ = [
    "AccessMode",
    "CircuitBreaker",
    "CircuitOpen",
    "ConnectError",
    "ConnectTimeout",
    "ConnectionInfo",
    "Endpoint",
    "EndpointStats",
    "Exclusive",
    "Lease",
    "LeaseClosed",
    "LeaseContext",
    "Multiplexed",
    "Pool",
    "PoolClosed",
    "PoolConfig",
    "PoolError",
    "PoolTimeout",
    "ProtocolHandler",
    "Proxy",
    "ProxyError",
    "RawStream",
    "SocketStream",
    "TLSConfig",
    "TLSError",
    "TLSStream",
    "WarmResult",
    "open_pool",
]
