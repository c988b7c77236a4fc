"""Benchmark ``secretcache serve``: cached reads under 64 concurrent keep-alive clients on its front end
(uvicorn with httptools, the [serve] extra; the standard library's server it was measured against is
gone, its figures stay in docs/serve.md), the same read through ``AgentBackend`` from Python beside an
in-process hit, and the memory of serve holding 1,000 secrets.

    python -m bench.bench_serve [--duration 10] [--connections 64] [--out bench/results/serve.json]

Load comes from ``wrk`` (Debian package ``wrk``), on this machine, beside the server. Secrets Manager is
moto's HTTP server in this process; after the prefetch no read reaches it. Prints a table and the
target checks (>= 5,000 reads/s, p99 <= 5 ms); writes every figure to JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "bench" / "results" / "serve.json"
TOKEN = "bench-token"  # nosec B105
SECRETS = 1000
READY = "secretcache serve: listening on "


def _env(endpoint: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1",
               AWS_EC2_METADATA_DISABLED="true", AWS_TOKEN=TOKEN, PYTHONPATH=str(REPO))
    env.pop("AWS_SESSION_TOKEN", None)
    return env


def _names(count: int) -> list[str]:
    return [f"bench/serve/{i:04d}" for i in range(count)]


def _start(argv: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(argv, env=env, cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,  # nosec B603
                            stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    deadline = time.monotonic() + 120
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if line.startswith(READY):
            return proc, int(line.strip().rpartition(":")[2])
        if time.monotonic() > deadline:
            break
    proc.kill()
    raise RuntimeError(f"server did not start: {argv}: {''.join(seen)[-3000:]}")


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _wrk(port: int, path: str, duration: float, connections: int, *, cpu: int | None = None) -> dict[str, float]:
    """wrk's figures for ``duration`` seconds of GETs on ``path``: two threads, or one pinned to ``cpu``."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")
    pinned = ["taskset", "-c", str(cpu), wrk, "-t1"] if cpu is not None else [wrk, "-t2"]
    out = subprocess.run(  # nosec B603
        [*pinned, f"-c{connections}", f"-d{duration:g}s", "--latency", "-H",
         f"X-Aws-Parameters-Secrets-Token: {TOKEN}", f"http://127.0.0.1:{port}{path}"],
        capture_output=True, text=True, check=True, timeout=duration + 60,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)

    def pct(label: str) -> float:
        value, unit = re.search(rf"\s{label}%\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    return {"reads_per_s": rps, "p50_ms": pct("50"), "p99_ms": pct("99"),
            "non_2xx": float(errors.group(1)) if errors else 0.0}


# -- the run --------------------------------------------------------------------------------------

def _python_reads(port: int, secret_id: str, count: int) -> dict[str, float]:
    from secretcache import CacheConfig, SecretCache
    from secretcache.backends.agent import AgentBackend
    from secretcache.testing import InMemoryBackend

    agent = AgentBackend(f"http://127.0.0.1:{port}", token=TOKEN)
    agent.get_secret_value(secret_id)
    times = []
    for _ in range(count):
        start = time.perf_counter()
        agent.get_secret_value(secret_id)
        times.append(time.perf_counter() - start)
    memory = InMemoryBackend()
    memory.put_secret("s", "value")
    cache = SecretCache(memory, config=CacheConfig(ttl=3600))
    cache.get_secret_value("s")
    hits = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(100_000):
            cache.get_secret_value("s")
        hits.append((time.perf_counter() - start) / 100_000)
    cache.close()
    times.sort()
    return {"agent_backend_p50_us": statistics.median(times) * 1e6,
            "agent_backend_p99_us": times[int(len(times) * 0.99)] * 1e6,
            "in_process_hit_us": min(hits) * 1e6}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_serve", description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--out", default=str(DEFAULT_OUT))
    args = parser.parse_args(argv)

    import logging

    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    client = boto3.client("secretsmanager", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id="bench", aws_secret_access_key="bench")
    ids = _names(SECRETS)
    for i, name in enumerate(ids):
        client.create_secret(Name=name, SecretString=json.dumps(
            {"username": f"app{i}", "password": "p" * 32, "host": "db.internal", "port": 5432}))
    env = _env(endpoint)
    path = f"/secretsmanager/get?secretId={ids[0]}"
    results: dict[str, Any] = {"machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                                           "loadavg_before": os.getloadavg()[0]},
                               "connections": args.connections, "duration_s": args.duration}
    try:
        serve = [sys.executable, "-m", "secretcache", "serve", "--port", "0", "--endpoint-url", endpoint,
                 "--ttl", "3600", "--log-level", "WARNING"]
        empty, _ = _start(serve, env)
        results["serve_rss_kib_empty"] = _rss_kib(empty.pid)
        _stop(empty)
        for kind in ("uvicorn",):
            proc, sport = _start([*serve, "--server", kind, "--prefetch", *ids], env)
            results[f"{kind}_rss_kib_1000_secrets"] = _rss_kib(proc.pid)
            _wrk(sport, path, 2, args.connections)  # warm-up
            results[kind] = _wrk(sport, path, args.duration, args.connections)
            if kind == "uvicorn":
                results["python_client"] = _python_reads(sport, ids[0], 2000)
            results[f"{kind}_rss_kib_after_load"] = _rss_kib(proc.pid)
            _stop(proc)
    finally:
        moto.stop()
    results["machine"]["loadavg_after"] = os.getloadavg()[0]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")

    print(f"cached reads, {args.connections} keep-alive connections, wrk -t2, {args.duration:g} s "
          f"(load average {results['machine']['loadavg_before']:.1f} before)")
    print(f"{'front end':<22}{'reads/s':>10}{'p50 ms':>9}{'p99 ms':>9}")
    for key in ("uvicorn",):
        row = results.get(key)
        if row:
            print(f"{key:<22}{row['reads_per_s']:>10.0f}{row['p50_ms']:>9.2f}{row['p99_ms']:>9.2f}")
    py = results["python_client"]
    print(f"AgentBackend read (new connection each): p50 {py['agent_backend_p50_us']:.0f} us, "
          f"p99 {py['agent_backend_p99_us']:.0f} us; in-process hit {py['in_process_hit_us'] * 1000:.0f} ns")
    print(f"serve RSS: {results['serve_rss_kib_empty'] / 1024:.1f} MiB empty; holding {SECRETS} secrets: "
          f"uvicorn {results['uvicorn_rss_kib_1000_secrets'] / 1024:.1f} MiB "
          f"({results['uvicorn_rss_kib_after_load'] / 1024:.1f} MiB after the load)")
    std = results["uvicorn"]
    print(f"serve (uvicorn): target >= 5,000 reads/s: {'met' if std['reads_per_s'] >= 5000 else 'NOT met'}; "
          f"p99 <= 5 ms: {'met' if std['p99_ms'] <= 5 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
