"""The RFC 6265 cookie jar: parsing, scoping, ordering and expiry."""

from __future__ import annotations

import calendar
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from trio_requests._cookies import (
    MAX_COOKIES,
    Cookies,
    default_path,
    domain_match,
    parse_cookie_date,
    path_match,
)

NOW = 1_700_000_000.0  # 2023-11-14


def jar_from(url: str, *set_cookie: str, now: float = NOW) -> Cookies:
    jar = Cookies()
    jar.extract(url, set_cookie, now)
    return jar


# -- RFC 6265 §3.1 examples --------------------------------------------------------------


def test_rfc_example_host_only_cookie() -> None:
    jar = jar_from("https://www.example.com/", "SID=31d4d96e407aad42")
    assert jar.header_for("https://www.example.com/", NOW) == "SID=31d4d96e407aad42"
    assert jar.header_for("https://sub.www.example.com/", NOW) is None  # host-only
    assert jar.header_for("https://example.com/", NOW) is None


def test_rfc_example_domain_cookies_and_secure() -> None:
    jar = jar_from(
        "https://www.example.com/",
        "SID=31d4d96e407aad42; Path=/; Secure; HttpOnly",
        "lang=en-US; Path=/; Domain=example.com",
    )
    assert jar.header_for("https://www.example.com/", NOW) == "SID=31d4d96e407aad42; lang=en-US"
    assert jar.header_for("http://www.example.com/", NOW) == "lang=en-US"  # not Secure
    assert jar.header_for("http://docs.example.com/x", NOW) == "lang=en-US"
    assert jar.header_for("http://notexample.com/", NOW) is None


def test_rfc_example_expires_then_removal() -> None:
    jar = jar_from("http://example.com/", "lang=en-US; Expires=Wed, 09 Jun 2100 10:18:14 GMT")
    assert jar.get("lang") == "en-US"
    jar.extract("http://example.com/", ["lang=; Expires=Sun, 06 Nov 1994 08:49:37 GMT"], NOW)
    assert "lang" not in jar and len(jar) == 0


# -- parsing (§5.2) ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "name", "value"),
    [
        ("a=b", "a", "b"),
        ("  a  =  b c  ; Path=/", "a", "b c"),
        ("a=", "a", ""),
        ("a=b=c", "a", "b=c"),
        ('a="quoted"', "a", '"quoted"'),
        ("a=b;;; ;", "a", "b"),
        ("a=\tb\t", "a", "b"),
    ],
)
def test_name_value_parsing(header: str, name: str, value: str) -> None:
    assert jar_from("http://h.test/", header).items() == [(name, value)]


@pytest.mark.parametrize(
    "header",
    ["", "novalue", "=value", " =value", "a=b\x01", "a=\x7f", "a=" + "x" * 4096],
)
def test_invalid_cookies_are_ignored(header: str) -> None:
    assert len(jar_from("http://h.test/", header)) == 0


@pytest.mark.parametrize(
    ("attrs", "alive_at"),
    [
        ("Max-Age=60", [NOW + 59]),
        ("Max-Age=60; Expires=Thu, 01 Jan 1970 00:00:00 GMT", [NOW + 59]),  # Max-Age wins
        ("Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=60", [NOW + 59]),
        ("Max-Age=abc", [NOW + 10**9]),  # ignored: a session cookie
        ("Max-Age=+5", [NOW + 10**9]),
        ("Expires=garbage", [NOW + 10**9]),
        ("Max-Age=10; Max-Age=100", [NOW + 99]),  # the last one wins
    ],
)
def test_expiry_attributes(attrs: str, alive_at: list[float]) -> None:
    jar = jar_from("http://h.test/", f"a=1; {attrs}")
    for when in alive_at:
        assert jar.header_for("http://h.test/", when) == "a=1"
    if "Max-Age=60" in attrs:
        assert jar.header_for("http://h.test/", NOW + 60) is None
        assert len(jar) == 0  # expired cookies are dropped


@pytest.mark.parametrize("max_age", ["0", "-1", "-999"])
def test_non_positive_max_age_deletes(max_age: str) -> None:
    jar = jar_from("http://h.test/", "a=1", "b=2")
    jar.extract("http://h.test/", [f"a=x; Max-Age={max_age}"], NOW)
    assert jar.items() == [("b", "2")]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Sun, 06 Nov 1994 08:49:37 GMT", (1994, 11, 6, 8, 49, 37)),  # RFC 1123
        ("Sunday, 06-Nov-94 08:49:37 GMT", (1994, 11, 6, 8, 49, 37)),  # RFC 850
        ("Sun Nov  6 08:49:37 1994", (1994, 11, 6, 8, 49, 37)),  # asctime
        ("Wed, 09-Jun-2021 10:18:14 GMT", (2021, 6, 9, 10, 18, 14)),  # Netscape
        ("9 june 21 1:2:3", (2021, 6, 9, 1, 2, 3)),
        ("Thu, 01 Jan 1970 00:00:00 GMT", (1970, 1, 1, 0, 0, 0)),
        ("31 Dec 1601 23:59:59", (1601, 12, 31, 23, 59, 59)),
    ],
)
def test_cookie_date_formats(text: str, expected: tuple[int, ...]) -> None:
    assert parse_cookie_date(text) == calendar.timegm((*expected, 0, 0, 0))


