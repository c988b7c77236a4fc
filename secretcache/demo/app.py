"""The demo application: database password rotations under load, with zero failed queries, on this machine.

No AWS account: Secrets Manager is moto, in this process. The database is real and checks passwords: a
throwaway PostgreSQL cluster (scram-sha-256) from the installed server binaries, or the server an admin
``--dsn`` points to (``--engine mysql`` uses MariaDB/MySQL). Worker threads query through a secretcache
SQLAlchemy engine (NullPool: every query logs in anew, the hardest case) with a cache ttl far longer than
the run, while :mod:`secretcache.rotation` rotates the password again and again. Exit 0 when no query failed.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from typing import TYPE_CHECKING, TextIO

from .support import (
    SECRET_ID,
    Counters,
    Redactor,
    Status,
    Store,
    open_store,
    prepare_server,
    summary_lines,
)

if TYPE_CHECKING:
    from ..rotation import RotationStrategy

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="secretcache demo",
        description="Rotate a real database password repeatedly while worker threads query through a "
                    "secretcache SQLAlchemy engine; Secrets Manager runs in process (moto), no AWS account.",
    )
    p.add_argument("--rotations", type=int, default=5, metavar="N", help="password rotations (default 5)")
    p.add_argument("--interval", type=float, default=2.0, metavar="S", help="seconds between rotations (2.0)")
    p.add_argument("--workers", type=int, default=4, metavar="N", help="query threads (default 4)")
    p.add_argument("--strategy", choices=("single", "alternating"), default="single",
                   help="single user (the old password dies at setSecret) or alternating users")
    p.add_argument("--window", type=float, default=0.5, metavar="S",
                   help="single user: seconds between setSecret and finishSecret, when only AWSPENDING "
                        "works (default 0.5)")
    p.add_argument("--ttl", type=float, default=3600.0, metavar="S",
                   help="cache ttl (default 3600: far longer than the run, so only rotations cause fetches)")
    p.add_argument("--engine", choices=("postgres", "mysql"), default="postgres",
                   help="postgres (default: a private cluster) or mysql (MariaDB/MySQL)")
    p.add_argument("--dsn", metavar="DSN",
                   help="admin connection of an existing server with password authentication, e.g. "
                        "postgresql://admin:pw@127.0.0.1:5432/postgres (default: start a private PostgreSQL; "
                        "for --engine mysql the server in SECRETCACHE_TEST_MYSQL_* or root@127.0.0.1:3306)")
    p.add_argument("--plain", action="store_true", help="plain lines instead of a refreshing status line")
    return p


def _check_args(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.rotations < 1 or args.workers < 1:
        p.error("--rotations and --workers must be at least 1")
    if args.interval <= 0 or args.window < 0 or args.ttl <= 0:
        p.error("--interval and --ttl must be > 0, --window >= 0")


def main(argv: list[str] | None = None) -> int:
    """Run the demo; 0 when every query succeeded and every rotation completed, 1 otherwise, 2 bad usage."""
    parser = _parser()
    args = parser.parse_args(argv)
    _check_args(parser, args)
    out = sys.stdout
    try:
        return _run(args, out)
    except KeyboardInterrupt:
        print("\ninterrupted", file=out)
        return 130


def _strategy(args: argparse.Namespace) -> tuple[RotationStrategy, str]:
    from ..rotation import MySQLAlternatingUsers, MySQLSingleUser, PostgresAlternatingUsers, PostgresSingleUser

    alternating = args.strategy == "alternating"
    if args.engine == "postgres":
        return (PostgresAlternatingUsers() if alternating else PostgresSingleUser()), "postgresql+psycopg://"
    return (MySQLAlternatingUsers() if alternating else MySQLSingleUser()), "mysql+pymysql://"


def _loopback(store: Store) -> bool:
    """Whether the demo's database (the secret's host) is on this machine (read as admin: not counted)."""
    import ipaddress
    import json

    host = json.loads(store.admin_client.get_secret_value(SecretId=SECRET_ID)["SecretString"]).get("host")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(str(host)).is_loopback
    except ValueError:
        return False


class _Run:
    """Worker threads querying through the secretcache engine while one thread rotates the password."""

    def __init__(self, args: argparse.Namespace, store: Store, redact: Redactor, out: TextIO) -> None:
        from sqlalchemy.pool import NullPool

        from ..db.sqlalchemy import create_engine

        self.args, self.store, self.redact = args, store, redact
        self.strategy, url = _strategy(args)
        # NullPool: every query opens a new connection, so every query logs in (the hardest case).
        # A loopback MariaDB: no TLS attempt per connect (PyMySQL's default costs most of a login).
        connect_args = {"ssl_disabled": True} if args.engine == "mysql" and _loopback(store) else {}
        self.engine = create_engine(url, secret_id=SECRET_ID, cache=store.cache, poolclass=NullPool,
                                    connect_args=connect_args)
        self.counters = Counters()
        self.stop = threading.Event()
        self.status = Status(out, plain=args.plain or not out.isatty())

    def worker(self) -> None:
        from sqlalchemy import text

        while not self.stop.is_set():
            try:
                with self.engine.connect() as conn:
                    user = conn.execute(text("SELECT current_user")).scalar()
                self.counters.ok(str(user).split("@")[0])
            except Exception as e:
                self.counters.failed(self.redact(f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"))
            self.stop.wait(0.005)  # a breath between queries keeps a 2-core machine responsive

    def after_step(self, step: str, token: str) -> None:
        if step == "setSecret" and self.args.strategy == "single" and self.args.window:
            self.stop.wait(self.args.window)  # hold the window: old password dead, AWSCURRENT not moved yet

    def rotator(self) -> None:
        from ..rotation import rotate_secret_now

        try:
            for _ in range(self.args.rotations):
                if self.stop.wait(self.args.interval):
                    return
                started = time.monotonic()
                token = rotate_secret_now(self.store.admin_client, SECRET_ID, self.strategy,
                                          after_step=self.after_step)
                self.redact.add(self.store.password_of(token))
                self.counters.rotated(time.monotonic() - started)
            self.stop.wait(min(self.args.interval, 2.0))  # keep querying a little after the last rotation
        except Exception as e:
            self.counters.rotation_failed(self.redact(f"{type(e).__name__}: {e}"))
        finally:
            self.stop.set()

    def run(self) -> float:
        threads = [threading.Thread(target=self.worker, name=f"demo-worker-{i}", daemon=True)
                   for i in range(self.args.workers)]
        threads.append(threading.Thread(target=self.rotator, name="demo-rotator", daemon=True))
        started = time.monotonic()
        for t in threads:
            t.start()
        try:
            while not self.stop.wait(0.25):
                self.status.show(self.counters, self.store, self.args.rotations, time.monotonic() - started)
        finally:
            self.stop.set()
            for t in threads:
                t.join(timeout=30)
            self.engine.dispose()
        elapsed = time.monotonic() - started
        self.status.show(self.counters, self.store, self.args.rotations, elapsed, final=True)
        return elapsed


def _run(args: argparse.Namespace, out: TextIO) -> int:
    try:
        import sqlalchemy  # noqa: F401  (checked up front: the extras the demo needs)

        from ..db import sqlalchemy as _  # noqa: F401
        from ..rotation import rotate_secret_now  # noqa: F401
    except ImportError as e:
        print(f"secretcache demo: {e}\nInstall the demo's extras: pip install 'secretcache[demo]'", file=sys.stderr)
        return 1
    print(f"secretcache demo: {args.engine}, {args.strategy}-user rotation, {args.rotations} rotations every "
          f"{args.interval:g}s, {args.workers} workers, cache ttl {args.ttl:g}s", file=out, flush=True)
    redact = Redactor()
    try:
        db = prepare_server(args, redact, out)
    except RuntimeError as e:
        print(f"secretcache demo: {redact(str(e))}", file=sys.stderr)
        return 1
    with db:
        try:
            store = open_store(db, redact, args.ttl)
        except RuntimeError as e:
            print(f"secretcache demo: {redact(str(e))}", file=sys.stderr)
            return 1
        with store:
            demo = _Run(args, store, redact, out)
            elapsed = demo.run()
            for line in summary_lines(demo.counters, store, args, elapsed):
                print(redact(line), file=out)
            snap = demo.counters.snapshot()
            return 0 if snap.failed == 0 and snap.rotations == args.rotations else 1

