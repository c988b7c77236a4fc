"""ChainBackend: several backends asked in order; a secret one does not have is asked of the next.

The shape it exists for: mounted files first, then AWS (``ChainBackend(FileBackend(...), AwsBackend())``).
The files answer AWSCURRENT with no API call; a read the files cannot answer (AWSPENDING during a
single-user rotation, a version id, a secret that is not mounted) goes to Secrets Manager.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import SecretCacheError, SecretNotFoundError
from ..model import SecretValue
from .base import ForcedReads, SecretsBackend

__all__ = ["ChainBackend"]


class ChainBackend:
    """The first backend that has the secret answers.

    Only :class:`~secretcache.errors.SecretNotFoundError` (no such secret, stage or version there)
    moves on to the next backend; any other error (denied, throttled, unreachable, malformed) is
    raised as it is, since asking elsewhere would hide a real failure behind another source's value.
    When every backend says not found, the last one's error is raised. Forced reads
    (:meth:`refresh_secret_value`) are forced on each backend that can hear them.
    """

    def __init__(self, *backends: SecretsBackend) -> None:
        if not backends:
            raise ValueError("ChainBackend needs at least one backend")
        for backend in backends:
            if not isinstance(backend, SecretsBackend):
                raise TypeError(f"ChainBackend takes SecretsBackend objects, got {type(backend).__name__}")
        self.backends: tuple[SecretsBackend, ...] = backends

    def __repr__(self) -> str:
        return f"ChainBackend({', '.join(repr(backend) for backend in self.backends)})"

    def get_secret_value(
        self, secret_id: str, *, version_id: str | None = None, version_stage: str | None = None
    ) -> SecretValue:
        """The first backend's answer that is not a not-found."""
        return self._first(secret_id, version_id, version_stage, forced=False)

    def refresh_secret_value(
        self, secret_id: str, *, version_id: str | None = None, version_stage: str | None = None
    ) -> SecretValue:
        """As :meth:`get_secret_value`, forcing each backend's read (see :class:`ForcedReads`)."""
        return self._first(secret_id, version_id, version_stage, forced=True)

    def _first(self, secret_id: str, version_id: str | None, version_stage: str | None, *,
               forced: bool) -> SecretValue:
        missing: SecretNotFoundError | None = None
        for backend in self.backends:
            read = backend.refresh_secret_value if forced and isinstance(backend, ForcedReads) \
                else backend.get_secret_value
            try:
                return read(secret_id, version_id=version_id, version_stage=version_stage)
            except SecretNotFoundError as e:
                missing = e
        assert missing is not None  # at least one backend, and each one raised
        raise missing

    def batch_get_secret_values(
        self, secret_ids: Sequence[str]
    ) -> tuple[list[SecretValue], dict[str, SecretCacheError]]:
        """Each backend's batch in turn, for the ids the ones before it did not have.

        A failure of a whole call (a batch call denied) raises, as a single backend's would.
        """
        values: list[SecretValue] = []
        errors: dict[str, SecretCacheError] = {}
        pending = list(dict.fromkeys(secret_ids))
        for backend in self.backends:
            if not pending:
                break
            found, failed = backend.batch_get_secret_values(pending)
            values.extend(found)
            for secret_id in pending:  # asked again here: this backend's answer replaces the not-found
                errors.pop(secret_id, None)
            errors.update(failed)
            pending = [secret_id for secret_id in pending if isinstance(failed.get(secret_id), SecretNotFoundError)]
        return values, errors
