"""SecretCache: the thread-safe, in-process cache of GetSecretValue results, and the module-level default
cache beside it (the shortcuts ``secretcache.get(...)`` read through it).

The default cache is the one piece of process-wide state in the package; it lives here, with the class it
is an instance of, as cachetools keeps its caches and their helpers together. It is built on first use
(with its ``AwsBackend``), so loading this module imports nothing heavy. :func:`blocking_cache` is the
one rule for every ``cache=`` argument of the package: ``None`` is the default cache (looked up at each
call), an :class:`~secretcache.AsyncSecretCache` is its blocking twin (:meth:`SecretCache.blocking`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from types import TracebackType
from typing import Any

from ._face import AnySecretCache, BaseSecretCache, id_list
from ._paths import PathListing, path_request
from ._request import Request
from .backends.base import SecretsBackend
from .errors import InvalidReferenceError, SecretCacheError
from .model import SecretRef, SecretValue
from .refs import is_template, render_template

__all__ = [
    "SecretCache", "blocking_cache", "default_cache", "get", "get_secret_binary", "get_secret_json",
    "get_secret_string", "set_default_cache",
]


class SecretCache(BaseSecretCache):
    """An in-process cache of Secrets Manager values, safe to share between threads.

    Reads within ``ttl`` are a dict lookup (no lock, no copy, no I/O). Past ``ttl``, within
    ``stale_while_revalidate``, readers get the cached value at once while one background
    refresh runs. Fetches are single-flight per key; failures back off per key; transient
    failures serve the cached value within ``stale_if_error``. See :class:`CacheConfig`.

    ``backend`` defaults to :class:`~secretcache.backends.AwsBackend`, created on the first
    fetch; ``client=`` wraps an existing boto3 ``secretsmanager`` client instead. ``timer`` (a
    monotonic clock, as cachetools' ``TTLCache(timer=)``) and ``random`` (draws in [0, 1) for the ttl
    and backoff jitter) let tests and simulations drive time; waits for a fetch always use real time.

    Safe across ``os.fork()``: the child keeps the cached values and gets its own threads, backend
    clients and connections.
    """

    _repr_name = "SecretCache"

    @classmethod
    def blocking(cls, cache: AnySecretCache) -> SecretCache:
        """The blocking face of ``cache``: itself for a SecretCache; for an AsyncSecretCache, a SecretCache
        over the same core (same entries, flights, backend, counters and per-cache state such as the
        rotation policy's), for code that must read from a worker thread. It owns nothing, so dropping it
        never closes the cache; cheap to make, so callers need not keep it."""
        if isinstance(cache, SecretCache):
            return cache
        if not isinstance(cache, BaseSecretCache):
            raise TypeError(f"cache must be a SecretCache or an AsyncSecretCache, got {type(cache).__name__}")
        return SecretCache._sharing(cache)

    @property
    def backend(self) -> SecretsBackend:
        """The backend values come from (built on first access when defaulted)."""
        return self._core.backend

    # -- reads ----------------------------------------------------------------------------------

    def _read(self, request: Request, *, force: bool = False) -> SecretValue:
        """The slow path: the policy decides; a fetch is waited for at most ``fetch_timeout``."""
        core = self._core
        started = core.begin(request, force=force)
        if isinstance(started, SecretValue):
            return started
        return core.conclude(request, started, started.flight.wait(), allow_stale=not force)

    def get_secret_value(
        self, secret_id: str, *, version_id: str | None = None, version_stage: str | None = None
    ) -> SecretValue:
        """The cached :class:`SecretValue` for ``secret_id`` at a stage (default AWSCURRENT) or VersionId."""
        if version_id is None and version_stage is None and (value := self._fresh(secret_id)) is not None:
            return value
        return self._read(self._core.request(secret_id, version_id, version_stage))

    def get_secret_string(
        self, secret_id: str, *, version_id: str | None = None, version_stage: str | None = None
    ) -> str:
        """The SecretString; :class:`SecretFormatError` for a binary secret."""
        if version_id is None and version_stage is None:
            # `_fresh`, inlined: the most frequent read of all, and a call costs more than the lookup.
            try:
                entry = self._fast.get(secret_id)
            except TypeError:
                entry = None
            if entry is not None and (now := self._timer()) < entry.fresh_until:
                text = entry.value.secret_string
                if text is not None:
                    entry.last_read = now
                    self._hits += 1
                    return text  # type: ignore[no-any-return]
        return self._read(self._core.request(secret_id, version_id, version_stage)).text()

    def get_secret_binary(
        self, secret_id: str, *, version_id: str | None = None, version_stage: str | None = None
    ) -> bytes:
        """The SecretBinary; :class:`SecretFormatError` for a string secret."""
        return self.get_secret_value(secret_id, version_id=version_id, version_stage=version_stage).binary()

    def get_secret_json(
        self, secret_id: str, *, version_id: str | None = None, version_stage: str | None = None
    ) -> dict[str, Any]:
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
        if ref.version_id is None and ref.version_stage is None and (value := self._fresh(ref.secret_id)) is not None:
            return value.text(ref.json_key)
        return self.resolve(ref)

    def resolve(self, ref: SecretRef) -> str:
        """The string a parsed reference points at."""
        value = self.get_secret_value(ref.secret_id, version_id=ref.version_id, version_stage=ref.version_stage)
        return value.text(ref.json_key)

    def get_path(self, path: str, *, recursive: bool = True) -> dict[str, SecretValue]:
        """Every parameter under a Parameter Store hierarchy, keyed ``"ssm:" + name``: ``get_path("ssm:/app/prod/")``.

        One GetParametersByPath walk (all pages, decrypted) per ttl, shared by concurrent callers and
        cached like any read (stale-while-revalidate, stale-if-error, backoff); the parameters it finds
        are cached too, so reading one of them afterwards is a hit. ``recursive=False`` reads one level.
        """
        listing = self._read(path_request(path, recursive))
        assert isinstance(listing, PathListing)
        return listing.by_id()

    # -- control --------------------------------------------------------------------------------

    def prefetch(self, secret_ids: Iterable[str]) -> dict[str, SecretCacheError]:
        """Warm the cache with BatchGetSecretValue (20 per call); return the failures by id."""
        core = self._core
        waits = core.begin_prefetch(id_list(secret_ids))
        failures = {i: core.prefetch_failure(i, flight, flight.wait()) for i, flight in waits.items()}
        return {i: error for i, error in failures.items() if error is not None}

    def get_many(self, secret_ids: Iterable[str], *, raise_on_error: bool = True) -> dict[str, SecretValue]:
        """The values of many secrets at the default stage, by id (in the order given), through the cache.

        Cached values are served as :meth:`get_secret_value` would; the rest are fetched together
        (BatchGetSecretValue, 20 per call, sharing any fetch already in flight). With
        ``raise_on_error=False`` an id that failed is left out; otherwise the first failure (in the
        order given) is raised, as the :class:`SecretCacheError` naming that id.
        """
        core = self._core
        plan = core.plan_batch(id_list(secret_ids))
        outcomes = {i: core.many_outcome(i, flight, flight.wait()) for i, flight in plan.waits.items()}
        values: dict[str, SecretValue] = {}
        for secret_id in plan.ids:
            outcome = outcomes.get(secret_id)
            if outcome is None:
                try:
                    outcome = self.get_secret_value(secret_id)
                except SecretCacheError as e:
                    outcome = e
            if isinstance(outcome, SecretValue):
                values[secret_id] = outcome
            elif raise_on_error:
                raise outcome
        return values

    def refresh(self, secret_id: str, *, version_stage: str | None = None) -> SecretValue:
        """Fetch now, ignoring ttl and backoff; never sleeps.

        The value comes from a fetch that started after this call (one already running is not reused;
        the new one starts when it ends, so answers stay in order). Calls made while one fetch runs
        share the next one.
        """
        return self._read(self._core.request(secret_id, None, version_stage), force=True)

    def close(self) -> None:
        """Stop the background threads (idempotent). Reads still work: no more background refreshes,
        and a read that must fetch gets a thread of its own, so its wait stays bounded."""
        self._core.close()

    def __enter__(self) -> SecretCache:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


# -- the module-level default cache ----------------------------------------------------------------------

_default: SecretCache | None = None
_default_lock = threading.Lock()


def default_cache() -> SecretCache:
    """The module-level cache behind the shortcuts, created on first use.

    Its backend and ttl come from ``SECRETCACHE_BACKEND``, ``SECRETCACHE_AGENT_URL`` and ``SECRETCACHE_TTL``
    (default: ``AwsBackend``, the default config); a bad value raises here, naming the variable.
    """
    global _default
    cache = _default
    if cache is None:
        from ._envconfig import default_cache_arguments

        with _default_lock:
            if _default is None:
                backend, config = default_cache_arguments()
                _default = SecretCache(backend, config=config)
            cache = _default
    return cache


def set_default_cache(cache: SecretCache | None) -> SecretCache | None:
    """Replace the module-level cache (``None`` resets it to be built lazily again); return the previous one."""
    global _default
    if cache is not None and not isinstance(cache, SecretCache):
        raise TypeError(f"expected a SecretCache, got {type(cache).__name__}")
    with _default_lock:
        previous, _default = _default, cache
    return previous


def get_secret_string(
    secret_id: str, *, version_id: str | None = None, version_stage: str | None = None
) -> str:
    """:meth:`SecretCache.get_secret_string` on the default cache."""
    return default_cache().get_secret_string(secret_id, version_id=version_id, version_stage=version_stage)


def get_secret_binary(
    secret_id: str, *, version_id: str | None = None, version_stage: str | None = None
) -> bytes:
    """:meth:`SecretCache.get_secret_binary` on the default cache."""
    return default_cache().get_secret_binary(secret_id, version_id=version_id, version_stage=version_stage)


def get_secret_json(
    secret_id: str, *, version_id: str | None = None, version_stage: str | None = None
) -> dict[str, Any]:
    """:meth:`SecretCache.get_secret_json` on the default cache."""
    return default_cache().get_secret_json(secret_id, version_id=version_id, version_stage=version_stage)


def get(reference: str) -> str:
    """:meth:`SecretCache.get` on the default cache: any reference form, including ``id#json-key``."""
    return default_cache().get(reference)


def blocking_cache(cache: AnySecretCache | None) -> SecretCache:
    """Which cache a ``cache=`` argument means, the one rule of the package: ``None`` is the module-level
    default cache, looked up now (so :func:`set_default_cache` applies to the next call); a SecretCache is
    itself; an AsyncSecretCache is its blocking twin (:meth:`SecretCache.blocking`)."""
    return default_cache() if cache is None else SecretCache.blocking(cache)
