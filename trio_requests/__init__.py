"""trio_requests: an HTTP/1.1 + HTTP/2 client for trio.

The client is built on top of :mod:`trio_conpool`, which owns connections, TLS and
pooling; this package adds requests, responses, redirects and retries. It is not
written yet: the package exists so the distribution, its ``py.typed`` marker and the
exports test are in place, and its public names will be re-exported here.
"""

from __future__ import annotations

__all__: list[str] = []
