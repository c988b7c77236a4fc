"""The Parameter Store benchmark runs end to end (``--quick``) and its behavioural figures hold: one
GetParameter per 32-thread herd at a cold start and at expiry, no call while hits are timed. (Ratios and
latencies are printed and recorded, never asserted: the machine may be loaded.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("bench") / "parameters.json"
    proc = subprocess.run([sys.executable, "-m", "bench.bench_parameters", "--quick", "--out", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data: dict[str, Any] = json.loads(out.read_text())
    return data


def test_every_figure_is_recorded(results: dict[str, Any]) -> None:
    paths = results["hit"]["paths"]
    for label in ("dict", "secretcache.get_secret_string", "secretcache.get", "powertools.SSMProvider.get"):
        assert paths[label]["ns"] > 0
    assert results["hit"]["powertools_over_secretcache"] > 0
    for kind in ("cold", "expiry"):
        for lib in ("secretcache", "powertools"):
            row = results["herds"][kind][lib]
            assert row["callers"] == 32
            assert row["p99_ms"] >= row["p50_ms"] >= 0
    assert {c["target"] for c in results["checks"]} >= {"cold herd: 1 GetParameter", "expiry herd: 1 GetParameter"}


def test_herds_make_one_call_and_hits_none(results: dict[str, Any]) -> None:
    assert results["herds"]["cold"]["secretcache"]["calls_max"] == 1
    assert results["herds"]["expiry"]["secretcache"]["calls_max"] == 1
    assert results["hit"]["calls_while_timing"] == {"secretcache": 0, "powertools": 0}
