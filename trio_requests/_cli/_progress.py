"""The progress bar: one line per transfer on a terminal's stderr, nothing otherwise.

Our own few lines rather than a library: a line per transfer needs only
carriage returns and two ANSI sequences (cursor up, erase line), which every
terminal in use understands, and redraws are throttled to 10 a second so
they cost nothing next to the transfer. :func:`bar_line` is pure, so the
layout is tested without a terminal.

Finished transfers print their final line once and scroll away with the
terminal; the board below them shows the transfers still running (at most
:data:`MAX_LINES`, then a "... and N more" line).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol, TextIO

#: Seconds between redraws.
REDRAW_INTERVAL = 0.1
#: Running transfers shown at once; more would scroll the board off screen.
MAX_LINES = 10
_UP = "\x1b[{n}A"
_ERASE = "\r\x1b[2K"


class Progress(Protocol):
    def start(self, index: int, label: str, total: int | None) -> None: ...

    def update(self, index: int, done: int) -> None: ...

    def finish(self, index: int, ok: bool) -> None: ...


class NoProgress:
    """Silence: stderr is not a terminal, or ``-s``, or ``-v``."""

    def start(self, index: int, label: str, total: int | None) -> None:
        pass

    def update(self, index: int, done: int) -> None:
        pass

    def finish(self, index: int, ok: bool) -> None:
        pass


def human_bytes(count: float) -> str:
    """``1023 B``, ``1.5 KiB``, ``12.0 MiB``."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")


def bar_line(label: str, done: int, total: int | None, seconds: float, width: int) -> str:
    """One transfer's line, at most *width* characters:
    ``file.bin  42% [########          ] 4.2 MiB / 10.0 MiB  3.1 MiB/s``.
    On a narrow terminal the rate goes first, then the bar."""
    shown = _shorten(label, max(8, width // 3))
    rate = f"{human_bytes(done / seconds)}/s" if seconds > 0 else ""
    if not total:
        return f"{shown} {human_bytes(done)}  {rate}".rstrip()[:width]
    percent = min(100, done * 100 // total)
    amounts = f"{human_bytes(done)} / {human_bytes(total)}"
    prefix = f"{shown} {percent:3d}% "
    for tail in (f" {amounts}  {rate}".rstrip(), f" {amounts}"):
        bar_width = width - len(prefix) - len(tail) - 2
        if bar_width >= 10:
            filled = bar_width * percent // 100
            return f"{prefix}[{'#' * filled}{' ' * (bar_width - filled)}]{tail}"
    return f"{prefix}{amounts}"[:width]


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else "…" + text[len(text) - width + 1 :]


@dataclass
class _Line:
    label: str
    total: int | None
    started: float
    done: int = 0


class TerminalProgress:
    """Progress lines on *stream*, a terminal."""

    def __init__(self, stream: TextIO, width: int) -> None:
        self._stream = stream
        self._width = max(40, width - 1)
        self._lines: dict[int, _Line] = {}
        self._drawn = 0  # board lines on screen now
        self._last_draw = 0.0

    def start(self, index: int, label: str, total: int | None) -> None:
        self._lines[index] = _Line(label, total, time.monotonic())
        self._draw(force=True)

    def update(self, index: int, done: int) -> None:
        line = self._lines.get(index)
        if line is not None:
            line.done = done
            self._draw()

    def finish(self, index: int, ok: bool) -> None:
        line = self._lines.pop(index, None)
        if line is None:
            return
        text = self._text(line) if ok else f"{line.label}: failed"
        self._erase()
        self._stream.write(text + "\n")
        self._draw(force=True)

    def _text(self, line: _Line) -> str:
        seconds = time.monotonic() - line.started
        return bar_line(line.label, line.done, line.total, seconds, self._width)

    def _draw(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_draw < REDRAW_INTERVAL:
            return
        self._last_draw = now
        self._erase()
        running = list(self._lines.values())
        texts = [self._text(line) for line in running[:MAX_LINES]]
        if len(running) > MAX_LINES:
            texts.append(f"... and {len(running) - MAX_LINES} more")
        for text in texts:
            self._stream.write(text + "\n")
        self._drawn = len(texts)
        self._stream.flush()

    def _erase(self) -> None:
        """Move back over the board and clear it."""
        if self._drawn:
            self._stream.write(_UP.format(n=self._drawn))
            self._stream.write((_ERASE + "\n") * self._drawn)
            self._stream.write(_UP.format(n=self._drawn))
        self._drawn = 0
