"""Measurements in fresh interpreters: memory per cached secret (one process per library) and import cost.

A process of its own keeps one library's imports, caches and allocator state out of another's figures.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

from devtools.fake_client import FakeStore

from ._libs import LIBS, OFFICIAL, POWERTOOLS, SECRETCACHE, build
from ._scenarios import REPO, secret_json, secretcache_config

# -- memory (one subprocess per library) ------------------------------------------------------------


def memory_worker(lib: str, n: int, max_size: int) -> dict[str, Any]:
    """Run inside a fresh process: B/secret held for ``n`` cached 1 KiB secrets, then the bounded variant."""
    import gc
    import tracemalloc

    store = FakeStore()
    names = [f"mem/secret-{i:05d}" for i in range(n)]
    for i, name in enumerate(names):
        store.put_secret(name, secret_json(i))
    warm = [f"mem/warm-{i}" for i in range(16)]
    for i, name in enumerate(warm):
        store.put_secret(name, secret_json(10**6 + i))

    def make(max_size: int) -> tuple[Callable[[str], object], Callable[[], int], Any]:
        client, calls = store.new_client()
        if lib == "dict":
            table: dict[str, str] = {}

            def fill(name: str) -> object:
                table[name] = client.get_secret_value(SecretId=name)["SecretString"]
                return table[name]

            return fill, lambda: len(table), calls
        c = build(lib, client, calls, ttl=3600, max_size=max_size,
                  secretcache_config=secretcache_config(ttl=3600.0, max_size=max_size))
        return c.read, c.entries, calls

    def measure(max_size: int) -> dict[str, Any]:
        read, entries, calls = make(max_size)
        for name in warm:  # code paths, lazy imports and first-use allocations, not counted
            read(name)
        gc.collect()
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        for name in names:
            read(name)
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - base
        tracemalloc.stop()
        return {"held_bytes": held, "entries_held": entries(), "backend_calls": calls.total()}

    full = measure(max(n * 2, max_size))
    result: dict[str, Any] = {"lib": lib, "n": n, "bytes_per_secret": round(full["held_bytes"] / n, 1)}
    result.update(full)
    if lib != "dict":
        gc.collect()
        bounded = measure(max_size)
        result["bounded"] = {"max_size": max_size if lib != POWERTOOLS else None, **bounded}
    return result


class MemoryRun:
    """The memory workers, one process per library (and the dict baseline), all started together.

    Only allocations are measured, so the workers may overlap phases whose figures are call counts.
    """

    def __init__(self, n: int, max_size: int) -> None:
        self.n, self.max_size = n, max_size
        self._procs = {
            lib: subprocess.Popen(
                [sys.executable, "-m", "bench.bench_core", "--memory-worker", lib, "--n", str(n),
                 "--max-size", str(max_size)],
                cwd=REPO, stdout=subprocess.PIPE, text=True,
            )
            for lib in ("dict", *LIBS)
        }

    def results(self) -> dict[str, Any]:
        rows = {}
        for lib, proc in self._procs.items():
            stdout, _ = proc.communicate(timeout=300)
            if proc.returncode:
                raise RuntimeError(f"memory worker {lib} failed ({proc.returncode})")
            rows[lib] = json.loads(stdout.strip().splitlines()[-1])
        base = rows["dict"]["bytes_per_secret"]
        for row in rows.values():
            row["x_dict"] = round(row["bytes_per_secret"] / base, 2)
        return {"secret_bytes": 1024, "n": self.n, "max_size": self.max_size, **rows}


# -- import cost ------------------------------------------------------------------------------------

_HEAVY = ("boto3", "botocore", "asyncio", "moto", "psycopg", "pymysql", "sqlalchemy", "concurrent.futures")


def _best_walls(codes: tuple[str, ...], runs: int, env: dict[str, str], cwd: str) -> list[float]:
    """Best wall time of ``python -c code`` for each code, the codes alternated so load hits them alike."""
    best = [float("inf")] * len(codes)
    for _ in range(runs):
        for i, code in enumerate(codes):
            started = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], env=env, cwd=cwd, check=True)
            best[i] = min(best[i], time.perf_counter() - started)
    return best


def _importtime(module: str, env: dict[str, str], cwd: str, runs: int) -> float:
    """Best cumulative µs of ``import module`` in ``python -X importtime`` (``a.b``: ``a`` plus ``a.b``)."""
    parts = module.split(".")
    wanted = {".".join(parts[: i + 1]) for i in range(len(parts))}
    pattern = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \| (\s*)(\S+)$")
    best = float("inf")
    for _ in range(runs):
        err = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {module}"], env=env, cwd=cwd,
                             check=True, capture_output=True, text=True).stderr
        total = 0
        for line in err.splitlines():
            m = pattern.match(line)
            if m and m[4] in wanted and not m[3]:
                total += int(m[2])
        best = min(best, total)
    return best


def bench_import(runs: int) -> dict[str, Any]:
    """``import X`` in fresh interpreters, minus a bare interpreter start; ``-X importtime`` cumulative."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONPATH"] = str(REPO)
    out: dict[str, Any] = {
        "runs": runs,
        "method": f"best of {runs} fresh `python -c 'import X'` minus best of {runs} `python -c pass`, "
                  "the two alternated, PYTHONPATH=<repo>, run from a temporary directory",
    }
    with tempfile.TemporaryDirectory() as cwd:
        out["bare_interpreter_ms"] = float("inf")
        for lib, module in ((SECRETCACHE, "secretcache"), (OFFICIAL, "aws_secretsmanager_caching"),
                            (POWERTOOLS, "aws_lambda_powertools.utilities.parameters")):
            is_ours = lib == SECRETCACHE
            # The anchors load botocore (~0.2 s a run): fewer runs for them.
            bare, wall = _best_walls(("pass", f"import {module}"), runs if is_ours else max(1, runs // 5),
                                     env, cwd)
            if is_ours:
                out["bare_interpreter_ms"] = round(bare * 1e3, 2)
            row: dict[str, Any] = {
                "module": module, "wall_ms": round((wall - bare) * 1e3, 2),
                "importtime_cumulative_ms": round(
                    _importtime(module, env, cwd, min(5, runs) if is_ours else max(1, runs // 7)) / 1e3, 2
                ),
            }
            if is_ours:
                probe = (f"import sys, json, {module}; "
                         f"print(json.dumps([m for m in {_HEAVY!r} if m in sys.modules]))")
                row["heavy_modules_loaded"] = json.loads(subprocess.run(
                    [sys.executable, "-c", probe], env=env, cwd=cwd, check=True, capture_output=True,
                    text=True,
                ).stdout)
                where = subprocess.run([sys.executable, "-c", f"import {module}; print({module}.__file__)"],
                                       env=env, cwd=cwd, check=True, capture_output=True, text=True).stdout
                row["imported_from"] = os.path.relpath(where.strip(), REPO)
            out[lib] = row
    return out
