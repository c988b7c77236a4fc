"""Draw the core benchmark (``bench/results/core.json``) as one PNG: ``python -m bench.chart``.

Six panels, secretcache beside the official library and Powertools, from the fake-client run:
hit cost (x a dict lookup), API calls per herd, caller p99 in a herd, API calls during 1 s of
outage, recovery lag after a 10 s outage, memory per cached secret. Log scales where the
libraries differ by orders of magnitude.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display on CI machines

import matplotlib.pyplot as plt

REPO = Path(__file__).resolve().parent.parent
LIBS = ("secretcache", "official", "powertools")
NAMES = {"secretcache": "secretcache", "official": "official (aws-secretsmanager-caching)",
         "powertools": "Powertools parameters"}
COLORS = {"secretcache": "#2a7ab9", "official": "#d9822b", "powertools": "#8e6cbf"}


def _ratio(v: float) -> str:
    return f"{v:,.0f}x" if v >= 100 else f"{v:.1f}x"


def _line(ax: Any, y: float, text: str, *, right: bool = False) -> None:
    """A dashed reference line, labelled at the left (or right) edge."""
    ax.axhline(y, color="grey", ls="--", lw=0.8)
    ax.text(0.99 if right else 0.01, y, text, transform=ax.get_yaxis_transform(), fontsize=7,
            ha="right" if right else "left", va="bottom", color="dimgrey",
            bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1})


def _bars(ax: Any, groups: list[str], values: dict[str, list[float | None]], *, log: bool,
          fmt: Callable[[float], str]) -> None:
    width = 0.8 / len(LIBS)
    for i, lib in enumerate(LIBS):
        xs = [g + (i - 1) * width for g in range(len(groups))]
        heights = [v if v is not None else 0 for v in values[lib]]
        bars = ax.bar(xs, heights, width, color=COLORS[lib], label=NAMES[lib])
        for bar, v in zip(bars, values[lib], strict=True):
            label = "n/a" if v is None else fmt(v)
            ax.annotate(label, (bar.get_x() + bar.get_width() / 2, bar.get_height() or 1),
                        ha="center", va="bottom", fontsize=7, xytext=(0, 1), textcoords="offset points")
    ax.set_xticks(range(len(groups)), groups)
    if log:
        ax.set_yscale("log")
    ax.margins(y=0.15)
    ax.grid(axis="y", alpha=0.3, which="both")


def draw(results: dict[str, Any], out: Path) -> None:
    fake = results["fake"]
    fig, axes = plt.subplots(2, 3, figsize=(15, 8.6))
    hit = fake["hit"]
    _bars(axes[0, 0], ["string hit", "JSON-field hit"],
          {lib: [hit["string"][lib]["x_dict"], hit["json"][lib]["x_dict"]] for lib in LIBS},
          log=True, fmt=_ratio)
    _line(axes[0, 0], 10, "target: string hit <= 10x")
    axes[0, 0].set_title(f"Cache hit cost, x a dict lookup ({hit['dict_ns']:.0f} ns) - lower is better",
                         fontsize=10)

    herd = fake["herd"]
    scenarios = ["steady", "rotated", "cold"]
    _bars(axes[0, 1], scenarios, {lib: [herd[s][lib]["calls_per_herd"] for s in scenarios] for lib in LIBS},
          log=True, fmt="{:g}".format)
    axes[0, 1].set_title(f"API calls per herd ({herd['threads']} threads at ttl expiry)", fontsize=10)
    _bars(axes[0, 2], scenarios, {lib: [herd[s][lib]["p99_ms"] for s in scenarios] for lib in LIBS},
          log=True, fmt="{:.1f}".format)
    axes[0, 2].set_title(f"Caller p99 in a herd, ms ({herd['latency_ms']:g} ms backend)", fontsize=10)

    outage = fake["outage"]
    groups = list(outage["hammer"])
    _bars(axes[1, 0], [f"{g[:-1]} thread{'s' if g != '1t' else ''}" for g in groups],
          {lib: [outage["hammer"][g][lib]["backend_calls"] for g in groups] for lib in LIBS},
          log=True, fmt="{:,}".format)
    axes[1, 0].set_title(f"API calls in {outage['window_s']:g} s of reads during an outage (one key)",
                         fontsize=10)
    rec = outage["recovery"]
    _bars(axes[1, 1], [f"after a {rec['outage_s']:g} s outage"],
          {lib: [rec[lib]["lag_s"]] for lib in LIBS}, log=False, fmt="{:.2f} s".format)
    _line(axes[1, 1], 2.0, "secretcache backoff_max = 2 s")
    axes[1, 1].set_title("Recovery lag to the rotated value, s (Powertools: errors during the outage)",
                         fontsize=10)

    mem = results["memory"]
    _bars(axes[1, 2], ["B per cached 1 KiB secret"], {lib: [mem[lib]["bytes_per_secret"]] for lib in LIBS},
          log=False, fmt="{:,.0f}".format)
    _line(axes[1, 2], mem["dict"]["bytes_per_secret"], "plain dict")
    _line(axes[1, 2], 1500, "target <= 1,500", right=True)
    axes[1, 2].set_title(f"Memory, {mem['n']:,} secrets (tracemalloc)", fontsize=10)

    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, frameon=False)
    meta = results["meta"]
    fig.suptitle(f"secretcache vs the anchor libraries - fake botocore client, {meta['cpus']} shared CPUs, "
                 f"Python {meta['python']}, {meta['date'][:10]}", fontsize=12)
    fig.tight_layout(rect=(0, 0.04, 1, 0.97))
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)


def _md(head: list[str], rows: list[list[str]], left: int = 1) -> str:
    """A Markdown table; the first ``left`` columns are left-aligned, the numbers right-aligned."""
    align = ["---"] * left + ["---:"] * (len(head) - left)
    return "\n".join("| " + " | ".join(r) + " |" for r in [head, align, *rows])


def _ns(v: float) -> str:
    return f"{v / 1e3:,.1f} µs" if v >= 1e4 else f"{v:,.0f} ns"


NAMES_SHORT = dict(zip(LIBS, ("secretcache", "official", "Powertools"), strict=True))


def _hit_and_herd(backend: str, hit: dict[str, Any], herd: dict[str, Any]) -> list[str]:
    rows = [[label] + [f"{_ratio(hit[kind][lib]['x_dict'])} ({_ns(hit[kind][lib]['ns'])})" for lib in LIBS]
            for kind, label in (("string", "string hit"), ("json", "JSON-field hit"))]
    out = [f"Cache hit, {backend} backend (dict lookup: {hit['dict_ns']:.1f} ns)\n\n"
           + _md(["", *NAMES_SHORT.values()], rows)]
    other = (("secretcache.value", "secretcache `get_secret_value(id)` (the SecretValue)"),
             ("secretcache.json_mapping", "secretcache `get_secret_json(id)[key]` (a fresh dict per call)"),
             ("powertools.provider", "Powertools `SecretsProvider.get(id)` (no `get_secret` wrapper)"))
    rows = [[label, _ratio(hit["paths"][path]["x_dict"]), _ns(hit["paths"][path]["ns"])]
            for path, label in other if path in hit["paths"]]
    out.append(f"Other hit paths, {backend} backend\n\n" + _md(["path", "x dict", "per call"], rows))
    rows = []
    for scenario in ("steady", "rotated", "cold"):
        for lib in LIBS:
            row = herd[scenario][lib]
            calls = str(row["calls_per_herd"])
            if row["calls_min"] != row["calls_max"]:
                calls += f" ({row['calls_min']}-{row['calls_max']})"
            new = f"{row['got_new']}/{row['callers']}" if "got_new" in row else ""
            rows.append([scenario, NAMES_SHORT[lib], calls, f"{row['p50_ms']:.2f}", f"{row['p99_ms']:.2f}",
                         f"{row['max_ms']:.2f}", new])
    head = ["scenario", "library", "API calls per herd", "p50 ms", "p99 ms", "max ms",
            "callers given the rotated value"]
    out.append(f"Herd, {backend} backend ({herd['threads']} threads, {herd['latency_ms']:g} ms per call, "
               f"{herd['repeats']} repeats, {herd['threads'] * herd['repeats']} callers per row)\n\n"
               + _md(head, rows, left=2))
    return out


def _outage(outage: dict[str, Any]) -> list[str]:
    rows = []
    for threads, by_lib in outage["hammer"].items():
        for lib in LIBS:
            row = by_lib[lib]
            rows.append([threads[:-1], NAMES_SHORT[lib], f"{row['backend_calls']:,}",
                         f"{row['stale_pct']:g}%", f"{row['error_pct']:g}%", f"{row['reads']:,}",
                         f"{row['p99_ms']:.3f}"])
    head = ["threads", "library", "API calls", "stale served", "errors", "reads", "read p99 ms"]
    out = [f"Outage ({outage['window_s']:g} s of reads past the ttl; every call fails: {outage['kind']})\n\n"
           + _md(head, rows, left=2)]
    rec = outage["recovery"]
    rows = []
    for lib in LIBS:
        row = rec[lib]
        lag = f"{row['lag_s']:.2f} s" if row["recovered"] else f"> {rec['cap_s']:g} s"
        rows.append([NAMES_SHORT[lib], f"{row['backend_calls_during']:,}", f"{row['stale_pct']:g}%",
                     f"{row['error_pct']:g}%", lag])
    head = ["library", "API calls during the outage", "stale served", "errors", "lag to the rotated value"]
    out.append(f"Recovery ({rec['outage_s']:g} s outage, secret rotated during it, one reader per library "
               f"every {rec['read_every_ms']} ms)\n\n" + _md(head, rows))
    return out


def markdown(r: dict[str, Any]) -> str:
    """The tables of docs/benchmarks.md, from one results file."""
    out: list[str] = []
    for backend in ("fake", "moto"):
        if backend in r:
            out += _hit_and_herd(backend, r[backend]["hit"], r[backend]["herd"])
    if "fake" in r:
        out += _outage(r["fake"]["outage"])
        mem = r["memory"]
        rows = []
        for lib in LIBS:
            row, bounded = mem[lib], mem[lib]["bounded"]
            rows.append([NAMES_SHORT[lib], f"{row['bytes_per_secret']:,.0f}", _ratio(row["x_dict"]),
                         f"{bounded['entries_held']:,}", f"{bounded['held_bytes'] / 2**20:.2f}"])
        rows.append(["dict", f"{mem['dict']['bytes_per_secret']:,.0f}", "1.0x", "", ""])
        head = ["library", "B per secret", "x dict", "entries held (bounded run)", "MiB held (bounded run)"]
        out.append(f"Memory ({mem['n']:,} cached 1 KiB secrets; then the same reads with max_size "
                   f"{mem['max_size']:,})\n\n" + _md(head, rows))
        imp = r["import"]
        rows = [[NAMES_SHORT[lib], f"`{imp[lib]['module']}`", f"{imp[lib]['wall_ms']:.1f}",
                 f"{imp[lib]['importtime_cumulative_ms']:.1f}"] for lib in LIBS]
        out.append(f"Import (bare interpreter start, {imp['bare_interpreter_ms']:.1f} ms, subtracted)\n\n"
                   + _md(["library", "module", "wall ms", "`-X importtime` cumulative ms"], rows, left=2))
    rows = [["met" if c["ok"] else "**missed**", c["name"], f"`{json.dumps(c['value'])}`", c["target"]]
            for c in r["checks"]]
    out.append("Targets\n\n" + _md(["", "figure", "value", "target"], rows, left=4))
    return "\n\n".join(f"### {block}" for block in out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chart", description=__doc__.split("\n\n")[0])
    parser.add_argument("--in", dest="src", type=Path, default=REPO / "bench" / "results" / "core.json")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "img" / "benchmarks-core.png")
    parser.add_argument("--tables", action="store_true", help="also print the Markdown tables of the docs")
    args = parser.parse_args(argv)
    results = json.loads(args.src.read_text())
    draw(results, args.out)
    if args.tables:
        print(markdown(results))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
