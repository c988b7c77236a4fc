"""Suite-wide secret-leak canary.

Tests build their secret values with :func:`canary_value`, so every value carries the marker
``CANARY``. A handler on the ``secretcache`` logger (at DEBUG, for the whole session) and on every
other logger (at INFO and above) keeps each formatted record, traceback included; at the end of
the session any record holding the marker fails the run, naming the test that logged it.
"""

from __future__ import annotations

import logging

import pytest

from devtools.canary import CANARY, canary_value

__all__ = ["CANARY", "canary_value"]  # re-exported: tests import the values from their plugin


class _Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.leaks: list[str] = []
        self.records = 0
        self.current_test = "<collection>"
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        if not record.name.startswith("secretcache") and record.levelno < logging.INFO:
            return
        self.records += 1
        try:
            text = self.format(record)
        except Exception:  # a record that cannot be formatted cannot leak either
            return
        if CANARY in text:
            self.leaks.append(f"{self.current_test}: {record.name} {record.levelname}")


_recorder = _Recorder()


def pytest_sessionstart(session: pytest.Session) -> None:
    logging.getLogger().addHandler(_recorder)
    logging.getLogger("secretcache").setLevel(logging.DEBUG)


def pytest_runtest_setup(item: pytest.Item) -> None:
    _recorder.current_test = item.nodeid


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    logging.getLogger().removeHandler(_recorder)
    if _recorder.leaks:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _recorder.leaks:
        terminalreporter.section("SECRET LEAK: canary values found in log records", red=True)
        for leak in _recorder.leaks:
            terminalreporter.line(leak)
    else:
        terminalreporter.line(f"secret-leak canary: 0 leaks in {_recorder.records} log records")
