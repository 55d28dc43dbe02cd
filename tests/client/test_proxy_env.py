"""Choosing a proxy from environment variables: proxy_from_env and bypasses_proxy."""

from __future__ import annotations

import ipaddress
import socket
import ssl
from types import MappingProxyType

import pytest
from hypothesis import given
from hypothesis import strategies as st

import trio_requests as tr
from trio_requests._cli._options import parse_args
from trio_requests._cli._proxy import no_proxy_of
from trio_requests._proxy_env import bypasses_proxy, proxy_from_env
from trio_requests._routes import ProxyChooser
from trio_requests._urls import parse_url
from trio_requests.testing import Reply, open_h11_server

# --- which variable ---------------------------------------------------------


@pytest.mark.parametrize(
    ("scheme", "environ", "expected"),
    [
        ("http", {}, None),
        ("http", {"http_proxy": "http://low:1"}, "http://low:1"),
        ("http", {"HTTP_PROXY": "http://up:1"}, "http://up:1"),
        ("http", {"http_proxy": "http://low:1", "HTTP_PROXY": "http://up:1"}, "http://low:1"),
        ("https", {"https_proxy": "http://low:1"}, "http://low:1"),
        ("https", {"HTTPS_PROXY": "http://up:1"}, "http://up:1"),
        ("https", {"https_proxy": "http://low:1", "HTTPS_PROXY": "http://up:1"}, "http://low:1"),
        # each scheme reads only its own variables
        ("https", {"http_proxy": "http://h:1", "HTTP_PROXY": "http://h:2"}, None),
        ("http", {"https_proxy": "http://s:1", "HTTPS_PROXY": "http://s:2"}, None),
        # all_proxy is the fallback for both, lowercase first
        ("http", {"all_proxy": "http://all:1"}, "http://all:1"),
        ("https", {"all_proxy": "http://all:1"}, "http://all:1"),
        ("http", {"ALL_PROXY": "http://ALL:1"}, "http://ALL:1"),
        ("https", {"all_proxy": "http://all:1", "ALL_PROXY": "http://ALL:1"}, "http://all:1"),
        # any scheme-specific variable beats all_proxy, even the uppercase one
        ("http", {"all_proxy": "http://all:1", "HTTP_PROXY": "http://up:1"}, "http://up:1"),
        ("https", {"all_proxy": "http://all:1", "HTTPS_PROXY": "http://up:1"}, "http://up:1"),
        # the scheme is case-insensitive
        ("HTTP", {"http_proxy": "http://low:1"}, "http://low:1"),
        ("HttpS", {"HTTPS_PROXY": "http://up:1"}, "http://up:1"),
        # mixed-case names are not looked at
        ("http", {"Http_Proxy": "http://mixed:1"}, None),
    ],
)
def test_variable_precedence(scheme: str, environ: dict[str, str], expected: str | None) -> None:
    assert proxy_from_env(scheme, "example.com", 80, environ) == expected


@pytest.mark.parametrize(
    ("scheme", "environ", "expected"),
    [
        ("http", {"http_proxy": "", "HTTP_PROXY": "http://up:1"}, "http://up:1"),
        ("http", {"http_proxy": "", "HTTP_PROXY": ""}, None),
        ("http", {"http_proxy": "", "HTTP_PROXY": "", "all_proxy": "http://a:1"}, "http://a:1"),
        ("https", {"https_proxy": "", "all_proxy": "", "ALL_PROXY": "http://A:1"}, "http://A:1"),
        ("https", {"https_proxy": "", "HTTPS_PROXY": "", "all_proxy": "", "ALL_PROXY": ""}, None),
    ],
)
def test_empty_values_count_as_unset(
    scheme: str, environ: dict[str, str], expected: str | None
) -> None:
    assert proxy_from_env(scheme, "example.com", 443, environ) == expected


# --- httpoxy ----------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "POST", ""])
def test_cgi_ignores_uppercase_http_proxy(method: str) -> None:
    environ = {"REQUEST_METHOD": method, "HTTP_PROXY": "http://attacker:1"}
    assert proxy_from_env("http", "example.com", 80, environ) is None


