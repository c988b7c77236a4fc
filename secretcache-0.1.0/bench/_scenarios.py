"""The in-process measurements behind ``bench.bench_core``: cache hits, herds and outages.

Each function takes a store (``FakeStore`` or ``MotoStore``), builds one contender per library on
clients of its own over that store, and returns plain dicts ready for JSON. Timings are best-of or
percentiles within one run; call counts come from the clients, never from the libraries themselves.
"""

from __future__ import annotations

import json
import threading
import time
import timeit
from array import array
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from devtools.fake_client import FakeStore, rotated

from ._libs import LIBS, Contender, build, prepare_timing

REPO = Path(__file__).resolve().parent.parent


LATENCY = 0.05
"""Seconds per backend call in the herd and outage scenarios (a failing call takes FAILURE_LATENCY)."""
FAILURE_LATENCY = 0.005
HERD_THREADS = 32
HERD_TTL = 2
"""Seconds. The official lib takes whole seconds and draws each refresh in [round(ttl/2), ttl]: with 1 it
may draw 0 and refresh on every read, so 2 is the shortest usable ttl (all three are expired at 2.25 s)."""
HERD_DELAY = 0.25
"""Herds are released this long after the ttl passed."""
OUTAGE_TTL = 1


def secret_json(i: int, size: int = 1024) -> str:
    """A 1 KiB RDS-shaped JSON secret (exactly ``size`` characters), distinct per ``i``."""
    body = {"engine": "postgres", "host": f"db-{i}.cluster.internal", "port": 5432, "username": "app",
            "password": f"pw-{i:06d}-{(i * 2654435761) % 2**32:08x}", "dbname": "app", "padding": ""}
    pad = size - len(json.dumps(body))
    body["padding"] = "x" * pad
    text = json.dumps(body)
    assert len(text) == size
    return text


def secretcache_config(**fields: Any) -> Any:
    from secretcache import CacheConfig

    return CacheConfig(**fields)


def _percentiles(samples: Iterable[float]) -> dict[str, float | None]:
    """p50, p99 (nearest rank) and max, in ms."""
    data = sorted(samples)
    if not data:
        return {"p50_ms": None, "p99_ms": None, "max_ms": None}

    def rank(q: float) -> float:
        return round(data[min(len(data) - 1, int(q * len(data)))] * 1e3, 4)

    return {"p50_ms": rank(0.50), "p99_ms": rank(0.99), "max_ms": round(data[-1] * 1e3, 4)}


def _sleep_until(deadline: float) -> None:
    delay = deadline - time.monotonic()
    if delay > 0:
        time.sleep(delay)


# -- cache hits -------------------------------------------------------------------------------------


def bench_hits(store: Any, *, seconds: float, repeats: int) -> dict[str, Any]:
    """ns per cache hit for every path, best of ``repeats`` interleaved rounds, and x a dict lookup."""
    hit_id = "bench/hit"
    value = secret_json(0)
    store.latency = 0.0
    store.put_secret(hit_id, value)
    contenders = [build(lib, *store.new_client(), ttl=3600, max_age_default=True, hit_id=hit_id,
                        secretcache_config=secretcache_config(ttl=3600.0)) for lib in LIBS]
    table = {hit_id: value}
    paths: list[tuple[str, Contender | None, str, dict[str, Any]]] = [
        ("dict", None, "f(k)", {"f": table.__getitem__, "k": hit_id})
    ]
    for c in contenders:
        for name, (stmt, names) in c.hit_paths.items():
            prepare_timing(names)
            timeit.Timer(stmt, globals=names).timeit(1)  # fill: the misses are not timed
            paths.append((f"{c.lib}.{name}", c, stmt, names))
    calls_before = {c.lib: c.calls.total() for c in contenders}
    timers = []
    for label, _, stmt, names in paths:
        prepare_timing(names)
        timer = timeit.Timer(stmt, globals=names)
        number = 10
        while (elapsed := timer.timeit(number)) < seconds / 10:
            number *= 10
        timers.append((label, timer, names, max(1, int(number * seconds / elapsed))))
    best: dict[str, float] = {}
    for _ in range(repeats):
        for label, timer, names, number in timers:
            prepare_timing(names)
            per_call = timer.timeit(number) / number
            best[label] = min(best.get(label, per_call), per_call)
    base = best["dict"]
    result: dict[str, Any] = {
        "dict_ns": round(base * 1e9, 2),
        "paths": {label: {"ns": round(t * 1e9, 2), "x_dict": round(t / base, 2),
                          "stmt": next(p[2] for p in paths if p[0] == label)} for label, t in best.items()},
        "backend_calls_while_timing": {c.lib: c.calls.total() - calls_before[c.lib] for c in contenders},
        "secret_bytes": len(value),
    }
    for kind in ("string", "json"):
        result[kind] = {lib: result["paths"][f"{lib}.{kind}"] for lib in LIBS}
    for c in contenders:
        c.close()
    return result


# -- thundering herd -------------------------------------------------------------------------------


