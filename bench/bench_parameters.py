"""Benchmark Parameter Store reads: secretcache's ``ssm:`` path beside Powertools' ``SSMProvider``, in one run.

    python -m bench.bench_parameters [--quick] [--out bench/results/parameters.json]

Both libraries read the same SecureString parameters from moto in process through real boto3 ``ssm``
clients of their own (calls counted per client by botocore's event hooks; each GetParameter made
``--latency`` ms slower, default 20, so a herd meets a service that takes time to answer):

- hit: ns per cached read, best of interleaved rounds, and the ratio to a dict lookup measured in the
  same run (``cache.get_secret_string("ssm:/bench/hit")`` and ``cache.get("ssm:...")`` vs Powertools 3.x
  ``SSMProvider.get(name, decrypt=True, max_age=3600)`` with its own cache);
- herds: 32 threads released together on a cold cache (first read) and just after the ttl passed
  (expiry): GetParameter calls per herd and every caller's latency (p50, p99), over ``repeats`` herds.

Writes every figure to JSON and prints a table with the ratios. Timings are ratios from one run on
whatever machine runs it; the call counts are what the test suite checks.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import threading
import time
import timeit
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "bench" / "results" / "parameters.json"
REGION = "us-east-1"
THREADS = 32
HIT_NAME = "/bench/hit"
LIBS = ("secretcache", "powertools")


def _value(i: int, size: int = 1024) -> str:
    head = json.dumps({"username": f"app{i}", "password": "p" * 24})
    return head[:-1] + ', "pad": "' + "x" * max(0, size - len(head) - 11) + '"}'


class Counted:
    """A boto3 ``ssm`` client whose GetParameter calls are counted and slowed by ``latency`` seconds."""

    def __init__(self, latency: float) -> None:
        import boto3

        self.client = boto3.client("ssm", region_name=REGION)
        self.calls = 0
        self.latency = latency
        self._lock = threading.Lock()
        self.client.meta.events.register("before-parameter-build.ssm.GetParameter", self._count)
        self.client.meta.events.register("before-send.ssm.GetParameter", self._slow)

    def _count(self, **_: Any) -> None:
        with self._lock:
            self.calls += 1

    def _slow(self, **_: Any) -> None:
        if self.latency:
            time.sleep(self.latency)


def secretcache_reader(counted: Counted, ttl: float) -> tuple[Callable[[str], str], Any]:
    from secretcache import CacheConfig, SecretCache
    from secretcache.backends import AwsBackend

    cache = SecretCache(AwsBackend(ssm_client=counted.client), config=CacheConfig(ttl=ttl, jitter=0.0))
    return (lambda name: cache.get_secret_string("ssm:" + name)), cache


def powertools_reader(counted: Counted, ttl: float) -> tuple[Callable[[str], str], Any]:
    from aws_lambda_powertools.utilities.parameters import SSMProvider

    provider = SSMProvider(boto3_client=counted.client)
    return (lambda name: provider.get(name, decrypt=True, max_age=int(ttl))), provider  # type: ignore[return-value]


READERS = {"secretcache": secretcache_reader, "powertools": powertools_reader}


def bench_hits(seconds: float, repeats: int) -> dict[str, Any]:
    """ns per cached read of one parameter, best of ``repeats`` interleaved rounds, and x a dict lookup."""
    sc_client, pt_client = Counted(0.0), Counted(0.0)
    sc_read, cache = secretcache_reader(sc_client, 3600)
    _, provider = powertools_reader(pt_client, 3600)
    ref = "ssm:" + HIT_NAME
    table = {ref: "v"}
    paths: dict[str, tuple[str, dict[str, Any]]] = {
        "dict": ("f(k)", {"f": table.__getitem__, "k": ref}),
        "secretcache.get_secret_string": ("f(k)", {"f": cache.get_secret_string, "k": ref}),
        "secretcache.get": ("f(k)", {"f": cache.get, "k": ref}),
        "powertools.SSMProvider.get": ("f(k, decrypt=True, max_age=3600)", {"f": provider.get, "k": HIT_NAME}),
    }
    sc_read(HIT_NAME)
    provider.get(HIT_NAME, decrypt=True, max_age=3600)
    before = (sc_client.calls, pt_client.calls)
    timers = []
    for label, (stmt, names) in paths.items():
        timer = timeit.Timer(stmt, globals=names)
        number = 10
        while (elapsed := timer.timeit(number)) < seconds / 10:
            number *= 10
        timers.append((label, timer, max(1, int(number * seconds / elapsed))))
    best: dict[str, float] = {}
    for _ in range(repeats):
        for label, timer, number in timers:
            per_call = timer.timeit(number) / number
            best[label] = min(best.get(label, per_call), per_call)
    base = best["dict"]
    cache.close()
    return {
        "dict_ns": round(base * 1e9, 2),
        "paths": {label: {"ns": round(t * 1e9, 2), "x_dict": round(t / base, 2), "stmt": paths[label][0]}
                  for label, t in best.items()},
        "powertools_over_secretcache": round(best["powertools.SSMProvider.get"]
                                             / best["secretcache.get_secret_string"], 2),
        "calls_while_timing": {"secretcache": sc_client.calls - before[0], "powertools": pt_client.calls - before[1]},
    }


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _herd(read: Callable[[str], str], name: str) -> list[float]:
    barrier = threading.Barrier(THREADS + 1)
    latencies = [0.0] * THREADS
    failures: list[BaseException] = []

    def worker(i: int) -> None:
        barrier.wait()
        started = time.perf_counter()
        try:
            read(name)
        except BaseException as e:  # reported, never hides a hang
            failures.append(e)
        latencies[i] = time.perf_counter() - started

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(THREADS)]
    for t in threads:
        t.start()
    barrier.wait()
    for t in threads:
        t.join(60)
    if failures:
        raise RuntimeError(f"{len(failures)} readers failed: {type(failures[0]).__name__}")
    return latencies


def bench_herds(repeats: int, latency: float, ttl: float) -> dict[str, Any]:
    """Cold and expiry herds for each library: GetParameter calls per herd, callers' p50 / p99 in ms."""
    import boto3

    admin = boto3.client("ssm", region_name=REGION)
    runs: dict[str, dict[str, dict[str, list[Any]]]] = {
        kind: {lib: {"calls": [], "latencies": []} for lib in LIBS} for kind in ("cold", "expiry")
    }
    for r in range(repeats):
        for lib in LIBS:
            name = f"/bench/herd/{lib}-{r}"
            admin.put_parameter(Name=name, Value=_value(r), Type="SecureString", Overwrite=True)
            counted = Counted(latency)
            read, owner = READERS[lib](counted, ttl)
            latencies = _herd(read, name)  # cold: nothing cached
            time.sleep(3 * latency)  # a background fetch started by the herd finishes and is counted
            runs["cold"][lib]["calls"].append(counted.calls)
            runs["cold"][lib]["latencies"] += latencies
            time.sleep(ttl + 0.05)  # just past the ttl
            before = counted.calls
            latencies = _herd(read, name)
            time.sleep(3 * latency)
            runs["expiry"][lib]["calls"].append(counted.calls - before)
            runs["expiry"][lib]["latencies"] += latencies
            if lib == "secretcache":
                owner.close()
    out: dict[str, Any] = {"threads": THREADS, "latency_ms": latency * 1e3, "ttl_s": ttl, "repeats": repeats}
    for kind, by_lib in runs.items():
        out[kind] = {}
        for lib, got in by_lib.items():
            ms = [x * 1e3 for x in got["latencies"]]
            out[kind][lib] = {
                "calls_per_herd": statistics.median(got["calls"]), "calls_min": min(got["calls"]),
                "calls_max": max(got["calls"]), "p50_ms": round(_percentile(ms, 0.5), 3),
                "p99_ms": round(_percentile(ms, 0.99), 3), "max_ms": round(max(ms), 3), "callers": len(ms),
            }
    return out


