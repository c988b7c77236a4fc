"""The Redis secret: JSON with ``password``, and optionally ``username``, ``host``, ``port``, ``ssl`` and ``db``
(``keys=`` renames them), read into :class:`RedisFields` for both of :mod:`secretcache.redis`' contracts.

Errors name the secret, the field and its JSON key, never a value; parsing returns its problem rather than
raising it, so no traceback frame holds the parsed secret.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from .errors import SecretFormatError
from .model import SecretValue
from .refs import shown_key

__all__ = ["FIELDS", "RedisFields", "check_keys", "fields_of"]

FIELDS = ("username", "password", "host", "port", "ssl", "db")


class RedisFields(NamedTuple):
    """The fields of a Redis secret, checked (a repr without the password)."""


    username: str | None
    password: str
    host: str | None
    port: int | None
    ssl: bool | None
    db: int | None

    def __repr__(self) -> str:
        return f"<redis secret fields user={self.username!r} host={self.host!r}>"

    def auth(self, username: str | None) -> tuple[str] | tuple[str, str]:
        """redis-py's credentials: ``(username, password)``, or ``(password,)`` for the default user."""
        user = username or self.username
        return (user, self.password) if user else (self.password,)


def check_keys(keys: Mapping[str, str] | None) -> tuple[tuple[str, str], ...]:
    if keys is None:
        return ()
    if not isinstance(keys, Mapping):
        raise TypeError(f"keys must be a mapping of field to JSON key, got {type(keys).__name__}")
    unknown = sorted(set(keys) - set(FIELDS))
    if unknown:
        raise ValueError(f"keys: unknown field(s) {unknown}; expected some of {list(FIELDS)}")
    if not all(isinstance(k, str) and k for k in keys.values()):
        raise ValueError("keys: every JSON key must be a non-empty str")
    return tuple(sorted(keys.items()))


def _number(raw: object) -> int | None:
    if isinstance(raw, bool) or not isinstance(raw, (int, str)) or not str(raw).strip().isdigit():
        return None
    return int(raw)


def _flag(raw: object) -> bool | None:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.strip().lower() in ("true", "false"):
        return raw.strip().lower() == "true"
    return None


def _parse(value: SecretValue, secret_id: str, keys: tuple[tuple[str, str], ...]) -> tuple[str, RedisFields | None]:
    """("", fields) or (problem, None): returned, not raised, so no traceback frame holds the secret."""
    data, names = value.json(), dict(keys)
    found: dict[str, Any] = {}
    for field in FIELDS:
        key = names.get(field, field)
        raw = data.get(key)
        if raw is None or raw == "":
            found[field] = None
            continue
        parsed = _number(raw) if field in ("port", "db") else _flag(raw) if field == "ssl" else \
            raw if isinstance(raw, str) else None
        if parsed is None:
            kind = {"port": "a number", "db": "a number", "ssl": "true or false"}.get(field, "a string")
            return f"redis secret {secret_id!r}: field {field!r} (JSON key {shown_key(key)}) is not {kind}", None
        found[field] = parsed
    if found["password"] is None:
        key = names.get("password", "password")
        return f"redis secret {secret_id!r}: field 'password' (JSON key {shown_key(key)}) is missing or empty", None
    return "", RedisFields(**found)


def fields_of(value: SecretValue, secret_id: str, keys: tuple[tuple[str, str], ...]) -> RedisFields:
    """The secret's fields, checked: :class:`SecretFormatError` names the secret and the field, never a value."""
    problem, fields = _parse(value, secret_id, keys)
    if fields is None:
        raise SecretFormatError(problem, secret_id=secret_id)
    return fields
