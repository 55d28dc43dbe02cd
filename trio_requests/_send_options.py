"""What a request call carries besides the request: the send options
(``auth``, ``timeout``, ``follow_redirects``), :class:`StreamContext` for
``Session.stream``, and how ``auth`` is applied."""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._models import Request, Response
from ._timeouts import UNSET

if TYPE_CHECKING:
    from ._session import Session

Auth = tuple[str, str] | Callable[[Request], Request]


@dataclass(frozen=True)
class SendOptions:
    auth: Any = UNSET
    timeout: Any = UNSET
    follow_redirects: Any = UNSET

    @classmethod
    def pop_from(cls, kwargs: dict[str, Any]) -> SendOptions:
        """The send options among *kwargs* (removed from it); the shared
        all-defaults instance when there are none, the common case."""
        if not kwargs:
            return DEFAULT_OPTIONS
        return cls(
            **{
                name: kwargs.pop(name)
                for name in ("auth", "timeout", "follow_redirects")
                if name in kwargs
            }
        )

    def as_kwargs(self) -> dict[str, Any]:
        return {
            "auth": self.auth,
            "timeout": self.timeout,
            "follow_redirects": self.follow_redirects,
        }


DEFAULT_OPTIONS = SendOptions()


class StreamContext:
    """What :meth:`Session.stream` returns: an async context manager."""

    def __init__(self, session: Session, request: Request, options: SendOptions) -> None:
        self._session = session
        self._request = request
        self._options = options
        self._response: Response | None = None

    async def __aenter__(self) -> Response:
        self._response = await self._session.send(self._request, **self._options.as_kwargs())
        return self._response

    async def __aexit__(self, *exc_info: object) -> None:
        if self._response is not None:
            await self._response.aclose()


def authenticate(request: Request, auth: Auth | None) -> Request:
    """*request* with *auth* applied: Basic credentials (the URL's user
    and password when *auth* is None), or what the callable returns."""
    if auth is None and (request.url.username or request.url.password):
        auth = (request.url.username or "", request.url.password or "")
    if auth is None:
        return request
    if callable(auth):
        return auth(request)
    user, password = auth
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    request.headers["Authorization"] = f"Basic {token}"
    return request
