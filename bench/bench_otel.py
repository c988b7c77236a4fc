"""Benchmark what observability costs: an instrumented cache hit against an uninstrumented one, and
``secretcache serve`` with ``--metrics`` (and a scrape every 5 s) against without.

    python -m bench.bench_otel [--duration 5] [--rounds 3] [--connections 64] [--out bench/results/otel.json]

Hits: one process, the same secret, two caches over one ``InMemoryBackend``; one is instrumented with the
OpenTelemetry SDK (a ``MeterProvider`` with an in-memory reader, a ``TracerProvider`` with an in-memory
exporter). The two are timed in alternation, best of ``--rounds * 20`` short windows each, so load on the machine
hits both alike. Serve: the uvicorn front end, 1,000 secrets prefetched from moto's HTTP server, ``wrk``
(Debian package ``wrk``) on this machine; runs alternate without/with ``--metrics`` for ``--rounds`` rounds
and the medians are compared, beside serve's CPU time per read (``/proc``), which other processes' load
moves far less than throughput. With two or more CPUs (and ``taskset``), serve runs on one core and a
one-thread wrk on another: unpinned, wrk's two threads and serve's event loop share the cores and the
scheduler decides a run's throughput more than serve does (same-round ratios of 0.56-1.53 were seen).
Both arms get the same ``PYTHONHASHSEED``, so dict and set layouts do not differ between them.
Targets: hit <= 1.15x, serve throughput within 5 %. Writes JSON, prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from .bench_serve import SECRETS, TOKEN, _env, _names, _start, _stop, _wrk

REPO = Path(__file__).resolve().parents[1]
SCRAPE_EVERY = 5.0
DEFAULT_OUT = REPO / "bench" / "results" / "otel.json"
LOOPS = 50_000
WINDOWS = 20
"""Short windows, many of them, interleaved: on a loaded machine the best window of each is the quiet one."""


def _hits(rounds: int) -> dict[str, Any]:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from secretcache import CacheConfig, SecretCache
    from secretcache.otel import instrument
    from secretcache.testing import InMemoryBackend

    backend = InMemoryBackend({"bench/otel": "value"})
    config = CacheConfig(ttl=3600)
    plain, instrumented = SecretCache(backend, config=config), SecretCache(backend, config=config)
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    exporter = InMemorySpanExporter()
    tracers = TracerProvider()
    tracers.add_span_processor(SimpleSpanProcessor(exporter))
    instrument(instrumented, meter_provider=meters, tracer_provider=tracers)
    for cache in (plain, instrumented):
        cache.get_secret_string("bench/otel")

    def window(read: Any) -> float:
        start = time.perf_counter()
        for _ in range(LOOPS):
            read("bench/otel")
        return (time.perf_counter() - start) / LOOPS * 1e9

    results: dict[str, Any] = {}
    for method in ("get_secret_string", "get_secret_value", "get"):
        best = {"plain": float("inf"), "instrumented": float("inf")}
        pair = [("plain", plain), ("instrumented", instrumented)]
        for _ in range(rounds * WINDOWS):
            for name, cache in pair:
                best[name] = min(best[name], window(getattr(cache, method)))
            pair.reverse()  # neither always goes first
        results[method] = {"plain_ns": best["plain"], "instrumented_ns": best["instrumented"],
                           "ratio": best["instrumented"] / best["plain"]}
    reader.get_metrics_data()  # a collection works after the run (the counters are read now)
    results["spans"] = len(exporter.get_finished_spans())
    results["backend_calls"] = backend.count()
    plain.close()
    instrumented.close()
    meters.shutdown()
    tracers.shutdown()
    return results


def _api(rounds: int) -> dict[str, float]:
    """serve's request handling in process, without sockets: ``AgentApi.handle`` against the metered one for
    a cached read (the hit uvicorn answers on its event loop), best of interleaved windows."""
    from secretcache import CacheConfig, SecretCache
    from secretcache.serve import AgentApi
    from secretcache.serve._metrics import MeteredAgentApi
    from secretcache.testing import InMemoryBackend

    cache = SecretCache(InMemoryBackend({"bench/otel": "value"}), config=CacheConfig(ttl=3600))
    cache.get_secret_value("bench/otel")
    headers = {"x-aws-parameters-secrets-token": TOKEN}.get
    pair = [("plain", AgentApi(cache, token=TOKEN)), ("metered", MeteredAgentApi(cache, token=TOKEN))]
    best = {"plain": float("inf"), "metered": float("inf")}
    for _ in range(rounds * WINDOWS):
        for name, api in pair:
            start = time.perf_counter()
            for _ in range(LOOPS // 10):
                api.handle("GET", "/secretsmanager/get?secretId=bench/otel", headers, fresh_only=True)
            best[name] = min(best[name], (time.perf_counter() - start) / (LOOPS // 10) * 1e6)
        pair.reverse()
    cache.close()
    return {"plain_us": best["plain"], "metered_us": best["metered"], "added_us": best["metered"] - best["plain"]}


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (``/proc/PID/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _scraper(port: int, stop: threading.Event, counts: list[int]) -> None:
    """Prometheus's part: GET /metrics every 5 s (a common scrape interval is 15 s; Prometheus's default, 1 min)."""
    while not stop.wait(SCRAPE_EVERY):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:  # nosec B310
            response.read()
            counts.append(response.status)


def _cores() -> tuple[list[str], int | None]:
    """The command prefix that pins serve to a core, and the core for wrk (none on one CPU, or no taskset)."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2 or shutil.which("taskset") is None:
        return [], None
    return ["taskset", "-c", str(cpus[-1])], cpus[0]


