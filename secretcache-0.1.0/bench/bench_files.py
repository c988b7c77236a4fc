"""Benchmark reading mounted secrets: a FileBackend hit beside an AwsBackend hit, and what change detection costs.

    python -m bench.bench_files [--quick] [--out bench/results/files.json]

In one process and one run, on the same 1 KiB JSON secret:

- the hit paths: ``SecretCache`` over ``AwsBackend`` (moto in process, real boto3 client) and over
  ``FileBackend``; ``FileBackend.get_secret_value`` itself inside its ``check_interval`` (a read with no cache
  in front, what a ``ttl=0`` cache's fetch costs the backend); a dict lookup as the unit;
- change detection: one check past the interval of an unchanged file (``stat`` once, counted), a raw
  ``os.stat`` of the same path, and a re-read (``refresh_secret_value``: open, read, digest, close);
- the cost of checking N secrets once per ``check_interval`` (N stats per interval), as a fraction of a core.

Timings are best-of rounds of timeit loops, reported in ns and as ratios to the dict lookup of the same run;
system calls are counted by wrapping the backend module's ``os``. Writes JSON and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

from devtools.atomic_writer import AtomicWriter
from devtools.file_io import counting_os_module

from ._scenarios import REPO, secret_json

DEFAULT_OUT = REPO / "bench" / "results" / "files.json"
SECRET = "bench/db"


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _best(fn: Callable[[], object], *, seconds: float, repeats: int) -> float:
    """Seconds per call, best of ``repeats`` rounds of about ``seconds`` each."""
    timer = timeit.Timer(fn)
    number = 10
    while (elapsed := timer.timeit(number)) < seconds / 10:
        number *= 10
    number = max(1, int(number * seconds / elapsed))
    return min(timer.timeit(number) / number for _ in range(repeats))


def _count_syscalls(fn: Callable[[], object]) -> dict[str, int]:
    """The ``os`` functions one call of ``fn`` makes through the FileBackend module."""
    with counting_os_module() as fs:
        fn()
    return dict(fs.calls)


def run(*, seconds: float, repeats: int, quick: bool) -> dict[str, Any]:
    import boto3
    from moto import mock_aws

    from secretcache import SecretCache
    from secretcache.backends import AwsBackend, FileBackend
    from secretcache.config import CacheConfig

    value = secret_json(0)
    results: dict[str, Any] = {"meta": {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "command": "python -m bench.bench_files" + (" --quick" if quick else ""),
        "python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count(),
        "loadavg": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "secret_bytes": len(value), "seconds_per_round": seconds, "repeats": repeats,
    }}
    with tempfile.TemporaryDirectory() as tmp, mock_aws():
        root = Path(tmp) / "secrets-store"
        writer = AtomicWriter(root)
        writer.write({SECRET.replace("/", "_"): value})
        client = boto3.client("secretsmanager", region_name="us-east-1")
        client.create_secret(Name=SECRET, SecretString=value)

        config = CacheConfig(ttl=3600)
        aws_cache = SecretCache(AwsBackend(client=client), config=config)
        files_cache = SecretCache(FileBackend(root), config=config)
        clock = _Clock()
        backend = FileBackend(root, check_interval=1.0, timer=clock)
        checking = FileBackend(root, check_interval=0.0)  # every call is a check past the interval
        for cache in (aws_cache, files_cache):
            assert cache.get_secret_string(SECRET) == value  # fill: misses are not timed
        backend.get_secret_value(SECRET)
        checking.get_secret_value(SECRET)
        table = {SECRET: value}
        path = str(root / SECRET.replace("/", "_"))

        paths: dict[str, Callable[[], object]] = {
            "dict lookup": lambda: table[SECRET],
            "SecretCache(AwsBackend) hit": lambda: aws_cache.get_secret_string(SECRET),
            "SecretCache(FileBackend) hit": lambda: files_cache.get_secret_string(SECRET),
            "FileBackend.get_secret_value within check_interval": lambda: backend.get_secret_value(SECRET),
            "FileBackend check past the interval (file unchanged)": lambda: checking.get_secret_value(SECRET),
            "os.stat of the mounted path": lambda: os.stat(path),
            "FileBackend re-read (refresh_secret_value)": lambda: checking.refresh_secret_value(SECRET),
        }
        best: dict[str, float] = {}
        for _ in range(repeats):  # interleaved rounds: a burst of load hits every path alike
            for label, fn in paths.items():
                per_call = _best(fn, seconds=seconds, repeats=1)
                best[label] = min(best.get(label, per_call), per_call)
        base = best["dict lookup"]
        results["paths"] = {label: {"ns": round(t * 1e9, 1), "x_dict": round(t / base, 2)} for label, t in best.items()}
        hit_aws = best["SecretCache(AwsBackend) hit"]
        results["ratios"] = {
            "file_cache_hit_vs_aws_cache_hit": round(best["SecretCache(FileBackend) hit"] / hit_aws, 2),
            "file_backend_read_in_interval_vs_aws_cache_hit":
                round(best["FileBackend.get_secret_value within check_interval"] / hit_aws, 2),
            "check_vs_raw_stat": round(best["FileBackend check past the interval (file unchanged)"]
                                       / best["os.stat of the mounted path"], 2),
        }
        results["syscalls"] = {
            "hit within check_interval": _count_syscalls(lambda: backend.get_secret_value(SECRET)),
            "check past the interval, file unchanged": _count_syscalls(lambda: checking.get_secret_value(SECRET)),
            "re-read after a swap": _count_syscalls(
                lambda: (writer.write({SECRET.replace("/", "_"): value + " "}), checking.get_secret_value(SECRET))),
        }
        check = best["FileBackend check past the interval (file unchanged)"]
        results["change_detection"] = {
            "per_check_us": round(check * 1e6, 2),
            "core_fraction_per_interval_1s": {str(n): round(n * check, 6) for n in (1, 10, 100, 1000)},
        }
        aws_cache.close()
        files_cache.close()
    return results


def table(results: dict[str, Any]) -> str:
    lines = ["| path | ns | x dict |", "|---|---:|---:|"]
    for label, figures in results["paths"].items():
        lines.append(f"| {label} | {figures['ns']:,.1f} | {figures['x_dict']:,.2f} |")
    lines += ["", "| ratio | value |", "|---|---:|"]
    lines += [f"| {name} | {value} |" for name, value in results["ratios"].items()]
    lines += ["", "| system calls through the backend's os | calls |", "|---|---|"]
    lines += [f"| {name} | {calls or 'none'} |" for name, calls in results["syscalls"].items()]
    detection = results["change_detection"]
    lines += ["", f"change detection: {detection['per_check_us']} us per check (one stat); checking N secrets "
              "every 1 s costs N x that: " + ", ".join(f"N={n}: {f * 100:.4f}% of a core"
                                                       for n, f in detection["core_fraction_per_interval_1s"].items())]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_files", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="short rounds (a smoke run)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    results = run(seconds=0.02 if args.quick else 0.2, repeats=3 if args.quick else 7, quick=args.quick)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
