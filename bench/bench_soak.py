"""Load and soak: many threads and asyncio tasks read hundreds of secrets with a tiny ttl while the
secrets rotate and faults come and go; a bounded run that stops by itself and reports its figures.

    python -m bench.bench_soak [--backend memory|moto] [--seconds 120] [--secrets 300] [--out FILE]

``memory`` reads an ``InMemoryBackend`` (faults and latency injected in process: the cache's policy at
full speed); ``moto`` reads moto's HTTP server through ``devtools.faults.FaultProxy`` with a real
``AwsBackend`` (boto3, one attempt, 0.25 s read timeout): real sockets, resets and timeouts. One
``SecretCache`` is shared by the reader threads, one ``AsyncSecretCache`` by the reader tasks (on an
event loop of their own); both read the same secrets from the same backend.

The fault plan cycles through phases, a calm one between any two faults: access denied on a few
"doomed" secrets, throttling, the doomed secrets marked for deletion, 5xx, connection failures, slow
answers (permanent faults hit only the doomed secrets; transient ones every secret). The run
checks what the model promises and reports:

- errors by type against the plan: transient faults must never reach a reader (every secret was
  prefetched, so a stale value is served); a permanent fault reaches readers of the doomed secrets
  only, from its start until backoff_max after it ends; anything else is an unexpected error;
- every value read is a version that was written for that secret (never another secret's, never made up);
- API calls against the model's bound: per cache and secret, consecutive calls are at least
  min(ttl·(1-jitter), backoff_base) apart (single-flight, ttl, backoff), so calls ≤ secrets·(T/gap + 1);
- memory over time (tracemalloc, RSS) after warm-up: flat;
- reads/s, and how stale a value was when served (the time since the version it showed was replaced).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import random
import threading
import time
import tracemalloc
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from devtools.targets import MEMORY_TOLERANCE

from ._soak_targets import MemoryTarget, MotoTarget, Plan

REPO = Path(__file__).resolve().parent.parent
PHASES = ("calm", "denied", "calm", "throttle", "calm", "deleted", "calm", "5xx", "calm", "conn", "calm",
          "slow")
PERMANENT = {"denied": "SecretAccessDeniedError", "deleted": "SecretDeletedError"}


@dataclass
class Figures:
    plan: dict[str, Any]
    seconds: float = 0.0
    seconds_paused: float = 0.0
    """Time the readers were paused while memory was measured (not counted in reads/s)."""
    reads: int = 0
    reads_per_s: float = 0.0
    thread_reads: int = 0
    task_reads: int = 0
    rotations: int = 0
    api_calls: int = 0
    batch_calls: int = 0
    api_call_bound: int = 0
    errors_expected: dict[str, int] = field(default_factory=dict)
    errors_unexpected: dict[str, int] = field(default_factory=dict)
    unexpected_samples: list[str] = field(default_factory=list)
    wrong_values: int = 0
    stale_served: int = 0
    max_staleness_calm_s: float = 0.0
    max_staleness_s: float = 0.0
    memory: list[tuple[float, int, int]] = field(default_factory=list)
    """(seconds since start, tracemalloc bytes, RSS bytes) samples after warm-up."""
    memory_growth_bytes: int = 0
    """Growth of the cache's own memory (traced, the harness, the test double and moto left out) between
    the end of the first calm phase and the end of the last one: the same state, so a leak shows as growth."""
    memory_calm: list[tuple[float, int]] = field(default_factory=list)
    memory_top_growth: list[str] = field(default_factory=list)
    """Where the caches' memory grew most between the first and the last calm phase (file:line)."""
    phases: list[tuple[float, float, str]] = field(default_factory=list)
    log_records: int = 0
    log_leaks: int = 0

    def ok(self) -> bool:
        return (not self.log_leaks and not self.errors_unexpected and not self.wrong_values
                and self.api_calls <= self.api_call_bound and self.memory_growth_bytes <= MEMORY_TOLERANCE)


# Where the test double (its versions never expire), moto, the measuring itself and log capture (pytest
# keeps every record of a test in memory) allocate.
_NOT_THE_CACHE = ("*/bench/bench_soak.py", "*/secretcache/testing.py", "*/secretcache/backends/memory.py",
                  "*/uuid.py", "<string>", "*/devtools/faults.py", "*/moto/*", "*/werkzeug/*", "*/flask/*",
                  "*/tracemalloc.py", "*/linecache.py", "*/random.py", "*/logging/__init__.py", "*/_pytest/*",
                  "*/tests/fixtures/fix_canary*.py", "*/devtools/canary.py")