@contextmanager
def moto() -> Iterator[None]:
    for key, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                       ("AWS_DEFAULT_REGION", REGION)):
        os.environ.setdefault(key, value)
    from moto import mock_aws

    with mock_aws():
        import boto3

        boto3.client("ssm", region_name=REGION).put_parameter(Name=HIT_NAME, Value=_value(0), Type="SecureString")
        yield


def _versions() -> dict[str, str]:
    out = {}
    for name in ("secretcache", "aws-lambda-powertools", "boto3", "botocore", "moto"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def checks(r: dict[str, Any]) -> list[dict[str, Any]]:
    hit, herds = r["hit"], r["herds"]
    sc_hit = hit["paths"]["secretcache.get_secret_string"]["x_dict"]
    return [
        {"target": "ssm: hit <= 10x a dict lookup", "value": sc_hit, "met": sc_hit <= 10},
        {"target": "ssm: hit >= 5x faster than Powertools SSMProvider.get",
         "value": hit["powertools_over_secretcache"], "met": hit["powertools_over_secretcache"] >= 5},
        {"target": "cold herd: 1 GetParameter", "value": herds["cold"]["secretcache"]["calls_max"],
         "met": herds["cold"]["secretcache"]["calls_max"] == 1},
        {"target": "expiry herd: 1 GetParameter", "value": herds["expiry"]["secretcache"]["calls_max"],
         "met": herds["expiry"]["secretcache"]["calls_max"] == 1},
    ]


def render(r: dict[str, Any]) -> str:
    hit, herds = r["hit"], r["herds"]
    lines = [f"Parameter Store bench ({r['meta']['command']}), Python {r['meta']['python']}, "
             f"{r['meta']['cpus']} CPUs", "", f"hit (dict lookup {hit['dict_ns']} ns):"]
    for label, row in hit["paths"].items():
        lines.append(f"  {label:34} {row['ns']:>9.1f} ns  {row['x_dict']:>6.1f}x dict")
    lines.append(f"  Powertools / secretcache: {hit['powertools_over_secretcache']}x")
    lines.append("")
    lines.append(f"herds: {herds['threads']} threads, GetParameter +{herds['latency_ms']:.0f} ms, "
                 f"ttl {herds['ttl_s']} s, {herds['repeats']} herds each")
    for kind in ("cold", "expiry"):
        for lib in LIBS:
            row = herds[kind][lib]
            lines.append(f"  {kind:6} {lib:12} calls/herd {row['calls_per_herd']:>5} "
                         f"(min {row['calls_min']}, max {row['calls_max']})  p50 {row['p50_ms']:>8.3f} ms  "
                         f"p99 {row['p99_ms']:>8.3f} ms")
    lines.append("")
    for check in r["checks"]:
        lines.append(f"  [{'ok' if check['met'] else 'MISSED'}] {check['target']}: {check['value']}")
    lines.append("targets met" if all(c["met"] for c in r["checks"]) else "targets missed")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_parameters", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="short timings and one herd (a smoke run)")
    parser.add_argument("--latency", type=float, default=20.0, help="ms added to each GetParameter (default 20)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    seconds, repeats, herds = (0.02, 3, 1) if args.quick else (0.2, 7, 5)
    with moto():
        results: dict[str, Any] = {"meta": {
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "command": "python -m bench.bench_parameters" + (" --quick" if args.quick else ""),
            "python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count(),
            "versions": _versions(), "backend": "moto in process, real boto3 ssm clients",
        }}
        results["hit"] = bench_hits(seconds, repeats)
        results["herds"] = bench_herds(herds, args.latency / 1e3, ttl=1.0)
    results["checks"] = checks(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(render(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
