"""Session: the client. Owns a connection pool; adds cookies, redirects,
retries, authentication and defaults on top of single exchanges."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Coroutine, Mapping
from contextlib import AsyncExitStack
from dataclasses import replace
from types import TracebackType
from typing import Any, Self

import trio

import trio_conpool as cp
from trio_conpool.events import Trace, tee

from ._content import Files, FormData, encode_body
from ._cookies import Cookies
from ._decoders import accept_encoding
from ._errors import (
    ConnectError,
    ReadTimeout,
    RemoteProtocolError,
    RequestError,
    TLSError,
    TooManyRedirects,
    TotalTimeout,
)
from ._exchange import Exchanger, Unprocessed
from ._handler import HTTPHandler
from ._headers import HeaderInput, Headers
from ._http2 import H2Counters, H2Options
from ._limits import Limits
from ._models import Request, RequestContent, Response
from ._redirects import build_redirect
from ._retries import Retry
from ._routes import ProxyArg, ProxyChooser, Route, route
from ._send_options import Auth, SendOptions, StreamContext, authenticate
from ._stats import H2Stats, SessionStats
from ._timeouts import DEFAULT_TIMEOUT, UNSET, Timeout, _Unset
from ._urls import URL, Params, parse_url
from ._verify import Verify, ssl_context
from .events import Redirected, RequestFinished, RequestStarted, RetryCause, RetryScheduled

__version__ = "0.1.0"

TimeoutArg = Timeout | float | None
#: What makes two requests of a redirect chain the same request: method,
#: origin, target and Cookie header (the fragment is never sent).
_HopKey = tuple[str, tuple[str, str, int], str, str | None]
#: the requests of a redirect chain before its first redirect (shared: see _follow)
_NOTHING_SEEN: frozenset[_HopKey] = frozenset()
#: Redirect bodies up to this size are read so the connection can be
#: reused; larger ones are dropped with the connection.
_DRAIN_LIMIT = 65536


class Session:
    """An HTTP client with a connection pool: ``async with Session() as s``.

    Args:
        http2: offer HTTP/2 by ALPN on https:// URLs (HTTP/1.1 stays
            available; the server chooses).
        http2_prior_knowledge: speak HTTP/2 (h2c) to http:// URLs without
            asking; only for servers known to expect it.
        http2_ping_interval: seconds an HTTP/2 connection may be silent
            before a PING checks that the server is still there; None: never.
        http2_ping_timeout: seconds to wait for the PING's answer before the
            connection is closed as dead.
        verify: True (the system trust store), a CA bundle file or
            directory path, an :class:`ssl.SSLContext` (used as given, never
            modified), or False (no verification: only for tests). A bundle
            that cannot be read raises ValueError here, naming the path.
        timeout: a :class:`Timeout`, or one number for all phases.
        pool: limits of the connection pool.
        limits: bounds on what responses may ask of us (:class:`Limits`).
        retries: a :class:`Retry`, or a number of retries.
        follow_redirects, max_redirects: redirect policy. A redirect back to
            a (method, URL) already requested with the same cookies is a
            loop: TooManyRedirects at once. Credentials (Authorization,
            Cookie, Proxy-Authorization) never follow a redirect to another
            origin.
        allow_https_to_http_redirects: follow a redirect from https to plain
            http (off: it raises InsecureRedirect, since the request and any
            body would then travel in the clear).
        headers: sent with every request (a request's own headers win).
        base_url: relative URLs are resolved against it.
        auth: ``(user, password)`` for Basic auth, or a callable that
            takes a :class:`Request` and returns it (possibly modified).
        cookies: initial cookies; the Session keeps cookies it receives.
        proxy: send every request through this proxy: a URL
            (``http://user:pass@host:3128``, ``https://``, ``socks5://``,
            ``socks5h://``) or a :class:`trio_conpool.Proxy`. https URLs are
            tunnelled (CONNECT or SOCKS5) with TLS, and HTTP/2, inside; http
            URLs go to an HTTP proxy in absolute-form. An ``https://``
            proxy is spoken to over TLS, its certificate checked as
            *proxy_verify* says (a Proxy object brings its own
            ``ssl_context`` instead).
        proxy_verify: how to verify https proxies given by URL (here or in
            the environment), in *verify*'s terms; None (the default): as
            *verify*, one trust store for proxies and servers, as requests
            and curl have by default.
        trust_env: without *proxy*, take proxies from ``http_proxy``,
            ``https_proxy``, ``all_proxy`` and ``no_proxy`` (either case) as
            they are when the Session is made, like curl and requests.
        no_proxy: hosts that never go through a proxy, *proxy*'s or the
            environment's, in ``NO_PROXY`` syntax (``"localhost,.internal,
            10.0.0.0/8"``, ``"*"`` for all); it replaces the environment's
            ``no_proxy``.
        trace: a sync callable receiving every event of
            :mod:`trio_requests.events` and of the pool
            (:mod:`trio_conpool.events`): request started/finished, pool
            waits, connects, reuses and closes, HTTP/2 streams and GOAWAYs,
            retries and redirects. ``PoolConfig.trace`` gets the pool's too.
            :class:`trio_requests.opentelemetry.OpenTelemetry` is one.
    """

    def __init__(
        self,
        *,
        http2: bool = True,
        http2_prior_knowledge: bool = False,
        http2_ping_interval: float | None = 30.0,
        http2_ping_timeout: float = 10.0,
        verify: Verify = True,
        timeout: TimeoutArg = DEFAULT_TIMEOUT,
        pool: cp.PoolConfig | None = None,
        limits: Limits | None = None,
        retries: Retry | int | None = None,
        follow_redirects: bool = True,
        max_redirects: int = 20,
        allow_https_to_http_redirects: bool = False,
        headers: HeaderInput = None,
        base_url: str | URL | None = None,
        auth: Auth | None = None,
        cookies: Cookies | Mapping[str, str] | None = None,
        proxy: ProxyArg = None,
        proxy_verify: Verify | None = None,
        trust_env: bool = True,
        no_proxy: str | None = None,
        trace: Trace | None = None,
    ) -> None:
        self.timeout = Timeout.coerce(timeout)
        self.limits = limits or Limits()
        self.retries = Retry.coerce(retries)
        self.follow_redirects = follow_redirects
        self.max_redirects = max_redirects
        self.allow_https_to_http_redirects = allow_https_to_http_redirects
        self.headers = Headers(
            {
                "User-Agent": f"trio-requests/{__version__}",
                "Accept": "*/*",
                "Accept-Encoding": accept_encoding(),
            }
        )
        self.headers.update(Headers(headers))
        self.base_url = URL(base_url) if base_url is not None else None
        self.auth = auth
        self.cookies = cookies if isinstance(cookies, Cookies) else Cookies()
        if isinstance(cookies, Mapping):
            for name, value in cookies.items():
                self.cookies.set(name, value)
        self._trace = trace
        self._http2 = http2
        self._prior_knowledge = http2_prior_knowledge
        self._h2_options = H2Options(
            stream_window=self.limits.http2_stream_window,
            max_header_bytes=self.limits.max_header_bytes,
            max_streams=self.limits.http2_max_concurrent_streams,
            ping_after=http2_ping_interval,
            ping_timeout=http2_ping_timeout,
        )
        self._h2_counters = H2Counters()
        self._pool_config = pool or cp.PoolConfig(connect_timeout=None)
        self._ssl_context = ssl_context(verify)
        self._proxies = ProxyChooser(
            proxy,
            trust_env=trust_env,
            ssl_context=self._ssl_context if proxy_verify is None else ssl_context(proxy_verify),
            no_proxy=no_proxy,
        )
        self._routes: dict[tuple[str, str, int], Route] = {}
        #: origins whose server said HTTP_1_1_REQUIRED: the protocol hint "h1"
        self._http11_only: set[tuple[str, str, int]] = set()
        self._stack: AsyncExitStack | None = None
        self._exchanger: Exchanger | None = None
        self._pool: cp.Pool[Any] | None = None
        self._requests = 0
        self._retries_made = 0

    # -- lifecycle ----------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._stack is not None:
            raise RuntimeError("a Session can be entered only once")
        self._stack = AsyncExitStack()
        handler = HTTPHandler(
            max_header_bytes=self.limits.max_header_bytes,
            http2_prior_knowledge=self._prior_knowledge,
            h2_options=self._h2_options,
            counters=self._h2_counters,
            trace=self._trace,
        )
        config = self._pool_config
        if self._trace is not None:
            config = replace(config, trace=tee(config.trace, self._trace))
        pool = await self._stack.enter_async_context(cp.open_pool(config, handler=handler))
        self._pool = pool
        self._exchanger = Exchanger(pool, self.limits, self._trace)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        """Closes every connection; nothing the Session started outlives it."""
        assert self._stack is not None
        return await self._stack.__aexit__(exc_type, exc, tb)

    def stats(self) -> SessionStats:
        return SessionStats(
            requests_made=self._requests,
            total_time=self._exchanger.total_time if self._exchanger is not None else 0.0,
            retries_count=self._retries_made,
            h2=H2Stats.of(self._h2_counters),
            endpoints=self._pool.all_stats() if self._pool is not None else {},
        )

    # -- the API ----------------------------------------------------------------------

    async def request(self, method: str, url: str | URL, **kwargs: Any) -> Response:
        """Send a request and read the whole response body.

        Keyword arguments: ``params``, ``headers``, ``content``, ``data``,
        ``files``, ``json``, ``auth``, ``timeout``, ``follow_redirects``.

        Raises:
            RequestError: a subclass saying what failed (see the docs).
        """
        return await self._requesting(method, url, kwargs)

    def _requesting(
        self, method: str, url: str | URL, kwargs: dict[str, Any]
    ) -> Coroutine[Any, Any, Response]:
        """:meth:`request`'s coroutine (see :meth:`_sending`: the shortcuts
        below await it without the frame of request())."""
        options = SendOptions.pop_from(kwargs)
        request = self.build_request(method, url, **kwargs)
        total = self._timeout_for(options.timeout).total
        if total is None:  # no scope to enter and leave: the common case
            return self._read_whole(request, options)
        return self._read_whole_within(request, options, total)

    async def _read_whole_within(
        self, request: Request, options: SendOptions, total: float
    ) -> Response:
        with trio.move_on_after(total):
            return await self._read_whole(request, options)
        raise _total_timeout(request, total)

    async def _read_whole(self, request: Request, options: SendOptions) -> Response:
        response = await self._sending(
            request, options.auth, options.timeout, options.follow_redirects
        )
        try:
            await response.aread()
        finally:
            if not response.is_closed:  # aread() closes it but for a failure
                await response.aclose()
        return response

    async def get(self, url: str | URL, **kwargs: Any) -> Response:
        return await self._requesting("GET", url, kwargs)

    async def head(self, url: str | URL, **kwargs: Any) -> Response:
        return await self._requesting("HEAD", url, kwargs)

    async def options(self, url: str | URL, **kwargs: Any) -> Response:
        return await self._requesting("OPTIONS", url, kwargs)

    async def post(self, url: str | URL, **kwargs: Any) -> Response:
        return await self._requesting("POST", url, kwargs)

    async def put(self, url: str | URL, **kwargs: Any) -> Response:
        return await self._requesting("PUT", url, kwargs)

    async def patch(self, url: str | URL, **kwargs: Any) -> Response:
        return await self._requesting("PATCH", url, kwargs)

    async def delete(self, url: str | URL, **kwargs: Any) -> Response:
        return await self._requesting("DELETE", url, kwargs)

    def stream(self, method: str, url: str | URL, **kwargs: Any) -> StreamContext:
        """``async with session.stream("GET", url) as response``: the body is
        read only as you iterate it, and the connection is released (or
        closed, if the body was left unread) when the block ends."""
        options = SendOptions.pop_from(kwargs)
        return StreamContext(self, self.build_request(method, url, **kwargs), options)

    def build_request(
        self,
        method: str,
        url: str | URL,
        *,
        params: Params | None = None,
        headers: HeaderInput = None,
        content: RequestContent | None = None,
        data: FormData | None = None,
        files: Files | None = None,
        json: Any = None,
    ) -> Request:
        """A :class:`Request` with the Session's defaults merged in."""
        full_url = self._merge_url(url).with_params(params)
        body, body_headers = encode_body(content=content, data=data, files=files, json=json)
        merged = self.headers
        if body_headers or headers is not None:
            merged = merged.copy()
            for name, value in body_headers.items():
                merged[name] = value
            if headers is not None:
                for name, value in Headers(headers).multi_items():
                    merged[name] = value
        return Request(method, full_url, headers=merged, content=body)  # a copy of merged

    async def send(
        self,
        request: Request,
        *,
        auth: Auth | _Unset | None = UNSET,
        timeout: TimeoutArg | _Unset = UNSET,
        follow_redirects: bool | _Unset = UNSET,
    ) -> Response:
        """Send *request*; the response body is left unread (read it or
        :meth:`Response.aclose` it). Follows redirects, retries per the
        Session's :class:`Retry`."""
        return await self._sending(request, auth, timeout, follow_redirects)

    # -- internals --------------------------------------------------------------------

    def _sending(
        self,
        request: Request,
        auth: Auth | _Unset | None,
        timeout: TimeoutArg | _Unset,
        follow_redirects: bool | _Unset,
    ) -> Coroutine[Any, Any, Response]:
        """:meth:`send`, decided synchronously: the coroutine to await. The
        untraced request without a total timeout awaits :meth:`_follow`
        directly, since every coroutine frame in the chain costs at each of
        the request's task switches."""
        if self._exchanger is None:
            raise RuntimeError("use the Session inside `async with Session() as session:`")
        limit = self._timeout_for(timeout)
        follow = self.follow_redirects if isinstance(follow_redirects, _Unset) else follow_redirects
        request = authenticate(request, self.auth if isinstance(auth, _Unset) else auth)
        if self._trace is not None:
            return self._send_traced(request, limit, follow, self._trace)
        if limit.total is None:
            return self._follow(request, limit, follow)
        return self._send_within(request, limit, follow)

    async def _send_within(self, request: Request, limit: Timeout, follow: bool) -> Response:
        if limit.total is None:
            return await self._follow(request, limit, follow)
        with trio.move_on_after(limit.total):
            return await self._follow(request, limit, follow)
        raise _total_timeout(request, limit.total)

    async def _send_traced(
        self, request: Request, limit: Timeout, follow: bool, trace: Trace
    ) -> Response:
        """:meth:`send` between a RequestStarted and a RequestFinished event."""
        url = str(request.url.without_credentials())
        trace(RequestStarted(request, request.method, url))
        started = trio.current_time()
        response: Response | None = None
        error: BaseException | None = None
        try:
            response = await self._send_within(request, limit, follow)
            return response
        except BaseException as exc:
            error = exc
            raise
        finally:
            status = None if response is None else response.status_code
            version = None if response is None else response.http_version
            took = trio.current_time() - started
            trace(RequestFinished(request.method, url, status, version, error, took))
            del error  # no reference cycle through the traceback

    async def _follow(self, request: Request, limit: Timeout, follow: bool) -> Response:
        """Send *request*, and the requests its redirects ask for.

        A redirect to a request already made (same method, URL and cookies)
        is a loop: the server would answer it as before, so it fails now
        rather than after ``max_redirects`` hops. Cookies count because a
        server that sets one and redirects back to the same URL (a common
        "do you keep cookies?" check) is not looping.
        """
        # Immutable until the first redirect: an empty tuple and frozenset are
        # shared, so a request without redirects allocates neither.
        history: tuple[Response, ...] = ()
        seen = _NOTHING_SEEN
        while True:
            callers_cookie = "cookie" in request.headers  # before _frame adds the jar's
            response = await self._send_with_retries(request, limit)
            try:
                next_request = self._next_hop(
                    request, response, follow, len(history), cookie_from_jar=not callers_cookie
                )
                if next_request is not None:
                    seen |= {_hop_key(request, request.headers.get("cookie"))}  # as sent
                    self._refuse_loop(request, next_request, seen)
            except BaseException:
                await response.aclose()
                raise
            if next_request is None:
                break
            await _drain(response)
            if self._trace is not None:
                shown = str(next_request.url.without_credentials())
                self._trace(Redirected(response.status_code, shown))
            history += (response,)
            request = next_request
        if history:
            response.history = list(history)
        return response

    def _refuse_loop(
        self, request: Request, next_request: Request, seen: frozenset[_HopKey]
    ) -> None:
        """Raise TooManyRedirects if *next_request* would repeat a request of
        this chain, with the Cookie header :meth:`_frame` would give it."""
        if "cookie" in next_request.headers:
            cookie = next_request.headers.get("cookie")
        else:
            cookie = self.cookies.header_for(str(next_request.url), time.time())
        if _hop_key(next_request, cookie) in seen:
            raise TooManyRedirects(
                f"redirect loop: {request.url.without_credentials()} redirects to "
                f"{next_request.url.without_credentials()}, which was already requested",
                request=next_request,
            )

    def _timeout_for(self, timeout: TimeoutArg | _Unset) -> Timeout:
        return self.timeout if isinstance(timeout, _Unset) else Timeout.coerce(timeout)

    def _next_hop(
        self,
        request: Request,
        response: Response,
        follow: bool,
        hops: int,
        *,
        cookie_from_jar: bool,
    ) -> Request | None:
        """Keep the cookies *response* sets; the redirect to follow, if any.
        *cookie_from_jar*: *request*'s Cookie header is the jar's, not the
        caller's (see :func:`build_redirect`)."""
        if set_cookies := response.headers.get_list("set-cookie"):
            self.cookies.extract(str(request.url), set_cookies, time.time())
        if not (follow and response.is_redirect):
            return None
        if hops >= self.max_redirects:
            raise TooManyRedirects(f"exceeded max_redirects={self.max_redirects}", request=request)
        return build_redirect(
            request,
            response,
            allow_downgrade=self.allow_https_to_http_redirects,
            cookie_from_jar=cookie_from_jar,
        )

    async def _send_with_retries(self, request: Request, timeout: Timeout) -> Response:
        retry = self.retries
        attempt = 0
        while True:
            attempt += 1
            try:
                response = await self._send_once(request, timeout)
            except Unprocessed as replay:
                if retry.unprocessed_exhausted or not request.replayable:
                    raise replay.error from replay.error.__cause__
                delay = retry.backoff(retry.unprocessed_made) if replay.wait else 0.0
                retry = retry.increment_unprocessed()
                if replay.downgrade:
                    self._downgrade(request.url)
                self._count_retry(replay.reason, delay, attempt, replay.goaway_last_id)
                await trio.sleep(delay)
                continue
            except (ConnectError, ReadTimeout, RemoteProtocolError) as exc:
                if not self._may_retry(retry, request, exc):
                    raise
                delay = retry.backoff()
                reason, cause = type(exc).__name__, RetryCause.ERROR
            else:
                if not (
                    retry.is_status_retryable(request.method, response.status_code)
                    and request.replayable
                    and not retry.exhausted
                ):
                    return response
                delay = retry.sleep_for(response.headers.get("retry-after"), time.time())
                reason, cause = f"status {response.status_code}", RetryCause.STATUS
                await response.aclose()
            retry = retry.increment()
            self._count_retry(reason, delay, attempt, cause=cause)
            await trio.sleep(delay)

    def _count_retry(
        self,
        reason: str,
        delay: float,
        attempt: int,
        goaway_last_id: int | None = None,
        *,
        cause: RetryCause | None = None,
    ) -> None:
        """*cause* None: an unprocessed request, GOAWAY if *goaway_last_id*."""
        self._retries_made += 1
        if self._trace is not None:
            if cause is None:
                cause = RetryCause.UNPROCESSED if goaway_last_id is None else RetryCause.GOAWAY
            self._trace(RetryScheduled(reason, delay, cause, attempt, goaway_last_id))

    def _downgrade(self, url: URL) -> None:
        """The server answered HTTP_1_1_REQUIRED: from now on, connections
        to this origin offer HTTP/1.1 only (RFC 9113 §7)."""
        if url.scheme == "https" and url.origin not in self._http11_only:
            self._http11_only.add(url.origin)
            self._routes.pop(url.origin, None)

    def _may_retry(self, retry: Retry, request: Request, exc: RequestError) -> bool:
        if retry.exhausted or not request.replayable or isinstance(exc, TLSError):
            return False
        if isinstance(exc.__cause__, cp.CircuitOpen):
            return False  # the breaker exists to fail fast: retrying defeats it
        if isinstance(exc, ConnectError):
            return True  # the request never left: safe for any method
        return retry.is_method_retryable(request.method)

    def _send_once(self, request: Request, timeout: Timeout) -> Coroutine[Any, Any, Response]:
        """The exchange to await (no frame of its own: see :meth:`_sending`)."""
        assert self._exchanger is not None
        self._frame(request)
        self._requests += 1
        to = self._route(request)
        return self._exchanger.send(request, to.endpoint, timeout, to.forward)

    def _frame(self, request: Request) -> None:
        """Per-hop headers: Host, cookies, body framing (RFC 9112 §6)."""
        headers = request.headers
        if "host" not in headers:
            # none to replace; a parsed URL's authority is a valid value
            headers._add_valid("host", "Host", request.url.authority)
        if "cookie" not in headers and (
            cookie := self.cookies.header_for(str(request.url), time.time())
        ):
            headers["Cookie"] = cookie
        if request.content is not None:
            if request.content or request.method in ("POST", "PUT", "PATCH"):
                headers["Content-Length"] = str(len(request.content))
        elif request.stream is not None and "content-length" not in headers:
            headers["Transfer-Encoding"] = "chunked"

    def _merge_url(self, url: str | URL) -> URL:
        if isinstance(url, URL):
            return url
        if self.base_url is not None and "://" not in url:
            base = str(self.base_url)
            url = (base if base.endswith("/") else base + "/") + url.lstrip("/")
        return parse_url(url)

    def _route(self, request: Request) -> Route:
        url = request.url
        key = url.origin
        found = self._routes.get(key)
        if found is None:
            tls = None
            h2 = self._http2 and key not in self._http11_only
            if url.scheme == "https":
                alpn = ("h2", "http/1.1") if h2 else ("http/1.1",)
                tls = cp.TLSConfig(
                    ssl_context=self._ssl_context, alpn=alpn, server_hostname=url.host
                )
            proxy = self._proxies.proxy_for(url, request)
            found = self._routes[key] = route(url, proxy, tls, h2c=self._prior_knowledge)
            may_speak_h2 = h2 if tls is not None else self._prior_knowledge
            if (found.forward or not may_speak_h2) and self._pool is not None:
                self._pool.hint(found.endpoint, multiplexed=False)
        return found


def _total_timeout(request: Request, total: float | None) -> TotalTimeout:
    return TotalTimeout(f"the request took longer than Timeout.total={total}s", request=request)


def _hop_key(request: Request, cookie: str | None) -> _HopKey:
    return (request.method, request.url.origin, request.url.target, cookie)


async def _drain(response: Response) -> None:
    """Read a small redirect body so its connection can be reused."""
    length = response.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) <= _DRAIN_LIMIT:
        with contextlib.suppress(RequestError):
            await response.aread()
    await response.aclose()
