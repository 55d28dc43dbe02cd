"""One transfer: a URL fetched, its redirects followed, its body delivered.

The CLI follows redirects itself (the Session is told not to) so that each
hop's request and response heads can be shown (``-v``, ``-i -L``) and
counted (``%{num_redirects}``); the Session still keeps cookies, and
:func:`build_redirect` still drops credentials on the way to another origin.
"""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass
from functools import partial
from urllib.parse import urlsplit

import trio

from .._errors import RequestError, TooManyRedirects
from .._models import Request, Response
from .._redirects import build_redirect
from .._session import Session
from ._failures import ExitCode, Failure, Seen, classify
from ._options import REMOTE_NAME, Options
from ._output import FileSink, OrderedStdout, Sink, head_bytes
from ._progress import Progress
from ._request import RequestPlan
from ._trace import CURRENT, Tracer, TransferState
from ._writeout import STDERR, TransferFacts, render

PROGRAM = "trio_requests"
#: Redirect bodies up to this size are read, so the connection can be reused.
_DRAIN_LIMIT = 65536


@dataclass(frozen=True, kw_only=True)
class Job:
    """A URL to fetch, the ``index``-th of the run, and where its body goes:
    a path, :data:`REMOTE_NAME` (``-O``), or None for stdout."""

    index: int
    url: str
    output: str | None = None


@dataclass(frozen=True, kw_only=True)
class RunContext:
    """What every transfer of a run shares."""

    session: Session
    plan: RequestPlan
    options: Options
    tracer: Tracer
    progress: Progress
    stdout: OrderedStdout
    file_mode: int
    #: stdout is not a terminal: a download to it gets a progress line too
    progress_on_stdout: bool = False


@dataclass(frozen=True, kw_only=True)
class Outcome:
    """How a transfer ended."""

    job: Job
    failure: Failure | None
    status: int | None
    http_version: str | None
    body_bytes: int
    elapsed: float

    @property
    def code(self) -> ExitCode:
        return ExitCode.OK if self.failure is None else self.failure.code


async def run_transfer(job: Job, ctx: RunContext) -> Outcome:
    """Fetch *job*; never raises (but Cancelled): a failure is the outcome."""
    return await _Transfer(job, ctx).run()


