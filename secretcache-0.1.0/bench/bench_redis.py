"""Benchmark secretcache.redis against bare redis-py on a real Redis: connect overhead, recovery time.

    python -m bench.bench_redis [--quick]

Needs Redis on 127.0.0.1:6379 with no password for the default user (an ACL user is made and deleted).
Secrets Manager is an in-process ``InMemoryBackend``: API calls cost nothing here, so recovery times are
the Redis and policy side only; on AWS add one GetSecretValue round trip per API call shown.

1. **Connect overhead on a cache hit**: a new connection + PING through ``secretcache.redis.client`` and
   through ``redis.Redis`` with the same password, interleaved (median; ratio = secretcache / bare). Two
   shapes: a new pooled connection per operation, and a new client per operation.
2. **Recovery**: wall time from the password change to the first successful PING on a new connection,
   (a) single-user window (AWSCURRENT dead, AWSPENDING live), (b) rotation completed while the cache
   still holds the old AWSCURRENT; with the AUTHs and API calls it took. A bare connect with the new
   password is the baseline.
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import time
from collections.abc import Callable
from typing import Any

import redis

from secretcache import CacheConfig, SecretCache
from secretcache.credentials import login
from secretcache.redis import client
from secretcache.testing import InMemoryBackend

HOST, PORT = "127.0.0.1", 6379
GET = "GetSecretValue"


class World:
    def __init__(self) -> None:
        self.admin = redis.Redis(HOST, PORT)
        self.user = f"bench-{secrets.token_hex(4)}"
        self.password = secrets.token_hex(16)
        self.admin.execute_command("ACL", "SETUSER", self.user, "on", "resetpass", f">{self.password}", "~*", "+@all")
        self.backend = InMemoryBackend()
        self.current = self.backend.put_secret("bench/redis", self.secret(self.password))

    def secret(self, password: str) -> str:
        return json.dumps({"username": self.user, "password": password, "host": HOST, "port": PORT})

    def cache(self) -> SecretCache:
        return SecretCache(self.backend, config=CacheConfig(ttl=3600))

    def rotate(self, *, finish: bool) -> None:
        self.password = secrets.token_hex(16)
        pending = self.backend.put_secret("bench/redis", self.secret(self.password), stages=("AWSPENDING",))
        self.admin.execute_command("ACL", "SETUSER", self.user, "resetpass", f">{self.password}")
        if finish:
            self.backend.update_version_stage("bench/redis", "AWSCURRENT", move_to_version_id=pending,
                                              remove_from_version_id=self.current)
            self.current = pending

    def auths_refused(self) -> int:
        total = 0
        for entry in self.admin.execute_command("ACL", "LOG", "128"):
            fields = dict(zip(entry[::2], entry[1::2], strict=True)) if isinstance(entry, list) else entry
            name = fields.get(b"username", fields.get("username"))
            if name in (self.user, self.user.encode()):
                total += int(fields.get(b"count", fields.get("count", 0)))
        return total

    def close(self) -> None:
        self.admin.execute_command("ACL", "DELUSER", self.user)
        self.admin.close()


def _noop(value: Any) -> None:
    return None


def _never(error: BaseException) -> bool:
    return False


def _median_pair(ours: Callable[[], None], bare: Callable[[], None], n: int) -> tuple[float, float]:
    a: list[float] = []
    b: list[float] = []
    pairs = ((ours, a), (bare, b))
    for i in range(n):  # interleaved, in alternating order: both see the same machine load
        for fn, out in pairs if i % 2 else pairs[::-1]:
            t = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t)
    return statistics.median(a), statistics.median(b)


def bench_overhead(w: World, n: int) -> list[dict[str, Any]]:
    cache = w.cache()
    ours = client("bench/redis", cache=cache)
    bare = redis.Redis(HOST, PORT, username=w.user, password=w.password)

    def pooled(r: redis.Redis) -> Callable[[], None]:
        def op() -> None:
            r.connection_pool.disconnect()
            r.ping()
        return op

    def new_ours() -> None:
        with client("bench/redis", cache=cache) as r:
            r.ping()

    def new_bare() -> None:
        with redis.Redis(HOST, PORT, username=w.user, password=w.password) as r:
            r.ping()

    path = []  # the policy alone: one login() through the cache, a no-op connect
    for _ in range(n):
        t = time.perf_counter()
        login("bench/redis", _noop, is_auth_failure=_never, cache=cache)
        path.append(time.perf_counter() - t)
    rows = [{"shape": "policy path alone (login, no-op)", "ours_ms": statistics.median(path) * 1e3,
             "bare_ms": 0.0, "delta_us": statistics.median(path) * 1e6, "ratio": float("nan")}]
    for shape, o, b in (("PING on an open connection", ours.ping, bare.ping),
                        ("new pooled connection + PING", pooled(ours), pooled(bare)),
                        ("new client + PING", new_ours, new_bare)):
        m_o, m_b = _median_pair(o, b, n)
        rows.append({"shape": shape, "ours_ms": m_o * 1e3, "bare_ms": m_b * 1e3,
                     "delta_us": (m_o - m_b) * 1e6, "ratio": m_o / m_b})
    ours.close()
    bare.close()
    cache.close()
    return rows


def bench_recovery(w: World, rounds: int) -> list[dict[str, Any]]:
    rows = []
    for case, finish in (("single-user window (AWSPENDING live)", False), ("rotation completed, cache old", True)):
        ours_t, bare_t, auths, calls = [], [], [], []
        for _ in range(rounds):
            cache = w.cache()
            r = client("bench/redis", cache=cache)
            r.ping()
            r.connection_pool.disconnect()
            c0, a0 = w.backend.calls[GET], w.auths_refused()
            w.rotate(finish=finish)
            t = time.perf_counter()
            r.ping()
            ours_t.append(time.perf_counter() - t)
            auths.append(w.auths_refused() - a0 + 1)
            calls.append(w.backend.calls[GET] - c0)
            with redis.Redis(HOST, PORT, username=w.user, password=w.password) as bare:
                t = time.perf_counter()
                bare.ping()
                bare_t.append(time.perf_counter() - t)
            r.close()
            cache.close()
            if not finish:  # complete it, so the next round starts from a settled secret
                pending = w.backend.get_secret_value("bench/redis", version_stage="AWSPENDING")
                w.backend.update_version_stage("bench/redis", "AWSCURRENT", move_to_version_id=pending.version_id,
                                               remove_from_version_id=w.current)
                w.current = pending.version_id
        m_o, m_b = statistics.median(ours_t), statistics.median(bare_t)
        rows.append({"case": case, "ours_ms": m_o * 1e3, "bare_ms": m_b * 1e3, "ratio": m_o / m_b,
                     "auths": max(auths), "api_calls": max(calls)})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    w = World()
    try:
        overhead = bench_overhead(w, 200 if args.quick else 2000)
        recovery = bench_recovery(w, 3 if args.quick else 15)
    finally:
        w.close()
    print(f"redis-py {redis.__version__}; Redis at {HOST}:{PORT}; InMemoryBackend (API calls cost nothing)")
    print("Connect overhead on a cache hit (median; ratio = secretcache / bare redis-py, same run)")
    print(f"  {'shape':30} {'secretcache ms':>15} {'bare ms':>9} {'delta us':>9} {'ratio':>7}")
    for row in overhead:
        print(f"  {row['shape']:30} {row['ours_ms']:>15.3f} {row['bare_ms']:>9.3f} {row['delta_us']:>9.1f} "
              f"{row['ratio']:>7.3f}")
    print("Rotation to first successful PING on a new connection (median; bare = a first PING with the new password)")
    print(f"  {'case':38} {'secretcache ms':>15} {'bare ms':>9} {'ratio':>7} {'AUTHs':>6} {'API calls':>10}")
    for row in recovery:
        print(f"  {row['case']:38} {row['ours_ms']:>15.3f} {row['bare_ms']:>9.3f} {row['ratio']:>7.2f} "
              f"{row['auths']:>6} {row['api_calls']:>10}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