def test_cgi_falls_through_to_all_proxy() -> None:
    environ = {
        "REQUEST_METHOD": "GET",
        "HTTP_PROXY": "http://attacker:1",
        "ALL_PROXY": "http://trusted:1",
    }
    assert proxy_from_env("http", "example.com", 80, environ) == "http://trusted:1"


@pytest.mark.parametrize(
    ("scheme", "environ", "expected"),
    [
        ("http", {"http_proxy": "http://low:1", "HTTP_PROXY": "http://x:1"}, "http://low:1"),
        ("https", {"HTTPS_PROXY": "http://up:1"}, "http://up:1"),
        ("https", {"HTTP_PROXY": "http://x:1", "https_proxy": "http://s:1"}, "http://s:1"),
        ("http", {"all_proxy": "http://a:1"}, "http://a:1"),
    ],
)
def test_cgi_keeps_other_variables(
    scheme: str, environ: dict[str, str], expected: str | None
) -> None:
    assert proxy_from_env(scheme, "example.com", 80, {"REQUEST_METHOD": "GET", **environ}) == (
        expected
    )


def test_uppercase_http_proxy_is_used_outside_cgi() -> None:
    environ = {"HTTP_PROXY": "http://up:1", "GATEWAY_INTERFACE": "CGI/1.1"}
    assert proxy_from_env("http", "example.com", 80, environ) == "http://up:1"


# --- the URL ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("proxy:3128", "http://proxy:3128"),
        ("proxy", "http://proxy"),
        ("user:pw@proxy:8080", "http://user:pw@proxy:8080"),
        ("[::1]:3128", "http://[::1]:3128"),
        ("http://proxy:3128", "http://proxy:3128"),
        ("https://proxy:443", "https://proxy:443"),
        ("socks5h://proxy:1080", "socks5h://proxy:1080"),
        ("HTTP://Proxy:3128/path?q=1", "HTTP://Proxy:3128/path?q=1"),
        ("http://u:p%40ss@proxy:3128/", "http://u:p%40ss@proxy:3128/"),
    ],
)
def test_proxy_url(value: str, expected: str) -> None:
    assert proxy_from_env("http", "example.com", 80, {"http_proxy": value}) == expected


# --- NO_PROXY through proxy_from_env ----------------------------------------

_PROXIED = {"http_proxy": "http://p:1", "https_proxy": "http://p:2"}


@pytest.mark.parametrize(
    ("no_proxy_vars", "host", "expected"),
    [
        ({"no_proxy": "example.com"}, "example.com", None),
        ({"NO_PROXY": "example.com"}, "www.example.com", None),
        ({"no_proxy": "example.com"}, "example.org", "http://p:1"),
        # lowercase wins: NO_PROXY is then not consulted at all
        ({"no_proxy": "other.com", "NO_PROXY": "example.com"}, "example.com", "http://p:1"),
        # an empty no_proxy counts as unset
        ({"no_proxy": "", "NO_PROXY": "example.com"}, "example.com", None),
        ({"NO_PROXY": "*"}, "anything.test", None),
        ({"no_proxy": ""}, "example.com", "http://p:1"),
    ],
)
def test_no_proxy_variables(no_proxy_vars: dict[str, str], host: str, expected: str | None) -> None:
    assert proxy_from_env("http", host, 80, {**_PROXIED, **no_proxy_vars}) == expected


def test_no_proxy_port_is_the_request_port() -> None:
    environ = {**_PROXIED, "no_proxy": "example.com:8443"}
    assert proxy_from_env("https", "example.com", 8443, environ) is None
    assert proxy_from_env("https", "example.com", 443, environ) == "http://p:2"


def test_no_proxy_exempts_all_proxy_too() -> None:
    environ = {"ALL_PROXY": "http://all:1", "NO_PROXY": ".internal"}
    assert proxy_from_env("https", "db.internal", 443, environ) is None
    assert proxy_from_env("https", "example.com", 443, environ) == "http://all:1"


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "::1"])
def test_loopback_is_proxied_by_default(host: str) -> None:
    assert proxy_from_env("http", host, 80, _PROXIED) == "http://p:1"


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "::1"])
def test_loopback_exempted_explicitly(host: str) -> None:
    environ = {**_PROXIED, "no_proxy": "localhost,127.0.0.0/8,::1"}
    assert proxy_from_env("http", host, 80, environ) is None


