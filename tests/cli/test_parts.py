"""The command line's pure parts, without a subprocess: parsing, -w, the
progress line, the exit-status rule, error classification, ordered stdout."""

from __future__ import annotations

import os
import socket

import pytest
import trio

from trio_requests import ConnectError, RemoteProtocolError, Request, TLSError
from trio_requests._cli._failures import ExitCode, Failure, Seen, classify
from trio_requests._cli._options import REMOTE_NAME, DataKind, HttpMode, UsageError, parse_args
from trio_requests._cli._output import OrderedStdout
from trio_requests._cli._progress import bar_line
from trio_requests._cli._request import build_plan, masked
from trio_requests._cli._run import exit_code
from trio_requests._cli._transfer import Job, Outcome
from trio_requests._cli._writeout import TransferFacts, render


def test_short_flags_combine_and_values_glue_on() -> None:
    options = parse_args(["-sSLfo", "out", "-XPUT", "http://a/", "-Hx: 1", "-Z", "http://b/"])
    assert (options.silent, options.show_error, options.location, options.fail) == (True,) * 4
    assert options.outputs == ("out",)
    assert options.method == "PUT"
    assert options.headers == ("x: 1",)
    assert options.urls == ("http://a/", "http://b/")
    assert options.parallel


def test_repeated_options_add_up_and_last_wins() -> None:
    options = parse_args(
        [
            "-d",
            "a",
            "--data-binary",
            "@f",
            "--json",
            "{}",
            "-O",
            "-o",
            "x",
            "--http1.1",
            "--http2",
            "u",
        ]
    )
    assert [(d.kind, d.value) for d in options.data] == [
        (DataKind.ASCII, "a"),
        (DataKind.BINARY, "@f"),
        (DataKind.JSON, "{}"),
    ]
    assert options.outputs == (REMOTE_NAME, "x")
    assert options.http is HttpMode.HTTP2


