"""Django database backends whose logins survive password rotation.

Set ``ENGINE`` to ``"secretcache.django.postgresql"`` (psycopg 3) or ``"secretcache.django.mysql"``
(mysqlclient) and name the secret in ``OPTIONS``::

    DATABASES = {
        "default": {
            "ENGINE": "secretcache.django.postgresql",
            "OPTIONS": {"secret_id": "prod/app/db"},
        }
    }

HOST, PORT, NAME, USER and PASSWORD come from the RDS-shaped secret unless the settings give them
(settings win). Every new connection, whatever ``CONN_MAX_AGE`` is, logs in through the rotation policy
of :mod:`secretcache.db`. See docs/django.md.

Importing this package imports no Django: Django loads ``<ENGINE>.base`` itself.
"""

from __future__ import annotations

__all__: list[str] = []
