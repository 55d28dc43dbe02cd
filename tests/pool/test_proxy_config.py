"""Proxy URLs: parsing, the Basic credentials header, masking of the password
in str/repr/errors, identity (eq/hash), and proxies on Endpoints."""

from __future__ import annotations

import base64
import ssl

import pytest

import trio_conpool
from trio_conpool import Endpoint, Proxy

SECRET = "s3cr3t-Pa55"


# ------------------------------------------------------------------ parsing


@pytest.mark.parametrize(
    ("url", "scheme"),
    [
        ("http://proxy.test:3128", "http"),
        ("HTTP://proxy.test:3128", "http"),
        ("https://proxy.test:3128", "https"),
        ("HTTPS://proxy.test:3128", "https"),
        ("socks5://proxy.test:3128", "socks5"),
        ("SOCKS5://proxy.test:3128", "socks5"),
        ("socks5h://proxy.test:3128", "socks5h"),
        ("Socks5H://proxy.test:3128", "socks5h"),
    ],
)
def test_schemes_are_case_insensitive(url: str, scheme: str) -> None:
    proxy = Proxy(url)
    assert (proxy.scheme, proxy.host, proxy.port) == (scheme, "proxy.test", 3128)
    assert (proxy.username, proxy.password) == (None, None)


def test_exported() -> None:
    assert trio_conpool.Proxy is Proxy


@pytest.mark.parametrize("scheme", ["http", "socks5", "socks5h"])
def test_default_port_is_1080(scheme: str) -> None:
    assert Proxy(f"{scheme}://proxy.test").port == 1080
    assert Proxy(f"{scheme}://proxy.test/").port == 1080


def test_https_default_port_is_443_as_in_curl() -> None:
    assert Proxy("https://proxy.test").port == 443
    assert str(Proxy("https://proxy.test/")) == "https://proxy.test:443"


def test_explicit_port() -> None:
    assert Proxy("http://proxy.test:8080").port == 8080
    assert Proxy("socks5://10.0.0.1:1").port == 1
    assert Proxy("socks5://10.0.0.1:65535").port == 65535


def test_ipv6_host_in_brackets() -> None:
    proxy = Proxy("http://[2001:db8::1]:3128")
    assert (proxy.host, proxy.port) == ("2001:db8::1", 3128)
    assert str(proxy) == "http://[2001:db8::1]:3128"
    assert Proxy("socks5://[::1]").port == 1080


def test_host_is_lowercased() -> None:
    assert Proxy("http://Proxy.Example.TEST:3128").host == "proxy.example.test"


def test_credentials_are_percent_decoded() -> None:
    proxy = Proxy("http://us%40er:p%3Ass%2Fw%25rd%20x@proxy.test:3128")
    assert proxy.username == "us@er"
    assert proxy.password == "p:ss/w%rd x"


def test_username_without_password() -> None:
    proxy = Proxy("socks5://alice@proxy.test")
    assert (proxy.username, proxy.password) == ("alice", None)


# --------------------------------------------------------- Proxy-Authorization


def test_proxy_authorization_is_basic() -> None:
    proxy = Proxy("http://Aladdin:open%20sesame@proxy.test:3128")
    # RFC 7617 section 2's example.
    assert proxy.proxy_authorization == "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="


def basic(pair: str) -> str:
    return "Basic " + base64.b64encode(pair.encode()).decode("ascii")


def test_proxy_authorization_utf8_and_empty_password() -> None:
    assert Proxy("http://j%C3%BCrgen:p%C3%A4ss@proxy.test").proxy_authorization == basic(
        "jürgen:päss"
    )
    assert Proxy("http://alice@proxy.test").proxy_authorization == basic("alice:")
    assert Proxy("http://alice:@proxy.test").proxy_authorization == basic("alice:")


def test_proxy_authorization_none_without_credentials() -> None:
    assert Proxy("http://proxy.test:3128").proxy_authorization is None


# ---------------------------------------------------------- password masking


@pytest.mark.parametrize(
    "url",
    [
        f"http://alice:{SECRET}@proxy.test:3128",
        f"socks5://alice:{SECRET}@proxy.test",
        f"socks5h://alice:{SECRET}@[::1]:1081",
    ],
)
def test_str_and_repr_hide_the_password(url: str) -> None:
    proxy = Proxy(url)
    for text in (str(proxy), repr(proxy), proxy.url):
        assert SECRET not in text
        assert "alice" in text
        assert proxy.host in text
        assert str(proxy.port) in text


