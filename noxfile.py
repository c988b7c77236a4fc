"""The one way to run things: `nox -s ci` (what CI runs), `nox -s demo`, `nox -s bench`, ..."""

from __future__ import annotations

import os

import nox

nox.needs_version = ">=2025.2.9"  # nox.project.dependency_groups (PEP 735 groups, with any pip)
nox.options.sessions = ["ci"]
nox.options.reuse_existing_virtualenvs = True
# A Python the matrix names and the machine lacks fails the run; it is never skipped.
nox.options.error_on_missing_interpreters = True

# Every Python `requires-python` (>= 3.10) claims, oldest first. The unit suite runs on each of them, the
# integration suite (real servers) on the oldest and the newest, lint and types once on the current one.
PYTHONS = ["3.10", "3.11", "3.12", "3.13"]
OLDEST, NEWEST = PYTHONS[0], PYTHONS[-1]
PYTHON = "3.11"  # the current one: lint, typecheck, tests, demo, bench, soak
PACKAGE = "secretcache"
ROOT = os.path.dirname(os.path.abspath(__file__))

# What `nox -s ci` runs. `.ci/run` runs the same sessions in these two lanes side by side (2 cores): the
# sessions that use the servers one after the other (they share MariaDB and Redis): the whole suite on the
# oldest Python, then the integration tests on the newest; beside them lint, the docs site, the unit suite on
# every other Python and the newcomer's demo from fresh virtualenvs on the oldest and the newest Python. Every
# Python runs the unit suite; the oldest and the newest the integration tests. Measured on a clean clone
# (2026-12-07, stage three, the two lanes side by side): suite-3.10 24 min, integration-3.13 9 min, a unit
# suite about 11 min, lint 3 min, docs under 1 min, demo_any_python 1 min: about 34 and 40 minutes.
CI_LANES = {
    "servers": [f"suite-{OLDEST}", f"integration-{NEWEST}"],
    "unit": ["lint", "docs", *(f"unit-{p}" for p in PYTHONS if p != OLDEST), "demo_any_python"],
}
CI_SESSIONS = [session for lane in CI_LANES.values() for session in lane]


PYPROJECT = nox.project.load_toml("pyproject.toml")
# Every extra a test imports (mysqlclient compiles: CI installs libmariadb-dev, .ci/run).
TEST_EXTRAS = "all,serve,mysqlclient,otel,metrics"


def _install(session: nox.Session, extras: str = TEST_EXTRAS, groups: tuple[str, ...] = ("dev",)) -> None:
    """A regular (non-editable) install, so tests and import-time figures see the package as users do, plus
    the development dependency groups (PEP 735) of pyproject.toml. The groups are read by nox, not by pip
    (`pip install --group` needs pip >= 25.1), so any pip on a fresh machine installs them."""
    session.install("--upgrade", "pip")
    requirements = [r for group in groups for r in nox.project.dependency_groups(PYPROJECT, group)]
    session.install(f".[{extras}]" if extras else ".", *requirements, "--upgrade-strategy", "only-if-needed")


def _lint(session: nox.Session) -> None:
    session.run("ruff", "check", PACKAGE, "tests", "bench", "devtools", "examples", "tools", "noxfile.py")
    # The house: no cycle and no upward arrow, counting lazy and type-only imports (docs/architecture.md).
    session.run("python", "tools/import_graph.py")
    session.run("python", "tools/import_graph.py", "--package", "bench", "--imports-only")
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


def _tests(session: nox.Session, *selection: str) -> None:
    # Integration tests (real PostgreSQL / MariaDB / moto HTTP server) are part of the run unless the
    # selection leaves them out; a missing server fails them, it never skips them.
    session.run("python", "-m", "pytest", "-p", "no:cacheprovider", *selection, *(session.posargs or ["-q"]))


@nox.session(python=False, requires=CI_SESSIONS)
def ci(session: nox.Session) -> None:
    """Everything CI checks: lint and strict typing once, the unit suite on every Python we claim and the
    integration suite on the oldest and the newest (`unit-*` and `suite-*`, run first as requirements)."""
    session.log("passed: " + ", ".join(CI_SESSIONS))


