"""Throwaway local database servers with real password authentication, for tests, CI and the demo.

PostgreSQL: :func:`start_postgres` runs a private cluster from the installed server binaries (initdb with
``--auth-host=scram-sha-256``, 127.0.0.1 only, a free port, fsync off, a random admin password), because the
machine's own cluster may trust local connections and would then accept an old password after a rotation.
MariaDB/MySQL: :func:`mysql_admin_from_env` uses the running server (it always checks the passwords of the
users we create); :func:`start_mariadb` starts a private one when that is preferable.

Stdlib only at import time; the drivers (psycopg, pymysql) are imported inside the functions that use them.
Passwords live in ``repr=False`` fields and never appear in a message raised from here.

Size: two engines' start, admin and account helpers (~440 lines) kept as one kit, the one the tests, the
benchmarks and the demo share; it is not part of the library.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import pwd
import re
import secrets
import shutil
import socket
import string
import subprocess  # starts PostgreSQL binaries  # nosec B404
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "DbAccount",
    "DbServer",
    "admin_connect",
    "connect_as",
    "create_account",
    "drop_account",
    "mysql_admin_from_env",
    "set_password",
    "start_mariadb",
    "start_postgres",
]

Engine = Literal["postgres", "mysql"]

_PG_NEEDS = (
    "PostgreSQL server binaries (initdb, pg_ctl) were not found under /usr/lib/postgresql/*/bin or on PATH: "
    "install PostgreSQL server binaries, e.g. `apt-get install postgresql`, or pass --dsn with an admin "
    "connection string of a PostgreSQL server that uses password authentication"
)
# Letters and digits only: safe in a libpq conninfo string, a URL and an SQL literal without quoting rules.
_PW_ALPHABET = string.ascii_letters + string.digits


def _random_password(length: int = 24) -> str:
    return "".join(secrets.choice(_PW_ALPHABET) for _ in range(length))


def _unique_name(prefix: str = "sc") -> str:
    # 13-14 characters, 19-20 with "_clone": within MySQL's 32 and MariaDB's 80 (PostgreSQL: 63).
    return f"{prefix}_{secrets.token_hex(5)}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class DbServer:
    """A server reachable on ``host:port`` with admin credentials; ``stop()`` ends what we started."""

    engine: Engine
    host: str
    port: int
    admin_user: str
    admin_password: str = field(repr=False)
    admin_dbname: str
    data_dir: str | None = None
    """PostgreSQL (and private MariaDB): the directory holding the cluster, removed by ``stop()``."""
    flavor: str = ""
    """``"postgres"``, ``"mariadb"`` or ``"mysql"``: what RDS would put in a secret's ``engine`` field."""
    _stopper: Callable[[], None] | None = field(default=None, repr=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def stop(self) -> None:
        """Stop a server this module started and remove its directory (idempotent); no-op otherwise."""
        with self._lock:
            stopper, self._stopper = self._stopper, None
        if stopper is not None:
            with contextlib.suppress(Exception):
                atexit.unregister(stopper)
            stopper()

    def __enter__(self) -> DbServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def dsn(self, dbname: str | None = None) -> str:
        """The admin connection as a libpq conninfo string (PostgreSQL) or URL (MySQL). Holds the password."""
        db = dbname or self.admin_dbname
        if self.engine == "postgres":
            return (f"host={self.host} port={self.port} user={self.admin_user} "
                    f"password={self.admin_password} dbname={db}")
        return f"mysql://{self.admin_user}:{self.admin_password}@{self.host}:{self.port}/{db}"


@dataclass
class DbAccount:
    """A login role/user with its own database, as a rotation-managed application account would be."""

    engine: Engine
    host: str
    port: int
    username: str
    password: str = field(repr=False)
    dbname: str
    flavor: str = ""

    def as_secret(self, **extra: Any) -> dict[str, Any]:
        """The account in the RDS JSON shape (``engine`` "postgres" / "mariadb" / "mysql")."""
        return {
            "engine": self.flavor or self.engine,
            "host": self.host,
            "port": self.port,
            "username": self.username,
            "password": self.password,
            "dbname": self.dbname,
            **extra,
        }


# ---------------------------------------------------------------------------------------------- PostgreSQL


def _pg_bindir() -> Path | None:
    def version_key(p: str) -> tuple[int, ...]:
        return tuple(int(x) for x in re.findall(r"\d+", p))

    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version_key, reverse=True):
        if (Path(candidate) / "initdb").exists() and (Path(candidate) / "pg_ctl").exists():
            return Path(candidate)
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return Path(initdb).parent
    return None


