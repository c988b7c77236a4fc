"""Amazon Redshift connections (``redshift_connector``) whose logins survive password rotation.

``connect("prod/redshift")`` reads the secret in the shape Secrets Manager's Redshift rotation uses
(``engine: "redshift"``, ``host``, ``port`` 5439, ``username``, ``password``, ``dbname``,
``dbClusterIdentifier``) and logs in through the rotation policy of :mod:`secretcache.credentials`: a
refused password (SQLSTATE 28P01, or 28000 with a "password authentication failed" message) gets one
shared refresh of AWSCURRENT, then AWSPENDING once, then the driver's own error with a note naming the
secret. What you pass as keyword arguments (``host``, ``port``, ``user``, ``database``, ``ssl``,
``timeout``, ...) wins over the secret. Requires ``pip install 'secretcache[redshift]'``.

The password is never held in a local variable of this module's frames, so a traceback's frame locals
(pytest ``--showlocals``, Sentry) do not show it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

try:
    import redshift_connector
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError(
        "secretcache.db.redshift needs redshift_connector: pip install 'secretcache[redshift]'"
    ) from e

from ..credentials import AuthPolicy, login
from ..errors import SecretFormatError

if TYPE_CHECKING:
    from ..aio import AsyncSecretCache
    from ..cache import SecretCache
    from ..model import SecretValue

__all__ = ["DEFAULT_PORT", "connect", "is_refused_login"]

DEFAULT_PORT = 5439
_FROM_SECRET = (("host", "host"), ("port", "port"), ("user", "username"), ("database", "dbname"))
_REFUSED_CODES = frozenset({"28P01", "28000"})
_NOT_ROTATION = ("is not permitted to log in", "pg_hba.conf")


def is_refused_login(error: BaseException) -> bool:
    """Whether a ``redshift_connector`` error means "this password was refused".

    The driver raises ``ProgrammingError`` (28P01) or ``InterfaceError`` (28000) whose first argument is
    the server's error fields (``{"C": sqlstate, "M": message, ...}``). 28000 also covers a login
    forbidden by configuration (a NOLOGIN user, a pg_hba rule), which no new password fixes."""
    if not isinstance(error, redshift_connector.error.Error) or not error.args or not isinstance(error.args[0], dict):
        return False
    fields = error.args[0]
    code, message = fields.get("C"), str(fields.get("M", "")).lower()
    if code == "28P01":
        return True
    return code == "28000" and not any(m in message for m in _NOT_ROTATION)


def _params(value: SecretValue, secret_id: str, explicit: Mapping[str, Any]) -> dict[str, Any]:
    """redshift_connector's keyword arguments: the secret's fields, then the caller's."""
    try:
        doc = value.json()
    except SecretFormatError:
        doc = None
    if not isinstance(doc, dict):
        del doc
        raise SecretFormatError(f"secret {secret_id!r}: a Redshift secret is a JSON object "
                                "(host, port, username, password, dbname)", secret_id=secret_id)
    params: dict[str, Any] = {}
    for name, key in _FROM_SECRET:
        if key in doc and doc[key] not in (None, ""):
            params[name] = doc[key]
    if "port" in params:
        try:
            params["port"] = int(params["port"])
        except (TypeError, ValueError):
            del doc, params
            raise SecretFormatError(f"secret {secret_id!r}: 'port' is not a number", secret_id=secret_id) from None
    params.setdefault("port", DEFAULT_PORT)
    if "password" not in explicit:
        password = doc.get("password")
        if not isinstance(password, str) or not password:
            del doc, params, password
            raise SecretFormatError(f"secret {secret_id!r}: no string 'password'", secret_id=secret_id)
        params["password"] = password
        del password
    ssl = doc.get("ssl")
    if "ssl" not in explicit and (ssl is True or (isinstance(ssl, str) and ssl.strip().lower() == "true")):
        params["ssl"] = True  # the rotation secret asks for TLS (the driver's default too)
    del doc
    params.update(explicit)
    missing = [name for name in ("host", "user", "database") if not params.get(name)]
    if missing:
        params.clear()
        raise SecretFormatError(f"secret {secret_id!r}: no {', '.join(missing)} in the secret or the arguments",
                                secret_id=secret_id)
    return params


def connect(
    secret_id: str,
    *,
    cache: SecretCache | AsyncSecretCache | None = None,
    policy: AuthPolicy | None = None,
    **kwargs: Any,
) -> redshift_connector.core.Connection:
    """``redshift_connector.connect`` with the credentials (and host, port, database) of ``secret_id``.

    ``kwargs`` take anything ``redshift_connector.connect`` does and win over the secret. ``cache``
    defaults to the module-level cache; ``policy`` tunes the rotation policy.
    """
    explicit = dict(kwargs)
    return login(
        secret_id,
        lambda value: redshift_connector.connect(**_params(value, secret_id, explicit)),
        is_auth_failure=is_refused_login, cache=cache, policy=policy,
    )
