"""Bounded load/soak runs (``bench/bench_soak.py``): threads and asyncio tasks read hundreds of secrets with
a tiny ttl while the secrets rotate and faults come and go.

CI runs the short presets in a subprocess (26 s of load each, in process and over moto's HTTP server with
real sockets, plus about 12 s per memory measurement while the readers pause; a subprocess so pytest's log
capture does not distort memory and speed); ``nox -s soak``
runs the long ones and writes the figures docs/reliability.md quotes. What is asserted is behaviour,
counted: no error beyond what the fault plan allows, every value read is one that was written for that
secret, API calls within the model's bound, the caches' memory flat across calm phases, and no canary
value (every secret is one) in any of the run's log records, secretcache's at DEBUG. Nothing depends on
the machine's speed: reads and rotations are compared with the run's own plan, never with a fixed rate.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from devtools.targets import MEMORY_TOLERANCE

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


def _soak(backend: str, tmp_path: Path) -> dict[str, Any]:
    out = tmp_path / f"soak_{backend}.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.bench_soak", "--backend", backend, "--preset", "ci", "--canary",
         "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=240,
    )
    print(proc.stdout)
    assert out.exists(), (
        f"the soak wrote no figures (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr[-3000:]}")
    figures: dict[str, Any] = json.loads(out.read_text())
    figures["_exit"], figures["_stdout"] = proc.returncode, proc.stdout
    return figures


def _check(f: dict[str, Any]) -> None:
    """Counts of behaviour and ratios to the run's own plan, never a rate: a loaded machine reads less,
    it must not fail (``reads > 10_000`` once did)."""
    summary = f["_stdout"]
    assert f["thread_reads"] > 0, summary  # the thread face read
    assert f["task_reads"] > 0, summary  # and the asyncio face
    assert f["reads"] > f["plan"]["secrets"], summary  # more reads than secrets, however slow the machine
    assert not f["errors_unexpected"], f"errors the fault plan does not allow: {f['unexpected_samples']}"
    assert set(f["errors_expected"]) == {"SecretAccessDeniedError", "SecretDeletedError"}, (
        f"the permanent faults of the plan must reach the readers of the doomed secrets: {summary}")
    assert f["wrong_values"] == 0, "a reader got a value that was never written for that secret"
    assert f["stale_served"] > 0, "transient faults never made the cache serve stale: plan not exercised"
    assert f["rotations"] >= len(f["phases"]), summary  # rotations went on through the run
    assert 0 < f["api_calls"] <= f["api_call_bound"], summary
    assert len(f["memory_calm"]) >= 2, "too few calm phases to judge memory"
    assert f["memory_growth_bytes"] <= MEMORY_TOLERANCE, summary
    assert f["log_records"] >= f["api_calls"], summary  # secretcache logs every fetch at DEBUG: all were scanned
    assert f["log_leaks"] == 0, summary
    assert f["_exit"] == 0, summary


def test_short_soak_in_process_serves_no_unplanned_error_with_flat_memory_and_bounded_calls(
    tmp_path: Path,
) -> None:
    _check(_soak("memory", tmp_path))


@pytest.mark.integration
def test_short_soak_over_moto_http_with_real_socket_faults_behaves_the_same(tmp_path: Path) -> None:
    _check(_soak("moto", tmp_path))