@pytest.mark.parametrize(
    "text",
    [
        "",
        "garbage",
        "06 Nov 1994",  # no time
        "Nov 1994 08:49:37",  # no day
        "31 Feb 2020 00:00:00",  # no such day
        "32 Jan 2020 00:00:00",
        "1 Jan 1600 00:00:00",  # before 1601
        "1 Jan 2020 24:00:00",
        "1 Jan 2020 00:60:00",
    ],
)
def test_bad_cookie_dates(text: str) -> None:
    assert parse_cookie_date(text) is None


@given(st.datetimes(min_value=datetime(1601, 1, 1), max_value=datetime(9999, 12, 31)))
def test_cookie_date_round_trips_http_dates(when: datetime) -> None:
    when = when.replace(microsecond=0, tzinfo=UTC)
    assert parse_cookie_date(format_datetime(when, usegmt=True)) == when.timestamp()


@given(st.text(max_size=60))
def test_cookie_date_never_raises(text: str) -> None:
    parse_cookie_date(text)


# -- domains (§5.1.3, §5.3 steps 5-6) ------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "domain", "sent_to", "not_sent_to"),
    [
        ("http://www.example.com/", "example.com", ["example.com", "a.b.example.com"], ["com"]),
        ("http://www.example.com/", ".EXAMPLE.com", ["example.com"], ["badexample.com"]),
        ("http://example.com/", "example.com", ["example.com", "x.example.com"], []),
    ],
)
def test_domain_attribute_widens_scope(
    url: str, domain: str, sent_to: list[str], not_sent_to: list[str]
) -> None:
    jar = jar_from(url, f"a=1; Domain={domain}")
    for host in sent_to:
        assert jar.header_for(f"http://{host}/", NOW) == "a=1", host
    for host in not_sent_to:
        assert jar.header_for(f"http://{host}/", NOW) is None, host


@pytest.mark.parametrize(
    ("url", "domain"),
    [
        ("http://www.example.com/", "other.com"),
        ("http://www.example.com/", "sub.www.example.com"),  # narrower than the host
        ("http://www.example.com/", "com"),  # a public suffix
        ("http://example.com/", "ample.com"),
        ("http://1.2.3.4/", "2.3.4"),
        ("http://1.2.3.4/", "3.4"),
    ],
)
def test_foreign_domain_attribute_rejects_the_cookie(url: str, domain: str) -> None:
    assert len(jar_from(url, f"a=1; Domain={domain}")) == 0


@pytest.mark.parametrize(
    ("url", "domain", "other"),
    [
        ("http://localhost/", "localhost", "http://x.localhost/"),
        ("http://1.2.3.4/", "1.2.3.4", "http://x.1.2.3.4/"),
        ("http://[::1]/", "::1", "http://[::2]/"),
    ],
)
def test_single_label_and_ip_hosts_get_host_only_cookies(url: str, domain: str, other: str) -> None:
    jar = jar_from(url, f"a=1; Domain={domain}")
    assert jar.header_for(url, NOW) == "a=1"
    assert jar.header_for(other, NOW) is None


def test_cookies_do_not_isolate_ports() -> None:  # RFC 6265 §8.5
    jar = jar_from("http://127.0.0.1:8000/", "a=1")
    assert jar.header_for("http://127.0.0.1:9000/", NOW) == "a=1"


label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?", fullmatch=True)
tld = st.from_regex(r"[a-z]{2,6}", fullmatch=True)  # never numeric: no host is an IP
hostname = st.builds(
    lambda labels, top: ".".join([*labels, top]), st.lists(label, min_size=1, max_size=3), tld
)


@settings(max_examples=50)
@given(host=hostname, sub=label)
def test_domain_match_properties(host: str, sub: str) -> None:
    assert domain_match(host, host)
    assert domain_match(f"{sub}.{host}", host)
    assert not domain_match(host, f"{sub}.{host}")
    assert not domain_match(f"{sub}{host}", host)


@settings(max_examples=50)
@given(host=hostname, sub=label)
def test_domain_cookie_reaches_subdomains_host_only_does_not(host: str, sub: str) -> None:
    wide = jar_from(f"http://{host}/", f"a=1; Domain={host}")
    narrow = jar_from(f"http://{host}/", "a=1")
    assert wide.header_for(f"http://{sub}.{host}/", NOW) == "a=1"
    assert narrow.header_for(f"http://{sub}.{host}/", NOW) is None
    assert narrow.header_for(f"http://{host.upper()}/", NOW) == "a=1"


# -- paths (§5.1.4) ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_path", "expected"),
    [
        ("", "/"),
        ("x", "/"),
        ("/", "/"),
        ("/a", "/"),
        ("/a/", "/a"),
        ("/a/b", "/a"),
        ("/a/b/c", "/a/b"),
    ],
)
def test_default_path(request_path: str, expected: str) -> None:
    assert default_path(request_path) == expected


