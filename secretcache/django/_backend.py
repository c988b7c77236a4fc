"""What the PostgreSQL and MySQL engines share: the OPTIONS they read and the login through the policy.

Django builds a connection in two steps, ``get_connection_params()`` (settings to driver keyword
arguments) and ``get_new_connection(conn_params)`` (the driver's connect). The first strips our keys
from ``OPTIONS`` and leaves out what the secret gives; the second runs Django's own
``get_new_connection`` inside the rotation policy (:class:`~secretcache.credentials.Login`), each attempt
with the secret's parameters under the settings' (settings win). A refused login is therefore retried
right where Django connects, for ``CONN_MAX_AGE`` 0, persistent connections and health-check
reconnects alike, and what finally fails is the driver's exception, which Django wraps in its own
``django.db.OperationalError`` as it does for its stock backends.

``settings_dict`` is never modified: Django copies it to build other wrappers (``_nodb_cursor``, test
databases), which must keep ``secret_id``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, cast

try:
    from django.core.exceptions import ImproperlyConfigured  # type: ignore[import-untyped]
    from django.utils.module_loading import import_string  # type: ignore[import-untyped]
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError("secretcache.django needs Django: pip install 'secretcache[django]'") from e

from .._face import BaseSecretCache
from ..cache import SecretCache, blocking_cache
from ..credentials import AuthPolicy, Login, drive
from ..db._params import DriverNames, check_keys, make_params_of, merged

__all__ = ["OPTION_KEYS", "RotatingLoginMixin", "login_from_options", "test_name_creation"]

OPTION_KEYS = frozenset({"secret_id", "cache", "policy", "keys"})
"""The ``OPTIONS`` keys secretcache reads; the driver never sees them."""

_NAME_FROM_SECRET = "<secretcache: dbname from the secret>"  # nosec B105 - a placeholder, not a password


def _imported(value: object, what: str) -> object:
    if isinstance(value, str):
        try:
            return import_string(value)
        except ImportError as e:
            raise ImproperlyConfigured(f"DATABASES OPTIONS[{what!r}]: cannot import {value!r}: {e}") from e
    return value


def login_from_options(options: Mapping[str, Any], names: DriverNames) -> tuple[Login, Mapping[str, str] | None]:
    """The :class:`Login` ``OPTIONS`` describe for a driver, and the JSON key renames; ImproperlyConfigured
    if they are wrong.

    - ``secret_id`` (required): the secret's name or ARN.
    - ``cache``: a :class:`~secretcache.SecretCache` or the dotted path of one (default: the
      module-level cache, ``secretcache.default_cache()``, looked up at each connect).
    - ``policy``: an :class:`~secretcache.db.AuthPolicy`, its dotted path, or a dict of its fields.
    - ``keys``: the secret's JSON key names when not RDS's (``{"username": "user"}``).
    """
    secret_id = options.get("secret_id")
    if not isinstance(secret_id, str) or not secret_id:
        raise ImproperlyConfigured(
            "secretcache.django: set DATABASES[...]['OPTIONS']['secret_id'] to the database secret's name or ARN"
        )
    cache = _imported(options.get("cache"), "cache")
    if cache is not None and not isinstance(cache, SecretCache):
        raise ImproperlyConfigured(
            f"DATABASES OPTIONS['cache'] must be a SecretCache or its dotted path, got {type(cache).__name__}"
        )
    policy = _imported(options.get("policy"), "policy")
    if isinstance(policy, Mapping):
        try:
            policy = AuthPolicy(**policy)
        except (TypeError, ValueError) as e:
            raise ImproperlyConfigured(f"DATABASES OPTIONS['policy']: {e}") from e
    if policy is not None and not isinstance(policy, AuthPolicy):
        raise ImproperlyConfigured(
            f"DATABASES OPTIONS['policy'] must be an AuthPolicy, a dict or a dotted path, got {type(policy).__name__}"
        )
    try:
        keys = check_keys(options.get("keys"))
    except (TypeError, ValueError) as e:
        raise ImproperlyConfigured(f"DATABASES OPTIONS['keys']: {e}") from e
    login = Login(secret_id, make_params_of(secret_id, names, keys), cache=cache, policy=policy)
    return login, keys or None


class RotatingLoginMixin:
    """Put before Django's ``DatabaseWrapper``: credentials from a secret, every login through the policy."""

    secretcache_names: ClassVar[DriverNames]
    """The driver keyword argument Django uses for each RDS field."""
    secretcache_name_required: ClassVar[bool] = False
    """Whether Django's backend refuses an empty NAME (PostgreSQL): then the secret's dbname stands in."""

    settings_dict: dict[str, Any]
    _secretcache: tuple[Login, Mapping[str, str] | None] | None = None

    def _rotating_login(self) -> tuple[Login, Mapping[str, str] | None]:
        """Built on first connect from this wrapper's OPTIONS (one wrapper per thread and alias)."""
        if self._secretcache is None:
            self._secretcache = login_from_options(self.settings_dict["OPTIONS"], self.secretcache_names)
        return self._secretcache

    def get_connection_params(self) -> dict[str, Any]:
        """Django's parameters from the settings, without our OPTIONS and without what the secret gives."""
        self._rotating_login()  # a misconfiguration shows at the first connect, as Django's own do
        real = self.settings_dict
        options = real["OPTIONS"]
        shown = {**real, "OPTIONS": {k: v for k, v in options.items() if k not in OPTION_KEYS}}
        name_from_secret = (self.secretcache_name_required and real["NAME"] == ""
                            and not options.get("service"))
        if name_from_secret:
            shown["NAME"] = _NAME_FROM_SECRET
        # Django's method reads self.settings_dict; the wrapper belongs to this thread, so a swap for
        # the call is seen by nobody else, and the settings (shared with copies) stay untouched.
        self.settings_dict = shown
        try:
            params: dict[str, Any] = cast(Any, super()).get_connection_params()
        finally:
            self.settings_dict = real
        if name_from_secret and params.get(self.secretcache_names.dbname) == _NAME_FROM_SECRET:
            del params[self.secretcache_names.dbname]
        return params

    def secretcache_dbname(self) -> str | None:
        """The database name the secret gives (``dbname``, or the ``keys`` rename), None when it has none."""
        login, keys = self._rotating_login()
        cache = _imported(self.settings_dict["OPTIONS"].get("cache"), "cache")
        value = blocking_cache(cache if isinstance(cache, BaseSecretCache) else None).get_secret_value(login.secret_id)
        params = make_params_of(login.secret_id, self.secretcache_names, keys)(value)
        name = params.get(self.secretcache_names.dbname)
        return name if isinstance(name, str) and name else None

    def get_new_connection(self, conn_params: dict[str, Any]) -> Any:
        """Django's own ``get_new_connection``, run by the rotation policy (at most three logins)."""
        login, keys = self._rotating_login()
        parent = cast(Any, super()).get_new_connection
        names = self.secretcache_names
        return drive(
            login.flow(),
            lambda c: parent(merged(c.params, conn_params, secret_id=login.secret_id, names=names, keys=keys)),
        )


