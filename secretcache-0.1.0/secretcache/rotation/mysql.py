"""MySQL and MariaDB rotation strategies (PyMySQL), the counterparts of AWS's ``...MySQLRotation*`` and
``...MariaDBRotation*`` templates.

Users are addressed as ``'name'@'<host pattern>'`` (``'%'`` by default, what the templates' bare ``'name'``
means). The alternating strategy copies every ``SHOW GRANTS`` line and the TLS requirement of the current
user to the clone, as the templates do; the admin needs ``CREATE USER`` and the rights it grants
``WITH GRANT OPTION``.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from ._strategy import AlternatingUsers, DatabaseStrategy, RotationError, Secret, SingleUser, TlsMode

if TYPE_CHECKING:
    import ssl

__all__ = ["MySQLAlternatingUsers", "MySQLSingleUser"]


def _pymysql() -> Any:
    try:
        import pymysql
    except ImportError as e:
        raise ImportError("MySQL/MariaDB rotation needs PyMySQL: pip install 'secretcache[mysql]'") from e
    return pymysql


def _password_expression(version: str) -> str:
    """``PASSWORD(%s)`` on MariaDB and MySQL < 8; MySQL 8 removed the function and takes the plain string."""
    if "mariadb" in version.lower():
        return "PASSWORD(%s)"
    major = version.split(".", 1)[0]
    return "%s" if major.isdigit() and int(major) >= 8 else "PASSWORD(%s)"


_CR_SSL_CONNECTION_ERROR = 2026  # "SSL is required but the server doesn't support it"


@functools.lru_cache(maxsize=1)
def _encrypting_context() -> ssl.SSLContext:
    """One TLS context for every login: encryption without certificate checks, as AWS's templates do
    (pin a CA in a subclass's ``_open``). Built once: ``create_default_context`` loads the system CA
    store each time (tens of ms), which a context that verifies nothing never needs."""
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


class _MySQL(DatabaseStrategy):
    engines = ("mysql", "mariadb", "aurora-mysql")
    default_port = 3306
    default_dbname = None
    username_limit = 32  # MySQL 5.7+ (MariaDB allows 80); AWS's template defaults to 16 for MySQL 5.6
    default_exclude = "/@\"'\\"

    def __init__(self, *, user_host: str = "%", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.user_host = user_host

    def _open(self, secret: Secret, tls: TlsMode) -> Any:
        pymysql = _pymysql()
        params: dict[str, Any] = dict(
            host=secret["host"], port=self.port(secret), user=secret["username"], password=secret["password"],
            database=secret.get("dbname") or None, connect_timeout=self.connect_timeout, autocommit=True,
        )
        if tls == "disable":
            return pymysql.connect(**params, ssl_disabled=True)
        try:
            conn = pymysql.connect(**params, ssl=_encrypting_context())
        except pymysql.err.OperationalError as e:
            if tls == "prefer" and e.args and e.args[0] == _CR_SSL_CONNECTION_ERROR:
                return pymysql.connect(**params)  # "prefer" (loopback by default): the server has no TLS
            raise
        if tls == "require":
            # Make sure the session really is encrypted rather than trusting the handshake path.
            with conn.cursor() as cur:
                cur.execute("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
                row = cur.fetchone()
            if not row or not row[1]:
                conn.close()
                raise RotationError(f"TLS is required but {secret['host']}:{self.port(secret)} did not use "
                                    "it (set the secret's \"ssl\" to false to allow plaintext)")
        return conn

    def _set_own_password(self, conn: Any, username: str, password: str) -> None:
        with conn.cursor() as cur:
            cur.execute("SELECT VERSION()")
            cur.execute("SET PASSWORD = " + _password_expression(cur.fetchone()[0]), (password,))

    def _ensure_user(self, admin: Any, current_user: str, pending_user: str, password: str) -> None:
        host = self.user_host
        with admin.cursor() as cur:
            cur.execute("SELECT 1 FROM mysql.user WHERE User = %s AND Host = %s", (pending_user, host))
            if cur.fetchone() is None:
                cur.execute("CREATE USER %s@%s IDENTIFIED BY %s", (pending_user, host, password))
            cur.execute("SHOW GRANTS FOR %s@%s", (current_user, host))
            for (line,) in cur.fetchall():
                # "GRANT <privileges> ON <object> TO `user`@`host` [IDENTIFIED BY ...] [WITH GRANT OPTION]":
                # keep what is granted, give it to the pending user (grant options are not passed on).
                grant, sep, _ = line.partition(" TO ")
                if not sep or not grant.startswith("GRANT "):
                    continue
                cur.execute(grant.replace("%", "%%") + " TO %s@%s", (pending_user, host))
            cur.execute("SELECT ssl_type, ssl_cipher, x509_issuer, x509_subject FROM mysql.user "
                        "WHERE User = %s AND Host = %s", (current_user, host))
            tls = cur.fetchone()
            cur.execute(*self._require_clause(pending_user, host, tls))
            cur.execute("ALTER USER %s@%s IDENTIFIED BY %s", (pending_user, host, password))

    @staticmethod
    def _require_clause(user: str, host: str, tls: Any) -> tuple[str, tuple[Any, ...]]:
        def text(value: Any) -> str:
            return value.decode() if isinstance(value, bytes) else str(value or "")

        ssl_type, cipher, issuer, subject = (text(v) for v in (tls or ("", "", "", "")))
        if ssl_type == "ANY":
            return "ALTER USER %s@%s REQUIRE SSL", (user, host)
        if ssl_type == "X509":
            return "ALTER USER %s@%s REQUIRE X509", (user, host)
        if ssl_type == "SPECIFIED":
            parts = [(name, value) for name, value in (("CIPHER", cipher), ("ISSUER", issuer),
                                                       ("SUBJECT", subject)) if value]
            clause = " AND ".join(f"{name} %s" for name, _ in parts) or "SSL"
            return f"ALTER USER %s@%s REQUIRE {clause}", (user, host, *(v for _, v in parts))
        return "ALTER USER %s@%s REQUIRE NONE", (user, host)


class MySQLSingleUser(SingleUser, _MySQL):
    """The user changes its own password (``SET PASSWORD``); needs no admin secret."""


class MySQLAlternatingUsers(AlternatingUsers, _MySQL):
    """Flip between ``user`` and ``user_clone``; the admin in ``masterarn`` creates the clone with the
    current user's grants and TLS requirement."""