@pytest.mark.parametrize(
    ("request_path", "cookie_path", "matches"),
    [
        ("/docs", "/docs", True),
        ("/docs/", "/docs", True),
        ("/docs/web", "/docs", True),
        ("/docs/web", "/docs/", True),
        ("/docsets", "/docs", False),
        ("/", "/docs", False),
        ("/anything", "/", True),
    ],
)
def test_path_match(request_path: str, cookie_path: str, matches: bool) -> None:
    assert path_match(request_path, cookie_path) is matches


@settings(max_examples=50)
@given(st.from_regex(r"(/[a-z]{0,3}){1,4}", fullmatch=True))
def test_default_path_matches_the_request_path(request_path: str) -> None:
    assert path_match(request_path, default_path(request_path))


def test_path_attribute_and_default() -> None:
    jar = jar_from("http://h.test/app/login", "a=1", "b=2; Path=/", "c=3; Path=relative")
    assert jar.header_for("http://h.test/app/x", NOW) == "a=1; c=3; b=2"
    assert jar.header_for("http://h.test/other", NOW) == "b=2"


def test_longer_paths_first_then_older() -> None:
    jar = jar_from("http://h.test/", "z=1; Path=/", "y=2; Path=/a/b", "x=3; Path=/a", "w=4; Path=/")
    assert jar.header_for("http://h.test/a/b/c?q=1", NOW) == "y=2; x=3; z=1; w=4"


def test_replacing_a_cookie_keeps_its_creation_order() -> None:
    jar = jar_from("http://h.test/", "a=1", "b=2")
    jar.extract("http://h.test/", ["a=new"], NOW + 5)
    assert jar.header_for("http://h.test/", NOW + 5) == "a=new; b=2"


# -- Secure ------------------------------------------------------------------------------


def test_secure_cookie_from_http_is_ignored() -> None:  # RFC 6265bis §5.7
    assert len(jar_from("http://h.test/", "a=1; Secure")) == 0


# -- the jar API ---------------------------------------------------------------------------


def test_manual_cookies_go_to_every_host_unless_scoped() -> None:
    jar = Cookies()
    jar.set("any", "1")
    jar.set("scoped", "2", domain=".example.com", path="/api")
    assert jar.header_for("http://127.0.0.1/", NOW) == "any=1"
    assert jar.header_for("http://x.example.com/api/v1", NOW) == "scoped=2; any=1"


def test_get_delete_clear_and_container_protocol() -> None:
    jar = jar_from("http://a.test/", "s=1", "t=2")
    jar.extract("http://b.test/", ["s=3"], NOW)
    assert len(jar) == 3 and sorted(jar) == ["s", "s", "t"] and "t" in jar and "u" not in jar
    with pytest.raises(ValueError, match="several cookies named 's'"):
        jar.get("s")
    assert jar.get("s", domain="b.test") == "3"
    assert jar.get("missing", "dflt") == "dflt"
    jar.delete("s", domain="a.test")
    assert jar.get("s") == "3"
    jar.clear("b.test")
    assert jar.items() == [("t", "2")] and repr(jar) == "<Cookies [('t', '2')]>"
    jar.clear()
    assert len(jar) == 0


def test_same_value_under_two_domains_is_not_a_conflict() -> None:
    jar = jar_from("http://a.test/", "s=1")
    jar.extract("http://b.test/", ["s=1"], NOW)
    assert jar.get("s") == "1"


@pytest.mark.parametrize("name", ["", "a b", "a=b", "a;b", "a\nb", "ä"])
def test_set_rejects_bad_names(name: str) -> None:
    with pytest.raises(ValueError, match="invalid cookie name"):
        Cookies().set(name, "v")


@pytest.mark.parametrize("value", ["a;b", "a\r\nb", "\x00"])
def test_set_rejects_bad_values(value: str) -> None:
    with pytest.raises(ValueError, match="invalid cookie value"):
        Cookies().set("n", value)


def test_jar_size_is_bounded_oldest_evicted_first() -> None:
    jar = Cookies()
    jar.extract("http://h.test/", (f"c{i}={i}" for i in range(MAX_COOKIES + 10)), NOW)
    assert len(jar) == MAX_COOKIES
    assert "c9" not in jar and "c10" in jar


def test_url_without_host_gets_nothing() -> None:
    jar = Cookies()
    jar.set("a", "1")
    jar.extract("file:///tmp/x", ["b=2"], NOW)
    assert jar.header_for("file:///tmp/x", NOW) is None and len(jar) == 1


@settings(max_examples=50)
@given(
    name=st.from_regex(r"[A-Za-z0-9_!#$%&'*+.^`|~-]{1,20}", fullmatch=True),
    value=st.from_regex(r"[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]{0,40}", fullmatch=True),
)
def test_set_cookie_round_trips_to_the_cookie_header(name: str, value: str) -> None:
    assume(value.strip() == value)
    jar = jar_from("https://h.test/p/q", f"{name}={value}; Path=/p; Secure")
    assert jar.header_for("https://h.test/p/r", NOW) == f"{name}={value}"
    assert jar.get(name) == value
