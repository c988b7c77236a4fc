"""Benchmark the database factories on real servers: connect overhead, recovery after a rotation, failures.

    python -m bench.bench_db [--quick] [--out bench/results/db.json]

Needs PostgreSQL server binaries (a private scram-sha-256 cluster is started, as the tests do) and the
running MariaDB (root@127.0.0.1:3306, or ``SECRETCACHE_TEST_MYSQL_*``). Secrets Manager is moto in
process, reached through boto3 (``SecretCache(client=...)``), and rotations are run by
``secretcache.rotation`` (the code a rotation Lambda runs).

1. **Connect overhead on a cache hit**: each factory against the bare driver with the same arguments,
   interleaved in one run (median of many connects; ratio = factory / bare), plus the policy's own cost
   per connect (the flow run with a no-op login).
2. **Recovery**: wall time from the password change to the first successful new connection through the
   factory (single-user window: AWSCURRENT dead, AWSPENDING live; after a completed rotation: AWSCURRENT
   moved, the cache still old; alternating users: the old user's password changed), with the logins and
   API calls it took. A bare connect is the baseline.
3. **Under load**: eight threads opening fresh connections while the framework rotates ten times: failed
   operations and API calls per rotation, for secretcache and for a naive factory (the same cache,
   AWSCURRENT only, no retry) to show what the policy saves.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "bench" / "results" / "db.json"
SECRET, MASTER = "bench/db", "bench/db-master"
NO_TLS = {"ssl_disabled": True}  # PyMySQL >= 1.2 builds an SSL context per connect otherwise (~30 ms CPU)


@dataclass(frozen=True)
class Plan:
    connects: int
    recoveries: int
    rotations: int
    workers: int


FULL = Plan(connects=300, recoveries=5, rotations=10, workers=8)
QUICK = Plan(connects=40, recoveries=2, rotations=3, workers=8)


# -- the world: servers, accounts, moto, a long-ttl cache ----------------------------------------------


@dataclass
class World:
    engine: str
    server: Any
    account: Any
    master: Any
    client: Any
    cache: Any

    def bare_kwargs(self, password: str | None = None, username: str | None = None) -> dict[str, Any]:
        a = self.account
        kwargs = {"host": a.host, "port": a.port, "user": username or a.username,
                  "password": password if password is not None else a.password}
        if self.engine == "postgres":
            return {**kwargs, "dbname": a.dbname}
        return {**kwargs, "database": a.dbname, **NO_TLS}

    def secret(self) -> dict[str, Any]:
        return dict(json.loads(self.client.get_secret_value(SecretId=SECRET)["SecretString"]))

    def calls(self) -> int:
        return int(self.cache.stats.backend_calls)


@contextmanager
def world(server: Any, *, master: bool = False) -> Iterator[World]:
    import boto3
    from moto import mock_aws

    from secretcache import SecretCache
    from secretcache.config import CacheConfig
    from secretcache.demo.localdb import create_account, drop_account
    from secretcache.testing import patch_moto_staging_labels

    undo = patch_moto_staging_labels()  # moto moves its default version with AWSCURRENT, as AWS does
    account = create_account(server)
    admin = create_account(server, master=True) if master else None
    try:
        with mock_aws():
            client = boto3.client("secretsmanager", region_name="us-east-1")
            extra: dict[str, Any] = {}
            if admin is not None:
                extra["masterarn"] = client.create_secret(
                    Name=MASTER, SecretString=json.dumps(admin.as_secret()))["ARN"]
            client.create_secret(Name=SECRET, SecretString=json.dumps(account.as_secret(**extra)))
            with SecretCache(client=client, config=CacheConfig(ttl=3600)) as cache:
                yield World(server.engine, server, account, admin, client, cache)
    finally:
        drop_account(server, account)
        if admin is not None:
            drop_account(server, admin)
        undo()


def strategy(engine: str, scheme: str) -> Any:
    from secretcache import rotation

    name = {"postgres": "Postgres", "mysql": "MySQL"}[engine] + {
        "single": "SingleUser", "alternating": "AlternatingUsers"}[scheme]
    return getattr(rotation, name)(tls="disable")  # loopback servers without TLS


# -- factories under test and their bare twins ---------------------------------------------------------


def open_close(engine: str, kind: str, w: World) -> tuple[Callable[[], None], Callable[[], None]]:
    """(factory connect+close, bare driver connect+close) for one kind of factory."""
    if engine == "postgres" and kind == "connect":
        import psycopg

        from secretcache.db import psycopg as sc_psycopg

        bare = w.bare_kwargs()
        return (lambda: sc_psycopg.connect(SECRET, cache=w.cache).close(),
                lambda: psycopg.Connection.connect(**bare).close())
    if engine == "postgres" and kind == "pool-connection-class":
        import psycopg

        from secretcache.db.psycopg import connection_pool

        # The class the pool logs its connections in with, through the public factory (psycopg_pool keeps
        # it as ``connection_class``); the pool itself is never opened.
        unopened = connection_pool(SECRET, cache=w.cache, open=False)
        cls = unopened.connection_class
        unopened.close()
        bare = w.bare_kwargs()
        return lambda: cls.connect("").close(), lambda: psycopg.Connection.connect(**bare).close()
    if kind == "sqlalchemy-nullpool":
        import sqlalchemy
        from sqlalchemy import pool

        from secretcache.db.sqlalchemy import create_engine

        a = w.account
        driver = "postgresql+psycopg" if engine == "postgres" else "mysql+pymysql"
        args = {} if engine == "postgres" else {"connect_args": NO_TLS}
        ours = create_engine(f"{driver}://", secret_id=SECRET, cache=w.cache, poolclass=pool.NullPool, **args)
        url = sqlalchemy.URL.create(driver, a.username, a.password, a.host, a.port, a.dbname)
        theirs = sqlalchemy.create_engine(url, poolclass=pool.NullPool, **args)
        return lambda: ours.connect().close(), lambda: theirs.connect().close()
    if engine == "postgres" and kind == "asyncpg-connect":
        return _connect_once(w, "asyncpg"), _bare_connect(w, "asyncpg")
    if engine == "mysql" and kind == "connect":
        import pymysql

        from secretcache.db import pymysql as sc_pymysql

        bare = w.bare_kwargs()
        return (lambda: sc_pymysql.connect(SECRET, cache=w.cache, **NO_TLS).close(),
                lambda: pymysql.connections.Connection(**bare).close())
    raise ValueError(kind)


KINDS = {"postgres": ("connect", "pool-connection-class", "sqlalchemy-nullpool", "asyncpg-connect"),
         "mysql": ("connect", "sqlalchemy-nullpool")}


class _Stub:
    """Stands in for a driver connection: measures what the factory adds around the driver's connect."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def close(self) -> None:
        pass


