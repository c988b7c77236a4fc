"""The core benchmark runs end to end (``--quick``) and its figures meet the issue's behavioural targets.

One run of ``python -m bench.bench_core --quick`` in a subprocess (about 20 s) feeds every test here.
The assertions are call counts, who got which value, memory and ratios measured within the run, never
absolute timings; the one bound in seconds (recovery lag) is the configured backoff_max, 2 s.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from devtools.targets import MEMORY_TARGET_BYTES

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
LIBS = ("secretcache", "official", "powertools")
BACKOFF_MAX = 2.0


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("bench") / "core.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.bench_core", "--quick", "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "targets met" in proc.stdout
    data: dict[str, Any] = json.loads(out.read_text())
    return data


def test_json_has_every_figure_for_every_library(results: dict[str, Any]) -> None:
    for backend in ("fake", "moto"):
        hit, herd = results[backend]["hit"], results[backend]["herd"]
        assert hit["dict_ns"] > 0
        for kind in ("string", "json"):
            for lib in LIBS:
                assert hit[kind][lib]["ns"] > 0
                assert hit[kind][lib]["x_dict"] > 0
        for scenario in ("steady", "rotated", "cold"):
            for lib in LIBS:
                row = herd[scenario][lib]
                assert {"calls_per_herd", "p50_ms", "p99_ms", "max_ms", "callers"} <= row.keys()
                assert row["callers"] == herd["threads"] * herd["repeats"] == 32 * herd["repeats"]
    outage = results["fake"]["outage"]
    for threads in ("1t", "8t"):
        for lib in LIBS:
            row = outage["hammer"][threads][lib]
            assert {"backend_calls", "stale_pct", "error_pct", "reads", "p99_ms"} <= row.keys()
    for lib in LIBS:
        assert {"backend_calls_during", "stale_pct", "lag_s", "recovered"} <= outage["recovery"][lib].keys()
        assert results["memory"][lib]["bytes_per_secret"] > 0
        assert "bounded" in results["memory"][lib]
        assert results["import"][lib]["importtime_cumulative_ms"] > 0
    assert results["memory"]["dict"]["bytes_per_secret"] > 0
    assert results["checks"], "the run lists its target checks"


@pytest.mark.parametrize("backend", ["fake", "moto"])
def test_cache_hits_stay_within_a_small_multiple_of_a_dict_lookup(
    results: dict[str, Any], backend: str
) -> None:
    # The bench's own targets (10x, 20x) are checked and printed by `nox -s bench` on a quiet machine; here,
    # beside other test processes, the ratios only guard against a gross regression (a lock, a copy, I/O).
    hit = results[backend]["hit"]
    assert hit["string"]["secretcache"]["x_dict"] <= 30
    assert hit["json"]["secretcache"]["x_dict"] <= 60
    for kind in ("string", "json"):  # and the anchors are slower in the same run
        assert hit[kind]["official"]["ns"] > 10 * hit[kind]["secretcache"]["ns"]
        assert hit[kind]["powertools"]["ns"] > 2 * hit[kind]["secretcache"]["ns"]
    assert hit["backend_calls_while_timing"] == {lib: 0 for lib in LIBS}


@pytest.mark.parametrize("backend", ["fake", "moto"])
def test_a_herd_at_expiry_makes_one_call_and_nobody_waits_for_it(
    results: dict[str, Any], backend: str
) -> None:
    herd = results[backend]["herd"]
    for scenario in ("steady", "rotated", "cold"):
        assert herd[scenario]["secretcache"]["calls_max"] == 1
        assert herd[scenario]["secretcache"]["errors"] == 0
    rotated = herd["rotated"]
    # Stale-while-revalidate: every caller got the cached value at once, the one refresh landed after.
    assert rotated["secretcache"]["got_new"] == 0
    assert rotated["secretcache"]["next_read_new"] is True
    # The anchors, reproduced: the official lib made every caller wait for the new value; Powertools
    # sent one call per caller.
    assert rotated["official"]["got_new"] == rotated["official"]["callers"]
    assert herd["steady"]["powertools"]["calls_per_herd"] == 32


@pytest.mark.parametrize("threads", ["1t", "8t"])
def test_an_outage_costs_at_most_two_calls_per_key_and_serves_stale(
    results: dict[str, Any], threads: str
) -> None:
    row = results["fake"]["outage"]["hammer"][threads]
    assert row["secretcache"]["backend_calls"] <= 2
    assert row["secretcache"]["stale_pct"] == 100
    assert row["secretcache"]["error_pct"] == 0
    assert row["powertools"]["error_pct"] == 100
    assert row["powertools"]["backend_calls"] >= 10 * row["secretcache"]["backend_calls"]


def test_after_an_outage_with_a_rotation_the_new_value_arrives_within_backoff_max(
    results: dict[str, Any],
) -> None:
    recovery = results["fake"]["outage"]["recovery"]
    ours = recovery["secretcache"]
    assert ours["stale_pct"] == 100
    assert ours["error_pct"] == 0
    assert ours["recovered"] is True
    latency = results["fake"]["outage"]["latency_ms"] / 1e3
    assert ours["lag_s"] <= BACKOFF_MAX + latency + 0.25  # one round trip, plus scheduling slack


def test_memory_per_cached_secret_is_at_most_1500_bytes_1550_on_python_3_10_and_bounded_by_max_size(
    results: dict[str, Any],
) -> None:
    memory = results["memory"]
    ours = memory["secretcache"]
    assert ours["bytes_per_secret"] <= MEMORY_TARGET_BYTES
    assert ours["bytes_per_secret"] < memory["official"]["bytes_per_secret"]
    bounded, cap = ours["bounded"], memory["max_size"]
    assert ours["n"] > cap
    assert bounded["entries_held"] <= cap
    assert bounded["held_bytes"] <= 1.1 * cap * ours["bytes_per_secret"]


def test_import_secretcache_loads_no_boto3_asyncio_or_driver(results: dict[str, Any]) -> None:
    row = results["import"]["secretcache"]
    assert set(row["heavy_modules_loaded"]) <= {"concurrent.futures"}
    assert not row["imported_from"].startswith(".."), "measured the repository's package"
