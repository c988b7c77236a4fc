"""Which connect errors mean "these credentials were refused": the only failures rotation explains.

Duck-typed: no driver is imported. Error codes first (MySQL/MariaDB errno, PostgreSQL SQLSTATE), then,
because psycopg 3 raises connect-time failures without a SQLSTATE, the server's message.
"""

from __future__ import annotations

from collections.abc import Iterator

__all__ = ["AUTH_MESSAGES", "NOT_AUTH_MESSAGES", "is_auth_failure"]

MYSQL_ACCESS_DENIED = frozenset({1045, 1698})
"""MySQL/MariaDB ER_ACCESS_DENIED_ERROR (wrong password, unknown user) and ER_ACCESS_DENIED_NO_PASSWORD_ERROR
(MariaDB's answer for an unknown user over TCP): locale-independent error numbers."""
PG_INVALID_PASSWORD = "28P01"  # a SQLSTATE  # nosec B105
PG_INVALID_AUTHORIZATION = "28000"
AUTH_MESSAGES = (
    "password authentication failed for user",  # libpq (psycopg 3 gives no SQLSTATE at connect time)
    "pam authentication failed",  # RDS IAM / PAM
    "no credentials for the role",  # RDS Proxy with alternating users (SQLSTATE 28000)
)
"""Lower-case fragments of server messages meaning "these credentials were refused"."""
NOT_AUTH_MESSAGES = ("is not permitted to log in", "pg_hba.conf")
"""28000 cases a refresh cannot fix: a NOLOGIN role, a pg_hba rule. Never treated as rotation."""
_CHAIN_LIMIT = 8


def _chain(error: BaseException) -> Iterator[BaseException]:
    """The error, what it wraps (SQLAlchemy ``.orig``, wrapper ``.driver_error``) and its explicit causes.

    ``__context__`` is not followed: an error raised while handling an auth failure is not one.
    """
    seen: set[int] = set()
    todo = [error]
    while todo and len(seen) < _CHAIN_LIMIT:
        exc = todo.pop(0)
        if id(exc) in seen:
            continue
        seen.add(id(exc))
        yield exc
        for attr in ("orig", "driver_error", "__cause__"):
            inner = getattr(exc, attr, None)
            if isinstance(inner, BaseException):
                todo.append(inner)


def _errno(exc: BaseException) -> int | None:
    if isinstance(exc, OSError):  # socket errors carry POSIX errnos, never server error codes
        return None
    code = exc.args[0] if exc.args else getattr(exc, "errno", None)
    return code if isinstance(code, int) and not isinstance(code, bool) else None


def _message(exc: BaseException) -> str:
    """The error's text, lower-cased, for matching only: never logged (psycopg's ``pgconn`` is not read)."""
    try:
        text = exc.args[0] if exc.args and isinstance(exc.args[0], str) else str(exc)
    except Exception:
        return ""
    return text.lower()


def _structured_verdict(exc: BaseException) -> bool | None:
    """True/False from an error code the driver gave; None when it gave none."""
    errno = _errno(exc)
    if errno is not None:  # MySQL / MariaDB drivers: (errno, message)
        # "(using password: NO)" is an empty password: configuration, not rotation.
        return errno in MYSQL_ACCESS_DENIED and "using password: no" not in _message(exc)
    sqlstate = getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)
    if isinstance(sqlstate, str) and sqlstate:
        if sqlstate == PG_INVALID_PASSWORD:
            return True
        if sqlstate == PG_INVALID_AUTHORIZATION:
            return not any(fragment in _message(exc) for fragment in NOT_AUTH_MESSAGES)
        return False
    return None


def is_auth_failure(error: BaseException, *, extra_messages: tuple[str, ...] = ()) -> bool:
    """Whether a connect error means "these credentials were refused", the only case rotation explains.

    Error codes first, anywhere in the chain: MySQL/MariaDB 1045 or 1698 (not with an empty password),
    PostgreSQL SQLSTATE 28P01 or 28000 (not NOLOGIN or pg_hba rejections). Then, because psycopg 3
    raises connect-time failures with ``sqlstate`` None, the server message: ``password
    authentication failed for user`` and the others in :data:`AUTH_MESSAGES`, plus
    ``extra_messages`` (lower-case) for servers whose ``lc_messages`` is not English.
    Everything else is not an authentication failure: unknown database, refused connection,
    timeouts, too many connections, "no password supplied", syntax errors.
    """
    chain = list(_chain(error))
    for exc in chain:
        verdict = _structured_verdict(exc)
        if verdict is not None:
            return verdict
    fragments = AUTH_MESSAGES + tuple(m.lower() for m in extra_messages)
    for exc in chain:
        text = _message(exc)
        if any(f in text for f in fragments) and not any(f in text for f in NOT_AUTH_MESSAGES):
            return True
    return False
