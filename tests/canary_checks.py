"""More places the secret-leak canary looks, beyond log records (``tests/canary.py``).

Loaded next to ``tests.canary`` (``pytest_plugins`` in conftest). For the whole suite it checks, for
the marker ``CANARY`` that every test secret carries:

- **our exceptions**: the message and repr of every ``SecretCacheError`` constructed anywhere;
- **traceback locals**: for every exception that a test catches with ``pytest.raises`` or that fails a
  test, every frame of the ``secretcache`` package in its traceback (and in its chained causes, as
  pytest prints them) has its arguments and locals rendered the way ``pytest --showlocals`` renders
  them (``saferepr``, here untruncated); none may hold a canary. Error-tracking tools (Sentry and
  the like) capture the same frame locals in production;
- **test reports**: the failure text pytest prints (``--tb`` in effect), captured stderr and logs of
  every test, captured stdout of failed tests (``secretcache get`` prints a value by design), and the
  text of every warning;

and fails the session when any of them holds a canary, naming the test and the place. The subprocess
CLI runs, the ``--showlocals`` run and the reprs of public objects are in ``tests/reliability/test_canary_run.py``.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from _pytest._io.saferepr import saferepr

import secretcache
from tests.canary import CANARY

_PACKAGE_DIR = str(Path(secretcache.__file__ or "secretcache/__init__.py").resolve().parent)


class _Findings:
    def __init__(self) -> None:
        self.leaks: list[str] = []
        self.checked = {"exceptions": 0, "tracebacks": 0, "frames": 0, "reports": 0, "warnings": 0}
        self.current_test = "<collection>"

    def leak(self, where: str) -> None:
        entry = f"{self.current_test}: {where}"
        if entry not in self.leaks:
            self.leaks.append(entry)


_findings = _Findings()


# -- our exceptions --------------------------------------------------------------------------------


def _watch_exception_construction() -> Callable[[], None]:
    """Wrap ``SecretCacheError.__init__`` so every message the package builds is scanned."""
    from secretcache.errors import SecretCacheError

    original = SecretCacheError.__init__

    def __init__(self: Any, message: str, *args: Any, **kwargs: Any) -> None:
        original(self, message, *args, **kwargs)
        _findings.checked["exceptions"] += 1
        if CANARY in str(message) or CANARY in repr(self):
            _findings.leak(f"{type(self).__name__} message")

    SecretCacheError.__init__ = __init__  # type: ignore[method-assign]

    def undo() -> None:
        SecretCacheError.__init__ = original  # type: ignore[method-assign]

    return undo


# -- traceback locals ------------------------------------------------------------------------------


def _chain(error: BaseException) -> Iterator[BaseException]:
    """The exception and those chained to it, as pytest prints them (respecting ``from None``)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        if current.__cause__ is not None:
            current = current.__cause__
        elif current.__context__ is not None and not current.__suppress_context__:
            current = current.__context__
        else:
            current = None


def _our_frames(tb: types.TracebackType | None) -> Iterator[types.FrameType]:
    while tb is not None:
        if tb.tb_frame.f_code.co_filename.startswith(_PACKAGE_DIR):
            yield tb.tb_frame
        tb = tb.tb_next


CALLER_DATA = frozenset({
    # The decorated function's positional arguments, exactly as its caller passed them (a Lambda event
    # that carries a bearer token, say). Injected values never land there: they go into ``call_args``
    # and ``kwargs``, which the wrapper clears before an exception leaves it.
    ("inject.py", "wrapper", "args"),
})
"""(module, function, local) that hold the caller's own data, not a value secretcache fetched."""


def leaking_locals(error: BaseException) -> list[str]:
    """``module:function() local 'name'`` for each local of a secretcache frame in ``error``'s
    tracebacks whose repr shows a canary."""
    found: list[str] = []
    for exc in _chain(error):
        for frame in _our_frames(exc.__traceback__):
            _findings.checked["frames"] += 1
            module = Path(frame.f_code.co_filename).name
            for name, value in frame.f_locals.items():
                if (module, frame.f_code.co_name, name) in CALLER_DATA:
                    continue
                try:
                    shown = saferepr(value, maxsize=None)
                except Exception:
                    continue
                if CANARY in shown:
                    found.append(f"{module}:{frame.f_code.co_name}() local {name!r}")
    return found


def audit_exception(error: BaseException, how: str) -> None:
    _findings.checked["tracebacks"] += 1
    for exc in _chain(error):
        if type(exc).__module__.startswith("secretcache") and (CANARY in str(exc) or CANARY in repr(exc)):
            _findings.leak(f"{how}: {type(exc).__name__} message")
    for where in leaking_locals(error):
        _findings.leak(f"{how}: traceback {where}")


class _AuditedRaises:
    """``pytest.raises(...)`` as a context manager, auditing the exception it caught."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __enter__(self) -> Any:
        return self._inner.__enter__()

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> Any:
        if exc is not None:
            audit_exception(exc, "pytest.raises")
        return self._inner.__exit__(exc_type, exc, tb)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def _watch_pytest_raises() -> Callable[[], None]:
    original = pytest.raises

    def raises(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        if isinstance(result, pytest.ExceptionInfo):  # the pytest.raises(E, func, *args) form
            audit_exception(result.value, "pytest.raises")
            return result
        return _AuditedRaises(result)

    raises.__doc__ = original.__doc__
    pytest.raises = raises

    def undo() -> None:
        pytest.raises = original

    return undo


# -- hooks -----------------------------------------------------------------------------------------

_undo: list[Callable[[], None]] = []


def pytest_configure(config: pytest.Config) -> None:
    _undo.append(_watch_exception_construction())
    _undo.append(_watch_pytest_raises())


def pytest_unconfigure(config: pytest.Config) -> None:
    while _undo:
        _undo.pop()()


def pytest_runtest_setup(item: pytest.Item) -> None:
    _findings.current_test = item.nodeid


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    report = yield
    if call.excinfo is not None:
        audit_exception(call.excinfo.value, f"failure in {call.when}")
    return report


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _findings.checked["reports"] += 1
    if CANARY in (report.longreprtext or ""):
        _findings.leak(f"{report.when} report text")
    for title, content in report.sections:
        if CANARY in content and ("stderr" in title or "log" in title or report.failed):
            _findings.leak(f"{report.when} {title}")


def pytest_warning_recorded(warning_message: Any, when: str, nodeid: str, location: Any) -> None:
    _findings.checked["warnings"] += 1
    if CANARY in str(warning_message.message):
        _findings.leak(f"warning {type(warning_message.message).__name__} ({nodeid or when})")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _findings.leaks:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any) -> None:
    counts = ", ".join(f"{n} {what}" for what, n in _findings.checked.items())
    if _findings.leaks:
        terminalreporter.section("SECRET LEAK: canary values in exceptions, tracebacks or reports", red=True)
        for leak in _findings.leaks:
            terminalreporter.line(leak)
        terminalreporter.line(f"(checked {counts})")
    else:
        terminalreporter.line(
            f"secret-leak canary (exceptions, traceback locals, reports): 0 leaks; checked {counts}")


def findings() -> _Findings:
    """The session's findings so far (for tests of the checks themselves)."""
    return _findings
