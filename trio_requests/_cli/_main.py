"""``python -m trio_requests``: parse, prepare, run, exit with curl's status.

Everything that may fail without the network (the command line, ``@file``
arguments, ``--urls-file``) is done before the event loop starts, so such
a failure exits at once with its own status.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import replace

import trio

from .._verify import ssl_context
from ._failures import ExitCode, Failure
from ._help import help_text, version_text
from ._options import Options, UsageError, parse_args, with_urls
from ._request import build_plan
from ._run import run
from ._transfer import PROGRAM, Job

_TRY_HELP = f"{PROGRAM}: try 'python -m trio_requests --help' for more information"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line *argv* (default ``sys.argv[1:]``); the exit status."""
    try:
        options = parse_args(sys.argv[1:] if argv is None else argv)
    except UsageError as exc:
        return _usage_error(str(exc))
    if options.help or options.version:
        sys.stdout.write(help_text() if options.help else version_text())
        return 0
    if options.demo:
        from ._demo import run_demo  # the demo alone needs the testing kit

        return run_demo()
    try:
        return _fetch(options)
    except UsageError as exc:
        return _usage_error(str(exc))
    except Failure as failure:
        if options.show_errors:
            sys.stderr.write(failure.line(PROGRAM) + "\n")
        return int(failure.code)
    except KeyboardInterrupt:
        return 130  # as a shell reports SIGINT


def _fetch(options: Options) -> int:
    options = _read_arguments(options)
    if not options.urls:
        raise UsageError("no URL specified!")
    plan = build_plan(options, _warner(options))
    _check_ca_files(options)
    return trio.run(run, options, plan, jobs(options))


def _check_ca_files(options: Options) -> None:
    """``--cacert`` and ``--proxy-cacert`` load, or the run fails with
    curl's 77 before any transfer (curl finds out at its first handshake)."""
    for path in (options.cacert, options.proxy_cacert):
        if path is not None:
            try:
                ssl_context(path)
            except ValueError as exc:
                message = f"error setting certificate verify locations: {exc}"
                raise Failure(ExitCode.SSL_CACERT_BADFILE, message) from None


def _read_arguments(options: Options) -> Options:
    """``--urls-file`` and ``-w @file``, read now."""
    if options.urls_file is not None:
        options = with_urls(options, _url_lines(_read_text(options.urls_file)))
    if options.write_out is not None and options.write_out.startswith("@"):
        options = replace(options, write_out=_read_text(options.write_out[1:]))
    return options


def _read_text(path: str) -> str:
    try:
        if path == "-":
            return sys.stdin.read()
        with open(path, encoding="utf-8", errors="surrogateescape") as file:
            return file.read()
    except OSError as exc:
        raise Failure(ExitCode.READ_ERROR, f"cannot read {path}: {exc.strerror}") from exc


def _url_lines(text: str) -> list[str]:
    """One URL a line; blank lines and ``#`` comments skipped."""
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def jobs(options: Options) -> list[Job]:
    """The URLs with their outputs: the n-th ``-o``/``-O`` goes with the n-th URL."""
    outputs = list(options.outputs)
    return [
        Job(index=index, url=url, output=outputs[index] if index < len(outputs) else None)
        for index, url in enumerate(options.urls)
    ]


def _warner(options: Options) -> Callable[[str], None]:
    def warn(text: str) -> None:
        if not options.silent:
            sys.stderr.write(f"Warning: {text}\n")

    return warn


def _usage_error(message: str) -> int:
    sys.stderr.write(f"{PROGRAM}: ({int(ExitCode.FAILED_INIT)}) {message}\n{_TRY_HELP}\n")
    return int(ExitCode.FAILED_INIT)