def _herd_once(c: Contender, secret_id: str, threads: int, new_value: str | None) -> dict[str, Any]:
    barrier = threading.Barrier(threads + 1)
    latencies = [0.0] * threads
    results: list[object] = [None] * threads

    def worker(i: int) -> None:
        barrier.wait()
        started = time.perf_counter()
        try:
            results[i] = c.read(secret_id)
        except Exception as e:
            results[i] = e
        latencies[i] = time.perf_counter() - started

    workers = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(threads)]
    for w in workers:
        w.start()
    before = c.calls.snapshot()
    barrier.wait()
    for w in workers:
        w.join()
    time.sleep(3 * LATENCY)  # a background refresh started by the herd finishes and is counted
    after = c.calls.snapshot()
    by_op = {op: n - before.get(op, 0) for op, n in after.items() if n - before.get(op, 0)}
    out: dict[str, Any] = {
        "calls": sum(by_op.values()), "by_operation": by_op, "latencies": latencies,
        "errors": sum(isinstance(r, Exception) for r in results),
    }
    if new_value is not None:
        out["got_new"] = sum(r == new_value for r in results)
        out["next_read_new"] = c.read(secret_id) == new_value
    return out


class _DictReads:
    """The herd's baseline: the same threads released together, each reading a plain dict."""

    class _NoCalls:
        @staticmethod
        def snapshot() -> dict[str, int]:
            return {}

    calls = _NoCalls()

    def __init__(self, secret_id: str, value: str) -> None:
        self.read = {secret_id: value}.__getitem__


