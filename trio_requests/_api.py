"""Module-level helpers: one request on a throw-away Session."""

from __future__ import annotations

from typing import Any

from ._models import Response
from ._session import Session
from ._urls import URL

_SESSION_OPTIONS = frozenset(
    {"verify", "pool", "limits", "retries", "max_redirects", "base_url", "cookies", "trace"}
)


async def request(method: str, url: str | URL, **kwargs: Any) -> Response:
    """Send one request with a Session opened and closed for it.

    Session options (``verify``, ``retries``, ``trace`` …) and request
    options (``params``, ``json``, ``timeout`` …) may both be given. For
    more than one request, open a :class:`Session` and reuse its
    connections.
    """
    session_kwargs = {k: kwargs.pop(k) for k in list(kwargs) if k in _SESSION_OPTIONS}
    async with Session(**session_kwargs) as session:
        return await session.request(method, url, **kwargs)


async def get(url: str | URL, **kwargs: Any) -> Response:
    return await request("GET", url, **kwargs)


async def head(url: str | URL, **kwargs: Any) -> Response:
    return await request("HEAD", url, **kwargs)


async def options(url: str | URL, **kwargs: Any) -> Response:
    return await request("OPTIONS", url, **kwargs)


async def post(url: str | URL, **kwargs: Any) -> Response:
    return await request("POST", url, **kwargs)


async def put(url: str | URL, **kwargs: Any) -> Response:
    return await request("PUT", url, **kwargs)


async def patch(url: str | URL, **kwargs: Any) -> Response:
    return await request("PATCH", url, **kwargs)


async def delete(url: str | URL, **kwargs: Any) -> Response:
    return await request("DELETE", url, **kwargs)