_snapshots: list[tracemalloc.Snapshot] = []
_growth: list[str] = []


def _drained(calls: Any) -> None:
    """Wait until no backend call happened for 0.3 s (background refreshes done), 10 s at most."""
    seen, deadline = calls(), time.monotonic() + 10
    while time.monotonic() < deadline:
        time.sleep(0.3)
        now = calls()
        if now == seen:
            return
        seen = now


def _workers_at_rest(caches: int) -> None:
    """Wait until each cache's worker pool is back to its one permanent thread: threads a fault phase
    started end after the pool's idle timeout (10 s), and until then their frames and connections would
    count as growth."""
    deadline = time.monotonic() + 12
    while time.monotonic() < deadline:
        if sum(t.name == "secretcache-refresh" for t in threading.enumerate()) <= caches:
            return
        time.sleep(0.1)


def _quiet_memory(running: threading.Event, calls: Any, sweep: Any, backoff_max: float) -> int:
    """The caches' memory in the same quiet state each time: readers paused; every failing key's backoff
    over and every secret read once more (so failures left by the last fault are retried and cleared);
    background refreshes drained; worker pools at rest; garbage collected. Counts the bytes traced
    outside the harness, the test double and moto."""
    running.clear()
    try:
        time.sleep(backoff_max + 0.05)
        for _ in range(2):  # a read after an outage serves stale and retries in the background: twice
            sweep()
            _drained(calls)
        _workers_at_rest(caches=2)
        gc.collect()
        snapshot = tracemalloc.take_snapshot()
    finally:
        running.set()
    snapshot = snapshot.filter_traces([tracemalloc.Filter(False, pattern) for pattern in _NOT_THE_CACHE])
    if not _snapshots:
        _snapshots.append(snapshot)  # the reference: what grew since is named in the figures
    else:
        _growth[:] = [f"{stat.traceback[0].filename.rpartition('/')[2]}:{stat.traceback[0].lineno} "
                      f"{stat.size_diff / 1e3:+.1f} kB ({stat.count_diff:+d})"
                      for stat in snapshot.compare_to(_snapshots[0], "lineno")[:8]]
    return sum(stat.size for stat in snapshot.statistics("filename"))


VALUES_PER_SECRET = 4
"""Rotations cycle through a fixed pool of values per secret, so the harness allocates nothing as it runs."""


class Ledger:
    """The values each secret may hold, which one is current, and when each was last replaced."""

    def __init__(self, pools: dict[str, list[str]]) -> None:
        self.pools = pools
        self.written = {secret_id: frozenset(pool) for secret_id, pool in pools.items()}
        self.latest = {secret_id: pool[0] for secret_id, pool in pools.items()}
        self.replaced_at: dict[str, float] = {}

    def write(self, secret_id: str, value: str) -> None:
        old, self.latest[secret_id] = self.latest[secret_id], value
        self.replaced_at[old] = time.monotonic()

    def staleness(self, value: str) -> float:
        replaced = self.replaced_at.get(value)
        return 0.0 if replaced is None else time.monotonic() - replaced


