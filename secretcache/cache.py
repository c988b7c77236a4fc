"""SecretCache: the thread-safe, in-process cache of GetSecretValue results."""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable, Mapping
from time import monotonic
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ._core import CacheStats, Core, EventHook, Request
from .backends.base import SecretsBackend
from .errors import InvalidReferenceError, SecretCacheError, SecretFormatError
from .model import SecretRef, SecretValue, render_template

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

    from .config import CacheConfig

__all__ = ["SecretCache", "backend_factory", "string_of"]

_EMPTY: dict[Any, Any] = {}


def backend_factory(
    backend: SecretsBackend | None, client: SecretsManagerClient | None
) -> SecretsBackend | Callable[[], SecretsBackend]:
    """The backend as given, or a factory building ``AwsBackend`` on first fetch (boto3 loads then)."""
    if backend is not None:
        if client is not None:
            raise TypeError("pass either backend= or client=, not both")
        if not isinstance(backend, SecretsBackend):
            raise TypeError(f"backend must implement SecretsBackend, got {type(backend).__name__}")
        return backend

    def build() -> SecretsBackend:
        from .backends.aws import AwsBackend

        backend: SecretsBackend = AwsBackend(client=client)
        return backend

    return build


def string_of(value: SecretValue) -> str:
    if value.secret_string is None:
        raise SecretFormatError(
            f"secret {value.name!r} holds SecretBinary; use get_secret_binary", secret_id=value.name
        )
    return value.secret_string


def binary_of(value: SecretValue) -> bytes:
    if value.secret_binary is None:
        raise SecretFormatError(
            f"secret {value.name!r} holds SecretString; use get_secret_string", secret_id=value.name
        )
    return value.secret_binary


def is_template(reference: str) -> bool:
    """A value with ``{{resolve:...}}`` inside a longer string, rendered piece by piece."""
    return "{{resolve:" in reference and not (
        reference.startswith("{{") and reference.endswith("}}") and reference.count("{{") == 1
    )


