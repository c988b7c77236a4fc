"""Benchmark the core cache side by side with the anchor libraries, in one process, on the same secrets.

    python -m bench.bench_core [--backend both|fake|moto] [--quick] [--out bench/results/core.json]

secretcache (through ``SecretCache(client=...)``), the official ``aws-secretsmanager-caching`` and
Powertools ``parameters`` each get a client of their own over one store: the botocore-shaped fake
of ``devtools.fake_client`` (injected latency and outages, calls counted per operation) or moto in
process with real boto3 clients (``--backend moto``: the hit and herd figures). ``both`` (the
default) runs everything on the fake, then hits and herds on moto. Timings are ratios to a dict
lookup measured in the same run, best-of or percentiles; call counts come from the clients.
Writes every figure to JSON, prints a table (ratios first) and the target checks.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from devtools.fake_client import FakeStore
from devtools.targets import MEMORY_TARGET_BYTES

from . import _procs as procs
from . import _scenarios as sc
from ._libs import LIBS, POWERTOOLS, SECRETCACHE

DEFAULT_OUT = sc.REPO / "bench" / "results" / "core.json"


@dataclass(frozen=True)
class Plan:
    hit_seconds: float
    hit_repeats: int
    herd_repeats: int
    moto_herd_repeats: int
    hammer_window_s: float
    outage_s: float
    recovery_cap_s: float
    memory_n: int
    memory_max_size: int
    import_runs: int
    overlap_memory: bool
    """Run the memory workers during the outage phase (whose checked figures are counts, not timings)."""


FULL = Plan(0.2, 7, 5, 3, 1.0, 10.0, 15.0, 10_000, 1024, 15, False)
QUICK = Plan(0.02, 3, 1, 1, 0.3, 1.5, 2.5, 1_000, 256, 5, True)


def _versions() -> dict[str, str]:
    names = ("secretcache", "aws-secretsmanager-caching", "aws-lambda-powertools", "boto3", "botocore",
             "moto")
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def run(backend: str, plan: Plan, *, quick: bool) -> dict[str, Any]:
    started = time.monotonic()
    results: dict[str, Any] = {
        "meta": {
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "command": "python -m bench.bench_core" + (f" --backend {backend}" if backend != "both" else "")
                       + (" --quick" if quick else ""),
            "quick": quick, "backend": backend, "plan": asdict(plan),
            "python": platform.python_version(), "platform": platform.platform(),
            "cpus": os.cpu_count(), "versions": _versions(),
            "secretcache_backend": "SecretCache(client=<a client like the anchors'>) -> AwsBackend",
        },
    }
    if backend in ("fake", "both"):
        step("fake: cache hits")
        fake: dict[str, Any] = {
            "hit": sc.bench_hits(FakeStore(), seconds=plan.hit_seconds, repeats=plan.hit_repeats)
        }
        step("fake: herds")
        fake["herd"] = sc.bench_herd(FakeStore(), repeats=plan.herd_repeats)
        memory = procs.MemoryRun(plan.memory_n, plan.memory_max_size) if plan.overlap_memory else None
        step("fake: outage" + (" (memory workers alongside)" if memory else ""))
        fake["outage"] = sc.bench_outage(window=plan.hammer_window_s, outage_s=plan.outage_s,
                                         recovery_cap=plan.recovery_cap_s)
        results["fake"] = fake
        step("memory (subprocesses)")
        results["memory"] = (memory or procs.MemoryRun(plan.memory_n, plan.memory_max_size)).results()
        step("import time (subprocesses)")
        results["import"] = procs.bench_import(plan.import_runs)
    if backend in ("moto", "both"):
        from devtools.fake_client import MotoStore

        step("moto: cache hits and herds")
        store = MotoStore()
        try:
            results["moto"] = {
                "hit": sc.bench_hits(store, seconds=plan.hit_seconds, repeats=plan.hit_repeats),
                "herd": sc.bench_herd(store, repeats=plan.moto_herd_repeats, tag="-moto"),
            }
        finally:
            store.close()
    results["checks"] = checks(results)
    ends = [t for _, t in _steps[1:]] + [time.monotonic()]
    results["meta"]["phase_s"] = {
        what: round(end - t, 1) for (what, t), end in zip(_steps, ends, strict=True)
    }
    results["meta"]["elapsed_s"] = round(time.monotonic() - started, 1)
    return results


_steps: list[tuple[str, float]] = []


def step(what: str) -> None:
    """Announce a phase on stderr and note when it began (the JSON keeps each phase's duration)."""
    _steps.append((what, time.monotonic()))
    print(f"... {what}", file=sys.stderr, flush=True)


# -- targets ---------------------------------------------------------------------------------------


def checks(r: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets, each with the measured value and whether it holds."""
    out: list[dict[str, Any]] = []

    def check(name: str, value: Any, target: str, ok: bool) -> None:
        out.append({"name": name, "value": value, "target": target, "ok": bool(ok)})

    for backend in ("fake", "moto"):
        if backend not in r:
            continue
        hit, herd = r[backend]["hit"], r[backend]["herd"]
        ours = hit["string"][SECRETCACHE]["x_dict"]
        check(f"{backend}: string hit x dict", ours, "<= 10", ours <= 10)
        ours = hit["json"][SECRETCACHE]["x_dict"]
        check(f"{backend}: JSON-field hit x dict", ours, "<= 20", ours <= 20)
        check(f"{backend}: no backend call while timing hits", hit["backend_calls_while_timing"],
              "0 for every library", not any(hit["backend_calls_while_timing"].values()))
        for scenario in ("steady", "rotated", "cold"):
            row = herd[scenario][SECRETCACHE]
            check(f"{backend}: herd {scenario}: API calls per herd", row["calls_max"], "1",
                  row["calls_max"] == 1)
        row = herd["steady"][SECRETCACHE]
        check(f"{backend}: herd steady: caller p99 (ms)", row["p99_ms"],
              f"<= 1 (a dict-read herd in the same run: p99 {herd['dict']['p99_ms']:g} ms)", row["p99_ms"] <= 1.0)
        pt = herd["steady"][POWERTOOLS]["calls_per_herd"]
        check(f"{backend}: anchor reproduced: Powertools calls per herd", pt, "32", pt == 32)
    if "fake" in r:
        outage = r["fake"]["outage"]
        for threads, by_lib in outage["hammer"].items():
            row = by_lib[SECRETCACHE]
            check(f"outage {threads}: backend calls per key in {outage['window_s']:g} s",
                  row["backend_calls"], "<= 2", row["backend_calls"] <= 2)
            check(f"outage {threads}: stale served %", row["stale_pct"], "100", row["stale_pct"] == 100)
        rec = outage["recovery"][SECRETCACHE]
        bound = 2.0 + outage["latency_ms"] / 1e3 + 0.01
        check(f"recovery lag after a {outage['recovery']['outage_s']:g} s outage (s)", rec["lag_s"],
              "<= backoff_max 2 s (+ one 50 ms round trip)", rec["recovered"] and rec["lag_s"] <= bound)
        mem = r["memory"][SECRETCACHE]
        check("memory per cached 1 KiB secret (B)", mem["bytes_per_secret"], f"<= {MEMORY_TARGET_BYTES}",
              mem["bytes_per_secret"] <= MEMORY_TARGET_BYTES)
        bounded, cap = mem["bounded"], r["memory"]["max_size"]
        check(f"bounded: entries held after {mem['n']:,} reads with max_size={cap}", bounded["entries_held"],
              f"<= {cap}", bounded["entries_held"] <= cap)
        limit = cap * mem["bytes_per_secret"] * 1.1
        check(f"bounded: memory held after {mem['n']:,} reads (B)", bounded["held_bytes"],
              f"<= 1.1 x max_size x B/secret = {limit:,.0f}", bounded["held_bytes"] <= limit)
        imp = r["import"][SECRETCACHE]
        check("import secretcache: heavy modules loaded", imp["heavy_modules_loaded"],
              "none of boto3, botocore, asyncio, moto, DB drivers",
              not set(imp["heavy_modules_loaded"]) - {"concurrent.futures"})
        check("import secretcache (ms, wall minus bare interpreter)", imp["wall_ms"], "< 30",
              imp["wall_ms"] < 30)
        check("import secretcache (ms, -X importtime cumulative)", imp["importtime_cumulative_ms"], "< 30",
              imp["importtime_cumulative_ms"] < 30)
    return out


# -- the table -------------------------------------------------------------------------------------


def _x(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:,.0f}x" if v >= 100 else f"{v:,.1f}x"


def _ns(v: float) -> str:
    return f"{v / 1e3:,.1f} us" if v >= 1e4 else f"{v:,.0f} ns"


def _table(title: str, head: list[str], rows: list[list[str]], left: int = 1) -> str:
    """A plain-text table; the first ``left`` columns are left-aligned, the rest right-aligned."""
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows, strict=True)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i < left else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    return "\n".join([f"\n== {title}", line(head), line(["-" * w for w in widths]), *map(line, rows)])


def render(r: dict[str, Any]) -> str:
    m = r["meta"]
    parts = [f"secretcache core benchmark - {m['date']} - Python {m['python']}, {m['cpus']} CPUs - "
             f"`{m['command']}`"]
    names = ["secretcache", "official", "Powertools"]
    for backend in ("fake", "moto"):
        if backend not in r:
            continue
        hit, herd = r[backend]["hit"], r[backend]["herd"]
        rows = [[kind] + [f"{_x(hit[kind][lib]['x_dict'])} ({_ns(hit[kind][lib]['ns'])})" for lib in LIBS]
                for kind in ("string", "json")]
        parts.append(_table(f"[{backend}] cache hit, x a dict lookup ({hit['dict_ns']:.1f} ns)",
                            ["hit", *names], rows))
        rows = []
        for scenario in ("steady", "rotated", "cold"):
            for lib, name in zip(LIBS, names, strict=True):
                row = herd[scenario][lib]
                new = f"{row['got_new']}/{row['callers']}" if "got_new" in row else "-"
                rows.append([f"{scenario}", name, str(row["calls_per_herd"]), f"{row['p50_ms']:.2f}",
                             f"{row['p99_ms']:.2f}", f"{row['max_ms']:.2f}", new])
        title = (f"[{backend}] herd: {herd['threads']} threads at ttl expiry, {herd['latency_ms']:g} ms "
                 f"backend ({herd['repeats']} repeats)")
        d = herd["dict"]
        rows.append(["steady", "a dict read", "0", *(f"{d[k]:.2f}" for k in ("p50_ms", "p99_ms", "max_ms")), "-"])
        head = ["scenario", "library", "API calls", "p50 ms", "p99 ms", "max ms", "got new value"]
        parts.append(_table(title, head, rows, left=2))
    if "fake" in r:
        outage = r["fake"]["outage"]
        rows = []
        for threads, by_lib in outage["hammer"].items():
            for lib, name in zip(LIBS, names, strict=True):
                row = by_lib[lib]
                rows.append([threads, name, str(row["backend_calls"]), f"{row['stale_pct']:g}%",
                             f"{row['error_pct']:g}%", f"{row['reads']:,}", f"{row['p99_ms']:.3f}"])
        parts.append(_table(f"outage: {outage['window_s']:g} s of reads past ttl, backend {outage['kind']}",
                            ["threads", "library", "API calls", "stale", "errors", "reads", "p99 ms"], rows,
                            left=2))
        rec = outage["recovery"]
        rows = [[name, str(rec[lib]["backend_calls_during"]), f"{rec[lib]['stale_pct']:g}%",
                 f"{rec[lib]['error_pct']:g}%",
                 f"{rec[lib]['lag_s']:.2f} s" if rec[lib]["recovered"] else f"> {rec['cap_s']:g} s"]
                for lib, name in zip(LIBS, names, strict=True)]
        parts.append(_table(f"recovery after a {rec['outage_s']:g} s outage with a rotation",
                            ["library", "API calls during", "stale", "errors", "lag to new value"], rows))
        mem = r["memory"]
        rows = [[name, f"{mem[lib]['bytes_per_secret']:,.0f}", _x(mem[lib]["x_dict"]),
                 f"{mem[lib]['bounded']['entries_held']:,}",
                 f"{mem[lib]['bounded']['held_bytes'] / 2**20:.2f}"]
                for lib, name in zip(LIBS, names, strict=True)]
        rows.append(["dict", f"{mem['dict']['bytes_per_secret']:,.0f}", "1.0x", "-", "-"])
        parts.append(_table(f"memory: {mem['n']:,} cached 1 KiB secrets",
                            ["library", "B/secret", "x dict", f"held at max_size {mem['max_size']}",
                             "MiB then"], rows))
        imp = r["import"]
        rows = [[name, imp[lib]["module"], f"{imp[lib]['wall_ms']:.1f}",
                 f"{imp[lib]['importtime_cumulative_ms']:.1f}"]
                for lib, name in zip(LIBS, names, strict=True)]
        parts.append(_table(f"import (bare interpreter {imp['bare_interpreter_ms']:.1f} ms subtracted)",
                            ["library", "module", "wall ms", "-X importtime ms"], rows, left=2))
    rows = [["ok" if c["ok"] else "MISSED", c["name"], json.dumps(c["value"]), c["target"]]
            for c in r["checks"]]
    parts.append(_table("targets", ["", "figure", "value", "target"], rows, left=4))
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_core", description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("both", "fake", "moto"), default="both")
    parser.add_argument("--quick", action="store_true", help="short runs (about 20 s) for the smoke test")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--memory-worker", choices=("dict", *LIBS), help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, default=10_000, help=argparse.SUPPRESS)
    parser.add_argument("--max-size", type=int, default=1024, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_worker:
        print(json.dumps(procs.memory_worker(args.memory_worker, args.n, args.max_size)))
        return 0
    results = run(args.backend, QUICK if args.quick else FULL, quick=args.quick)
    print(render(results))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    missed = [c["name"] for c in results["checks"] if not c["ok"]]
    print(f"\nwrote {args.out}; {len(results['checks']) - len(missed)}/{len(results['checks'])} targets met"
          f" ({results['meta']['elapsed_s']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