def _run(cmd: list[str], *, what: str, log: Path | None = None, timeout: float = 60.0) -> None:
    # cmd is a fixed argv built by this module (PostgreSQL binaries), never a shell
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)  # nosec B603
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip()[-2000:]
        if log is not None and log.exists():
            detail += "\n" + log.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"{what} failed (exit {result.returncode}): {detail}")


def start_postgres(*, base_dir: str | None = None, start_timeout: float = 60.0) -> DbServer:
    """Start a private PostgreSQL cluster with scram-sha-256 on 127.0.0.1 and a free port.

    As root the server runs as the ``postgres`` OS user (initdb refuses root). Raises RuntimeError naming
    what to install when the binaries are missing. ``stop()`` shuts it down and removes its directory;
    an atexit hook does the same if the caller never does.
    """
    bindir = _pg_bindir()
    if bindir is None:
        raise RuntimeError(_PG_NEEDS)
    as_user: list[str] = []
    owner: pwd.struct_passwd | None = None
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            raise RuntimeError(
                "running as root, PostgreSQL needs the `postgres` OS user to run initdb (install the "
                "postgresql package, which creates it), or pass --dsn with an admin connection string"
            ) from None
        runuser = shutil.which("runuser")
        if runuser is None:
            raise RuntimeError("running as root, `runuser` (util-linux) is needed to run PostgreSQL")
        as_user = [runuser, "-u", "postgres", "--"]

    root = Path(tempfile.mkdtemp(prefix="sc-pg-", dir=base_dir))
    data, log, pwfile = root / "data", root / "server.log", root / "pw"
    password = _random_password()
    try:
        pwfile.write_text(password + "\n")
        pwfile.chmod(0o600)
        if owner is not None:
            os.chown(root, owner.pw_uid, owner.pw_gid)
            os.chown(pwfile, owner.pw_uid, owner.pw_gid)
        _run([*as_user, str(bindir / "initdb"), "-D", str(data), "-U", "postgres", f"--pwfile={pwfile}",
              "--auth-local=scram-sha-256", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync",
              "--no-instructions"], what="initdb")
        pwfile.unlink()
        last_error: RuntimeError | None = None
        for _ in range(3):  # a free port can be taken between our probe and the server's bind: retry
            port = _free_port()
            opts = (f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off "
                    "-c synchronous_commit=off -c max_connections=200")
            try:
                _run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w",
                      "-t", str(int(start_timeout)), "-o", opts, "start"],
                     what="pg_ctl start", log=log, timeout=start_timeout + 10)
                break
            except RuntimeError as e:
                last_error = e
        else:
            assert last_error is not None
            raise last_error
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise

    def stopper() -> None:
        with contextlib.suppress(Exception):
            stop = [*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]
            subprocess.run(stop, capture_output=True, timeout=60, check=False)  # fixed argv  # nosec B603
        shutil.rmtree(root, ignore_errors=True)

    atexit.register(stopper)
    return DbServer("postgres", "127.0.0.1", port, "postgres", password, "postgres", data_dir=str(root),
                    flavor="postgres", _stopper=stopper)


# ------------------------------------------------------------------------------------------- MariaDB/MySQL


def mysql_admin_from_env() -> DbServer:
    """The MariaDB/MySQL server to use, checked to answer: ``SECRETCACHE_TEST_MYSQL_HOST/PORT/USER/PASSWORD``,
    default root with an empty password on 127.0.0.1:3306. Never stopped by ``stop()`` (not ours)."""
    server = DbServer(
        "mysql",
        os.environ.get("SECRETCACHE_TEST_MYSQL_HOST", "127.0.0.1"),
        int(os.environ.get("SECRETCACHE_TEST_MYSQL_PORT", "3306")),
        os.environ.get("SECRETCACHE_TEST_MYSQL_USER", "root"),
        os.environ.get("SECRETCACHE_TEST_MYSQL_PASSWORD", ""),
        "mysql",
    )
    try:
        with contextlib.closing(admin_connect(server)) as conn, conn.cursor() as cur:
            cur.execute("SELECT VERSION()")
            row = cur.fetchone()
    except ImportError:
        raise
    except Exception as e:
        raise RuntimeError(
            f"no MariaDB/MySQL server answered as {server.admin_user!r} on {server.host}:{server.port} "
            f"({type(e).__name__}: {e.args[:1]}); start one (e.g. `apt-get install mariadb-server`) or set "
            "SECRETCACHE_TEST_MYSQL_HOST/PORT/USER/PASSWORD"
        ) from None
    server.flavor = "mariadb" if row and "mariadb" in str(row[0]).lower() else "mysql"
    return server


