"""The command line: ``python -m trio_requests``, a curl-compatible fetcher.

The modules, each named for what it holds: ``_options`` (parsing),
``_request`` (what to send), ``_transfer`` (one URL), ``_run`` (a Session
and the transfers, serial or ``-Z``), ``_output`` (stdout and ``-o`` files),
``_failures`` (curl's exit codes), ``_trace`` (``-v``), ``_progress``,
``_writeout`` (``-w``), ``_stats`` (``--stats``), ``_help`` and ``_demo``.
"""

from __future__ import annotations

from ._main import main

__all__ = ["main"]
