"""Django's PostgreSQL ``DatabaseWrapper`` (psycopg 3) with credentials from a secret, rotation-safe."""

from __future__ import annotations

from typing import Any

try:
    import django  # type: ignore[import-untyped]  # noqa: F401
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError("secretcache.django.postgresql needs Django: pip install 'secretcache[django]'") from e
try:
    import psycopg  # noqa: F401
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError(
        "secretcache.django.postgresql needs psycopg 3: pip install 'secretcache[django]' 'secretcache[postgres]'"
    ) from e

from django.core.exceptions import ImproperlyConfigured  # type: ignore[import-untyped]
from django.db.backends.postgresql import base as django_base  # type: ignore[import-untyped]
from django.utils.asyncio import async_unsafe  # type: ignore[import-untyped]

from ...db._params import PSYCOPG
from .._backend import RotatingLoginMixin, test_name_creation

__all__ = ["DatabaseWrapper"]


class DatabaseWrapper(RotatingLoginMixin, django_base.DatabaseWrapper):  # type: ignore[misc]
    """``django.db.backends.postgresql``'s wrapper; each new connection logs in through the rotation policy."""

    secretcache_names = PSYCOPG
    creation_class = test_name_creation(django_base.DatabaseWrapper.creation_class)
    secretcache_name_required = True

    def get_connection_params(self) -> dict[str, Any]:
        if self.settings_dict["OPTIONS"].get("pool"):
            # Django's pool logs in with the parameters it was built with: a rotation would break it.
            raise ImproperlyConfigured(
                "secretcache.django.postgresql does not support OPTIONS['pool']: use persistent "
                "connections (CONN_MAX_AGE) or secretcache.db.psycopg.connection_pool"
            )
        return super().get_connection_params()

    @async_unsafe  # type: ignore[untyped-decorator]
    def get_new_connection(self, conn_params: dict[str, Any]) -> Any:
        return super().get_new_connection(conn_params)