def _factory_path_us(engine: str, w: World, n: int = 20_000) -> float:
    """Microseconds a factory connect spends outside the driver on a cache hit (the driver stubbed)."""
    from unittest import mock

    if engine == "postgres":
        import psycopg

        from secretcache.db import psycopg as sc_psycopg

        patch = mock.patch.object(psycopg.Connection, "connect", classmethod(lambda cls, *a, **k: _Stub()))
        call: Callable[[], Any] = lambda: sc_psycopg.connect(SECRET, cache=w.cache)  # noqa: E731
    else:
        import pymysql.connections

        from secretcache.db import pymysql as sc_pymysql

        patch = mock.patch.object(pymysql.connections, "Connection", _Stub)
        call = lambda: sc_pymysql.connect(SECRET, cache=w.cache, **NO_TLS)  # noqa: E731
    with patch:
        call()
        best = float("inf")
        for _ in range(5):  # best of 5: the least disturbed by other load on the machine
            t0 = time.perf_counter()
            for _ in range(n // 5):
                call()
            best = min(best, (time.perf_counter() - t0) / (n // 5))
    return best * 1e6


def bench_overhead(w: World, plan: Plan) -> dict[str, Any]:
    out: dict[str, Any] = {}
    connects = plan.connects if w.engine == "postgres" else plan.connects * 4  # MariaDB logins are cheap
    for kind in KINDS[w.engine]:
        ours, bare = open_close(w.engine, kind, w)
        for _ in range(5):  # warm both paths (and the cache)
            ours()
            bare()
        t_ours, t_bare = [], []
        for i in range(connects):  # interleaved, alternating order: drift hits both alike
            pair = ((ours, t_ours), (bare, t_bare)) if i % 2 else ((bare, t_bare), (ours, t_ours))
            for fn, samples in pair:
                t0 = time.perf_counter()
                fn()
                samples.append(time.perf_counter() - t0)
        m_ours, m_bare = statistics.median(t_ours), statistics.median(t_bare)
        out[kind] = {"factory_ms": round(m_ours * 1e3, 3), "bare_ms": round(m_bare * 1e3, 3),
                     "overhead_us": round((m_ours - m_bare) * 1e6, 1), "ratio": round(m_ours / m_bare, 4),
                     "n": connects}
    path_us = _factory_path_us(w.engine, w)
    bare_ms = out["connect"]["bare_ms"]
    out["factory_path"] = {"us": round(path_us, 2),
                           "share_of_bare_connect": round(path_us / (bare_ms * 1e3), 4)}
    return out


# -- recovery after a rotation ------------------------------------------------------------------------


_LOOP: list[Any] = []


def _run(coro: Any) -> Any:
    """Run ``coro`` on one event loop kept for the whole run (asyncpg's connects, ours and bare alike)."""
    import asyncio

    if not _LOOP:
        _LOOP.append(asyncio.new_event_loop())
    return _LOOP[0].run_until_complete(coro)


async def _open_close(connect: Any) -> None:
    await (await connect()).close()


def _connect_once(w: World, driver: str = "") -> Callable[[], None]:
    if driver == "asyncpg":
        from secretcache.db import asyncpg as sc_asyncpg

        return lambda: _run(_open_close(lambda: sc_asyncpg.connect(SECRET, cache=w.cache)))
    if w.engine == "postgres":
        from secretcache.db import psycopg as sc_psycopg

        return lambda: sc_psycopg.connect(SECRET, cache=w.cache).close()
    from secretcache.db import pymysql as sc_pymysql

    return lambda: sc_pymysql.connect(SECRET, cache=w.cache, **NO_TLS).close()


def _bare_connect(w: World, driver: str = "") -> Callable[[], None]:
    kwargs = w.bare_kwargs()
    if driver == "asyncpg":
        import asyncpg

        kwargs["database"] = kwargs.pop("dbname")
        return lambda: _run(_open_close(lambda: asyncpg.connect(**kwargs)))
    if w.engine == "postgres":
        import psycopg

        return lambda: psycopg.Connection.connect(**kwargs).close()
    import pymysql

    return lambda: pymysql.connections.Connection(**kwargs).close()


def bench_recovery(server: Any, plan: Plan, driver: str = "") -> dict[str, Any]:
    """Time from the password change to the first successful connect through the factory (``driver``:
    "asyncpg" for secretcache.db.asyncpg, else the engine's sync driver)."""
    from secretcache.db import auth_stats
    from secretcache.rotation import RotationHandler

    results: dict[str, list[dict[str, Any]]] = {"single-user window": [], "after completed rotation": [],
                                                "alternating users": []}
    baseline: list[float] = []
    for scenario in results:
        for _ in range(plan.recoveries):
            scheme = "alternating" if scenario == "alternating users" else "single"
            with world(server, master=scheme == "alternating") as w:
                connect = _connect_once(w, driver)
                connect()  # warm: the cache holds AWSCURRENT
                bare = _bare_connect(w, driver)
                t0 = time.perf_counter()
                bare()
                baseline.append(time.perf_counter() - t0)
                handler = RotationHandler(w.client, strategy(w.engine, scheme), check_rotation_enabled=False)
                if scheme == "alternating":  # the second rotation changes the cached user's password
                    handler.rotate(SECRET)
                    handler.rotate(SECRET)
                elif scenario == "after completed rotation":
                    handler.rotate(SECRET)
                else:
                    token = str(uuid.uuid4())
                    handler.run_step("createSecret", SECRET, token, new_version=True)
                    handler.run_step("setSecret", SECRET, token)
                calls, stats = w.calls(), auth_stats(SECRET, cache=w.cache)
                t0 = time.perf_counter()  # the password has just changed: time to the first good connect
                connect()
                elapsed = time.perf_counter() - t0
                after = auth_stats(SECRET, cache=w.cache)
                results[scenario].append({
                    "ms": elapsed * 1e3,
                    "api_calls": w.calls() - calls,
                    "refused_logins": after.auth_failures - stats.auth_failures,
                    "awspending_used": after.pending_logins > stats.pending_logins,
                })
    out: dict[str, Any] = {"bare_connect_ms": round(statistics.median(baseline) * 1e3, 3)}
    for scenario, runs in results.items():
        out[scenario] = {
            "median_ms": round(statistics.median(r["ms"] for r in runs), 3),
            "max_ms": round(max(r["ms"] for r in runs), 3),
            "api_calls": max(r["api_calls"] for r in runs),
            "refused_logins": max(r["refused_logins"] for r in runs),
            "awspending_used": all(r["awspending_used"] for r in runs),
            "runs": len(runs),
        }
    return out


# -- under load ----------------------------------------------------------------------------------------


def _naive(w: World) -> Callable[[], None]:
    """Reads AWSCURRENT through the same cache on every connect, but has no rotation policy."""
    if w.engine == "postgres":
        import psycopg

        def pg() -> None:
            s = w.cache.get_secret_json(SECRET)
            psycopg.Connection.connect(host=s["host"], port=s["port"], user=s["username"],
                                       password=s["password"], dbname=s["dbname"]).close()
        return pg

    import pymysql

    def my() -> None:
        s = w.cache.get_secret_json(SECRET)
        pymysql.connections.Connection(host=s["host"], port=s["port"], user=s["username"],
                                       password=s["password"], database=s["dbname"], **NO_TLS).close()
    return my


def bench_load(server: Any, plan: Plan, scheme: str, contender: str) -> dict[str, Any]:
    from secretcache.rotation import rotate_secret_now

    with world(server, master=scheme == "alternating") as w:
        op = _connect_once(w) if contender == "secretcache" else _naive(w)
        ok, failed = [0], [0]
        first_error: list[str] = []
        lock, stop = threading.Lock(), threading.Event()

        def worker() -> None:
            while not stop.is_set():
                try:
                    op()
                except Exception as e:
                    with lock:
                        failed[0] += 1
                        if not first_error:  # type and message only: never a password
                            notes = " | ".join(getattr(e, "__notes__", ()))
                            first_error.append(f"{type(e).__name__}: {str(e)[:300]} {notes}")
                else:
                    with lock:
                        ok[0] += 1

        threads = [threading.Thread(target=worker, daemon=True) for _ in range(plan.workers)]
        for t in threads:
            t.start()
        calls: list[int] = []
        failures: list[int] = []
        try:
            time.sleep(0.2)
            for _ in range(plan.rotations):
                before_calls, before_failed = w.calls(), failed[0]
                rotate_secret_now(w.client, SECRET, strategy(w.engine, scheme))
                time.sleep(0.3)
                calls.append(w.calls() - before_calls)
                failures.append(failed[0] - before_failed)
        finally:
            stop.set()
            for t in threads:
                t.join(30)
        return {
            "ops_ok": ok[0], "ops_failed": failed[0], "first_error": first_error[0] if first_error else None,
            "failed_per_rotation_max": max(failures),
            "failed_per_rotation_mean": round(statistics.mean(failures), 1),
            "api_calls_per_rotation_max": max(calls),
            "api_calls_per_rotation_mean": round(statistics.mean(calls), 2),
            "rotations": plan.rotations, "workers": plan.workers,
        }


# -- driver --------------------------------------------------------------------------------------------


def _versions() -> dict[str, str]:
    out = {}
    for name in ("secretcache", "psycopg", "psycopg-pool", "PyMySQL", "SQLAlchemy", "asyncpg", "moto", "boto3"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def run(plan: Plan) -> dict[str, Any]:
    from secretcache.demo.localdb import admin_connect, mysql_admin_from_env, start_postgres

    results: dict[str, Any] = {"meta": {"python": platform.python_version(), "machine": platform.machine(),
                                        "cpus": __import__("os").cpu_count(), "versions": _versions(),
                                        "plan": plan.__dict__}}
    started = time.monotonic()
    pg = start_postgres()
    try:
        my = mysql_admin_from_env()
        servers = {"postgres": pg, "mysql": my}
        for engine, server in servers.items():
            conn = admin_connect(server)
            with suppress(Exception):
                results["meta"][f"{engine}_server"] = str(
                    conn.execute("SELECT version()").fetchone()[0] if engine == "postgres"
                    else _scalar(conn, "SELECT VERSION()"))
            conn.close()
            with world(server) as w:
                results.setdefault("overhead", {})[engine] = bench_overhead(w, plan)
            results.setdefault("recovery", {})[engine] = bench_recovery(server, plan)
            if engine == "postgres":
                results["recovery"]["postgres/asyncpg"] = bench_recovery(server, plan, "asyncpg")
            load = results.setdefault("load", {}).setdefault(engine, {})
            for scheme in ("single", "alternating"):
                for contender in ("secretcache", "naive"):
                    load.setdefault(scheme, {})[contender] = bench_load(server, plan, scheme, contender)
    finally:
        pg.stop()
    results["meta"]["elapsed_s"] = round(time.monotonic() - started, 1)
    results["checks"] = checks(results)
    return results


def _scalar(conn: Any, sql: str) -> Any:
    with conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchone()[0]


def checks(results: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for engine, kinds in results["overhead"].items():
        # The deterministic figure: time spent outside the driver, over a bare connect measured in this run.
        # (The end-to-end ratios are printed too; on a loaded machine their noise exceeds the overhead.)
        share = kinds["factory_path"]["share_of_bare_connect"]
        out.append({"name": f"{engine}: factory overhead within 5% of a bare driver connect on a cache hit",
                    "ok": share <= 0.05, "value": share})
    for engine, schemes in results["load"].items():
        for scheme, contenders in schemes.items():
            ours = contenders["secretcache"]
            out.append({"name": f"{engine} {scheme}: zero failed operations under load", "ok":
                        ours["ops_failed"] == 0, "value": ours["ops_failed"]})
            out.append({"name": f"{engine} {scheme}: <= 3 API calls per rotation", "ok":
                        ours["api_calls_per_rotation_max"] <= 3, "value": ours["api_calls_per_rotation_max"]})
    for engine, rec in results["recovery"].items():
        for scenario, figures in rec.items():
            if isinstance(figures, dict):
                out.append({"name": f"{engine} {scenario}: recovered in <= 3 logins and <= 2 API calls",
                            "ok": figures["refused_logins"] <= 2 and figures["api_calls"] <= 2,
                            "value": [figures["refused_logins"], figures["api_calls"]]})
    return out


def render(results: dict[str, Any]) -> str:
    lines = ["Connect overhead on a cache hit (median; ratio = factory / bare driver, same run)",
             f"  {'engine':9} {'factory':24} {'factory ms':>11} {'bare ms':>9} {'delta us':>9} {'ratio':>7}"]
    for engine, kinds in results["overhead"].items():
        for kind, f in kinds.items():
            if kind != "factory_path":
                lines.append(f"  {engine:9} {kind:24} {f['factory_ms']:>11.3f} {f['bare_ms']:>9.3f} "
                             f"{f['overhead_us']:>9.1f} {f['ratio']:>7.3f}")
        path = kinds["factory_path"]
        lines.append(f"  {engine:9} {'factory path, no driver':24} {path['us']:>9.2f} us = "
                     f"{path['share_of_bare_connect']:.2%} of a bare connect")
    lines += ["", "Time from the password change to the first successful new connection",
              f"  {'engine':16} {'scenario':26} {'median ms':>10} {'max ms':>8} {'API calls':>9} "
              f"{'refused':>7} {'AWSPENDING':>10}"]
    for engine, rec in results["recovery"].items():
        lines.append(f"  {engine:16} {'(bare connect)':26} {rec['bare_connect_ms']:>10.3f}")
        for scenario, f in rec.items():
            if isinstance(f, dict):
                lines.append(f"  {engine:16} {scenario:26} {f['median_ms']:>10.3f} {f['max_ms']:>8.3f} "
                             f"{f['api_calls']:>9} {f['refused_logins']:>7} {f['awspending_used']!s:>10}")
    lines += ["", "Under load: 8 threads opening fresh connections, rotations by secretcache.rotation",
              f"  {'engine':9} {'scheme':12} {'contender':12} {'ok ops':>8} {'failed':>7} {'failed/rot':>10} "
              f"{'API/rot max':>11} {'API/rot mean':>12}"]
    for engine, schemes in results["load"].items():
        for scheme, contenders in schemes.items():
            for name, f in contenders.items():
                lines.append(f"  {engine:9} {scheme:12} {name:12} {f['ops_ok']:>8} {f['ops_failed']:>7} "
                             f"{f['failed_per_rotation_mean']:>10} {f['api_calls_per_rotation_max']:>11} "
                             f"{f['api_calls_per_rotation_mean']:>12}")
    missed = [c["name"] for c in results["checks"] if not c["ok"]]
    lines += ["", "targets met" if not missed else "targets MISSED: " + "; ".join(missed)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_db", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer connects and rotations (a smoke run)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    import logging

    logging.getLogger("psycopg.pool").setLevel(logging.ERROR)
    results = run(QUICK if args.quick else FULL)
    print(render(results))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"\nwrote {args.out.relative_to(REPO) if args.out.is_relative_to(REPO) else args.out}")
    return 0 if all(c["ok"] for c in results["checks"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
