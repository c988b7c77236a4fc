"""What a cache reports about itself: counters (:class:`CacheStats`), events (:class:`CacheEvent`) and
the calls it makes to its backend (:class:`BackendCall`, seen by a :data:`BackendObserver`).

All carry ids, counts and errors, never a value. Loaded with ``import secretcache``: no heavy imports.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Literal, NamedTuple

if TYPE_CHECKING:
    from .backends.base import SecretsBackend
    from .errors import SecretCacheError

__all__ = [
    "BackendCall", "BackendMethod", "BackendObserver", "CacheEvent", "CacheStats", "EventHook", "EventKind",
    "aws_operation", "outcome_of",
]

EventKind = Literal["hit", "miss", "refresh", "stale", "error"]


class CacheStats(NamedTuple):
    """A snapshot of a cache's counters since it was created."""

    hits: int = 0
    misses: int = 0
    refreshes: int = 0
    backend_calls: int = 0
    errors: int = 0
    stale_served: int = 0


class CacheEvent(NamedTuple):
    """What the event hook receives. Carries ids and errors, never a value.

    ``kind``: ``hit`` (served from cache), ``miss`` (the caller waited for a fetch), ``refresh``
    (a fetch replaced a cached value), ``stale`` (a cached value served because the backend failed),
    ``error`` (a backend call failed). ``age`` is seconds since the served value was fetched.
    """

    kind: EventKind
    secret_id: str
    version_stage: str | None = None
    version_id: str | None = None
    error: SecretCacheError | None = None
    age: float | None = None


EventHook = Callable[[CacheEvent], None]
"""Called synchronously on the reading (or refreshing) thread; exceptions it raises are logged, not raised."""


BackendMethod = Literal["get_secret_value", "refresh_secret_value", "batch_get_secret_values", "get_parameters_by_path"]


class BackendCall(NamedTuple):
    """One call a cache is about to make to its backend, as a :data:`BackendObserver` sees it.

    ``method`` is the :class:`~secretcache.backends.SecretsBackend` method called; ``secret_ids`` the ids
    it names (one, or a batch's); ``forced`` marks a read that must bypass caches (``refresh()``, the
    rotation policy's fetches after a refused login). Ids and stages only, never a value.
    """

    method: BackendMethod
    secret_ids: tuple[str, ...]
    version_id: str | None
    version_stage: str | None
    forced: bool
    backend: SecretsBackend


BackendObserver = Callable[[BackendCall], "Callable[[SecretCacheError | None], object] | None"]
"""Told of every backend call a cache makes (see ``SecretCache.add_backend_observer``): called on the thread
that makes the call, just before it, inside the context (``contextvars``) of the read that asked for it;
it may return a callable, called after the call with the error the call ended in (None: it answered).
Exceptions either raises are logged, never raised: an observer cannot break a read."""


def aws_operation(call: BackendCall) -> tuple[str, str]:
    """(service, operation) of the AWS API a backend call stands for, as botocore names them:
    ``("Secrets Manager", "GetSecretValue")``, ``("Secrets Manager", "BatchGetSecretValue")``, or
    ``("SSM", "GetParameter")`` for a Parameter Store reference (``ssm:NAME`` or a parameter ARN),
    ``("SSM", "GetParameters")`` for a batch of them and ``("SSM", "GetParametersByPath")`` for a path."""
    from .parameters import is_parameter

    if call.method == "get_parameters_by_path":
        return "SSM", "GetParametersByPath"
    if call.method == "batch_get_secret_values":
        if call.secret_ids and all(is_parameter(i) for i in call.secret_ids):
            return "SSM", "GetParameters"
        return "Secrets Manager", "BatchGetSecretValue"
    if call.secret_ids and is_parameter(call.secret_ids[0]):
        return "SSM", "GetParameter"
    return "Secrets Manager", "GetSecretValue"


def outcome_of(error: SecretCacheError | None) -> str:
    """A bounded label for how a backend call ended: ``ok``, ``not_found``, ``access_denied``,
    ``decryption``, ``deleted``, ``throttled``, ``unavailable``, ``invalid`` or ``error``."""
    if error is None:
        return "ok"
    from .errors import (
        InvalidReferenceError,
        SecretAccessDeniedError,
        SecretDecryptionError,
        SecretDeletedError,
        SecretNotFoundError,
        SecretThrottledError,
        SecretUnavailableError,
    )

    for kind, label in (
        (SecretThrottledError, "throttled"), (SecretUnavailableError, "unavailable"),
        (SecretNotFoundError, "not_found"), (SecretAccessDeniedError, "access_denied"),
        (SecretDecryptionError, "decryption"), (SecretDeletedError, "deleted"), (InvalidReferenceError, "invalid"),
    ):
        if isinstance(error, kind):
            return label
    return "error"