def _serve(endpoint: str, duration: float, rounds: int, connections: int) -> dict[str, Any]:
    env = _env(endpoint)
    env["PYTHONHASHSEED"] = "0"
    ids = _names(SECRETS)
    path = f"/secretsmanager/get?secretId={ids[0]}"
    pin, wrk_cpu = _cores()
    base = [*pin, sys.executable, "-m", "secretcache", "serve", "--port", "0", "--endpoint-url", endpoint,
            "--ttl", "3600", "--log-level", "WARNING", "--server", "uvicorn", "--prefetch", *ids]
    runs: dict[str, list[dict[str, float]]] = {"without": [], "with_metrics": []}
    scrapes: list[int] = []
    order = ["without", "with_metrics"]
    for _ in range(rounds):
        for kind in order[:]:
            proc, port = _start([*base, "--metrics"] if kind == "with_metrics" else base, env)
            try:
                _wrk(port, path, 1, connections, cpu=wrk_cpu)  # warm-up
                stop = threading.Event()
                scraper = None
                if kind == "with_metrics":
                    scraper = threading.Thread(target=_scraper, args=(port, stop, scrapes), daemon=True)
                    scraper.start()
                cpu = _cpu_seconds(proc.pid)
                row = _wrk(port, path, duration, connections, cpu=wrk_cpu)
                cpu = _cpu_seconds(proc.pid) - cpu
                row["cpu_us_per_read"] = cpu / (row["reads_per_s"] * duration) * 1e6
                runs[kind].append(row)
                stop.set()
                if scraper is not None:
                    scraper.join(15)
            finally:
                _stop(proc)
        order.reverse()  # neither always runs first
    out: dict[str, Any] = {"pinned": wrk_cpu is not None, "runs": runs, "scrapes": len(scrapes),
                           "scrape_failures": sum(s != 200 for s in scrapes)}
    for kind, rows in runs.items():
        out[kind] = {key: statistics.median(row[key] for row in rows) for key in rows[0]}
    out["throughput_ratio"] = out["with_metrics"]["reads_per_s"] / out["without"]["reads_per_s"]
    out["cpu_ratio"] = out["with_metrics"]["cpu_us_per_read"] / out["without"]["cpu_us_per_read"]
    pairs = list(zip(runs["without"], runs["with_metrics"], strict=True))  # each round's two runs, back to back
    out["paired_throughput_ratios"] = [w["reads_per_s"] / o["reads_per_s"] for o, w in pairs]
    out["paired_cpu_ratios"] = [w["cpu_us_per_read"] / o["cpu_us_per_read"] for o, w in pairs]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_otel", description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds of wrk per serve run")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (serve) / windows x5 (hits)")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--skip-serve", action="store_true", help="only the hit path (no wrk needed)")
    parser.add_argument("--out", default=str(DEFAULT_OUT))
    args = parser.parse_args(argv)

    results: dict[str, Any] = {"machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                                           "loadavg_before": os.getloadavg()[0]},
                               "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    results["hits"] = _hits(args.rounds)
    results["api"] = _api(args.rounds)
    if not args.skip_serve:
        import logging

        import boto3
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        moto.start()
        try:
            host, port = moto.get_host_and_port()
            endpoint = f"http://{host}:{port}"
            client = boto3.client("secretsmanager", endpoint_url=endpoint, region_name="us-east-1",
                                  aws_access_key_id="bench", aws_secret_access_key="bench")
            for i, name in enumerate(_names(SECRETS)):
                client.create_secret(Name=name, SecretString=json.dumps({"username": f"app{i}", "password": "p" * 32}))
            results["serve"] = _serve(endpoint, args.duration, args.rounds, args.connections)
        finally:
            moto.stop()
    results["machine"]["loadavg_after"] = os.getloadavg()[0]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")

    machine = results["machine"]
    print(f"load average {machine['loadavg_before']:.1f} before, {machine['loadavg_after']:.1f} after "
          f"({machine['cpus']} CPUs)")
    print(f"{'cache hit':<22}{'plain ns':>10}{'otel ns':>10}{'ratio':>8}")
    for method in ("get_secret_string", "get_secret_value", "get"):
        row = results["hits"][method]
        print(f"{method:<22}{row['plain_ns']:>10.1f}{row['instrumented_ns']:>10.1f}{row['ratio']:>8.3f}")
    worst = max(results["hits"][m]["ratio"] for m in ("get_secret_string", "get_secret_value", "get"))
    print(f"instrumented hit <= 1.15x: {'met' if worst <= 1.15 else 'NOT met'} (worst {worst:.3f}); "
          f"spans {results['hits']['spans']}, backend calls {results['hits']['backend_calls']}")
    api = results["api"]
    print(f"serve's AgentApi.handle, cached read in process: {api['plain_us']:.2f} us, with --metrics "
          f"{api['metered_us']:.2f} us (+{api['added_us']:.2f} us)")
    if "serve" in results:
        serve = results["serve"]
        print("serve on one core, wrk (one thread) on another" if serve["pinned"] else
              "serve and wrk (two threads) unpinned: the scheduler moves the figures")
        print(f"{'serve (uvicorn)':<22}{'reads/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'CPU us/read':>13}"
              f"   (median of {args.rounds})")
        for kind in ("without", "with_metrics"):
            row = serve[kind]
            print(f"{kind:<22}{row['reads_per_s']:>10.0f}{row['p50_ms']:>9.2f}{row['p99_ms']:>9.2f}"
                  f"{row['cpu_us_per_read']:>13.1f}")
            print("    runs (reads/s): " + ", ".join(f"{r['reads_per_s']:.0f}" for r in serve["runs"][kind]))
        ratio = serve["throughput_ratio"]
        print(f"--metrics throughput within 5 %: {'met' if ratio >= 0.95 else 'NOT met'} ({ratio:.3f}); "
              f"{serve['scrapes']} scrapes, {serve['scrape_failures']} failed; serve's CPU per read "
              f"{serve['cpu_ratio']:.3f}x")
        print("paired (same round) throughput ratios: "
              + ", ".join(f"{r:.2f}" for r in serve["paired_throughput_ratios"])
              + f" (median {statistics.median(serve['paired_throughput_ratios']):.3f}); CPU per read ratios: "
              + ", ".join(f"{r:.2f}" for r in serve["paired_cpu_ratios"])
              + f" (median {statistics.median(serve['paired_cpu_ratios']):.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