def test_no_prefix_turns_a_flag_off() -> None:
    assert not parse_args(["-L", "--no-location", "u"]).location
    assert (
        parse_args(["--http2-prior-knowledge", "--no-http2-prior-knowledge", "u"]).http
        is HttpMode.DEFAULT
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--nope"], "option --nope: is unknown"),
        (["-q"], "option -q: is unknown"),
        (["-o"], "option -o: requires parameter"),
        (["--max-time", "soon"], "option -m, --max-time: expected a proper numerical parameter"),
        (["--max-time", "-1"], "option -m, --max-time: expected a proper numerical parameter"),
        (["--parallel-max", "0"], "--parallel-max"),
        (["-d", "x", "-I", "u"], "only select one HTTP request method"),
    ],
)
def test_bad_command_lines(argv: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_args(argv)


def test_everything_after_double_dash_is_a_url() -> None:
    assert parse_args(["--", "-v", "--stats"]).urls == ("-v", "--stats")


def test_plan_headers_override_and_remove() -> None:
    options = parse_args(
        ["--json", "{}", "-H", "Accept: text/x", "-H", "User-Agent:", "-H", "X-Empty;", "u"]
    )
    plan = build_plan(options, warn=lambda text: None)
    assert plan.method == "POST"
    assert plan.headers == (
        ("Content-Type", "application/json"),
        ("Accept", "text/x"),
        ("X-Empty", ""),
    )


def test_a_header_that_would_split_the_request_fails_before_any_io() -> None:
    with pytest.raises(Failure, match="CR, LF or NUL") as caught:
        build_plan(parse_args(["-H", "X-A: 1\r\nX-B: 2", "u"]), warn=lambda text: None)
    assert caught.value.code is ExitCode.BAD_FUNCTION_ARGUMENT


def test_missing_data_file_warns_and_sends_empty() -> None:
    warnings: list[str] = []
    plan = build_plan(parse_args(["-d", "@/nonexistent/file", "u"]), warn=warnings.append)
    assert plan.content == b""
    assert "Couldn't read data from file" in warnings[0]


def test_masked_credentials() -> None:
    assert masked("Authorization", "Basic dXNlcjpzZWNyZXQ=") == "Basic [masked]"
    assert masked("cookie", "session=abc") == "[masked]"
    assert masked("Accept", "*/*") == "*/*"


def _facts(**changes: object) -> TransferFacts:
    values: dict[str, object] = {
        "status": 200,
        "http_version": "HTTP/2",
        "size_download": 6,
        "time_total": 0.25,
        "url_effective": "https://a/b",
        "num_redirects": 1,
        "content_type": "text/plain",
        "exitcode": ExitCode.OK,
        "errormsg": "",
        "filename_effective": "",
    }
    values.update(changes)
    return TransferFacts(**values)  # type: ignore[arg-type]


def test_write_out_renders_curl_variables() -> None:
    template = r"%{http_code} %{http_version} %{size_download} %{time_total} %{unknown}%%\n"
    assert render(template, _facts()) == [("stdout", "200 2 6 0.250000 %\n")]
    assert render("%{http_code}", _facts(status=None, http_version=None)) == [("stdout", "000")]
    assert render("a%{stderr}b%{stdout}c", _facts()) == [
        ("stdout", "a"),
        ("stderr", "b"),
        ("stdout", "c"),
    ]


@pytest.mark.parametrize("width", [40, 80, 200])
def test_progress_line_fits_the_terminal(width: int) -> None:
    line = bar_line("some/long/path/to/a/file.bin", 512 * 1024, 1024 * 1024, 1.0, width)
    assert len(line) <= width
    assert " 50% " in line and "512.0 KiB / 1.0 MiB" in line
    assert ("[####" in line) is (width >= 80)
    assert bar_line("x", 10, None, 0.0, width) == "x 10 B"


def _outcome(index: int, code: ExitCode) -> Outcome:
    failure = None if code is ExitCode.OK else Failure(code, "x")
    job = Job(index=index, url="u")
    return Outcome(
        job=job, failure=failure, status=None, http_version=None, body_bytes=0, elapsed=0
    )


def test_exit_status_rule() -> None:
    refused, ok, dns = ExitCode.COULDNT_CONNECT, ExitCode.OK, ExitCode.COULDNT_RESOLVE_HOST
    outcomes = [_outcome(0, refused), _outcome(1, ok)]
    assert exit_code(outcomes, parallel=False) is ok
    assert exit_code(outcomes, parallel=True) is refused
    both = [_outcome(0, refused), _outcome(1, dns)]
    assert exit_code(both, parallel=False) is exit_code(both, parallel=True) is dns


def _chained(error: Exception, *causes: BaseException) -> Exception:
    current: BaseException = error
    for cause in causes:
        current.__cause__ = cause
        current = cause
    return error


def test_classification_looks_at_the_cause() -> None:
    request = Request("GET", "http://example.invalid:81/")
    dns = _chained(
        ConnectError("x", request=request),
        OSError(),
        socket.gaierror(-2, "Name or service not known"),
    )
    assert classify(dns, Seen()).code is ExitCode.COULDNT_RESOLVE_HOST
    refused = _chained(
        ConnectError("x", request=request),
        ExceptionGroup("all", [ConnectionRefusedError(111, "no")]),
    )
    failure = classify(refused, Seen())
    assert (failure.code, failure.message) == (
        ExitCode.COULDNT_CONNECT,
        "Failed to connect to example.invalid port 81: Connection refused",
    )
    assert (
        classify(TLSError("handshake", request=request), Seen()).code is ExitCode.SSL_CONNECT_ERROR
    )
    reset = _chained(
        RemoteProtocolError("broke", request=request), ConnectionResetError(104, "reset")
    )
    assert classify(reset, Seen(stream_id=1)).code is ExitCode.RECV_ERROR
    closed = RemoteProtocolError("the server closed the connection", request=request)
    assert classify(closed, Seen(stream_id=1)).code is ExitCode.HTTP2
    assert classify(closed, Seen()).code is ExitCode.GOT_NOTHING
    cut = classify(closed, Seen(headers_received=True, body_bytes=10, content_length=25))
    assert (cut.code, cut.message) == (
        ExitCode.PARTIAL_FILE,
        "transfer closed with 15 bytes remaining to read",
    )
    weird = RemoteProtocolError("invalid response: illegal status line", request=request)
    assert classify(weird, Seen()).code is ExitCode.WEIRD_SERVER_REPLY
    assert classify(trio.TooSlowError(), Seen(elapsed=1.5)).message.startswith(
        "Operation timed out after 1500 milliseconds"
    )


async def test_ordered_stdout_prints_in_index_order() -> None:
    reader, writer = os.pipe()
    try:
        stdout = OrderedStdout(3, fd=writer)
        slots = [stdout.slot(index) for index in range(3)]
        await slots[2].write(b"c")
        await slots[1].write(b"b1")
        await slots[2].finish()
        await slots[0].write(b"a")
        await slots[0].finish()  # flushes b1; slot 1 now writes straight through
        await slots[1].write(b"b2")
        await slots[1].finish()  # then c
        os.close(writer)
        writer = -1
        assert os.read(reader, 100) == b"ab1b2c"
    finally:
        os.close(reader)
        if writer != -1:
            os.close(writer)
