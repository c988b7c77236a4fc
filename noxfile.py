"""The one way to run things: `nox -s ci` (what CI runs), `nox -s demo`, `nox -s bench`, ..."""

from __future__ import annotations

import nox

nox.options.sessions = ["ci"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = False

PYTHON = "3.11"
PACKAGE = "secretcache"


def _install(session: nox.Session, extras: str = "dev") -> None:
    # A regular (non-editable) install: tests and import-time figures see the package as users do.
    session.install("--upgrade", "pip")
    session.install(f".[{extras}]", "--upgrade-strategy", "only-if-needed")


def _lint(session: nox.Session) -> None:
    session.run("ruff", "check", PACKAGE, "tests", "bench", "examples", "noxfile.py")
    session.run("mypy", "-p", PACKAGE)
    session.run("bandit", "-q", "-r", PACKAGE, "-c", "pyproject.toml")
    _audit(session)


def _audit(session: nox.Session) -> None:
    """pip-audit over the installed dependencies: fails on any known vulnerability, and says plainly
    how many it could audit (a mirror without PyPI's JSON API lets it audit none, yet it exits 0)."""
    import json
    import os

    report = os.path.join(session.create_tmp(), "pip-audit.json")
    session.run("pip-audit", "--progress-spinner", "off", "--skip-editable", "--format", "json",
                "--output", report, success_codes=[0, 1])
    with open(report, encoding="utf-8") as f:
        dependencies = json.load(f)["dependencies"]
    vulnerable = [f"{d['name']} {d['version']}: {', '.join(v['id'] for v in d['vulns'])}"
                  for d in dependencies if d.get("vulns")]
    audited = sum(1 for d in dependencies if "skip_reason" not in d)
    session.log(f"pip-audit: {audited} of {len(dependencies)} dependencies audited, {len(vulnerable)} vulnerable")
    if vulnerable:
        session.error("known vulnerabilities: " + "; ".join(vulnerable))
    if audited == 0:
        session.warn("pip-audit could audit no dependency here (no PyPI JSON API / OSV reachable); "
                     "run `nox -s lint` where PyPI is reachable")


def _tests(session: nox.Session) -> None:
    # Integration tests (real PostgreSQL / MariaDB / moto HTTP server) are part of the run; a
    # missing server fails them, it never skips them.
    session.run("python", "-m", "pytest", "-p", "no:cacheprovider", *(session.posargs or ["-q"]))


@nox.session(python=PYTHON)
def ci(session: nox.Session) -> None:
    """Everything CI checks, in one environment: lint, strict typing, the whole test suite."""
    _install(session)
    _lint(session)
    _tests(session)


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The test suite, integration tests included (pass pytest arguments after `--`)."""
    _install(session)
    _tests(session)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff on the code, mypy --strict on the package."""
    _install(session)
    _lint(session)


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """mypy --strict on the package."""
    _install(session)
    session.run("mypy", "-p", PACKAGE)


@nox.session(python=PYTHON)
def demo(session: nox.Session) -> None:
    """The showcase: a real PostgreSQL, password rotations under load, zero failed queries."""
    _install(session, "demo")
    session.run("secretcache", "demo", *session.posargs)


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Benchmarks side by side with the anchor libraries; writes bench/results and docs/img."""
    _install(session)
    session.run("python", "-m", "bench.bench_core", *session.posargs)
    session.run("python", "-m", "bench.chart")
    session.run("python", "-m", "bench.bench_db")
    session.run("python", "-m", "bench.bench_cli")


@nox.session(python=PYTHON)
def soak(session: nox.Session) -> None:
    """The long load/soak runs (about 150 s each; they stop by themselves). Figures in bench/results/soak_*.json."""
    _install(session)
    session.run("python", "-m", "bench.bench_soak", "--backend", "memory", "--canary", *session.posargs)
    session.run("python", "-m", "bench.bench_soak", "--backend", "moto", "--canary", *session.posargs)