# -- the run ----------------------------------------------------------------------------------------


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def run(plan: Plan, *, value_of: Any = None) -> Figures:
    """Run the soak for ``plan.seconds`` (plus warm-up) and return the figures. ``value_of(i, n)`` makes the
    n-th value of secret i (default: a JSON document); tests pass canary values."""
    from secretcache import AsyncSecretCache, CacheConfig, SecretCache, SecretCacheError

    rng = random.Random(1234)
    value_of = value_of or (lambda i, n: json.dumps({"password": f"pw-{i}-{n}-{rng.random():.6f}"}))
    target: MemoryTarget | MotoTarget = MotoTarget(plan) if plan.backend == "moto" else MemoryTarget(plan)
    figures = Figures(plan=asdict(plan))
    ids = [f"soak/{i:04d}" for i in range(plan.secrets)]
    ledger = Ledger({secret_id: [value_of(i, n) for n in range(VALUES_PER_SECRET)]
                     for i, secret_id in enumerate(ids)})
    doomed = ids[: plan.doomed]
    for secret_id in ids:
        target.create(secret_id, ledger.latest[secret_id])

    config = CacheConfig(ttl=plan.ttl, jitter=plan.jitter, stale_while_revalidate=plan.swr,
                         backoff_base=plan.backoff_base, backoff_max=plan.backoff_max,
                         max_size=4 * plan.secrets)
    sync_cache = SecretCache(target.backend, config=config)
    async_cache = AsyncSecretCache(target.backend, config=config)
    assert not sync_cache.prefetch(ids), "warm-up prefetch failed"
    loop = asyncio.new_event_loop()
    assert not loop.run_until_complete(async_cache.prefetch(ids)), "warm-up prefetch failed"

    stop = threading.Event()
    running = threading.Event()  # cleared to pause the readers while memory is measured
    running.set()
    # The harness's own bookkeeping stays O(1) in the run's length, so tracemalloc sees the cache's memory.
    errors: Counter[tuple[float, str, str]] = Counter()  # (time to 0.1 s, secret id, error type) -> count
    phase_name = ["calm"]  # the phase in force
    recovered_from = [0.0]  # when the last fault (or measuring pause) ended
    staleness = {"calm": 0.0, "any": 0.0}
    counts = {"thread": 0, "task": 0, "wrong": 0}
    count_lock = threading.Lock()
    settle_after = plan.backoff_max + plan.ttl + plan.swr  # after a fault, the cache has recovered by then

    def check(secret_id: str, value: str) -> None:
        if value not in ledger.written[secret_id]:
            counts["wrong"] += 1
        elif value != ledger.latest.get(secret_id):
            age = ledger.staleness(value)
            staleness["any"] = max(staleness["any"], age)
            if phase_name[0] == "calm" and time.monotonic() - recovered_from[0] > settle_after:
                staleness["calm"] = max(staleness["calm"], age)

    def failed(secret_id: str, error: Exception) -> None:
        errors[(round(time.monotonic() - start, 1), secret_id, type(error).__name__)] += 1

    def reader(seed: int) -> None:
        local_rng, n = random.Random(seed), 0
        while not stop.is_set():
            running.wait()
            secret_id = local_rng.choice(ids)
            try:
                check(secret_id, sync_cache.get_secret_string(secret_id))
            except SecretCacheError as e:
                failed(secret_id, e)
            n += 1
            if plan.think:
                time.sleep(plan.think)
        with count_lock:
            counts["thread"] += n

    async def task_reader(seed: int) -> None:
        local_rng, n = random.Random(seed), 0
        while not stop.is_set():
            while not running.is_set():
                await asyncio.sleep(0.01)
            secret_id = local_rng.choice(ids)
            try:
                check(secret_id, await async_cache.get_secret_string(secret_id))
            except SecretCacheError as e:
                failed(secret_id, e)
            n += 1
            if plan.think:
                await asyncio.sleep(plan.think)
            elif n % 16 == 0:
                await asyncio.sleep(0)  # hits never suspend: let the other tasks run
        counts["task"] += n

    def sweep() -> None:
        """Read every secret once through each cache (errors are the fault plan's; counted as usual)."""
        async def read_all() -> None:
            for secret_id in ids:
                try:
                    await async_cache.get_secret_string(secret_id)
                except SecretCacheError as e:
                    failed(secret_id, e)

        for secret_id in ids:
            try:
                sync_cache.get_secret_string(secret_id)
            except SecretCacheError as e:
                failed(secret_id, e)
        asyncio.run_coroutine_threadsafe(read_all(), loop).result(60)

    async def all_tasks() -> None:
        await asyncio.gather(*(task_reader(1000 + i) for i in range(plan.tasks)))

    def rotator() -> None:
        period = 1.0 / plan.rotations_per_s if plan.rotations_per_s else None
        local_rng = random.Random(7)
        while period and not stop.wait(period):
            secret_id = local_rng.choice(ids[plan.doomed:])  # doomed secrets change state, not value
            pool = ledger.pools[secret_id]
            value = pool[(pool.index(ledger.latest[secret_id]) + 1) % len(pool)]
            ledger.write(secret_id, value)  # before the write: a reader may see it at once
            target.rotate(secret_id, value)
            figures.rotations += 1

    start = time.monotonic()
    tracemalloc.start()
    workers = [threading.Thread(target=reader, args=(i,), name=f"soak-reader-{i}")
               for i in range(plan.threads)]
    workers.append(threading.Thread(target=loop.run_until_complete, args=(all_tasks(),), name="soak-tasks"))
    workers.append(threading.Thread(target=rotator, name="soak-rotator"))
    for w in workers:
        w.start()

    phase_log: list[tuple[float, float, str]] = []
    warm_until = start + min(2.0, plan.seconds / 5)
    phase_index = 0
    next_sample = warm_until
    # The run lasts plan.seconds of load: the pauses that measure memory are added to it.
    while (now := time.monotonic()) < start + plan.seconds + figures.seconds_paused:
        phase = PHASES[phase_index % len(PHASES)]
        phase_start = now
        target.fault(phase, doomed)
        phase_name[0] = phase
        phase_end_at = min(start + plan.seconds + figures.seconds_paused, phase_start + plan.phase_seconds)
        while (now := time.monotonic()) < phase_end_at:
            if now >= next_sample:
                figures.memory.append((round(now - start, 2), tracemalloc.get_traced_memory()[0], _rss()))
                next_sample = now + max(0.25, plan.seconds / 60)
            time.sleep(0.05)
        target.heal(phase, doomed, plan.latency)
        if phase == "calm" and phase_start >= warm_until and phase_index % plan.measure_every == 0:
            paused = time.monotonic()
            quiet = _quiet_memory(running, target.calls, sweep, plan.backoff_max)
            figures.seconds_paused += time.monotonic() - paused
            figures.memory_calm.append((round(time.monotonic() - start, 2), quiet))
            recovered_from[0] = time.monotonic()  # the pause let entries expire: recovery starts again
        if phase != "calm":
            phase_name[0], recovered_from[0] = "calm", time.monotonic()
        phase_log.append((phase_start - start, time.monotonic() - start, phase))
        phase_index += 1

    stop.set()
    for w in workers:
        w.join(60)
        assert not w.is_alive(), f"{w.name} did not stop"
    figures.seconds = time.monotonic() - start
    tracemalloc.stop()

    api, batch = target.calls()
    figures.api_calls, figures.batch_calls = api, batch
    gap = min(plan.ttl * (1 - plan.jitter), plan.backoff_base)
    figures.api_call_bound = 2 * plan.secrets * (int(figures.seconds / gap) + 1)  # two caches
    figures.stale_served = sync_cache.stats.stale_served + async_cache.stats.stale_served
    figures.thread_reads, figures.task_reads = counts["thread"], counts["task"]
    figures.reads = counts["thread"] + counts["task"]
    figures.reads_per_s = round(figures.reads / max(0.1, figures.seconds - figures.seconds_paused))
    figures.wrong_values = counts["wrong"]
    figures.phases = [(round(a, 2), round(b, 2), p) for a, b, p in phase_log]
    figures.max_staleness_s = round(staleness["any"], 3)
    figures.max_staleness_calm_s = round(staleness["calm"], 3)
    _classify(figures, errors, phase_log, doomed, plan)
    if len(figures.memory_calm) >= 2:
        figures.memory_growth_bytes = figures.memory_calm[-1][1] - figures.memory_calm[0][1]
        figures.memory_top_growth = list(_growth)
    _snapshots.clear()
    sync_cache.close()
    loop.run_until_complete(async_cache.close())
    loop.close()
    target.close()
    return figures


