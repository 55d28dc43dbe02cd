"""A run: one Session, the transfers one after another or at once (``-Z``), the exit status."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Sequence

import trio

import trio_conpool as cp

from .._headers import Headers
from .._retries import Retry
from .._session import Session
from .._timeouts import Timeout
from .._verify import Verify
from ._failures import ExitCode
from ._options import HttpMode, Options
from ._output import OrderedStdout, file_mode
from ._progress import NoProgress, Progress, TerminalProgress
from ._proxy import no_proxy_of, proxy_of, proxy_verify, trust_env
from ._request import RequestPlan
from ._stats import RunStats, report
from ._trace import Tracer
from ._transfer import Job, Outcome, RunContext, run_transfer

#: curl's default connect timeout (``--connect-timeout``): 300 s.
DEFAULT_CONNECT_TIMEOUT = 300.0
#: What ``--retry`` retries, as curl: timeouts and these statuses (curl's man page).
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


def session_for(options: Options, tracer: Tracer) -> Session:
    """A Session that behaves as curl would with *options*.

    No read or write timeout (curl has none; ``-m`` bounds a whole
    transfer), no redirects (the transfer follows them), and no retries
    unless ``--retry`` (replays of requests an HTTP/2 server refused
    unprocessed still happen: they are not failures).
    """
    parallel = options.parallel_max if options.parallel else 1
    return Session(
        http2=options.http is not HttpMode.HTTP11,
        http2_prior_knowledge=options.http is HttpMode.PRIOR_KNOWLEDGE,
        verify=_verify(options),
        timeout=Timeout(connect=options.connect_timeout or DEFAULT_CONNECT_TIMEOUT),
        pool=cp.PoolConfig(connect_timeout=None, max_connections_per_endpoint=max(parallel, 1)),
        retries=_retry(options),
        follow_redirects=False,
        proxy=proxy_of(options),
        proxy_verify=proxy_verify(options),
        trust_env=trust_env(options),
        no_proxy=no_proxy_of(options, os.environ),
        trace=tracer,
    )


def _verify(options: Options) -> Verify:
    if options.insecure:
        return False
    return options.cacert if options.cacert is not None else True


def _retry(options: Options) -> Retry:
    if not options.retry:
        return Retry(total=0)
    # curl waits 1 s before the first retry and doubles it each time.
    return Retry(total=options.retry, backoff_factor=1.0, status_forcelist=RETRY_STATUSES)


def progress_for(options: Options) -> Progress:
    """A progress bar only for a human watching: stderr a terminal, no -s or -v."""
    if options.silent or options.verbose or not sys.stderr.isatty():
        return NoProgress()
    return TerminalProgress(sys.stderr, _terminal_width())


def _terminal_width() -> int:
    """stderr's width (where the bar goes); else $COLUMNS or stdout's, else 80."""
    try:
        columns = os.get_terminal_size(sys.stderr.fileno()).columns
    except (OSError, ValueError):
        columns = 0  # a terminal that does not know its size says 0 too
    return columns or shutil.get_terminal_size().columns


async def run(options: Options, plan: RequestPlan, jobs: Sequence[Job]) -> int:
    """Every job, then ``--stats``; returns the exit status."""
    tracer = Tracer(sys.stderr if options.verbose else None)
    started = trio.current_time()
    async with session_for(options, tracer) as session:
        session.headers = Headers(plan.headers)
        context = RunContext(
            session=session,
            plan=plan,
            options=options,
            tracer=tracer,
            progress=progress_for(options),
            stdout=OrderedStdout(len(jobs)),
            file_mode=file_mode(),
            progress_on_stdout=not sys.stdout.isatty(),
        )
        if options.parallel:
            outcomes = await _parallel(jobs, context, options.parallel_max)
        else:
            outcomes = [await run_transfer(job, context) for job in jobs]
        session_stats = session.stats()
    if options.stats:
        wall = trio.current_time() - started
        timings = tracer.timings.samples(len(outcomes))
        stats = RunStats(outcomes=outcomes, session=session_stats, wall_time=wall, timings=timings)
        sys.stderr.write(report(stats))
    return int(exit_code(outcomes, parallel=options.parallel))


async def _parallel(jobs: Sequence[Job], context: RunContext, limit: int) -> list[Outcome]:
    limiter = trio.CapacityLimiter(limit)
    results: list[Outcome | None] = [None] * len(jobs)

    async def one(position: int, job: Job) -> None:
        async with limiter:
            results[position] = await run_transfer(job, context)

    async with trio.open_nursery() as nursery:
        for position, job in enumerate(jobs):
            nursery.start_soon(one, position, job)
    return [outcome for outcome in results if outcome is not None]


def exit_code(outcomes: Sequence[Outcome], *, parallel: bool) -> ExitCode:
    """As curl: without ``-Z``, the status of the last transfer (a later
    success wins over an earlier failure); with it, of the last one in URL
    order that failed."""
    if parallel:
        failures = [outcome.code for outcome in outcomes if outcome.failure is not None]
        return failures[-1] if failures else ExitCode.OK
    return outcomes[-1].code if outcomes else ExitCode.OK
