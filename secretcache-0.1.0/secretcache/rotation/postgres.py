"""PostgreSQL rotation strategies (psycopg 3), counterparts of AWS's ``SecretsManagerRDSPostgreSQLRotation*``.

Passwords reach the server as SCRAM verifiers computed on the client (libpq's ``PQencryptPasswordConn``), so
the plaintext never appears in the server's statement log, unlike the templates' ``ALTER USER ... WITH
PASSWORD '<plaintext>'``.
"""

from __future__ import annotations

from typing import Any

from ._strategy import CLONE_SUFFIX, AlternatingUsers, DatabaseStrategy, Secret, SingleUser, TlsMode

__all__ = ["PostgresAlternatingUsers", "PostgresSingleUser"]


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError as e:
        raise ImportError("PostgreSQL rotation needs psycopg: pip install 'secretcache[postgres]'") from e
    return psycopg


class _Postgres(DatabaseStrategy):
    engines = ("postgres", "postgresql", "aurora-postgresql")
    default_port = 5432
    default_dbname = "postgres"
    username_limit = 63
    default_exclude = ":/@\"'\\"

    def _open(self, secret: Secret, tls: TlsMode) -> Any:
        psycopg = _psycopg()
        return psycopg.connect(
            host=secret["host"], port=self.port(secret), user=secret["username"], password=secret["password"],
            dbname=secret.get("dbname") or self.default_dbname, sslmode=tls,
            connect_timeout=max(1, round(self.connect_timeout)), autocommit=True,
        )

    @staticmethod
    def _verifier(conn: Any, username: str, password: str) -> str:
        # Algorithm None: whatever the server's password_encryption says (scram-sha-256 by default since 14).
        encrypted: bytes = conn.pgconn.encrypt_password(password.encode(), username.encode())
        return encrypted.decode()

    def _set_own_password(self, conn: Any, username: str, password: str) -> None:
        from psycopg import sql

        conn.execute(sql.SQL("ALTER ROLE {} WITH PASSWORD {}").format(
            sql.Identifier(username), sql.Literal(self._verifier(conn, username, password))))

    def _ensure_user(self, admin: Any, current_user: str, pending_user: str, password: str) -> None:
        from psycopg import sql

        exists = admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (pending_user,)).fetchone()
        verifier = sql.Literal(self._verifier(admin, pending_user, password))
        pending = sql.Identifier(pending_user)
        with admin.transaction():
            if exists:
                admin.execute(sql.SQL("ALTER ROLE {} WITH LOGIN PASSWORD {}").format(pending, verifier))
            else:
                admin.execute(sql.SQL("CREATE ROLE {} WITH LOGIN PASSWORD {}").format(pending, verifier))
            # Membership gives the clone the base user's privileges (as the template). Checked every rotation,
            # so a clone created by hand or one whose membership was revoked is brought back in line; never
            # the other way round (the base user a member of its clone would be circular).
            clone, base = ((pending_user, current_user) if pending_user.endswith(CLONE_SUFFIX)
                           else (current_user, pending_user))
            member = admin.execute("SELECT pg_has_role(%s, %s, 'MEMBER')", (clone, base)).fetchone()
            if not member[0]:
                admin.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(base), sql.Identifier(clone)))


class PostgresSingleUser(SingleUser, _Postgres):
    """The user changes its own password (``ALTER ROLE``); needs no admin secret."""


class PostgresAlternatingUsers(AlternatingUsers, _Postgres):
    """Flip between ``user`` and ``user_clone``; the admin in ``masterarn`` needs CREATEROLE (PostgreSQL 16+:
    also ADMIN OPTION on the user's role) to create the clone as a member of the user's role."""
