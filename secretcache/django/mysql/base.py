"""Django's MySQL/MariaDB ``DatabaseWrapper`` (mysqlclient) with credentials from a secret, rotation-safe."""

from __future__ import annotations

from typing import Any

try:
    import django  # type: ignore[import-untyped]  # noqa: F401
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError("secretcache.django.mysql needs Django: pip install 'secretcache[django]'") from e
try:
    import MySQLdb  # type: ignore[import-untyped]  # noqa: F401
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError(
        "secretcache.django.mysql needs mysqlclient: pip install 'secretcache[django]' 'secretcache[mysqlclient]'"
    ) from e

from django.db.backends.mysql import base as django_base  # type: ignore[import-untyped]
from django.utils.asyncio import async_unsafe  # type: ignore[import-untyped]

from ...db._params import MYSQLDB
from .._backend import RotatingLoginMixin, test_name_creation

__all__ = ["DatabaseWrapper"]

DJANGO_MYSQL = MYSQLDB._replace(password="password", dbname="database")  # nosec B106 - a parameter name
"""The keywords Django's mysql backend passes to ``MySQLdb.connect`` (user, password, database, host, port);
the secret's ``ssl`` as mysqlclient spells it (``ssl_mode``), unless OPTIONS set ``ssl`` or ``ssl_mode``."""


class DatabaseWrapper(RotatingLoginMixin, django_base.DatabaseWrapper):  # type: ignore[misc]
    """``django.db.backends.mysql``'s wrapper; each new connection logs in through the rotation policy.

    The rotation policy recognises mysqlclient's ``OperationalError(1045, ...)`` (access denied).
    """

    secretcache_names = DJANGO_MYSQL
    creation_class = test_name_creation(django_base.DatabaseWrapper.creation_class)

    @async_unsafe  # type: ignore[untyped-decorator]
    def get_new_connection(self, conn_params: dict[str, Any]) -> Any:
        return super().get_new_connection(conn_params)
