"""The fleet model of docs/scale.md: GetSecretValue calls per hour, cost and peak rate for N hosts x P
processes x S secrets under (a) a cache per process, (b) one ``secretcache serve`` per host, (c) (b) plus
rotation events with a long ttl, against the 10,000 TPS quota.

    python -m bench.fleet_model [--out bench/results/fleet.json] [--markdown]

Nothing here is assumed per cache: the calls one cache makes per secret per hour are *measured* by
running a real ``SecretCache`` (InMemoryBackend, a simulated clock, a read of every secret every
second for simulated hours, background refresh off so each refresh happens in the reading thread) and,
for (c), a real ``EventListener`` applying one rotation event per secret per day. The fleet figures
multiply those measured counts by the number of caches: N x P for (a), N for (b) and (c).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "bench" / "results" / "fleet.json"
PRICE_PER_CALL = 0.05 / 10_000
QUOTA_TPS = 10_000
FLEETS = [(10, 4, 20), (100, 16, 20), (500, 16, 50), (2_000, 30, 50), (10_000, 30, 100)]
TTL = 300.0
LONG_TTL = 3600.0 * 12
ROTATIONS_PER_DAY = 1


class _Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def measured_calls_per_secret_hour(ttl: float, hours: float, *, rotations_per_day: float = 0.0,
                                   secrets: int = 20) -> float:
    """Backend calls one cache makes per secret per hour, reading each secret every second."""
    import random

    from secretcache import CacheConfig, SecretCache
    from secretcache.events import EventListener
    from secretcache.testing import InMemoryBackend

    backend = InMemoryBackend()
    names = [f"fleet/{i}" for i in range(secrets)]
    for name in names:
        backend.put_secret(name, "v0")
    clock = _Clock()
    rng = random.Random(7)  # nosec B311 - jitter draws
    cache = SecretCache(backend, config=CacheConfig(ttl=ttl, background_refresh=False), timer=clock,
                        random=rng.random)
    listener = EventListener("sqs://model", caches=[cache], client=object())
    seconds = int(hours * 3600)
    rotate_every = int(86_400 / rotations_per_day / secrets) if rotations_per_day else 0
    rotated = 0
    for second in range(seconds):
        clock.now += 1.0
        for name in names:
            cache.get_secret_value(name)
        if rotate_every and second % rotate_every == 0 and second:
            name = names[rotated % secrets]
            rotated += 1
            backend.put_secret(name, f"v{rotated}")
            body = json.dumps({"source": "aws.secretsmanager", "detail": {
                "eventName": "PutSecretValue", "requestParameters": {"secretId": name}}})
            listener.handle({"MessageId": str(rotated), "Body": body})
    calls = cache.stats.backend_calls
    cache.close()
    return calls / secrets / hours


def fleet_table(per_process: float, per_host: float, with_events: float) -> list[dict[str, Any]]:
    rows = []
    for hosts, procs, secrets in FLEETS:
        for model, caches, rate in (("a: cache per process", hosts * procs, per_process),
                                    ("b: serve per host", hosts, per_host),
                                    ("c: serve + events, ttl 12 h", hosts, with_events)):
            calls_hour = caches * secrets * rate
            rows.append({
                "hosts": hosts, "processes": procs, "secrets": secrets, "model": model,
                "calls_per_hour": calls_hour, "cost_per_month": calls_hour * 24 * 30 * PRICE_PER_CALL,
                "mean_tps": calls_hour / 3600,
                # a fleet-wide cold start (deploy, Region failover): every cache misses every secret at once
                "cold_start_calls": caches * secrets,
                "cold_start_quota_seconds": caches * secrets / QUOTA_TPS,
            })
    return rows


def markdown(result: dict[str, Any]) -> str:
    m = result["measured"]
    lines = [
        f"Measured calls per secret per hour for one cache: ttl {TTL:g} s: **{m['ttl']:.2f}**; "
        f"ttl {LONG_TTL / 3600:g} h with {ROTATIONS_PER_DAY} rotation event per secret per day: "
        f"**{m['long_ttl_events']:.3f}** (`python -m bench.fleet_model`).",
        "",
        "| hosts x processes x secrets | model | calls / hour | $ / month | mean TPS "
        "| cold start: calls (s at 10,000 TPS) |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['hosts']:,} x {r['processes']} x {r['secrets']} | {r['model']} | {r['calls_per_hour']:,.0f} | "
            f"{r['cost_per_month']:,.2f} | {r['mean_tps']:,.1f} | {r['cold_start_calls']:,} "
            f"({r['cold_start_quota_seconds']:,.1f} s) |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fleet_model", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(DEFAULT_OUT))
    parser.add_argument("--hours", type=float, default=6.0, help="simulated hours per measurement")
    parser.add_argument("--markdown", action="store_true", help="print the docs/scale.md table")
    args = parser.parse_args(argv)
    per_ttl = measured_calls_per_secret_hour(TTL, args.hours)
    long_events = measured_calls_per_secret_hour(LONG_TTL, max(args.hours, 48.0), rotations_per_day=ROTATIONS_PER_DAY)
    result = {"measured": {"ttl": per_ttl, "long_ttl_events": long_events, "ttl_s": TTL, "long_ttl_s": LONG_TTL,
                           "rotations_per_day": ROTATIONS_PER_DAY},
              "rows": fleet_table(per_ttl, per_ttl, long_events)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
