"""bench/bench_files.py runs (``--quick``) and reports every figure; its counted system calls hold the
behaviour the docs state: a hit makes none, a check past the interval one ``stat``, a re-read one ``open``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_files_quick_reports_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "files.json"
    done = subprocess.run([sys.executable, "-m", "bench.bench_files", "--quick", "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    results = json.loads(out.read_text())
    assert set(results["paths"]) >= {"dict lookup", "SecretCache(AwsBackend) hit", "SecretCache(FileBackend) hit",
                                     "FileBackend check past the interval (file unchanged)"}
    assert all(figures["ns"] > 0 for figures in results["paths"].values())
    syscalls = results["syscalls"]
    assert syscalls["hit within check_interval"] == {}
    assert syscalls["check past the interval, file unchanged"] == {"stat": 1}
    assert syscalls["re-read after a swap"]["open"] == 1
    assert "| SecretCache(FileBackend) hit |" in done.stdout