def test_environ_needs_only_the_mapping_interface() -> None:
    environ = MappingProxyType({"https_proxy": "p:3128", "no_proxy": "other"})
    assert proxy_from_env("https", "example.com", 443, environ) == "http://p:3128"


# --- bypasses_proxy: names --------------------------------------------------


@pytest.mark.parametrize(
    ("host", "no_proxy", "expected"),
    [
        ("example.com", "example.com", True),
        ("a.example.com", "example.com", True),
        ("a.b.example.com", "example.com", True),
        ("example.com", ".example.com", True),
        ("a.example.com", ".example.com", True),
        ("badexample.com", "example.com", False),
        ("badexample.com", ".example.com", False),
        ("example.com.evil.test", "example.com", False),
        ("example.co", "example.com", False),
        ("com", "example.com", False),
        ("example.com", "a.example.com", False),
        # "*." is read as "."
        ("example.com", "*.example.com", True),
        ("a.example.com", "*.example.com", True),
        ("badexample.com", "*.example.com", False),
        ("badexample.com", "*example.com", False),
        # case-insensitive, either side
        ("Example.COM", "example.com", True),
        ("a.example.com", "EXAMPLE.Com", True),
        # a trailing dot is ignored, either side
        ("example.com.", "example.com", True),
        ("a.example.com", "example.com.", True),
        ("a.example.com.", ".example.com.", True),
        # single-label names
        ("localhost", "localhost", True),
        ("localhost", "local", False),
        ("intranet", "intranet", True),
        # non-ASCII entries match the IDNA-encoded request host
        ("xn--bcher-kva.example", "bücher.example", True),
        ("a.xn--bcher-kva.example", ".bücher.example", True),
    ],
)
def test_names(host: str, no_proxy: str, expected: bool) -> None:
    assert bypasses_proxy(host, 80, no_proxy) is expected


# --- bypasses_proxy: lists, wildcard, malformed entries ----------------------


@pytest.mark.parametrize(
    ("no_proxy", "expected"),
    [
        ("", False),
        (",", False),
        ("  ", False),
        ("*", True),
        (" * ", True),
        ("a.test,example.com", True),
        ("a.test, example.com", True),
        ("a.test , example.com ,", True),
        ("a.test example.com", True),
        ("a.test\texample.com", True),
        ("a.test,\n  example.com", True),
        (",,example.com,,", True),
        ("a.test,b.test", False),
        # "*" only means "everything" as the whole value
        ("a.test,*", False),
        ("*,a.test", False),
        ("**", False),
        ("*.", False),
        # malformed entries are skipped; the rest still apply
        ("example.com:abc", False),
        ("example.com:", False),
        ("example.com:-1", False),
        ("[::1,example.com", True),
        ("example.com:abc,example.com", True),
        ("[::1]x,[1.2.3.4]:80:90,example.com", True),
        (":80", False),
        (".", False),
    ],
)
def test_lists(no_proxy: str, expected: bool) -> None:
    assert bypasses_proxy("example.com", 80, no_proxy) is expected


# --- bypasses_proxy: ports --------------------------------------------------


@pytest.mark.parametrize(
    ("host", "port", "no_proxy", "expected"),
    [
        ("example.com", 8080, "example.com:8080", True),
        ("example.com", 80, "example.com:8080", False),
        ("a.example.com", 8080, ".example.com:8080", True),
        ("a.example.com", 443, ".example.com:8080", False),
        ("example.com", 443, "example.com:80,example.com:443", True),
        ("example.com", 8080, "example.com", True),
        ("10.1.2.3", 8080, "10.1.2.3:8080", True),
        ("10.1.2.3", 80, "10.1.2.3:8080", False),
        ("10.1.2.3", 443, "10.0.0.0/8:443", True),
        ("10.1.2.3", 80, "10.0.0.0/8:443", False),
        ("::1", 8080, "[::1]:8080", True),
        ("::1", 80, "[::1]:8080", False),
        ("::1", 80, "[::1]", True),
        ("2001:db8::5", 443, "[2001:db8::/32]:443", True),
        ("2001:db8::5", 80, "[2001:db8::/32]:443", False),
        # unbracketed, "::1:8080" is an address, not ::1 on port 8080
        ("::1", 8080, "::1:8080", False),
        ("::1:8080", 80, "::1:8080", True),
        ("example.com", 8080, "example.com:08080", True),
    ],
)
def test_ports(host: str, port: int, no_proxy: str, expected: bool) -> None:
    assert bypasses_proxy(host, port, no_proxy) is expected


