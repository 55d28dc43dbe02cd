"""``-w/--write-out``: curl's format after each transfer.

``%{name}`` is a variable, ``%%`` a percent sign, ``\\n`` ``\\r`` ``\\t``
``\\\\`` the usual escapes; ``%{stdout}`` and ``%{stderr}`` switch where the
rest goes. Unknown variables print nothing, as in curl (which also warns).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from ._failures import ExitCode


@dataclass(frozen=True, kw_only=True)
class TransferFacts:
    """What the write-out variables report about one finished transfer."""

    status: int | None
    http_version: str | None
    size_download: int
    time_total: float
    url_effective: str
    num_redirects: int
    content_type: str
    exitcode: ExitCode
    errormsg: str
    filename_effective: str


def _http_version(facts: TransferFacts) -> str:
    """curl's spelling: ``1.1``, ``2``, ``1.0``; ``0`` when nothing came back."""
    return (facts.http_version or "0").removeprefix("HTTP/")


_VARIABLES: dict[str, Callable[[TransferFacts], str]] = {
    "http_code": lambda f: f"{f.status or 0:03d}",
    "response_code": lambda f: f"{f.status or 0:03d}",
    "http_version": _http_version,
    "size_download": lambda f: str(f.size_download),
    "time_total": lambda f: f"{f.time_total:.6f}",
    "url_effective": lambda f: f.url_effective,
    "url": lambda f: f.url_effective,
    "num_redirects": lambda f: str(f.num_redirects),
    "content_type": lambda f: f.content_type,
    "exitcode": lambda f: str(int(f.exitcode)),
    "errormsg": lambda f: f.errormsg,
    "filename_effective": lambda f: f.filename_effective,
}

_TOKEN = re.compile(r"%\{([a-z_]+)\}|%%|\\[nrt\\]")
_ESCAPES = {"\\n": "\n", "\\r": "\r", "\\t": "\t", "\\\\": "\\", "%%": "%"}

#: Where a piece of write-out goes.
STDOUT, STDERR = "stdout", "stderr"


def render(template: str, facts: TransferFacts) -> list[tuple[str, str]]:
    """*template* filled in from *facts*: ``(target, text)`` runs, one per
    switch between stdout and stderr."""
    pieces: list[tuple[str, str]] = []
    target = STDOUT
    position = 0
    for match in _TOKEN.finditer(template):
        pieces.append((target, template[position : match.start()]))
        position = match.end()
        name = match.group(1)
        if name in (STDOUT, STDERR):
            target = name
        elif name is not None:
            variable = _VARIABLES.get(name)
            pieces.append((target, variable(facts) if variable is not None else ""))
        else:
            pieces.append((target, _ESCAPES[match.group(0)]))
    pieces.append((target, template[position:]))
    merged: list[tuple[str, str]] = []
    for where, text in pieces:
        if merged and merged[-1][0] == where:
            merged[-1] = (where, merged[-1][1] + text)
        elif text:
            merged.append((where, text))
    return merged
