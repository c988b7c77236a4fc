"""Shared settings for the property-based tests (``tests/*/test_fuzz_*.py``) and the count of examples run.

CI (``CI`` set) runs a derandomized profile: the same examples every run, so a red build is a real
regression and not a lucky draw. Elsewhere the seed is random, so local runs keep exploring; set
``SECRETCACHE_FUZZ_SCALE`` (e.g. ``10``) for a longer hunt. Each module prints how many examples its
properties ran, so the closing note and docs/reliability.md can cite real numbers.
"""

from __future__ import annotations

import functools
import os
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, settings

F = TypeVar("F", bound=Callable[..., Any])

SCALE = float(os.environ.get("SECRETCACHE_FUZZ_SCALE", "1"))

settings.register_profile(
    "secretcache-ci", derandomize=True, database=None, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "secretcache-dev", deadline=None, print_blob=True, suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("secretcache-ci" if os.environ.get("CI") else "secretcache-dev")

examples_run: Counter[str] = Counter()
"""Examples executed per property (``module::test``), shrinking and explicit examples included."""


def examples(n: int) -> settings:
    """Hypothesis settings running ``n`` examples (times SECRETCACHE_FUZZ_SCALE)."""
    return settings(max_examples=max(1, int(n * SCALE)))


T = TypeVar("T")
E = TypeVar("E", bound=BaseException)


def outcome(fn: Callable[[], T], allowed: type[E]) -> tuple[T | None, E | None]:
    """``(result, None)``, or ``(None, error)`` when ``fn`` raised one of the ``allowed`` (documented) errors.

    Anything else propagates: the property fails, naming the undocumented exception.
    """
    try:
        return fn(), None
    except allowed as e:
        return None, e


def counted(fn: F) -> F:
    """Count each example the property runs (put it under ``@given``)."""
    name = f"{fn.__module__.rpartition('.')[2]}::{fn.__name__}"

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        examples_run[name] += 1
        return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def report_fixture(module: str) -> Callable[..., Iterator[None]]:
    """A module-scoped autouse fixture that prints the module's example count when it finishes."""

    @pytest.fixture(autouse=True, scope="module")
    def _report_examples(request: pytest.FixtureRequest) -> Iterator[None]:
        yield
        ran = {k: v for k, v in examples_run.items() if k.startswith(module + "::")}
        reporter = request.config.pluginmanager.get_plugin("terminalreporter")
        capture = request.config.pluginmanager.get_plugin("capturemanager")
        line = f"fuzz {module}: {sum(ran.values())} examples across {len(ran)} properties"
        if reporter is not None and capture is not None:
            with capture.global_and_fixture_disabled():  # straight to the terminal, past output capture
                reporter.write_line("")
                reporter.write_line(line)

    return _report_examples
