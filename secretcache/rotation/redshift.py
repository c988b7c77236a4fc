"""Amazon Redshift rotation strategies (``redshift_connector``), counterparts of AWS's
``SecretsManagerRedshiftRotationSingleUser`` / ``...MultiUser``.

Passwords follow Redshift's rules: 8 to 64 characters, at least one upper-case letter, one lower-case letter
and one digit, printable ASCII without ``'`` ``"`` ``\\`` ``/`` ``@`` or space. Redshift takes a new password
only as a literal in ``ALTER USER`` (utility statements have no bind parameters), so the rules are checked
on every password before it is put in a statement: no character can end the literal.
The alternate user of the alternating scheme is created with the base user's group memberships (Redshift
grants privileges to groups), as AWS's multi-user function does.
"""

from __future__ import annotations

import dataclasses
import string
from typing import Any

from ._strategy import AlternatingUsers, DatabaseStrategy, RotationError, Secret, SingleUser, TlsMode
from .passwords import PasswordPolicy

__all__ = ["REDSHIFT_EXCLUDE", "RedshiftAlternatingUsers", "RedshiftSingleUser", "check_redshift_password"]

REDSHIFT_EXCLUDE = "'\"\\/@"
"""The characters Redshift refuses in a password (space too, which the policies leave out by default)."""
_MIN, _MAX = 8, 64


def check_redshift_password(password: str) -> None:
    """Raise ``ValueError`` unless ``password`` meets Redshift's rules (the message never holds it)."""
    problems = []
    if not _MIN <= len(password) <= _MAX:
        problems.append(f"{_MIN} to {_MAX} characters")
    for name, group in (("an upper-case letter", string.ascii_uppercase),
                        ("a lower-case letter", string.ascii_lowercase), ("a digit", string.digits)):
        if not any(c in group for c in password):
            problems.append(f"at least {name}")
    if any(c in REDSHIFT_EXCLUDE or not 33 <= ord(c) <= 126 for c in password):
        problems.append("printable ASCII without ' \" \\ / @ or space")
    if problems:
        raise ValueError("the password does not meet Redshift's rules: " + "; ".join(problems))


def _connector() -> Any:
    try:
        import redshift_connector
    except ImportError as e:
        raise ImportError("Redshift rotation needs redshift_connector: pip install 'secretcache[redshift]'") from e
    return redshift_connector


def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _password_literal(password: str) -> str:
    """``'...'`` for ALTER/CREATE USER. The rules leave out ``'`` and ``\\``, so nothing can end the literal;
    the statement is executed without parameters, so the driver sends it as written (``%`` included) and
    does not log it."""
    check_redshift_password(password)
    return "'" + password + "'"


class _Redshift(DatabaseStrategy):
    engines = ("redshift",)
    default_port = 5439
    default_dbname = "dev"
    username_limit = 127
    default_exclude = REDSHIFT_EXCLUDE

    def __init__(self, *, password_policy: PasswordPolicy | None = None, tls: TlsMode | None = None,
                 connect_timeout: float = 5.0) -> None:
        super().__init__(password_policy=password_policy, tls=tls, connect_timeout=connect_timeout)
        policy = self.password_policy
        if not _MIN <= policy.length <= _MAX or policy.exclude_uppercase or policy.exclude_lowercase \
                or policy.exclude_numbers or policy.include_space or not policy.require_each_included_type:
            raise ValueError(
                f"the password policy must follow Redshift's rules: length {_MIN}-{_MAX}, upper and lower case "
                "and digits required (require_each_included_type), no space"
            )
        missing = "".join(c for c in REDSHIFT_EXCLUDE if c not in policy.exclude_characters)
        if missing:  # e.g. EXCLUDE_CHARACTERS from the environment: Redshift's own exclusions always apply
            self.password_policy = dataclasses.replace(
                policy, exclude_characters=policy.exclude_characters + missing)

    def _open(self, secret: Secret, tls: TlsMode) -> Any:
        connector = _connector()
        conn = connector.connect(
            host=secret["host"], port=self.port(secret), user=secret["username"], password=secret["password"],
            database=secret.get("dbname") or self.default_dbname, ssl=tls == "require",
            timeout=max(1, round(self.connect_timeout)),
        )
        conn.autocommit = True
        return conn

    def _ping(self, conn: Any) -> None:
        cursor = conn.cursor()
        try:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        finally:
            cursor.close()

    def _set_own_password(self, conn: Any, username: str, password: str) -> None:
        cursor = conn.cursor()
        try:
            cursor.execute(f"ALTER USER {_identifier(username)} PASSWORD {_password_literal(password)}")
        finally:
            cursor.close()

    def _ensure_user(self, admin: Any, current_user: str, pending_user: str, password: str) -> None:
        cursor = admin.cursor()
        try:
            cursor.execute("SELECT 1 FROM pg_user WHERE usename = %s", (pending_user,))
            exists = cursor.fetchone() is not None
            verb = "ALTER" if exists else "CREATE"
            cursor.execute(f"{verb} USER {_identifier(pending_user)} PASSWORD {_password_literal(password)}")
            # Group memberships carry the privileges: the pending user joins every group of the current one.
            cursor.execute(
                "SELECT groname FROM pg_group WHERE (SELECT usesysid FROM pg_user WHERE usename = %s) = ANY(grolist)"
                " AND NOT (SELECT usesysid FROM pg_user WHERE usename = %s) = ANY(grolist)",
                (current_user, pending_user),
            )
            for (group,) in cursor.fetchall():
                cursor.execute(f"ALTER GROUP {_identifier(group)} ADD USER {_identifier(pending_user)}")
        finally:
            cursor.close()

    def validate(self, secret: Secret, what: str) -> None:
        super().validate(secret, what)
        if not isinstance(secret.get("dbname", ""), str):
            raise RotationError(f"{what}: 'dbname' must be a string")


class RedshiftSingleUser(SingleUser, _Redshift):
    """The user changes its own password (``ALTER USER``); needs no admin secret."""


class RedshiftAlternatingUsers(AlternatingUsers, _Redshift):
    """Flip between ``user`` and ``user_clone``; the admin in ``masterarn`` (a superuser, or a user with
    CREATEUSER) creates the clone and adds it to the base user's groups."""