def test_str_and_repr_exact() -> None:
    proxy = Proxy(f"SOCKS5://alice:{SECRET}@Proxy.Test:1081")
    assert str(proxy) == "socks5://alice@proxy.test:1081"
    assert repr(proxy) == "Proxy('socks5://alice@proxy.test:1081')"
    assert str(Proxy("http://proxy.test")) == "http://proxy.test:1080"


def test_password_spelled_with_escapes_is_masked() -> None:
    proxy = Proxy("http://alice:p%40ss%3Aword@proxy.test:3128")
    assert proxy.password == "p@ss:word"
    for text in (str(proxy), repr(proxy)):
        for spelling in ("p@ss:word", "p%40ss%3Aword", "p%40ss", "word"):
            assert spelling not in text


def test_endpoint_str_and_repr_hide_the_password() -> None:
    endpoint = Endpoint("target.test", 443, proxy=Proxy(f"http://alice:{SECRET}@proxy.test"))
    assert SECRET not in str(endpoint)
    assert SECRET not in repr(endpoint)


# ------------------------------------------------------------------ identity


def test_same_proxy_is_equal_and_hashes_equal() -> None:
    a = Proxy(f"http://alice:{SECRET}@proxy.test:3128")
    b = Proxy(f"HTTP://alice:{SECRET}@PROXY.test:3128")
    assert a == b
    assert hash(a) == hash(b)
    assert len({a, b}) == 1
    # The default port written out or not: the same proxy.
    assert Proxy("socks5://proxy.test") == Proxy("socks5://proxy.test:1080")


def test_different_password_is_a_different_proxy() -> None:
    a = Proxy("http://alice:one@proxy.test:3128")
    b = Proxy("http://alice:two@proxy.test:3128")
    assert a != b
    assert str(a) == str(b)  # they print alike, yet are different keys
    assert len({a, b}) == 2
    ea = Endpoint("target.test", 443, proxy=a)
    eb = Endpoint("target.test", 443, proxy=b)
    assert ea != eb
    assert len({ea, eb}) == 2


@pytest.mark.parametrize(
    "other",
    [
        "socks5://alice:one@proxy.test:3128",  # scheme
        "http://bob:one@proxy.test:3128",  # user
        "http://proxy.test:3128",  # no credentials
        "http://alice:one@proxy.test:3129",  # port
        "http://alice:one@other.test:3128",  # host
    ],
)
def test_any_difference_is_a_different_proxy(other: str) -> None:
    assert Proxy("http://alice:one@proxy.test:3128") != Proxy(other)


def test_escaped_and_plain_spelling_are_the_same_proxy() -> None:
    assert Proxy("http://alice:a%62c@proxy.test") == Proxy("http://alice:abc@proxy.test")


# -------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "url",
    [
        f"ftp://alice:{SECRET}@proxy.test:3128",
        f"socks4://alice:{SECRET}@proxy.test:3128",
        f"http://alice:{SECRET}@:3128",  # no host
        f"http://alice:{SECRET}@",  # no host
        "http://",
        "",
        f"http://alice:{SECRET}@proxy.test:http",  # bad port
        f"http://alice:{SECRET}@proxy.test:99999",  # port out of range
        f"http://alice:{SECRET}@proxy.test:-1",
        f"http://alice:{SECRET}@[::1:3128",  # unclosed bracket
        f"http://alice:{SECRET}@proxy.test:3128/path",
        f"http://alice:{SECRET}@proxy.test:3128/?q=1",
        f"http://alice:{SECRET}@proxy.test:3128?q=1",
        f"http://alice:{SECRET}@proxy.test:3128#frag",
        "proxy.test:3128",  # no scheme
    ],
)
def test_invalid_urls_raise_without_the_password(url: str) -> None:
    with pytest.raises(ValueError) as info:
        Proxy(url)
    assert SECRET not in str(info.value)


def test_unsupported_scheme_lists_the_supported_ones() -> None:
    with pytest.raises(ValueError) as info:
        Proxy(f"socks4://alice:{SECRET}@proxy.test:3128")
    message = str(info.value)
    assert "unsupported proxy scheme" in message
    assert "http, https, socks5, socks5h" in message
    assert "alice:***@proxy.test:3128" in message
    assert SECRET not in message