# --- bypasses_proxy: addresses and CIDR blocks -------------------------------


@pytest.mark.parametrize(
    ("host", "no_proxy", "expected"),
    [
        ("127.0.0.1", "127.0.0.1", True),
        ("127.0.0.2", "127.0.0.1", False),
        ("10.1.2.3", "10.0.0.0/8", True),
        ("11.1.2.3", "10.0.0.0/8", False),
        ("192.168.1.77", "192.168.1.0/24", True),
        ("192.168.2.1", "192.168.1.0/24", False),
        ("192.168.1.77", "192.168.1.1/24", True),  # host bits set: still a /24
        ("1.2.3.4", "0.0.0.0/0", True),
        ("1.2.3.4", "1.2.3.4/32", True),
        ("1.2.3.5", "1.2.3.4/32", False),
        ("::1", "::1", True),
        ("::1", "[::1]", True),
        ("[::1]", "::1", True),
        ("::1", "0:0:0:0:0:0:0:1", True),
        ("::2", "::1", False),
        ("::1", "::1/128", True),
        ("::1", "[::1/128]", True),
        ("2001:db8::1", "2001:db8::/32", True),
        ("2001:DB8::1", "2001:db8::/32", True),
        ("2001:db9::1", "2001:db8::/32", False),
        ("fe80::1%eth0", "fe80::/10", True),
        # IPv4 entries don't match IPv6 hosts and vice versa ...
        ("::1", "127.0.0.1", False),
        ("127.0.0.1", "::1", False),
        ("1.2.3.4", "::/0", False),
        # ... except that an IPv4-mapped host is also its IPv4 address
        ("::ffff:10.0.0.1", "10.0.0.0/8", True),
        ("::ffff:10.0.0.1", "::ffff:10.0.0.1", True),
        ("::ffff:11.0.0.1", "10.0.0.0/8", False),
        # nothing is resolved: names never match addresses, nor addresses names
        ("127.0.0.1", "localhost", False),
        ("localhost", "127.0.0.1", False),
        ("localhost", "127.0.0.0/8", False),
        ("10.1.2.3", "2.3", False),
        ("10.1.2.3", ".3", False),
        # a bad CIDR block is skipped
        ("10.1.2.3", "10.0.0.0/33", False),
        ("10.1.2.3", "10.0.0.0/33,10.1.2.3", True),
        ("10.1.2.3", "10.0.0.0/8/8", False),
    ],
)
def test_addresses(host: str, no_proxy: str, expected: bool) -> None:
    assert bypasses_proxy(host, 80, no_proxy) is expected


# --- properties -------------------------------------------------------------

_LABEL = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?", fullmatch=True)
# The last label starts with a letter, so a name is never an IPv4 literal.
_TLD = st.from_regex(r"[a-z][a-z0-9]{0,5}", fullmatch=True)
_NAMES = st.builds(lambda labels, tld: ".".join([*labels, tld]), st.lists(_LABEL, max_size=3), _TLD)
_PORTS = st.integers(1, 65535)


@given(name=_NAMES, sub=_LABEL, port=_PORTS, upper=st.booleans(), dot=st.booleans())
def test_property_name_matches_itself_and_subdomains(
    name: str, sub: str, port: int, upper: bool, dot: bool
) -> None:
    entry = ("." if dot else "") + (name.upper() if upper else name)
    assert bypasses_proxy(name, port, entry)
    assert bypasses_proxy(f"{sub}.{name}", port, entry)
    assert not bypasses_proxy(f"{sub}{name}", port, entry)
    assert bypasses_proxy(name, port, f"{entry}:{port}")
    assert not bypasses_proxy(name, port % 65535 + 1, f"{entry}:{port}")