def _classify(figures: Figures, errors: Counter[tuple[float, str, str]],
              phase_log: list[tuple[float, float, str]], doomed: list[str], plan: Plan) -> None:
    """Sort reader errors into those the fault plan allows and the rest."""
    expected: Counter[str] = Counter()
    unexpected: Counter[str] = Counter()
    # A permanent fault may reach readers of the doomed secrets from its start until the backoff after
    # its end has run out (0.1 s of rounding and 0.5 s of scheduling slack on either side).
    windows = [(a - 0.1, b + plan.backoff_max + 0.6, PERMANENT[p]) for a, b, p in phase_log if p in PERMANENT]
    for (t, secret_id, kind), n in sorted(errors.items()):
        allowed = secret_id in doomed and any(a <= t <= b and kind == k for a, b, k in windows)
        (expected if allowed else unexpected)[kind] += n
        if not allowed and len(figures.unexpected_samples) < 10:
            figures.unexpected_samples.append(f"t={t:.2f}s {secret_id} {kind}")
    figures.errors_expected, figures.errors_unexpected = dict(expected), dict(unexpected)


def report(figures: Figures) -> str:
    mem = figures.memory
    lines = [
        f"soak ({figures.plan['backend']}): {figures.seconds:.1f} s "
        f"({figures.seconds_paused:.1f} s paused to measure memory), {figures.plan['secrets']} secrets, "
        f"{figures.plan['threads']} threads + {figures.plan['tasks']} tasks, ttl {figures.plan['ttl']} s",
        f"  reads            {figures.reads:,} ({figures.reads_per_s:,}/s; threads {figures.thread_reads:,}, "
        f"tasks {figures.task_reads:,})",
        f"  rotations        {figures.rotations:,}",
        f"  API calls        {figures.api_calls:,} GetSecretValue + {figures.batch_calls} batch "
        f"(bound {figures.api_call_bound:,}: {figures.api_calls / max(1, figures.api_call_bound):.1%})",
        f"  errors allowed   {figures.errors_expected or 'none'}",
        f"  errors other     {figures.errors_unexpected or 'none'} {figures.unexpected_samples[:3]}",
        f"  wrong values     {figures.wrong_values}",
        f"  stale served     {figures.stale_served:,} (max staleness {figures.max_staleness_s} s; in calm, "
        f"once recovered: {figures.max_staleness_calm_s} s)",
    ]
    if mem:
        peak = max(m[1] for m in mem)
        lines.append(f"  memory (all)     traced {mem[0][1] / 1e6:.2f} -> {mem[-1][1] / 1e6:.2f} MB "
                     f"(peak {peak / 1e6:.2f}), RSS {mem[0][2] / 1e6:.1f} -> {mem[-1][2] / 1e6:.1f} MB")
    calm = figures.memory_calm
    if calm:
        samples = ", ".join(f"{b / 1e6:.2f}" for _, b in calm)
        lines.append(f"  memory (cache)   at calm-phase ends: {samples} MB; growth "
                     f"{figures.memory_growth_bytes / 1e3:+.0f} kB (tolerance {MEMORY_TOLERANCE // 1024} kB)")
        if figures.memory_growth_bytes > MEMORY_TOLERANCE:
            lines.append(f"  grew most at     {'; '.join(figures.memory_top_growth[:5])}")
    if figures.log_records:
        lines.append(f"  canary           {figures.log_leaks} leaks in {figures.log_records:,} log records")
    lines.append(f"  verdict          {'OK' if figures.ok() else 'FAILED'}")
    return "\n".join(lines)


