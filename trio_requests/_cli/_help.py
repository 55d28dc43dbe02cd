"""``--help`` and ``--version`` texts, made from the option table."""

from __future__ import annotations

import platform
from importlib import metadata

from .._session import __version__
from ._options import SPECS, Spec

USAGE = "Usage: python -m trio_requests [options...] <url>..."

_EPILOG = """\
Options combine as in curl (-sSL, -o FILE, -ofile) and may come before or
after the URLs; --no-<flag> turns a flag off again. Exit statuses are curl's
(6 cannot resolve, 7 cannot connect, 22 HTTP error with -f, 28 timeout, ...):
see "Command line" in the README for the table.

Try the offline demo: python -m trio_requests --demo"""


def _spelling(spec: Spec) -> str:
    short = f"-{spec.short}, " if spec.short else "    "
    value = f" <{spec.metavar}>" if spec.metavar else ""
    return f" {short}--{spec.long}{value}"


def help_text() -> str:
    spellings = [(_spelling(spec), spec.help) for spec in SPECS]
    width = max(len(spelling) for spelling, _ in spellings) + 2
    lines = [f"{spelling:<{width}}{text}" for spelling, text in spellings]
    return "\n".join([USAGE, *lines, "", _EPILOG]) + "\n"


def version_text() -> str:
    return (
        f"trio_requests {__version__} (Python {platform.python_version()}) "
        f"{' '.join(f'{name}/{_version(name)}' for name in ('trio', 'h11', 'h2'))}\n"
        "Protocols: http https\n"
        "Features: HTTP2 multiplexing, parallel transfers, gzip deflate (br zstd if installed)\n"
    )


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "?"
