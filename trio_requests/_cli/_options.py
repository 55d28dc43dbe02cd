"""The command line, curl's way: a table of options and a parser for it.

curl's syntax rather than argparse's: short flags combine (``-sSL``), a short
option's value may be glued on (``-oout.bin``), options and URLs mix in any
order, a repeated option adds to a list (``-H``, ``-d``, ``-F``, ``-o``) or
the last one wins, and any flag can be turned off again with ``--no-<name>``.
Parsing is pure: it reads no file and touches no network, so a bad command
line fails (exit 2) before anything starts.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

#: What ``-O`` puts in :attr:`Options.outputs`: name the file after the URL.
REMOTE_NAME = "\0remote-name"
#: curl's default for ``--max-redirs`` (since 8.3; 7.x said 50 too).
DEFAULT_MAX_REDIRS = 50
#: curl's default for ``--parallel-max``.
DEFAULT_PARALLEL_MAX = 50


class UsageError(Exception):
    """The command line is wrong (exit 2, as curl's CURLE_FAILED_INIT)."""


class HttpMode(enum.Enum):
    """Which HTTP versions to offer: curl's ``--http1.1`` / ``--http2`` /
    ``--http2-prior-knowledge`` (the last one given wins)."""

    DEFAULT = "default"  # h2 and http/1.1 by ALPN over TLS, HTTP/1.1 in clear
    HTTP11 = "1.1"
    HTTP2 = "2"
    PRIOR_KNOWLEDGE = "prior-knowledge"


class DataKind(enum.Enum):
    """How a ``-d``-family value is read (curl's man page, "-d, --data")."""

    ASCII = "data"  # -d: @file read with CR and LF removed
    BINARY = "data-binary"  # @file read as is
    RAW = "data-raw"  # no @ meaning
    JSON = "json"  # as --data-binary, plus JSON Content-Type and Accept


@dataclass(frozen=True, slots=True)
class DataArg:
    kind: DataKind
    value: str


@dataclass(frozen=True, kw_only=True)
class Options:
    """Everything the command line said (only what was parsed, not yet read:
    ``@file`` arguments are opened later, by the request builder)."""

    urls: tuple[str, ...] = ()
    method: str | None = None
    headers: tuple[str, ...] = ()
    data: tuple[DataArg, ...] = ()
    form: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()  # paths or REMOTE_NAME, matched to URLs in order
    output_dir: str | None = None
    include: bool = False
    head: bool = False
    location: bool = False
    max_redirs: int = DEFAULT_MAX_REDIRS
    fail: bool = False
    silent: bool = False
    show_error: bool = False
    verbose: bool = False
    user: str | None = None
    user_agent: str | None = None
    referer: str | None = None
    compressed: bool = False
    http: HttpMode = HttpMode.DEFAULT
    cacert: str | None = None
    insecure: bool = False
    connect_timeout: float | None = None
    max_time: float | None = None
    retry: int = 0
    proxy: str | None = None
    proxy_user: str | None = None
    proxy_cacert: str | None = None
    proxy_insecure: bool = False
    noproxy: str | None = None
    socks5: str | None = None
    socks5_hostname: str | None = None
    parallel: bool = False
    parallel_max: int = DEFAULT_PARALLEL_MAX
    urls_file: str | None = None
    write_out: str | None = None
    stats: bool = False
    help: bool = False
    version: bool = False
    demo: bool = False

    @property
    def show_errors(self) -> bool:
        """curl prints error messages unless ``-s``; ``-S`` brings them back."""
        return not self.silent or self.show_error


class Kind(enum.Enum):
    FLAG = "flag"  # sets a bool; --no-<name> clears it
    TEXT = "text"  # a string; the last one wins
    LIST = "list"  # a string appended to a tuple
    MARK = "mark"  # no value: appends ``const`` to a list (-O)
    DATA = "data"  # a -d-family value: DataArg(const, value) appended to ``data``
    INT = "int"
    FLOAT = "float"  # seconds, e.g. --max-time 2.5


@dataclass(frozen=True, slots=True)
class Spec:
    """One option: its spellings, what it sets and how."""

    long: str
    short: str | None
    dest: str
    kind: Kind
    #: FLAG: the value to set; MARK: what to append; DATA: the DataKind
    const: Any = None
    help: str = ""
    metavar: str = ""  # how --help names the value


def _flag(long: str, short: str | None, dest: str, help: str, const: Any = True) -> Spec:
    return Spec(long, short, dest, Kind.FLAG, const, help)


def _value(long: str, short: str | None, dest: str, kind: Kind, metavar: str, help: str) -> Spec:
    return Spec(long, short, dest, kind, None, help, metavar)


def _data(long: str, short: str | None, kind: DataKind, help: str) -> Spec:
    return Spec(long, short, "data", Kind.DATA, kind, help, "data")


_PRIOR = HttpMode.PRIOR_KNOWLEDGE

SPECS: tuple[Spec, ...] = (
    _value("request", "X", "method", Kind.TEXT, "method", "request method, e.g. PUT"),
    _value("header", "H", "headers", Kind.LIST, "header", '"Name: value"; "Name:" removes it'),
    _data("data", "d", DataKind.ASCII, "POST data; @file (newlines dropped), @- stdin"),
    _data("data-ascii", None, DataKind.ASCII, "the same as --data"),
    _data("data-binary", None, DataKind.BINARY, "POST data; @file sent byte for byte"),
    _data("data-raw", None, DataKind.RAW, "POST data; a leading @ is just a character"),
    _data("json", None, DataKind.JSON, "POST JSON (sets Content-Type and Accept)"),
    _value("form", "F", "form", Kind.LIST, "name=value", "multipart field; name=@file uploads"),
    _value("output", "o", "outputs", Kind.LIST, "file", "write the body to a file, atomically"),
    Spec("remote-name", "O", "outputs", Kind.MARK, REMOTE_NAME, "name the file after the URL"),
    _value("output-dir", None, "output_dir", Kind.TEXT, "dir", "directory for -o and -O files"),
    _flag("include", "i", "include", "include the response headers in the output"),
    _flag("head", "I", "head", "HEAD request; show the headers only"),
    _flag("location", "L", "location", "follow redirects"),
    _value("max-redirs", None, "max_redirs", Kind.INT, "num", "redirects -L may follow (50)"),
    _flag("fail", "f", "fail", "exit 22 on an HTTP status >= 400, output nothing"),
    _flag("silent", "s", "silent", "no progress bar, no error messages"),
    _flag("show-error", "S", "show_error", "with -s: show error messages all the same"),
    _flag("verbose", "v", "verbose", "show connections, TLS, ALPN, streams and headers"),
    _value("user", "u", "user", Kind.TEXT, "user:password", "Basic authentication"),
    _value("user-agent", "A", "user_agent", Kind.TEXT, "name", "User-Agent to send"),
    _value("referer", "e", "referer", Kind.TEXT, "URL", "Referer to send"),
    _flag("compressed", None, "compressed", "ask for a compressed response, decode it"),
    _flag("http1.1", None, "http", "use HTTP/1.1 only", HttpMode.HTTP11),
    _flag("http2", None, "http", "offer HTTP/2 by ALPN over TLS (the default)", HttpMode.HTTP2),
    _flag("http2-prior-knowledge", None, "http", "speak HTTP/2 to http:// URLs", _PRIOR),
    _value("cacert", None, "cacert", Kind.TEXT, "file", "CA bundle to verify servers with"),
    _flag("insecure", "k", "insecure", "do not verify TLS certificates"),
    _value("connect-timeout", None, "connect_timeout", Kind.FLOAT, "seconds", "to connect"),
    _value("max-time", "m", "max_time", Kind.FLOAT, "seconds", "for each whole transfer"),
    _value("retry", None, "retry", Kind.INT, "num", "retry timeouts and 408/429/5xx N times"),
    _value("proxy", "x", "proxy", Kind.TEXT, "URL", "http(s):// or socks5(h):// proxy ('': none)"),
    _value("proxy-user", "U", "proxy_user", Kind.TEXT, "user:password", "proxy credentials"),
    _value("proxy-cacert", None, "proxy_cacert", Kind.TEXT, "file", "CA bundle for https proxies"),
    _flag("proxy-insecure", None, "proxy_insecure", "do not verify https proxies"),
    _value("noproxy", None, "noproxy", Kind.TEXT, "hosts", "hosts to reach directly ('*': all)"),
    _value("socks5", None, "socks5", Kind.TEXT, "host[:port]", "SOCKS5 proxy, names resolved here"),
    _value(
        "socks5-hostname", None, "socks5_hostname", Kind.TEXT, "host[:port]", "SOCKS5, remote DNS"
    ),
    _flag("parallel", "Z", "parallel", "transfer the URLs at once, over shared connections"),
    _value("parallel-max", None, "parallel_max", Kind.INT, "num", "transfers at once with -Z (50)"),
    _value(
        "urls-file", None, "urls_file", Kind.TEXT, "file", "URLs to fetch, one a line (- stdin)"
    ),
    _value("url", None, "urls", Kind.LIST, "URL", "a URL, as a bare argument is"),
    _value("write-out", "w", "write_out", Kind.TEXT, "format", "e.g. '%{http_code}\\n' after each"),
    _flag("stats", None, "stats", "print connection and stream statistics at the end"),
    _flag("demo", None, "demo", "the offline demo: many requests, one connection"),
    _flag("help", "h", "help", "this help"),
    _flag("version", "V", "version", "the version"),
)

_BY_LONG = {spec.long: spec for spec in SPECS}
_BY_SHORT = {spec.short: spec for spec in SPECS if spec.short is not None}


def parse_args(argv: Sequence[str]) -> Options:
    """The :class:`Options` of a command line (without the program name).

    Raises:
        UsageError: unknown option, missing or malformed value; the message
            names the option as curl does.
    """
    values: dict[str, Any] = {}
    for spec, value in _tokens(list(argv)):
        _apply(values, spec, value)
    options = Options(**values)
    _check(options)
    return options


def _tokens(args: list[str]) -> Iterator[tuple[Spec | None, Any]]:
    """(spec, raw value) pairs in order; spec None is a URL."""
    position = 0
    while position < len(args):
        arg = args[position]
        position += 1
        if arg == "--":
            yield from ((None, url) for url in args[position:])
            return
        if arg.startswith("--"):
            spec, value, used = _long(arg[2:], args, position)
            position += used
            yield spec, value
        elif arg.startswith("-") and len(arg) > 1:
            for spec, value, used in _shorts(arg, args, position):
                position += used
                yield spec, value
        else:
            yield None, arg


def _long(name: str, args: list[str], position: int) -> tuple[Spec, Any, int]:
    spec = _BY_LONG.get(name)
    if spec is None and name.startswith("no-"):
        negated = _BY_LONG.get(name[3:])
        if negated is not None and negated.kind is Kind.FLAG:
            return negated, False, 0
    if spec is None:
        raise UsageError(f"option --{name}: is unknown")
    if spec.kind in (Kind.FLAG, Kind.MARK):
        return spec, spec.const, 0
    if position >= len(args):
        raise UsageError(f"option --{name}: requires parameter")
    return spec, args[position], 1


def _shorts(arg: str, args: list[str], position: int) -> Iterator[tuple[Spec, Any, int]]:
    """``-sSL``, ``-o file``, ``-ofile``: flags until one that takes a value."""
    letters = arg[1:]
    for index, letter in enumerate(letters):
        spec = _BY_SHORT.get(letter)
        if spec is None:
            raise UsageError(f"option -{letter}: is unknown")
        if spec.kind in (Kind.FLAG, Kind.MARK):
            yield spec, spec.const, 0
            continue
        glued = letters[index + 1 :]
        if glued:
            yield spec, glued, 0
        elif position < len(args):
            yield spec, args[position], 1
        else:
            raise UsageError(f"option -{letter}: requires parameter")
        return


def _apply(values: dict[str, Any], spec: Spec | None, value: Any) -> None:
    if spec is None:
        values["urls"] = (*values.get("urls", ()), value)
        return
    name = _spelling(spec)
    if spec.kind in (Kind.LIST, Kind.MARK, Kind.DATA):
        item = DataArg(spec.const, value) if spec.kind is Kind.DATA else value
        values[spec.dest] = (*values.get(spec.dest, ()), item)
    elif spec.kind is Kind.INT:
        values[spec.dest] = _number(name, value, int)
    elif spec.kind is Kind.FLOAT:
        values[spec.dest] = _number(name, value, float)
    elif spec.kind is Kind.FLAG and spec.dest == "http" and value is False:
        values[spec.dest] = HttpMode.DEFAULT
    else:
        values[spec.dest] = value


def _spelling(spec: Spec) -> str:
    return f"-{spec.short}, --{spec.long}" if spec.short else f"--{spec.long}"


def _number(name: str, text: str, kind: type[int | float]) -> Any:
    try:
        number = kind(text)
    except ValueError:
        raise UsageError(f"option {name}: expected a proper numerical parameter") from None
    if isinstance(number, float) and not (math.isfinite(number) and number >= 0):
        raise UsageError(f"option {name}: expected a proper numerical parameter")
    return number


def _check(options: Options) -> None:
    if options.parallel_max < 1:
        raise UsageError("option --parallel-max: expected a number of at least 1")
    if options.retry < 0:
        raise UsageError("option --retry: expected a proper numerical parameter")
    if options.max_redirs < -1:
        raise UsageError("option --max-redirs: expected -1 (any) or a number >= 0")
    body = bool(options.data) + bool(options.form) + options.head
    if body > 1:
        raise UsageError("you can only select one HTTP request method! (-d, -F and -I conflict)")


def with_urls(options: Options, urls: Sequence[str]) -> Options:
    """*options* with more URLs (from ``--urls-file``) after its own."""
    return replace(options, urls=(*options.urls, *urls))
