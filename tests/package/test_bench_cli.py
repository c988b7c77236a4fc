"""The CLI start-up benchmark runs end to end and reports every command it promises (no timing asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # moto's HTTP server, real subprocesses

REPO = Path(__file__).resolve().parents[2]


def test_the_cli_benchmark_checks_resolution_and_reports_each_command(tmp_path: Path) -> None:
    out = tmp_path / "cli.json"
    proc = subprocess.run([sys.executable, "-m", "bench.bench_cli", "--runs", "1", "--out", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=180, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(out.read_text())
    assert results["resolved_values_checked"] is True  # the child got the resolved values, by digest
    assert list(results["commands"]) == ["true", "python -c pass", "secretcache run -- true",
                                         "secretcache run -- true, 3 references"]
    for figures in results["commands"].values():
        assert figures["cpu_ms"] >= 0
        assert figures["wall_ms"] > 0
    assert "cli-bench-password" not in proc.stdout + proc.stderr + out.read_text()
