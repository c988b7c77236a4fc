"""The SecretsBackend protocol: the transport under the cache."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from ..errors import SecretCacheError
from ..model import SecretValue

__all__ = ["BATCH_LIMIT", "SecretsBackend"]

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