class SecretCache:
    """An in-process cache of Secrets Manager values, safe to share between threads.

    Reads within ``ttl`` are a dict lookup (no lock, no copy, no I/O). Past ``ttl``, within
    ``stale_while_revalidate``, readers get the cached value at once while one background
    refresh runs. Fetches are single-flight per key; failures back off per key; transient
    failures serve the cached value within ``stale_if_error``. See :class:`CacheConfig`.

    ``backend`` defaults to :class:`~secretcache.backends.AwsBackend`, created on the first
    fetch; ``client=`` wraps an existing boto3 ``secretsmanager`` client instead.
    """

    def __init__(
        self,
        backend: SecretsBackend | None = None,
        *,
        config: CacheConfig | None = None,
        client: SecretsManagerClient | None = None,
        on_event: EventHook | None = None,
    ) -> None:
        from .config import CacheConfig  # dataclasses loads with the first cache, not with the package

        if config is not None and not isinstance(config, CacheConfig):
            raise TypeError(f"config must be a CacheConfig, got {type(config).__name__}")
        self.config = config or CacheConfig()
        self._core = core = Core(backend_factory(backend, client), self.config, on_event)
        # With an event hook every read goes through the core (which emits "hit"); without one, the
        # faces read the live entries directly. An always-empty dict keeps that choice off the hit path.
        self._fast: dict[Any, Any] = _EMPTY if on_event is not None else core.entries
        self._hits = 0
        self._finalizer = weakref.finalize(self, core.close)

    def __repr__(self) -> str:
        return f"<SecretCache entries={len(self._core.entries)} config={self.config!r}>"

    @property
    def backend(self) -> SecretsBackend:
        """The backend values come from (built on first access when defaulted)."""
        return self._core.backend

    # -- reads ----------------------------------------------------------------------------------

    def get_secret_value(
        self, secret_id: str, *, version_id: str | None = None, version_stage: str | None = None
    ) -> SecretValue:
        """The cached :class:`SecretValue` for ``secret_id`` at a stage (default AWSCURRENT) or VersionId."""
        if version_id is None and version_stage is None:
            try:
                entry = self._fast.get(secret_id)
            except TypeError:
                entry = None
            if entry is not None and (now := monotonic()) < entry.fresh_until:
                entry.last_read = now
                self._hits += 1
                return entry.value  # type: ignore[no-any-return]
        core = self._core
        return core.get_blocking(core.request(secret_id, version_id, version_stage))

    def get_secret_string(
        self, secret_id: str, *, version_id: str | None = None, version_stage: str | None = None
    ) -> str:
        """The SecretString; :class:`SecretFormatError` for a binary secret."""
        if version_id is None and version_stage is None:
            try:
                entry = self._fast.get(secret_id)
            except TypeError:
                entry = None
            if entry is not None and (now := monotonic()) < entry.fresh_until:
                text = entry.value.secret_string
                if text is not None:
                    entry.last_read = now
                    self._hits += 1
                    return text  # type: ignore[no-any-return]
        return string_of(self.get_secret_value(secret_id, version_id=version_id, version_stage=version_stage))

    def get_secret_binary(
        self, secret_id: str, *, version_id: str | None = None, version_stage: str | None = None
    ) -> bytes:
        """The SecretBinary; :class:`SecretFormatError` for a string secret."""
        return binary_of(self.get_secret_value(secret_id, version_id=version_id, version_stage=version_stage))

    def get_secret_json(
        self, secret_id: str, *, version_id: str | None = None, version_stage: str | None = None
    ) -> Mapping[str, Any]:
        """The value parsed as a JSON object: your own copy, parsed once per version."""
        return self.get_secret_value(secret_id, version_id=version_id, version_stage=version_stage).json()

    def get(self, reference: str) -> str:
        """Resolve any reference form (``id``, ``id#key``, ECS ARN, ``{{resolve:...}}``, also embedded)."""
        try:
            ref = SecretRef.parse(reference)
        except InvalidReferenceError:
            if isinstance(reference, str) and is_template(reference):
                return render_template(reference, self.resolve)
            raise
        if ref.version_id is None and ref.version_stage is None:
            entry = self._fast.get(ref.secret_id)
            if entry is not None and (now := monotonic()) < entry.fresh_until:
                value: SecretValue = entry.value
                if ref.json_key is None:
                    if value.secret_string is not None:
                        entry.last_read = now
                        self._hits += 1
                        return value.secret_string
                else:
                    entry.last_read = now
                    self._hits += 1
                    return value.field(ref.json_key)
        return self.resolve(ref)

    def resolve(self, ref: SecretRef) -> str:
        """The string a parsed reference points at."""
        value = self.get_secret_value(ref.secret_id, version_id=ref.version_id, version_stage=ref.version_stage)
        return string_of(value) if ref.json_key is None else value.field(ref.json_key)

    # -- control --------------------------------------------------------------------------------

    def prefetch(self, secret_ids: Iterable[str]) -> dict[str, SecretCacheError]:
        """Warm the cache with BatchGetSecretValue (20 per call); return the failures by id."""
        if isinstance(secret_ids, str):
            raise TypeError("prefetch takes an iterable of secret ids, not a single str")
        return self._core.prefetch(secret_ids)

    def refresh(self, secret_id: str, *, version_stage: str | None = None) -> SecretValue:
        """Fetch now, ignoring ttl and backoff; never sleeps. Concurrent calls share one fetch."""
        core = self._core
        request: Request = core.request(secret_id, None, version_stage)
        return core.get_blocking(request, force=True)

    def peek(
        self, secret_id: str, *, version_id: str | None = None, version_stage: str | None = None
    ) -> SecretValue | None:
        """The cached value if it is within ttl, else None. Never fetches, never blocks.

        Lets callers (decorators, async code) decide whether a read would touch the backend.
        """
        core = self._core
        return core.peek(core.request(secret_id, version_id, version_stage))

    def invalidate(self, secret_id: str | None = None) -> None:
        """Drop one secret (every stage and version of it), or everything."""
        self._core.invalidate(secret_id)

    def mark_stale(self) -> None:
        """Make every cached stage due for refresh on its next read (e.g. after a SnapStart restore)."""
        self._core.mark_stale()

    @property
    def stats(self) -> CacheStats:
        """Counters since creation: hits, misses, refreshes, backend_calls, errors, stale_served."""
        return self._core.stats(self._hits)

    def close(self) -> None:
        """Stop background refresh work. Reads still work (refreshing inline)."""
        self._core.close()

    def __enter__(self) -> SecretCache:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