@nox.session(python=PYTHONS)
def unit(session: nox.Session) -> None:
    """The unit suite (`-m "not integration"`: no server needed) on one Python, e.g. `nox -s unit-3.12`."""
    _install(session)
    _tests(session, "-m", "not integration")


@nox.session(python=[OLDEST, NEWEST])
def suite(session: nox.Session) -> None:
    """The whole suite, unit and integration, on the oldest and the newest Python (one environment each)."""
    _install(session)
    _tests(session)


@nox.session(python=[OLDEST, NEWEST])
def integration(session: nox.Session) -> None:
    """The integration tests only (real servers), on the oldest and the newest Python."""
    _install(session)
    _tests(session, "-m", "integration")


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The test suite on the current Python, integration tests included (pass pytest arguments after `--`)."""
    _install(session)
    _tests(session)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff on the code, mypy --strict on the package, bandit, pip-audit."""
    _install(session)
    _lint(session)


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """mypy --strict on the package."""
    _install(session)
    session.run("mypy", "-p", PACKAGE)


# python=None: the demo runs on whatever Python runs nox (any the package supports, 3.10+), so the README's
# first command works on a machine with only its OS's Python; the strict matrix above is for `ci` only.
@nox.session(python=None)
def demo(session: nox.Session) -> None:
    """The showcase: a real PostgreSQL, password rotations under load, zero failed queries."""
    _install(session, "demo", groups=())
    session.run("secretcache", "demo", *session.posargs)


@nox.session(python=False)
def demo_any_python(session: nox.Session) -> None:
    """What a newcomer does, on the oldest and the newest Python: a fresh virtualenv, `pip install nox`,
    `nox -s demo` (a short run: 2 rotations). Needs python3.10 and python3.13 on PATH."""
    import shutil

    for version in (OLDEST, NEWEST):
        python = shutil.which(f"python{version}")
        if python is None:
            session.error(f"python{version} not found")
        venv = os.path.join(session.create_tmp(), f"newcomer-{version}")
        session.run(python, "-m", "venv", "--clear", venv, external=True)
        bin_dir = os.path.join(venv, "bin")
        session.run(os.path.join(bin_dir, "python"), "-m", "pip", "install", "-q", "nox", external=True)
        # Only the fresh venv on PATH (and the system's tools): nox must find no other Python.
        path = [bin_dir, "/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        env = {"PATH": os.pathsep.join(path), "HOME": os.environ.get("HOME", "/root"), "LANG": "C.UTF-8",
               "NOX_DOWNLOAD_PYTHON": "never"}
        session.run(os.path.join(bin_dir, "python"), "-m", "nox", "--no-color", "-f",
                    os.path.join(ROOT, "noxfile.py"), "--envdir", os.path.join(venv, ".nox"), "-s", "demo", "--",
                    "--rotations", "2", "--interval", "1", "--plain", env=env, include_outer_env=False, external=True)


@nox.session(python=PYTHON)
def docs(session: nox.Session) -> None:
    """The documentation site (MkDocs, Material, mkdocstrings API reference), built with --strict into site/."""
    # mkdocstrings reads the package's source (griffe, static analysis): no extra is needed to build it.
    _install(session, "", groups=("docs",))
    session.run("mkdocs", "build", "--strict", "--site-dir", os.path.join(ROOT, "site"), *session.posargs)


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Benchmarks side by side with the anchor libraries; writes bench/results and docs/img."""
    _install(session)
    session.run("python", "-m", "bench.bench_core", *session.posargs)
    session.run("python", "-m", "bench.chart")
    session.run("python", "-m", "bench.bench_db")
    session.run("python", "-m", "bench.bench_django")
    session.run("python", "-m", "bench.bench_cli")
    session.run("python", "-m", "bench.bench_files")
    session.run("python", "-m", "bench.bench_parameters")


@nox.session(python=PYTHON)
def soak(session: nox.Session) -> None:
    """The long load/soak runs (about 150 s each; they stop by themselves). Figures in bench/results/soak_*.json."""
    _install(session)
    session.run("python", "-m", "bench.bench_soak", "--backend", "memory", "--canary", *session.posargs)
    session.run("python", "-m", "bench.bench_soak", "--backend", "moto", "--canary", *session.posargs)
