"""PyMySQL connections (MySQL, MariaDB) whose logins survive password rotation.

Every login reads the credentials through the cache and follows the rotation policy of
:mod:`secretcache.credentials`: on error 1045 (access denied), one shared refresh, then AWSPENDING,
then the driver's own ``pymysql.err.OperationalError`` with a note naming the secret. Host, port,
database and user come from the secret unless you pass them.

PyMySQL's ``ping(reconnect=True)`` re-authenticates with the password stored in the connection
object, which a rotation makes stale: reconnect by opening a new connection through
:func:`connect` (or a pool built on :func:`creator`) instead.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

try:
    import pymysql
    import pymysql.connections
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError("secretcache.db.pymysql needs PyMySQL: pip install 'secretcache[mysql]'") from e

from ..credentials import AuthPolicy, Login, drive
from ._params import PYMYSQL, make_params_of, merged

if TYPE_CHECKING:
    from .._face import AnySecretCache

__all__ = ["connect", "creator"]


def creator(
    secret_id: str,
    *,
    cache: AnySecretCache | None = None,
    policy: AuthPolicy | None = None,
    keys: Mapping[str, str] | None = None,
    **kwargs: Any,
) -> Callable[[], pymysql.connections.Connection[Any]]:
    """A zero-argument callable opening a new connection per call (for any pool's ``creator=``)."""
    login = Login(secret_id, make_params_of(secret_id, PYMYSQL, keys), cache=cache, policy=policy)
    explicit = dict(kwargs)

    def open_connection() -> pymysql.connections.Connection[Any]:
        return drive(
            login.flow(),
            lambda c: pymysql.connections.Connection(
                **merged(c.params, explicit, secret_id=secret_id, names=PYMYSQL, keys=keys)
            ),
        )

    return open_connection


def connect(
    secret_id: str,
    *,
    cache: AnySecretCache | None = None,
    policy: AuthPolicy | None = None,
    keys: Mapping[str, str] | None = None,
    **kwargs: Any,
) -> pymysql.connections.Connection[Any]:
    """``pymysql.connect`` with credentials (and host, port, database) from the secret ``secret_id``.

    ``kwargs`` take anything ``pymysql.connect`` does (``database=``, ``charset=``, ``autocommit=``,
    ``ssl=``...); what you pass wins over the secret. ``keys`` renames the secret's JSON keys.
    """
    return creator(secret_id, cache=cache, policy=policy, keys=keys, **kwargs)()