def test_https_proxy_credentials_make_a_basic_header() -> None:
    proxy = Proxy(f"https://alice:{SECRET}@proxy.test")
    assert proxy.speaks_http
    expected = base64.b64encode(f"alice:{SECRET}".encode()).decode()
    assert proxy.proxy_authorization == f"Basic {expected}"
    assert not Proxy("socks5h://proxy.test").speaks_http


def test_ssl_context_is_part_of_the_identity() -> None:
    one, other = ssl.create_default_context(), ssl.create_default_context()
    assert Proxy("https://p.test", ssl_context=one) == Proxy("https://p.test", ssl_context=one)
    assert Proxy("https://p.test", ssl_context=one) != Proxy("https://p.test", ssl_context=other)
    assert Proxy("https://p.test", ssl_context=one) != Proxy("https://p.test")
    target = Endpoint("t.test", 443, proxy=Proxy("https://p.test", ssl_context=one))
    assert target != Endpoint("t.test", 443, proxy=Proxy("https://p.test", ssl_context=other))
    assert len({Proxy("https://p.test", ssl_context=c) for c in (one, one, other)}) == 2


def test_ssl_context_is_not_shown() -> None:
    proxy = Proxy("https://p.test", ssl_context=ssl.create_default_context())
    assert repr(proxy) == "Proxy('https://p.test:443')"


@pytest.mark.parametrize("scheme", ["http", "socks5", "socks5h"])
def test_ssl_context_only_for_https(scheme: str) -> None:
    with pytest.raises(ValueError, match="for https:// proxies"):
        Proxy(f"{scheme}://p.test", ssl_context=ssl.create_default_context())


def test_ssl_context_must_be_a_context() -> None:
    with pytest.raises(ValueError, match=r"must be an ssl\.SSLContext"):
        Proxy("https://p.test", ssl_context="/etc/ssl/ca.pem")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("ftp://proxy.test", "unsupported proxy scheme"),
        ("http://:3128", "has no host"),
        ("http://proxy.test:port", "bad port"),
        ("http://proxy.test/some/path", "must not have a path"),
        ("http://proxy.test?x=1", "must not have a path, query or fragment"),
    ],
)
def test_error_messages_say_what_is_wrong(url: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        Proxy(url)


def test_not_a_string() -> None:
    with pytest.raises(ValueError, match="needs a URL string"):
        Proxy(b"http://proxy.test")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "url",
    [f"alice:{SECRET}@proxy.test:3128", f"//alice:{SECRET}@proxy.test:3128"],
)
def test_no_scheme_error_hides_the_password(url: str) -> None:
    with pytest.raises(ValueError) as info:
        Proxy(url)
    assert SECRET not in str(info.value)


def test_port_zero_is_a_bad_port() -> None:
    with pytest.raises(ValueError):
        Proxy("http://proxy.test:0")


# ----------------------------------------------------------------- Endpoints


def test_endpoint_str_says_via() -> None:
    proxy = Proxy(f"socks5h://alice:{SECRET}@proxy.test:1081")
    endpoint = Endpoint("target.test", 443, proxy=proxy)
    assert str(endpoint) == "tcp://target.test:443 via socks5h://alice@proxy.test:1081"
    assert "via" not in str(Endpoint("target.test", 443))
    assert str(Endpoint("::1", 80, proxy=Proxy("http://[::2]:3128"))) == (
        "tcp://[::1]:80 via http://[::2]:3128"
    )


def test_endpoints_with_different_proxies_are_different() -> None:
    a = Endpoint("target.test", 443, proxy=Proxy("http://proxy.test:3128"))
    b = Endpoint("target.test", 443, proxy=Proxy("socks5://proxy.test:3128"))
    c = Endpoint("target.test", 443)
    same = Endpoint("target.test", 443, proxy=Proxy("HTTP://proxy.test:3128"))
    assert len({a, b, c}) == 3
    assert a != c
    assert a == same
    assert hash(a) == hash(same)


def test_unix_endpoint_cannot_take_a_proxy() -> None:
    with pytest.raises(ValueError, match="cannot go through a proxy"):
        Endpoint("localhost", 0, unix_path="/x", proxy=Proxy("http://proxy.test"))


def test_endpoint_proxy_must_be_a_proxy() -> None:
    with pytest.raises(ValueError, match="must be a Proxy"):
        Endpoint("target.test", 443, proxy="http://proxy.test")  # type: ignore[arg-type]
