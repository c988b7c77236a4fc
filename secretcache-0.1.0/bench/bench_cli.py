"""Start-up cost of ``secretcache run`` beside the bare command, in child CPU time and wall time.

    python -m bench.bench_cli [--runs 30] [--out bench/results/cli.json]

Four commands, interleaved round by round so machine load hits them alike: ``true``; ``python -c pass``
(the interpreter alone); ``secretcache run -- true`` with nothing to resolve; and ``secretcache run``
with three references (a plain id, an ``id#key`` and a ``{{resolve:...}}``) resolved from moto's HTTP
server, started in this process on a free port (so its work is not in the children's CPU time; the
network round trip to AWS would come on top). Each figure is the median over the runs; CPU time is
``RUSAGE_CHILDREN`` user + system, steadier than wall time on a shared machine. Before timing, one run
checks that the child really received the resolved values (by digest, never printed).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "bench" / "results" / "cli.json"
TRUE = shutil.which("true") or "/bin/true"
SECRETS = {"bench/cli-token": "token-value-for-the-cli-bench",
           "bench/cli-db": json.dumps({"username": "app", "password": "cli-bench-password"}),
           "bench/cli-key": "api-key-for-the-cli-bench"}
REFERENCES = {"SC_TOKEN": "bench/cli-token", "SC_PASSWORD": "bench/cli-db#password",
              "SC_KEY": "{{resolve:secretsmanager:bench/cli-key}}"}
EXPECTED = {"SC_TOKEN": SECRETS["bench/cli-token"], "SC_PASSWORD": json.loads(SECRETS["bench/cli-db"])["password"],
            "SC_KEY": SECRETS["bench/cli-key"]}
ENV_ARGS = [arg for name, ref in REFERENCES.items() for arg in ("--env", f"{name}={ref}")]
# The verifying child prints each variable's sha256, never the value.
REPORT = ("import hashlib, json, os; print(json.dumps({n: hashlib.sha256(os.environ.get(n, '').encode())"
          f".hexdigest() for n in {sorted(EXPECTED)!r}}}))")


def secretcache_command() -> list[str]:
    """The console script users run, from this interpreter's environment (``python -m`` failing that)."""
    script = Path(sys.executable).with_name("secretcache")
    return [str(script)] if script.exists() else [sys.executable, "-m", "secretcache"]


def commands() -> dict[str, list[str]]:
    run = [*secretcache_command(), "run"]
    return {
        "true": [TRUE],
        "python -c pass": [sys.executable, "-c", "pass"],
        "secretcache run -- true": [*run, "--", TRUE],
        "secretcache run -- true, 3 references": [*run, *ENV_ARGS, "--", TRUE],
    }


@contextmanager
def moto_endpoint() -> Iterator[str]:
    """moto's HTTP server (the tests' :func:`~devtools.moto_helpers.moto_server`) holding :data:`SECRETS`."""
    import boto3

    from devtools.moto_helpers import moto_server

    with moto_server() as endpoint:
        client = boto3.client("secretsmanager", endpoint_url=endpoint, region_name="us-east-1",
                              aws_access_key_id="testing", aws_secret_access_key="testing")
        for name, value in SECRETS.items():
            client.create_secret(Name=name, SecretString=value)
        yield endpoint


def child_env(endpoint: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SC_", "AWS_"))}
    env.update(AWS_ENDPOINT_URL_SECRETS_MANAGER=endpoint, AWS_ACCESS_KEY_ID="testing",
               AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1")
    return env


def check_resolution(env: dict[str, str]) -> None:
    """One run whose child reports digests: the references arrived resolved, or the bench stops."""
    out = subprocess.run([*secretcache_command(), "run", *ENV_ARGS, "--", sys.executable, "-c", REPORT],
                         env=env, capture_output=True, text=True, timeout=60, check=False)
    if out.returncode != 0:
        raise SystemExit(f"secretcache run failed (exit {out.returncode}): {out.stderr[-2000:]}")
    expected = {n: hashlib.sha256(v.encode()).hexdigest() for n, v in EXPECTED.items()}
    if json.loads(out.stdout) != expected:
        raise SystemExit("secretcache run did not hand the child the resolved values")


def time_once(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(child CPU ms, wall ms) of one run of ``cmd``, which must succeed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   stdin=subprocess.DEVNULL, timeout=60, check=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu * 1000, wall * 1000


def run(runs: int) -> dict[str, Any]:
    with moto_endpoint() as endpoint:
        env = child_env(endpoint)
        check_resolution(env)
        cmds = commands()
        samples: dict[str, list[tuple[float, float]]] = {name: [] for name in cmds}
        for cmd in cmds.values():  # one warm-up each: page cache, moto's first request
            time_once(cmd, env)
        for _ in range(runs):
            for name, cmd in cmds.items():
                samples[name].append(time_once(cmd, env))
    figures = {name: {"cpu_ms": round(statistics.median(s[0] for s in got), 2),
                      "wall_ms": round(statistics.median(s[1] for s in got), 2)}
               for name, got in samples.items()}
    python = figures["python -c pass"]
    for f in figures.values():
        f["cpu_over_python_ms"] = round(f["cpu_ms"] - python["cpu_ms"], 2)
        f["wall_over_python_ms"] = round(f["wall_ms"] - python["wall_ms"], 2)
    return {
        "when": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "python": platform.python_version(),
        "versions": {d: metadata.version(d) for d in ("secretcache", "boto3", "moto")},
        "cpus": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "runs": runs,
        "resolved_values_checked": True,
        "commands": figures,
    }


def render(results: dict[str, Any]) -> str:
    lines = [f"secretcache run start-up, median of {results['runs']} runs "
             f"(load average {results['load_average'][0]})",
             f"  {'command':40} {'CPU ms':>8} {'wall ms':>8} {'CPU over python':>16} {'wall over python':>17}"]
    for name, f in results["commands"].items():
        lines.append(f"  {name:40} {f['cpu_ms']:>8.1f} {f['wall_ms']:>8.1f} "
                     f"{f['cpu_over_python_ms']:>16.1f} {f['wall_over_python_ms']:>17.1f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_cli", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=30, help="timed runs of each command (default 30)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    results = run(args.runs)
    print(render(results))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"\nwrote {args.out.relative_to(REPO) if args.out.is_relative_to(REPO) else args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