class _Transfer:
    """One job's run, from the request to the write-out."""

    def __init__(self, job: Job, ctx: RunContext) -> None:
        self.job = job
        self.ctx = ctx
        self.state = TransferState(url=job.url)
        self.slot = ctx.stdout.slot(job.index)
        self.start = 0.0

    async def run(self) -> Outcome:
        CURRENT.set(self.state)  # this task's context: the trace finds it there
        self.start = trio.current_time()
        failure: Failure | None = None
        try:
            with _time_limit(self.ctx.options.max_time):
                await self._fetch()
        except Exception as exc:
            failure = classify(exc, self._seen())
        elapsed = trio.current_time() - self.start
        for step in (partial(self._write_out, failure, elapsed), self.slot.finish):
            try:
                await step()
            except OSError as exc:  # stdout is gone (a closed pipe): 23, as curl
                failure = failure or classify(exc, self._seen())
        if failure is not None and self.ctx.options.show_errors:
            sys.stderr.write(failure.line(PROGRAM) + "\n")
            sys.stderr.flush()
        return Outcome(
            job=self.job,
            failure=failure,
            status=self.state.status,
            http_version=self.state.http_version,
            body_bytes=self.state.body_bytes,
            elapsed=elapsed,
        )

    def _seen(self) -> Seen:
        state = self.state
        return Seen(
            stream_id=state.stream_id,
            headers_received=state.status is not None,
            body_bytes=state.body_bytes,
            content_length=state.content_length,
            elapsed=trio.current_time() - self.start,
        )

    async def _fetch(self) -> None:
        session, plan = self.ctx.session, self.ctx.plan
        request = session.build_request(
            plan.method, checked_url(self.job.url), content=plan.content
        )
        heads: list[bytes] = []  # -i -L: each redirect's head goes out before the final one
        while True:
            self.state.request = request
            response = await session.send(request, follow_redirects=False)
            try:
                self.ctx.tracer.response(response)
                next_request = self._redirect(request, response)
                if next_request is None:
                    await self._deliver(response, heads)
                    return
                heads.append(head_bytes(response))
                await _drain(response)
            finally:
                await response.aclose()
            request = next_request

    def _redirect(self, request: Request, response: Response) -> Request | None:
        """The next hop with ``-L``, or None to deliver this response."""
        options = self.ctx.options
        if not (options.location and response.is_redirect):
            return None
        limit = options.max_redirs
        if limit != -1 and self.state.redirects >= limit:
            raise TooManyRedirects(f"Maximum ({limit}) redirects followed", request=request)
        next_request = build_redirect(request, response, allow_downgrade=True)  # as curl -L
        self.state.redirects += 1
        self.ctx.tracer.note(
            f"Issue another request to this URL: '{next_request.url.without_credentials()}'"
        )
        return next_request

    async def _deliver(self, response: Response, heads: list[bytes]) -> None:
        self.state.final_response(response)
        if self.ctx.options.fail and response.status_code >= 400:
            raise Failure(
                ExitCode.HTTP_RETURNED_ERROR,
                f"The requested URL returned error: {response.status_code}",
            )
        sink, label = await self._open_sink()
        progress = (
            self.ctx.progress if sink is not self.slot or self.ctx.progress_on_stdout else None
        )
        try:
            if self.ctx.options.include or self.ctx.plan.head:
                await sink.write(b"".join(heads) + head_bytes(response))
            if progress is not None:
                progress.start(self.job.index, label, self.state.content_length)
            await self._copy_body(response, sink, progress)
            await sink.commit()
        except BaseException:
            await sink.discard()
            if progress is not None:
                progress.finish(self.job.index, ok=False)
            raise
        if progress is not None:
            progress.finish(self.job.index, ok=True)

    async def _copy_body(self, response: Response, sink: Sink, progress: Progress | None) -> None:
        """The body as received (``--compressed``: decoded), byte for byte."""
        compressed = self.ctx.options.compressed
        chunks = response.aiter_bytes() if compressed else response.aiter_raw()
        async for chunk in chunks:
            self.state.body_bytes += len(chunk)
            await sink.write(chunk)
            if progress is not None:
                progress.update(self.job.index, self.state.body_bytes)

    async def _open_sink(self) -> tuple[Sink, str]:
        """Where the body goes, and its name for the progress line."""
        output = self.job.output
        if output is None or output == "-":
            return self.slot, self.job.url
        path = remote_name(self.job.url) if output == REMOTE_NAME else output
        if self.ctx.options.output_dir is not None:
            path = os.path.join(self.ctx.options.output_dir, path)
        sink = FileSink(path, self.ctx.file_mode)
        await sink.open()  # Failure 23, as curl's "Failed to open the file"
        self.state.filename = path
        return sink, path

    async def _write_out(self, failure: Failure | None, elapsed: float) -> None:
        template = self.ctx.options.write_out
        if template is None:
            return
        state = self.state
        facts = TransferFacts(
            status=state.status,
            http_version=state.http_version,
            size_download=state.body_bytes,
            time_total=elapsed,
            url_effective=str(state.request.url) if state.request is not None else state.url,
            num_redirects=state.redirects,
            content_type=state.content_type,
            exitcode=failure.code if failure is not None else ExitCode.OK,
            errormsg=failure.message if failure is not None else "",
            filename_effective=state.filename,
        )
        for target, text in render(template, facts):
            if target == STDERR:
                sys.stderr.write(text)
                sys.stderr.flush()
            else:
                await self.slot.write(text.encode("utf-8", "surrogateescape"))


def _time_limit(seconds: float | None) -> contextlib.AbstractContextManager[object]:
    """``-m``: the whole transfer, redirects included (trio.TooSlowError: 28)."""
    return trio.fail_after(seconds) if seconds else contextlib.nullcontext()


async def _drain(response: Response) -> None:
    length = response.headers.get("content-length", "")
    if length.isdigit() and int(length) <= _DRAIN_LIMIT:
        with contextlib.suppress(RequestError):
            await response.aread()


def checked_url(url: str) -> str:
    """curl's leniency (no scheme means http://) and strictness (only the
    protocols we speak: exit 1 for others)."""
    if "://" not in url:
        return "http://" + url
    scheme = url.partition("://")[0]
    if scheme.lower() not in ("http", "https"):
        raise Failure(
            ExitCode.UNSUPPORTED_PROTOCOL, f'Protocol "{scheme}" not supported or disabled'
        )
    return url


def remote_name(url: str) -> str:
    """``-O``: the last segment of the URL's path, as curl takes it."""
    name = urlsplit(checked_url(url)).path.rpartition("/")[2]
    if not name:
        raise Failure(ExitCode.WRITE_ERROR, "Remote file name has no length!")
    return name