def bench_herd(store: Any, *, repeats: int, tag: str = "") -> dict[str, Any]:
    """32 threads released together just after the ttl passed (steady, rotated) or uncached (cold)."""
    samples: dict[str, dict[str, list[dict[str, Any]]]] = {
        s: {lib: [] for lib in LIBS} for s in ("steady", "rotated", "cold")
    }
    config = secretcache_config(ttl=float(HERD_TTL), jitter=0.0)
    dict_runs: list[dict[str, Any]] = []
    for r in range(repeats):
        store.latency = 0.0
        ids = {s: f"herd{tag}/{s}-{r}" for s in ("steady", "rotated", "cold")}
        for i, secret_id in enumerate(ids.values()):
            store.put_secret(secret_id, secret_json(100 * r + i))
        made = {(s, lib): build(lib, *store.new_client(), ttl=HERD_TTL, secretcache_config=config)
                for s in ids for lib in LIBS}
        for (s, _), c in made.items():
            if s != "cold":
                c.read(ids[s])
        filled = time.monotonic()
        new_value = rotated(store.current_value(ids["rotated"]))
        store.latency = LATENCY
        _sleep_until(filled + HERD_TTL + HERD_DELAY)
        store.put_secret(ids["rotated"], new_value)
        for (s, lib), c in made.items():
            samples[s][lib].append(_herd_once(c, ids[s], HERD_THREADS, new_value if s == "rotated" else None))
            c.close()
        dict_runs.append(_herd_once(_DictReads(ids["steady"], "v"), ids["steady"], HERD_THREADS, None))  # type: ignore[arg-type]
    out: dict[str, Any] = {"threads": HERD_THREADS, "latency_ms": LATENCY * 1e3, "ttl_s": HERD_TTL,
                           "release_after_ttl_s": HERD_DELAY, "repeats": repeats,
                           "secretcache_config": repr(config),
                           "dict": _percentiles(x for run in dict_runs for x in run["latencies"])}
    for s, by_lib in samples.items():
        out[s] = {}
        for lib, runs in by_lib.items():
            calls = [run["calls"] for run in runs]
            ops: Counter[str] = Counter()
            for run in runs:
                ops.update(run["by_operation"])
            row: dict[str, Any] = {
                "calls_per_herd": sorted(calls)[len(calls) // 2], "calls_min": min(calls),
                "calls_max": max(calls), "by_operation": {op: n / len(runs) for op, n in ops.items()},
                "errors": sum(run["errors"] for run in runs), "callers": HERD_THREADS * len(runs),
                **_percentiles(x for run in runs for x in run["latencies"]),
            }
            if s == "rotated":
                row["got_new"] = sum(run["got_new"] for run in runs)
                row["next_read_new"] = all(run["next_read_new"] for run in runs)
            out[s][lib] = row
    return out


# -- outage ----------------------------------------------------------------------------------------


def _hammer(c: Contender, secret_id: str, threads: int, window: float, old: str, new: str) -> dict[str, Any]:
    barrier = threading.Barrier(threads + 1)
    deadline = [0.0]
    outs: list[tuple[int, int, int, Counter[str], array[float]]] = []

    def worker() -> None:
        read, clock = c.read, time.perf_counter
        reads = stale = fresh = 0
        errors: Counter[str] = Counter()
        lat = array("d")
        barrier.wait()
        end = deadline[0]
        while (started := clock()) < end:
            try:
                v = read(secret_id)
            except Exception as e:
                errors[type(e).__name__] += 1
            else:
                if v == old:
                    stale += 1
                elif v == new:
                    fresh += 1
            reads += 1
            lat.append(clock() - started)
        outs.append((reads, stale, fresh, errors, lat))

    workers = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    for w in workers:
        w.start()
    before = c.calls.total()
    deadline[0] = time.perf_counter() + window
    barrier.wait()
    for w in workers:
        w.join()
    time.sleep(2 * FAILURE_LATENCY)
    calls = c.calls.total() - before
    reads = sum(o[0] for o in outs)
    errors: Counter[str] = Counter()
    for o in outs:
        errors.update(o[3])
    return {
        "backend_calls": calls, "calls_per_s": round(calls / window, 1), "reads": reads,
        "stale_pct": round(100 * sum(o[1] for o in outs) / reads, 2),
        "fresh_pct": round(100 * sum(o[2] for o in outs) / reads, 2),
        "error_pct": round(100 * sum(errors.values()) / reads, 2), "errors": dict(errors),
        **_percentiles(x for o in outs for x in o[4]),
    }


def outage_config() -> Any:
    return secretcache_config(ttl=float(OUTAGE_TTL), jitter=0.0, stale_while_revalidate=0.0,
                              backoff_base=0.5, backoff_max=2.0)


def bench_outage(
    *, window: float, outage_s: float, recovery_cap: float, kind: str = "throttle"
) -> dict[str, Any]:
    """Hammering a secret whose ttl passed while the backend fails, then recovery after a longer outage.

    Each part has a store of its own; all are filled first so one wait covers every ttl.
    """
    config = outage_config()
    out: dict[str, Any] = {
        "kind": kind, "window_s": window, "latency_ms": LATENCY * 1e3,
        "failure_latency_ms": FAILURE_LATENCY * 1e3,
        "secretcache_config": repr(config),
        "official_config": f"secret_refresh_interval={OUTAGE_TTL}, "
                           "retry delays 1 s x 2^n up to 3600 s (defaults)",
        "powertools_config": f"max_age={OUTAGE_TTL}",
        "hammer": {},
    }
    parts: dict[str, tuple[FakeStore, str, str, list[Contender]]] = {}
    for part in ("1t", "8t", "recovery"):
        store = FakeStore(latency=LATENCY, failure_latency=FAILURE_LATENCY)
        secret_id, old = f"outage/{part}", secret_json(len(parts))
        store.put_secret(secret_id, old)
        made = [build(lib, *store.new_client(), ttl=OUTAGE_TTL, secretcache_config=config) for lib in LIBS]
        for c in made:
            c.read(secret_id)
        parts[part] = (store, secret_id, old, made)
    _sleep_until(time.monotonic() + OUTAGE_TTL + 0.1)
    for part, threads in (("1t", 1), ("8t", 8)):
        store, secret_id, old, made = parts[part]
        new = rotated(old)
        store.put_secret(secret_id, new)
        store.set_outage(kind)
        out["hammer"][part] = {c.lib: _hammer(c, secret_id, threads, window, old, new) for c in made}
        for c in made:
            c.close()
    out["recovery"] = _recovery(*parts["recovery"], outage_s, recovery_cap, kind)
    return out


class _Reads:
    """What one reader saw during the outage, and when it first saw the rotated value."""

    def __init__(self) -> None:
        self.reads = self.stale = self.errors = 0
        self.first_new: float | None = None


def _recovery(store: FakeStore, secret_id: str, old: str, made: list[Contender],
              outage_s: float, cap: float, kind: str) -> dict[str, Any]:
    """All three read (one thread each, every 1 ms) through an outage during which the secret is rotated."""
    new = rotated(old)
    store.put_secret(secret_id, new)
    before = {c.lib: c.calls.total() for c in made}
    state = {c.lib: _Reads() for c in made}
    back = threading.Event()

    def reader(c: Contender) -> None:
        st = state[c.lib]
        deadline = time.monotonic() + outage_s + cap + 1
        while time.monotonic() < deadline:
            try:
                v: str | None = c.read(secret_id)
            except Exception:
                v = None
            if not back.is_set():
                st.reads += 1
                st.stale += v == old
                st.errors += v is None
            elif v == new:
                st.first_new = time.monotonic()
                return
            time.sleep(0.001)

    store.set_outage(kind)
    readers = [threading.Thread(target=reader, args=(c,), daemon=True) for c in made]
    for r in readers:
        r.start()
    time.sleep(outage_s)
    during = {c.lib: c.calls.total() - before[c.lib] for c in made}
    store.set_outage(None)
    back_at = time.monotonic()
    back.set()
    for r in readers:
        r.join(timeout=max(0.0, back_at + cap - time.monotonic()))
    out: dict[str, Any] = {"outage_s": outage_s, "cap_s": cap, "read_every_ms": 1}
    for c in made:
        st = state[c.lib]
        first = st.first_new
        out[c.lib] = {
            "backend_calls_during": during[c.lib],
            "stale_pct": round(100 * st.stale / max(1, st.reads), 2),
            "error_pct": round(100 * st.errors / max(1, st.reads), 2),
            "recovered": first is not None and first - back_at <= cap,
            "lag_s": round(first - back_at, 3) if first is not None and first - back_at <= cap else None,
        }
        c.close()
    return out