def start_mariadb(*, base_dir: str | None = None, start_timeout: float = 30.0) -> DbServer:
    """Start a private MariaDB (mariadb-install-db, mariadbd) on 127.0.0.1, a free port, passwordless root.

    Prefer :func:`mysql_admin_from_env` (the running server) unless a test needs a server it may reconfigure.
    """
    install_db, mariadbd = shutil.which("mariadb-install-db"), shutil.which("mariadbd") or (
        "/usr/sbin/mariadbd" if Path("/usr/sbin/mariadbd").exists() else None)
    if install_db is None or mariadbd is None:
        raise RuntimeError(
            "MariaDB server binaries were not found: install them, e.g. `apt-get install mariadb-server`")
    root = Path(tempfile.mkdtemp(prefix="sc-my-", dir=base_dir))
    user_args: list[str] = []
    if os.geteuid() == 0:
        owner = pwd.getpwnam("mysql")
        os.chown(root, owner.pw_uid, owner.pw_gid)
        user_args = ["--user=mysql"]
    # --tmpdir: the server runs as `mysql` and may not write to the caller's TMPDIR (nox's is root's)
    data, sock, own_tmp = root / "data", root / "mysqld.sock", f"--tmpdir={root}"
    try:
        _run([install_db, "--no-defaults", *user_args, f"--datadir={data}", own_tmp,
              "--auth-root-authentication-method=normal", "--skip-test-db"], what="mariadb-install-db")
        port = _free_port()
        proc = subprocess.Popen(  # MariaDB binaries, fixed argv  # nosec B603
            [mariadbd, "--no-defaults", *user_args, f"--datadir={data}", own_tmp, f"--socket={sock}", f"--port={port}",
             "--bind-address=127.0.0.1", f"--pid-file={root / 'mysqld.pid'}",
             f"--log-error={root / 'error.log'}",
             "--skip-log-bin", "--innodb-flush-log-at-trx-commit=0", "--max-connect-errors=1000000"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise

    def stopper() -> None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(root, ignore_errors=True)

    server = DbServer("mysql", "127.0.0.1", port, "root", "", "mysql", data_dir=str(root), flavor="mariadb",
                      _stopper=stopper)
    deadline = time.monotonic() + start_timeout
    while True:
        try:
            admin_connect(server).close()
            break
        except Exception:
            if proc.poll() is not None or time.monotonic() > deadline:
                log = root / "error.log"
                detail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                server.stop()
                raise RuntimeError(f"private MariaDB did not start: {detail}") from None
            time.sleep(0.1)
    atexit.register(stopper)
    return server


# ----------------------------------------------------------------------------------------- both engines


def _connect(engine: Engine, host: str, port: int, user: str, password: str, dbname: str,
             connect_timeout: int = 10) -> Any:
    try:
        if engine == "postgres":
            import psycopg

            return psycopg.connect(host=host, port=port, user=user, password=password, dbname=dbname,
                                   autocommit=True, connect_timeout=connect_timeout)
        import pymysql

        return pymysql.connect(host=host, port=port, user=user, password=password, database=dbname,
                               autocommit=True, connect_timeout=connect_timeout)
    except Exception:
        del password  # a refused login's traceback (frame locals) must not show the password tried
        raise


def admin_connect(server: DbServer, dbname: str | None = None) -> Any:
    """An autocommit admin connection (psycopg or pymysql); the caller closes it."""
    return _connect(server.engine, server.host, server.port, server.admin_user, server.admin_password,
                    dbname or server.admin_dbname)


def connect_as(account: DbAccount, password: str | None = None, *, username: str | None = None) -> Any:
    """An autocommit connection as the account (optionally with another password or username)."""
    try:
        return _connect(account.engine, account.host, account.port, username or account.username,
                        account.password if password is None else password, account.dbname)
    except Exception:
        del password  # as in _connect
        raise


def _admin_execute(server: DbServer, statements: list[tuple[str, tuple[Any, ...]]]) -> None:
    with contextlib.closing(admin_connect(server)) as conn, conn.cursor() as cur:
        for sql, params in statements:
            cur.execute(sql, params or None)


def _check_name(name: str) -> str:
    # Names are interpolated as identifiers: allow only what our generated names and tests use.
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,62}", name):
        raise ValueError(f"unsupported database user name {name!r}: use letters, digits and '_'")
    return name


def create_account(server: DbServer, *, username: str | None = None, password: str | None = None,
                   master: bool = False) -> DbAccount:
    """Create a login user with a random password and a database of the same name that it owns.

    ``master=True`` makes an admin-like account instead, as the ``masterarn`` secret of an alternating-users
    rotation holds: PostgreSQL CREATEROLE (can create the clone role, grant it membership and set passwords),
    MariaDB ALL PRIVILEGES WITH GRANT OPTION. The MariaDB user is created for host ``'%'`` only: a second
    ``'u'@'localhost'`` entry would be matched first for 127.0.0.1 and keep the old password alive after a
    rotation that, like AWS's templates, alters ``'u'@'%'``.
    """
    name = _check_name(username or _unique_name("sc_m" if master else "sc"))
    pw = password if password is not None else _random_password()
    if server.engine == "postgres":
        from psycopg import sql

        role = sql.Identifier(name)
        attrs = sql.SQL("LOGIN CREATEROLE") if master else sql.SQL("LOGIN")
        with contextlib.closing(admin_connect(server)) as conn:
            conn.execute(sql.SQL("CREATE ROLE {} {} PASSWORD {}").format(role, attrs, sql.Literal(pw)))
            conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(role, role))
    else:
        grant = ("GRANT ALL PRIVILEGES ON *.* TO %s@'%%' WITH GRANT OPTION" if master
                 else f"GRANT ALL PRIVILEGES ON `{name}`.* TO %s@'%%'")
        _admin_execute(server, [
            ("CREATE USER %s@'%%' IDENTIFIED BY %s", (name, pw)),
            (f"CREATE DATABASE `{name}`", ()),
            (grant, (name,)),
        ])
    return DbAccount(server.engine, server.host, server.port, name, pw, name,
                     flavor=server.flavor or server.engine)


