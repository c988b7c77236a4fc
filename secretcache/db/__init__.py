"""Database connection factories that keep working when Secrets Manager rotates the password.

- :mod:`secretcache.db.psycopg`: ``connect``, ``connect_async``, ``connection_pool``,
  ``async_connection_pool``
- :mod:`secretcache.db.pymysql`: ``connect``, ``creator``
- :mod:`secretcache.db.asyncpg`: ``connect``, ``create_pool``
- :mod:`secretcache.db.sqlalchemy`: ``create_engine``, ``create_async_engine``, ``attach``

All of them log in through one rotation policy (:mod:`secretcache.credentials`, the seam every client
that logs in shares); this package re-exports its knobs and counters (the same objects). Importing it
loads no driver: each submodule imports its own.
"""

from __future__ import annotations

from ..credentials import AuthPolicy, AuthStats, auth_stats, is_auth_failure

__all__ = ["AuthPolicy", "AuthStats", "auth_stats", "is_auth_failure"]
