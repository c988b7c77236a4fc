"""The SecretsBackend protocol: the transport under the cache."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from ..errors import SecretCacheError
from ..model import SecretValue

__all__ = ["BATCH_LIMIT", "ForcedReads", "SecretsBackend"]

BATCH_LIMIT = 20
"""BatchGetSecretValue takes at most 20 ids per call."""


@runtime_checkable
class SecretsBackend(Protocol):
    """Where secret values come from: AWS, the local agent, or an in-process store.

    Implementations raise the typed errors of :mod:`secretcache.errors` (transient failures as
    :class:`~secretcache.errors.SecretUnavailableError`), chained to their own exception, and are
    safe to call from several threads at once.
    """

    def get_secret_value(
        self, secret_id: str, *, version_id: str | None = None, version_stage: str | None = None
    ) -> SecretValue:
        """One GetSecretValue call."""
        ...

    def batch_get_secret_values(
        self, secret_ids: Sequence[str]
    ) -> tuple[list[SecretValue], dict[str, SecretCacheError]]:
        """The AWSCURRENT values of ``secret_ids`` (any number; chunked by the backend) and the failures by id.

        A failure of the whole call (e.g. BatchGetSecretValue denied) raises instead.
        """
        ...


@runtime_checkable
class ForcedReads(Protocol):
    """An optional capability: a backend that keeps a cache of its own hears when a read is forced.

    The cache calls ``refresh_secret_value`` instead of ``get_secret_value`` for the fetches forced
    reads wait for (:meth:`SecretCache.refresh`, and the rotation policy's forced fetches of AWSCURRENT
    and AWSPENDING after a refused login), so an answer the backend cached before a rotation is not
    returned again. :class:`~secretcache.backends.AgentBackend` sends ``refreshNow=true`` for them.

    Backends without the method keep working unchanged: their forced reads go through
    ``get_secret_value``, as before (right for any backend that does not cache: ``AwsBackend``,
    ``InMemoryBackend``). The cache checks for the method, so a third-party backend opts in by
    defining it, with no base class to inherit.
    """

    def refresh_secret_value(
        self, secret_id: str, *, version_id: str | None = None, version_stage: str | None = None
    ) -> SecretValue:
        """One read that bypasses any cache in or behind the backend; otherwise as ``get_secret_value``."""
        ...
