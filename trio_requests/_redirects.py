"""Redirect decisions, without I/O (RFC 9110 §15.4)."""

from __future__ import annotations

from ._errors import InsecureRedirect, InvalidURL, RemoteProtocolError, StreamConsumed
from ._models import Request, Response
from ._urls import masked_url

#: Headers that describe the body, dropped when a redirect turns it into a GET.
_BODY_HEADERS = ("content-type", "content-length", "transfer-encoding", "content-encoding")
#: Credentials that must not follow a request to another origin.
_CREDENTIALS = ("authorization", "cookie", "proxy-authorization")


def redirect_method(method: str, status: int) -> str:
    """303 turns anything but HEAD into GET; 301/302 turn POST into GET
    (what every browser does, which RFC 9110 §15.4.2-3 acknowledges);
    307/308 keep the method and body."""
    if status == 303 and method != "HEAD":
        return "GET"
    if status in (301, 302) and method == "POST":
        return "GET"
    return method


def _location(request: Request, response: Response) -> str:
    """The Location as text. Header values arrive as latin-1; a URL's
    non-ASCII characters are UTF-8 (RFC 3987), so the bytes are decoded as
    such, and bytes that are not UTF-8 are the server's error."""
    text = response.headers["location"]
    raw = text.encode("latin-1")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        shown = masked_url(text)
        # The decode error quotes the bytes: with a user:password, it must go.
        cause = exc if shown == text else None
        raise RemoteProtocolError(
            f"invalid redirect from {request.url.without_credentials()}: "
            f"its Location {shown.encode('latin-1')!r} is not UTF-8",
            request=request,
        ) from cause


def build_redirect(
    request: Request,
    response: Response,
    *,
    allow_downgrade: bool,
    cookie_from_jar: bool = False,
) -> Request:
    """The request that follows *response* (a redirect to *request*).

    Args:
        allow_downgrade: follow a redirect from https to http.
        cookie_from_jar: the Cookie header of *request* was not the
            caller's but the cookie jar's choice for *request*'s URL. It is
            dropped, so the jar chooses afresh for the new URL: its path,
            domain and Secure rules apply there, and cookies the redirect
            itself set are sent.

    Raises:
        RemoteProtocolError: the Location is not UTF-8.
        InvalidURL: the Location is not an http(s) URL.
        InsecureRedirect: https to http, and *allow_downgrade* is False.
        StreamConsumed: a 307/308 asks to resend a body that was streamed.
    """
    location = _location(request, response)
    try:
        url = request.url.join(location)
    except InvalidURL as exc:
        raise InvalidURL(
            f"redirect from {request.url.without_credentials()} "
            f"to an unusable URL {masked_url(location)!r}: {exc}",
            request=request,
        ) from exc
    if request.url.scheme == "https" and url.scheme == "http" and not allow_downgrade:
        raise InsecureRedirect(
            f"refusing the redirect from {request.url.without_credentials()} to "
            f"{url.without_credentials()}: it leaves https for plain http "
            "(Session(allow_https_to_http_redirects=True) follows such redirects)",
            request=request,
        )
    if not url.fragment and request.url.fragment:  # RFC 9110 §10.2.2
        url = url.join(f"#{request.url.fragment}")
    method = redirect_method(request.method, response.status_code)
    headers = request.headers.copy()
    headers.pop("host", None)
    content = request.content
    if method != request.method:
        content = None
        for name in _BODY_HEADERS:
            headers.pop(name, None)
    elif not request.replayable:
        raise StreamConsumed(
            f"cannot follow the {response.status_code} redirect: it asks to send the body again, "
            "but the body was a stream that is already consumed (pass bytes instead)",
            request=request,
        )
    if url.origin != request.url.origin:
        for name in _CREDENTIALS:
            headers.pop(name, None)
    elif cookie_from_jar:
        headers.pop("cookie", None)
    return Request(method, url, headers=headers, content=content)