def test_name_creation(base: type[Any]) -> type[Any]:
    """Django's ``DatabaseCreation`` class ``base``, naming the test database after the secret's database.

    Django names it ``test_`` + ``NAME``; with NAME left to the secret that would be ``test_`` for every
    project on a server. ``TEST["NAME"]`` and a set ``NAME`` keep Django's rule; otherwise the name is
    ``test_`` + the secret's ``dbname``, and a secret without one is ImproperlyConfigured, saying to set
    ``TEST["NAME"]``.
    """
    from django.db.backends.base.creation import TEST_DATABASE_PREFIX  # type: ignore[import-untyped]

    def _get_test_db_name(self: Any) -> str:
        settings = self.connection.settings_dict
        if settings.get("TEST", {}).get("NAME") or settings.get("NAME"):
            return cast(str, base._get_test_db_name(self))  # noqa: SLF001  (Django's hook for backends)
        dbname = self.connection.secretcache_dbname()
        if dbname is None:
            secret_id = settings["OPTIONS"].get("secret_id")
            raise ImproperlyConfigured(
                f"secretcache.django: the secret {secret_id!r} gives no database name and NAME is empty: set "
                "DATABASES[...]['TEST']['NAME'] for the test database"
            )
        return f"{TEST_DATABASE_PREFIX}{dbname}"

    return type("DatabaseCreation", (base,), {"_get_test_db_name": _get_test_db_name, "__module__": __name__})
