"""Benchmark secretcache's Django engines against Django's stock backends on real servers.

    python -m bench.bench_django [--connects 300] [--recoveries 10]

Needs PostgreSQL server binaries (a private scram-sha-256 cluster is started, as the tests do) and the
running MariaDB (root@127.0.0.1:3306, or ``SECRETCACHE_TEST_MYSQL_*``). The secret sits in an
InMemoryBackend behind a SecretCache (ttl one hour); rotations are done by hand with real password changes.

1. **Connect overhead on a cache hit**: ``connection.connect()`` + ``close()`` through the stock engine
   (credentials in the settings) and through secretcache's (credentials from the secret), interleaved;
   median per connect and the ratio secretcache / stock.
2. **Recovery**: time from the password change to the first successful new Django connection, in the
   single-user window (AWSCURRENT dead, AWSPENDING live) and after a completed rotation (AWSCURRENT moved,
   the cache still old), with the API calls it took.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import timeit
from typing import Any

from secretcache import CacheConfig, SecretCache
from secretcache.demo.localdb import (
    DbAccount,
    DbServer,
    create_account,
    drop_account,
    mysql_admin_from_env,
    set_password,
    start_postgres,
)
from secretcache.testing import InMemoryBackend

BACKEND = InMemoryBackend()
CACHE = SecretCache(BACKEND, config=CacheConfig(ttl=3600))
ENGINES = {"postgres": "postgresql", "mysql": "mysql"}


def _aliases(engine: str, account: DbAccount) -> dict[str, dict[str, Any]]:
    secret_id = f"bench/django/{engine}"
    BACKEND.put_secret(secret_id, json.dumps(account.as_secret()))
    name = ENGINES[engine]
    return {
        f"{engine}-stock": {"ENGINE": f"django.db.backends.{name}", "NAME": account.dbname, "USER": account.username,
                            "PASSWORD": account.password, "HOST": account.host, "PORT": str(account.port)},
        f"{engine}-secret": {"ENGINE": f"secretcache.django.{name}",
                             "OPTIONS": {"secret_id": secret_id, "cache": CACHE}},
    }


def _connect_ms(alias: str) -> float:
    from django.db import connections

    conn = connections[alias]
    start = time.perf_counter()
    conn.connect()
    elapsed = time.perf_counter() - start
    conn.close()
    return elapsed * 1000


def overhead(engine: str, connects: int) -> dict[str, Any]:
    stock, secret = [], []
    for _ in range(5):  # warm up both (the secret's first read is a miss)
        _connect_ms(f"{engine}-stock")
        _connect_ms(f"{engine}-secret")
    for i in range(connects):  # alternate which goes first: neither always follows the other's close
        first, second = (stock, secret) if i % 2 else (secret, stock)
        first.append(_connect_ms(f"{engine}-stock" if first is stock else f"{engine}-secret"))
        second.append(_connect_ms(f"{engine}-stock" if second is stock else f"{engine}-secret"))
    s, c = statistics.median(stock), statistics.median(secret)
    return {"stock_ms": round(s, 3), "secretcache_ms": round(c, 3), "ratio": round(c / s, 3),
            "overhead_ms": round(c - s, 3), "in_process_us": round(_in_process_us(engine), 1)}


def _in_process_us(engine: str, n: int = 20000) -> float:
    """What secretcache adds per connect without the network: parameters, then the policy's flow (a hit)."""
    from django.db import connections

    from secretcache.credentials import drive

    stock, secret = connections[f"{engine}-stock"], connections[f"{engine}-secret"]
    login, _ = secret._rotating_login()  # noqa: SLF001  (the engine's own login, timed without a server)
    extra = timeit.timeit(secret.get_connection_params, number=n) - timeit.timeit(stock.get_connection_params,
                                                                                  number=n)
    flow = timeit.timeit(lambda: drive(login.flow(), lambda c: c), number=n)
    return (extra + flow) / n * 1e6


def recovery(engine: str, server: DbServer, account: DbAccount, rounds: int) -> dict[str, Any]:
    from django.db import connections

    secret_id = f"bench/django/{engine}"
    alias = f"{engine}-secret"

    def timed_connect() -> tuple[float, int]:
        calls = BACKEND.calls["GetSecretValue"]
        start = time.perf_counter()
        connections[alias].connect()
        elapsed = (time.perf_counter() - start) * 1000
        connections[alias].close()
        return elapsed, BACKEND.calls["GetSecretValue"] - calls

    window: list[tuple[float, int]] = []
    after: list[tuple[float, int]] = []
    for i in range(rounds):
        # Single-user window: setSecret done (database and AWSPENDING new), AWSCURRENT not moved yet.
        password = f"bench-{engine}-{i}-{time.monotonic_ns()}"
        pending = BACKEND.put_secret(secret_id, json.dumps(account.as_secret(password=password)),
                                     stages=("AWSPENDING",))
        _connect_ms(alias)  # the cached AWSCURRENT still works
        set_password(server, account.username, password)
        window.append(timed_connect())
        current = CACHE.get_secret_value(secret_id, version_stage="AWSCURRENT").version_id
        BACKEND.update_version_stage(secret_id, "AWSCURRENT", move_to_version_id=pending,
                                     remove_from_version_id=current)
        CACHE.refresh(secret_id, version_stage="AWSCURRENT")
        _connect_ms(alias)  # settled: the pin is dropped, AWSCURRENT is the new version
        # After a completed rotation the cache has not seen: AWSCURRENT moved, the cache still old.
        password = password + "-after"
        BACKEND.rotate(secret_id, json.dumps(account.as_secret(password=password)))
        set_password(server, account.username, password)
        after.append(timed_connect())
        time.sleep(1.1)  # past AuthPolicy.min_refresh_interval: each round is a rotation of its own
    return {
        "single_user_window_ms": round(statistics.median(t for t, _ in window), 2),
        "single_user_window_api_calls_max": max(c for _, c in window),
        "after_completed_rotation_ms": round(statistics.median(t for t, _ in after), 2),
        "after_completed_rotation_api_calls_max": max(c for _, c in after),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connects", type=int, default=300)
    parser.add_argument("--recoveries", type=int, default=10)
    args = parser.parse_args()

    pg = start_postgres()
    mysql = mysql_admin_from_env()
    servers = {"postgres": pg, "mysql": mysql}
    accounts = {engine: create_account(server) for engine, server in servers.items()}
    try:
        import django
        from django.conf import settings

        databases: dict[str, Any] = {}
        for engine, account in accounts.items():
            databases.update(_aliases(engine, account))
        settings.configure(DATABASES={"default": databases["postgres-stock"], **databases}, USE_TZ=True)
        django.setup()
        results = {}
        for engine, server in servers.items():
            results[engine] = {"connect": overhead(engine, args.connects),
                               "recovery": recovery(engine, server, accounts[engine], args.recoveries)}
        print(json.dumps(results, indent=2))
    finally:
        from django.db import connections

        connections.close_all()
        for engine, account in accounts.items():
            drop_account(servers[engine], account)
        pg.stop()


if __name__ == "__main__":
    main()