@given(
    address=st.ip_addresses(),
    prefix=st.integers(0, 128),
    port=_PORTS,
)
def test_property_address_in_its_network(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, prefix: int, port: int
) -> None:
    prefix = min(prefix, address.max_prefixlen)
    network = ipaddress.ip_network(f"{address}/{prefix}", strict=False)
    host = str(address)
    assert bypasses_proxy(host, port, host)
    assert bypasses_proxy(host, port, str(network))
    bracketed = f"[{host}]" if address.version == 6 else host
    assert bypasses_proxy(host, port, f"{bracketed}:{port}")
    assert not bypasses_proxy(host, port % 65535 + 1, f"{bracketed}:{port}")


@given(host=st.text(max_size=30), port=st.integers(0, 70000), no_proxy=st.text(max_size=60))
def test_property_never_raises(host: str, port: int, no_proxy: str) -> None:
    assert isinstance(bypasses_proxy(host, port, no_proxy), bool)
    environ = {"http_proxy": "p:1", "no_proxy": no_proxy}
    assert proxy_from_env("http", host, port, environ) in (None, "http://p:1")


# -- no_proxy given by the caller (Session(no_proxy=...), the CLI's --noproxy) ----------

CONTEXT = ssl.create_default_context()


def _chooser(proxy: str | None, no_proxy: str | None, environ: dict[str, str]) -> ProxyChooser:
    return ProxyChooser(
        proxy, trust_env=True, ssl_context=CONTEXT, no_proxy=no_proxy, environ=environ
    )


def _chosen(chooser: ProxyChooser, url: str) -> str | None:
    proxy = chooser.proxy_for(parse_url(url), tr.Request("GET", url))
    return None if proxy is None else str(proxy)


def test_no_proxy_exempts_hosts_from_a_fixed_proxy() -> None:
    chooser = _chooser("http://proxy:3128", "localhost,.internal,10.0.0.0/8", {})
    assert _chosen(chooser, "http://localhost/") is None
    assert _chosen(chooser, "https://api.internal/") is None
    assert _chosen(chooser, "http://10.1.2.3:8080/") is None
    assert _chosen(chooser, "http://example.com/") == "http://proxy:3128"
    assert _chosen(_chooser("http://proxy:3128", "*", {}), "http://example.com/") is None


def test_no_proxy_replaces_the_environments() -> None:
    environ = {"http_proxy": "http://envproxy:8080", "no_proxy": "example.com"}
    assert _chosen(_chooser(None, None, environ), "http://example.com/") is None
    replaced = _chooser(None, "other.org", environ)
    assert _chosen(replaced, "http://example.com/") == "http://envproxy:8080"
    assert _chosen(replaced, "http://other.org/") is None


async def test_a_session_reaches_a_no_proxy_host_directly() -> None:
    """The proxy's port is closed: only a direct connection can succeed."""
    async with open_h11_server() as server:
        server.route("GET", "/", Reply(200, body=b"direct"))
        with socket.socket() as closed:
            closed.bind(("127.0.0.1", 0))
            proxy = f"http://127.0.0.1:{closed.getsockname()[1]}"
            async with tr.Session(proxy=proxy, no_proxy="127.0.0.1") as s:
                assert (await s.get(f"http://127.0.0.1:{server.port}/")).text == "direct"
            async with tr.Session(proxy=proxy, retries=0) as s:
                with pytest.raises(tr.ProxyError):
                    await s.get(f"http://127.0.0.1:{server.port}/")


@pytest.mark.parametrize(
    ("argv", "environ", "expected"),
    [
        (["--noproxy", "a.org", "http://x/"], {"no_proxy": "b.org"}, "a.org"),
        (["http://x/"], {"NO_PROXY": "b.org"}, "b.org"),
        (["-x", "http://p:1", "http://x/"], {"no_proxy": "b.org"}, "b.org"),  # as curl
        (["-x", "", "http://x/"], {"no_proxy": "b.org"}, None),  # no proxy at all
        (["-x", "", "--noproxy", "*", "http://x/"], {}, "*"),
    ],
)
def test_the_clis_noproxy(argv: list[str], environ: dict[str, str], expected: str | None) -> None:
    assert no_proxy_of(parse_args(argv), environ) == expected