def drop_account(server: DbServer, account: DbAccount | str, *, also: tuple[str, ...] = ("_clone",)) -> None:
    """Drop the account's database and user, and the alternating-users clone (``<user>_clone``) if any.

    On MariaDB it also runs FLUSH HOSTS, so deliberate wrong-password tests never leave 127.0.0.1 blocked by
    ``max_connect_errors`` for later tests (the server's own settings are left alone).
    """
    name = _check_name(account if isinstance(account, str) else account.username)
    base = name.removesuffix("_clone")
    users = [base, *(base + suffix for suffix in also)]
    if server.engine == "postgres":
        from psycopg import sql

        with contextlib.closing(admin_connect(server)) as conn:
            for db in (base, name):
                # WITH (FORCE) ends sessions still open on it (PostgreSQL 13+).
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db)))
            for user in users:
                conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(user)))
    else:
        statements: list[tuple[str, tuple[Any, ...]]] = [(f"DROP DATABASE IF EXISTS `{base}`", ())]
        statements += [("DROP USER IF EXISTS %s@'%%'", (u,)) for u in users]
        statements.append(("FLUSH HOSTS", ()))
        _admin_execute(server, statements)


def set_password(server: DbServer, username: str, new_password: str) -> None:
    """Change a user's password as admin (what a rotation's setSecret does), for tests that rotate by hand."""
    name = _check_name(username)
    if server.engine == "postgres":
        from psycopg import sql

        with contextlib.closing(admin_connect(server)) as conn:
            conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(name),
                                                                     sql.Literal(new_password)))
    else:
        _admin_execute(server, [("ALTER USER %s@'%%' IDENTIFIED BY %s", (name, new_password))])


def flush_hosts(server: DbServer) -> None:
    """MariaDB/MySQL: clear the host cache so earlier failed logins cannot block 127.0.0.1."""
    if server.engine == "mysql":
        _admin_execute(server, [("FLUSH HOSTS", ())])
