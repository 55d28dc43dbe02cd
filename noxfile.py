"""Developer and CI tasks: ``nox -s tests lint typecheck bench``.

Every session installs from the PEP 735 ``[dependency-groups]`` in pyproject.toml through
:func:`nox.project.dependency_groups`, so this works with any pip (``pip install --group``
needs pip 25.1). Sessions run on the interpreter that runs nox.
"""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "venv"
nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.error_on_external_run = True

PYPROJECT = nox.project.load_toml("pyproject.toml")


def _install(session: nox.Session, group: str, *, project: bool = True) -> None:
    """Install one dependency group, plus the project itself (editable) if *project*."""
    requirements = list(nox.project.dependency_groups(PYPROJECT, group))
    if project:
        requirements[:0] = ["-e", "."]
    if requirements:  # session.install() refuses an empty argument list (bench = [])
        session.install(*requirements)


@nox.session
def tests(session: nox.Session) -> None:
    """Run pytest under coverage; extra arguments go to pytest (``nox -s tests -- -k pool``)."""
    _install(session, "tests")
    session.run("coverage", "erase")
    session.run("coverage", "run", "-m", "pytest", *session.posargs)
    session.run("coverage", "report")


@nox.session
def lint(session: nox.Session) -> None:
    """ruff lint and format check over the whole repository."""
    _install(session, "lint", project=False)
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict over the paths in ``[tool.mypy] files``."""
    _install(session, "typecheck")
    session.run("mypy", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Both benchmarks (benchmarks/README.md): pool checkout, then HTTP clients
    against a local nginx. Extra arguments go to both scripts, so only the flag
    they share makes sense here (``nox -s bench -- --quick``); run a script
    directly for its other flags."""
    _install(session, "bench")
    session.run("python", "benchmarks/pool_checkout.py", *session.posargs)
    session.run("python", "benchmarks/http_bench.py", *session.posargs)