PRESETS = {
    # CI: short runs (a full cycle of the fault plan each), run by tests/reliability/test_soak.py.
    ("ci", "memory"): Plan(seconds=26.0, phase_seconds=1.2, measure_every=8),
    ("ci", "moto"): Plan(backend="moto", seconds=26.0, secrets=60, threads=4, tasks=16, ttl=1.0, swr=0.5,
                         phase_seconds=1.2, rotations_per_s=20.0, think=0.001, measure_every=8),
    # nox -s soak: the figures in docs/reliability.md.
    ("long", "memory"): Plan(seconds=150.0),
    ("long", "moto"): Plan(backend="moto", seconds=150.0, secrets=100, ttl=2.0, swr=1.0, backoff_base=0.5,
                           backoff_max=2.0, phase_seconds=4.0, rotations_per_s=20.0, think=0.001),
}


class _LeakWatch(logging.Handler):
    """Formats every record of the ``secretcache`` logger (DEBUG) and of the others (INFO+), looking for
    the canary marker, as tests/fixtures/fix_canary.py does for the test suite."""

    def __init__(self, marker: str) -> None:
        super().__init__(logging.DEBUG)
        self.marker, self.records, self.leaks = marker, 0, 0
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        if not record.name.startswith("secretcache") and record.levelno < logging.INFO:
            return
        self.records += 1
        if self.marker in self.format(record):
            self.leaks += 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("memory", "moto"), default="memory")
    parser.add_argument("--preset", choices=("ci", "long"), default="long")
    parser.add_argument("--seconds", type=float, default=None, help="override the preset's duration")
    parser.add_argument("--canary", action="store_true",
                        help="secret values are canaries; every log record (secretcache at DEBUG) is checked")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    plan = PRESETS[(args.preset, args.backend)]
    if args.seconds is not None:
        plan = replace(plan, seconds=args.seconds)
    value_of, watch = None, None
    if args.canary:
        from devtools.canary import CANARY, canary_value

        value_of = lambda i, n: canary_value(f"soak-{i}-{n}")  # noqa: E731
        watch = _LeakWatch(CANARY)
        logging.getLogger().addHandler(watch)
        logging.getLogger("secretcache").setLevel(logging.DEBUG)
    figures = run(plan, value_of=value_of)
    if watch is not None:
        logging.getLogger().removeHandler(watch)
        figures.log_records, figures.log_leaks = watch.records, watch.leaks
    print(report(figures))
    out = args.out or REPO / "bench" / "results" / f"soak_{args.backend}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(asdict(figures), indent=1) + "\n")
    print(f"  figures written to {out.relative_to(REPO) if out.is_relative_to(REPO) else out}")
    return 0 if figures.ok() else 1


if __name__ == "__main__":
    raise SystemExit(main())
