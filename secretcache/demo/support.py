"""The pieces of ``secretcache demo``: the database, the in-process Secrets Manager, counters and display.

Nothing here prints a password: every line that could carry text from elsewhere (a driver's error) goes
through :class:`Redactor`, which knows every password the demo created.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TextIO

from .localdb import (
    DbAccount,
    DbServer,
    connect_as,
    create_account,
    drop_account,
    mysql_admin_from_env,
    start_postgres,
)

SECRET_ID = "demo/app-db"  # a secret's name  # nosec B105
MASTER_ID = "demo/admin"
_INSTALL = """  - the PostgreSQL server binaries (initdb, pg_ctl), to start a throwaway cluster:
      apt-get install postgresql        (Debian/Ubuntu; dnf install postgresql-server on Fedora)
"""
_OTHERWISE = """  - or --dsn with an admin connection to a PostgreSQL server that checks passwords, e.g.
      secretcache demo --dsn postgresql://postgres:PASSWORD@127.0.0.1:5432/postgres
  - or --engine mysql with a MariaDB/MySQL server (root@127.0.0.1:3306, or SECRETCACHE_TEST_MYSQL_*)
  (through nox, options go after --: nox -s demo -- --engine mysql)"""


def _needs(error: BaseException) -> str:
    """What else the demo can run against; the install line only when the binaries are what is missing
    (another failure, say a missing runuser, already says what is wrong)."""
    missing_binaries = "binaries" in str(error) and "not found" in str(error)
    return "Nothing to run the demo against. It needs one of:\n" + (_INSTALL if missing_binaries else "") \
        + (_OTHERWISE if missing_binaries else _OTHERWISE.replace("  - or ", "  - ", 1))


class Redactor:
    """Replaces every password the demo knows about with ``***`` in text it is about to print."""

    def __init__(self) -> None:
        self._secrets: set[str] = set()

    def add(self, *values: str | None) -> None:
        self._secrets.update(v for v in values if v and len(v) >= 4)

    def __call__(self, text: str) -> str:
        for value in self._secrets:
            text = text.replace(value, "***")
        return text


# -- the database -----------------------------------------------------------------------------------------


@dataclass
class DemoDatabase:
    server: DbServer
    owned: bool
    account: DbAccount
    master: DbAccount | None = None
    _closers: list[Callable[[], None]] = field(default_factory=list)

    def __enter__(self) -> DemoDatabase:
        return self

    def __exit__(self, *exc: object) -> None:
        for close in reversed(self._closers):
            try:
                close()
            except Exception as e:  # cleanup is best effort; say what was left behind
                print(f"secretcache demo: cleanup: {type(e).__name__}", flush=True)


def _server_from_dsn(dsn: str, engine: str) -> DbServer:
    if engine == "postgres":
        from psycopg.conninfo import conninfo_to_dict

        try:
            parts = conninfo_to_dict(dsn)
        except Exception:
            raise RuntimeError("--dsn is not a valid PostgreSQL connection string or URL") from None
        return DbServer("postgres", str(parts.get("host") or "127.0.0.1"), int(parts.get("port") or 5432),
                        str(parts.get("user") or "postgres"), str(parts.get("password") or ""),
                        str(parts.get("dbname") or "postgres"), flavor="postgres")
    from urllib.parse import unquote, urlsplit

    url = urlsplit(dsn)
    if not url.scheme.startswith(("mysql", "mariadb")):
        raise RuntimeError("--dsn for --engine mysql must look like mysql://user:password@host:port/db")
    return DbServer("mysql", url.hostname or "127.0.0.1", url.port or 3306, unquote(url.username or "root"),
                    unquote(url.password or ""), url.path.lstrip("/") or "mysql", flavor="mysql")


def _check_passwords_enforced(account: DbAccount) -> None:
    try:
        connect_as(account, account.password + "-wrong").close()
    except Exception:
        return
    raise RuntimeError(f"the server at {account.host}:{account.port} accepted a wrong password (trust "
                       "authentication?), so rotations would prove nothing. Use a server that checks "
                       "passwords (pg_hba.conf: scram-sha-256 for host connections), or omit --dsn to start "
                       "a private one.")


def prepare_server(args: argparse.Namespace, redact: Redactor, out: TextIO) -> DemoDatabase:
    """The server (started, or ``--dsn``), an application account, and the admin for alternating users."""
    started = time.monotonic()
    if args.dsn:
        server, owned = _server_from_dsn(args.dsn, args.engine), False
        redact.add(server.admin_password)
        where = f"{server.host}:{server.port} (from --dsn)"
    elif args.engine == "postgres":
        try:
            server, owned = start_postgres(), True
        except RuntimeError as e:
            raise RuntimeError(f"{e}\n\n{_needs(e)}") from None
        where = f"a private PostgreSQL cluster on 127.0.0.1:{server.port}, scram-sha-256"
    else:
        try:
            server, owned = mysql_admin_from_env(), False
        except RuntimeError as e:
            raise RuntimeError(f"{e}\n\n{_needs(e)}") from None
        redact.add(server.admin_password)
        where = f"{server.flavor} on {server.host}:{server.port}"
    closers: list[Callable[[], None]] = [server.stop] if owned else []
    try:
        account = create_account(server)
        closers.append(lambda: drop_account(server, account))
        redact.add(account.password)
        _check_passwords_enforced(account)
        master = None
        if args.strategy == "alternating":
            master = create_account(server, master=True)
            closers.append(lambda: drop_account(server, master))
            redact.add(master.password)
    except BaseException as e:
        for close in reversed(closers):
            with contextlib.suppress(Exception):  # cleanup after a failure: the original error matters
                close()
        if isinstance(e, Exception) and not isinstance(e, RuntimeError):
            raise RuntimeError(f"could not prepare the database: {type(e).__name__}: {e}") from None
        raise
    print(f"database: {where}; application user {account.username} "
          f"(ready in {time.monotonic() - started:.1f}s)", file=out, flush=True)
    return DemoDatabase(server, owned, account, master, closers)


# -- the in-process Secrets Manager -----------------------------------------------------------------------


class Store:
    """moto in this process: the application's cache and client, the rotation function's client."""

    def __init__(self, cache: Any, app_client: Any, admin_client: Any, close: Callable[[], None]) -> None:
        self.cache = cache
        self.app_client = app_client
        self.admin_client = admin_client
        self.api_calls = 0
        self._lock = threading.Lock()
        self._close = close
        app_client.meta.events.register("before-call.secrets-manager", self._count)

    def _count(self, **_: Any) -> None:
        with self._lock:
            self.api_calls += 1  # one botocore call, whatever the operation (the cache only reads)

    def password_of(self, version_id: str) -> str:
        response = self.admin_client.get_secret_value(SecretId=SECRET_ID, VersionId=version_id)
        return str(json.loads(response["SecretString"])["password"])

    def current_user(self) -> str:
        response = self.admin_client.get_secret_value(SecretId=SECRET_ID)
        return str(json.loads(response["SecretString"])["username"])

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self._close()


@contextmanager
def _mock_aws() -> Iterator[None]:
    try:
        import moto
    except ImportError:
        raise RuntimeError("the demo runs Secrets Manager in process with moto: "
                           "pip install 'moto[secretsmanager]' (or 'secretcache[demo]')") from None
    from ..testing import patch_moto_staging_labels

    undo = patch_moto_staging_labels()  # rotation moves AWSCURRENT; plain reads must follow it, as in AWS
    try:
        with moto.mock_aws():
            yield
    finally:
        undo()


def open_store(db: DemoDatabase, redact: Redactor, ttl: float) -> Store:
    """Start moto, store the RDS-shaped secret (and the alternating users' admin secret), build the cache."""
    from ..cache import SecretCache
    from ..config import CacheConfig

    mock = _mock_aws()
    mock.__enter__()
    try:
        import boto3

        admin = boto3.client("secretsmanager", region_name="us-east-1")
        extra: dict[str, Any] = {}
        if db.master is not None:
            master = admin.create_secret(Name=MASTER_ID, SecretString=json.dumps(db.master.as_secret()))
            extra["masterarn"] = master["ARN"]
        admin.create_secret(Name=SECRET_ID, SecretString=json.dumps(db.account.as_secret(**extra)))
        app = boto3.client("secretsmanager", region_name="us-east-1")
        cache = SecretCache(client=app, config=CacheConfig(ttl=ttl))
    except BaseException:
        mock.__exit__(None, None, None)
        raise

    def close() -> None:
        cache.close()
        mock.__exit__(None, None, None)

    return Store(cache, app, admin, close)


# -- counting and showing ---------------------------------------------------------------------------------


class Snapshot(NamedTuple):
    ok: int
    failed: int
    rotations: int
    users: tuple[str, ...]
    failures: tuple[str, ...]
    rotation_error: str | None
    rotation_seconds: tuple[float, ...]


class Counters:
    """What the workers and the rotator did (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ok = self._failed = 0
        self._users: dict[str, None] = {}
        self._failures: list[str] = []
        self._rotation_seconds: list[float] = []
        self._rotation_error: str | None = None

    def ok(self, user: str) -> None:
        with self._lock:
            self._ok += 1
            self._users.setdefault(user, None)

    def failed(self, message: str) -> None:
        with self._lock:
            self._failed += 1
            if len(self._failures) < 3 and message not in self._failures:
                self._failures.append(message)

    def rotated(self, seconds: float) -> None:
        with self._lock:
            self._rotation_seconds.append(seconds)

    def rotation_failed(self, message: str) -> None:
        with self._lock:
            self._rotation_error = message

    def snapshot(self) -> Snapshot:
        with self._lock:
            return Snapshot(self._ok, self._failed, len(self._rotation_seconds), tuple(self._users),
                            tuple(self._failures), self._rotation_error, tuple(self._rotation_seconds))


def _figures(counters: Counters, store: Store) -> tuple[Snapshot, Any, Any]:
    from ..db import auth_stats

    return counters.snapshot(), store.cache.stats, auth_stats(SECRET_ID, cache=store.cache)


class Status:
    """One refreshing line on a terminal; otherwise a plain line per rotation (and every 5 s)."""

    def __init__(self, out: TextIO, *, plain: bool) -> None:
        self.out, self.plain = out, plain
        self._last_rotations, self._last_print = -1, 0.0

    def show(self, counters: Counters, store: Store, total: int, elapsed: float, *,
             final: bool = False) -> None:
        snap, stats, auth = _figures(counters, store)
        line = (f"{elapsed:5.1f}s  rotations {snap.rotations}/{total}  queries ok {snap.ok:,} failed "
                f"{snap.failed}  cache hits {stats.hits:,}  API calls {store.api_calls}  refused logins "
                f"{auth.auth_failures}  refreshes {auth.refreshes} (+{auth.pending_fetches} AWSPENDING)")
        if not self.plain:
            self.out.write("\r\x1b[K" + line + ("\n" if final else ""))
            self.out.flush()
            return
        now = time.monotonic()
        if final or snap.rotations != self._last_rotations or now - self._last_print >= 5.0:
            self._last_rotations, self._last_print = snap.rotations, now
            print(line, file=self.out, flush=True)


def summary_lines(counters: Counters, store: Store, args: argparse.Namespace, elapsed: float) -> list[str]:
    snap, stats, auth = _figures(counters, store)
    mean = sum(snap.rotation_seconds) / len(snap.rotation_seconds) if snap.rotation_seconds else 0.0
    passed = snap.failed == 0 and snap.rotations == args.rotations
    single = args.strategy == "single"
    window = f" incl. a {args.window:g} s setSecret-to-finishSecret window" if single else ""
    lines = [
        "",
        "summary",
        f"  duration           {elapsed:.1f} s, {args.workers} workers, a new database login per query",
        f"  queries            ok {snap.ok:,}, failed {snap.failed} ({snap.ok / max(elapsed, 1e-9):,.0f}/s)",
        f"  rotations          {snap.rotations} of {args.rotations} ({args.strategy} user), {mean:.2f} s each"
        + window,
        f"  Secrets Manager    {store.api_calls} API calls by the application: 1 at start, then "
        f"{(store.api_calls - 1) / max(snap.rotations, 1):.1f} per rotation (cache ttl {args.ttl:g} s)",
        f"  cache              hits {stats.hits:,}, misses {stats.misses}, "
        f"backend calls {stats.backend_calls}",
        f"  rotation policy    refused logins {auth.auth_failures}, forced refreshes {auth.refreshes}, "
        f"AWSPENDING reads {auth.pending_fetches}, logins with the pinned new password {auth.pending_logins}",
        "                     (the new password that worked mid-rotation stays pinned for new logins until "
        "the cached AWSCURRENT changes)",
        f"  database users     {', '.join(snap.users) or '-'}",
    ]
    if snap.rotation_error:
        lines.append(f"  rotation error     {snap.rotation_error}")
    lines += [f"  failure            {message}" for message in snap.failures]
    lines.append("PASS: no query failed across the rotations" if passed else "FAIL: see above")
    return lines
