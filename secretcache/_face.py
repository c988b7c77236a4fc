"""What SecretCache and AsyncSecretCache share: everything that never waits.

Both faces run one :class:`~secretcache._core.Core`; they differ only in how a caller waits for a
fetch (blocking on a ``Flight``, or awaiting it). Construction, the control calls that never fetch
and the value helpers are written here once.

Loaded with ``import secretcache``, so it imports nothing heavy (no asyncio, logging or dataclasses).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn, TypeVar

from ._core import Core
from .backends.base import SecretsBackend
from .errors import SecretFormatError
from .model import SecretValue

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

    from .cache import SecretCache
    from .config import CacheConfig
    from .stats import BackendObserver, CacheStats, EventHook

_EMPTY: dict[Any, Any] = {}
_F = TypeVar("_F", bound="_Face")


def backend_factory(
    backend: SecretsBackend | None = None,
    client: SecretsManagerClient | None = None,
    *,
    region_name: str | None = None,
    endpoint_url: str | None = None,
    command_line: bool = False,
) -> SecretsBackend | Callable[[], SecretsBackend]:
    """The backend as given, or a factory building ``AwsBackend`` on first fetch (boto3 loads then).

    ``region_name`` and ``endpoint_url`` go to that ``AwsBackend``; ``command_line`` makes its
    configuration errors name the ``secretcache`` command's options (``--region``) instead of the
    library's keywords.
    """
    if backend is not None:
        if client is not None:
            raise TypeError("pass either backend= or client=, not both")
        if not isinstance(backend, SecretsBackend):
            raise TypeError(f"backend must implement SecretsBackend, got {type(backend).__name__}")
        return backend

    def build() -> SecretsBackend:
        from .backends.aws import AwsBackend, CommandLineAwsBackend

        kind = CommandLineAwsBackend if command_line else AwsBackend
        backend: SecretsBackend = kind(client=client, region_name=region_name, endpoint_url=endpoint_url)
        return backend

    return build


# Keywords of AwsBackend that people pass to the cache: the TypeError says where they belong.
_BACKEND_KEYWORDS = ("session", "region_name", "endpoint_url", "failover_regions")


def unexpected_keywords(face: str, unknown: Iterable[str]) -> TypeError:
    """The TypeError for ``SecretCache(session=...)`` and the like: it names the public class and where
    the keyword belongs (``AwsBackend(...)``, ``CacheConfig(...)``), not ``_Face.__init__``."""
    from .config import CacheConfig

    names = list(unknown)
    shown = ", ".join(repr(name) for name in names)
    message = f"{face}() got an unexpected keyword argument{'s' if len(names) > 1 else ''} {shown}"
    to_backend = [name for name in names if name in _BACKEND_KEYWORDS]
    to_config = [name for name in names if name in CacheConfig.__dataclass_fields__]
    hints = []
    if to_backend:
        keywords = ", ".join(f"{name}=..." for name in to_backend)
        hints.append(f"use AwsBackend({keywords}) and pass it: {face}(AwsBackend({keywords}))")
    if to_config:
        keywords = ", ".join(f"{name}=..." for name in to_config)
        hints.append(f"use CacheConfig({keywords}) and pass it: {face}(config=CacheConfig({keywords}))")
    if not hints:
        hints.append(f"{face} takes backend, config=, client=, on_event=, timer= and random=")
    return TypeError(f"{message}; {'; '.join(hints)}")


def binary_of(value: SecretValue) -> bytes:
    if value.secret_binary is None:
        raise SecretFormatError(
            f"secret {value.name!r} holds SecretString; use get_secret_string", secret_id=value.name
        )
    return value.secret_binary


def id_list(secret_ids: Iterable[str]) -> list[str]:
    """The ids to prefetch; a lone str is refused, since iterating it would prefetch its characters."""
    if isinstance(secret_ids, str):
        raise TypeError("prefetch takes an iterable of secret ids, not a single str")
    return list(secret_ids)


class _Face:
    """The state and non-waiting calls of a cache face; subclasses add the reads and their waiting."""

    _repr_name: ClassVar[str]  # the public class name, kept in the repr of a user's subclass

    def __init__(
        self,
        backend: SecretsBackend | None = None,
        *,
        config: CacheConfig | None = None,
        client: SecretsManagerClient | None = None,
        on_event: EventHook | None = None,
        timer: Callable[[], float] | None = None,
        random: Callable[[], float] | None = None,
        **unknown: NoReturn,
    ) -> None:
        if unknown:
            raise unexpected_keywords(self._repr_name, unknown)
        self._start(backend_factory(backend, client), config, on_event, timer, random)

    @classmethod
    def _over(
        cls: type[_F], backend: SecretsBackend | Callable[[], SecretsBackend], *, config: CacheConfig | None = None
    ) -> _F:
        """A cache over what :func:`backend_factory` returned, which may be a factory called on the first
        fetch (the CLI's ``AwsBackend`` with its --region and --endpoint-url: boto3 loads only if a secret
        is read). The public constructor takes no factory; this is the package's own way in."""
        face = cls.__new__(cls)
        face._start(backend, config, None, None, None)
        return face

    def _start(
        self,
        backend: SecretsBackend | Callable[[], SecretsBackend],
        config: CacheConfig | None,
        on_event: EventHook | None,
        timer: Callable[[], float] | None,
        random: Callable[[], float] | None,
    ) -> None:
        from .config import CacheConfig  # dataclasses loads with the first cache, not with the package

        if config is not None and not isinstance(config, CacheConfig):
            raise TypeError(f"config must be a CacheConfig, got {type(config).__name__}")
        self.config = config or CacheConfig()
        self._core = core = Core(backend, self.config, on_event, timer=timer, random=random)
        self._timer = core.timer
        # With an event hook every read goes through the core (which emits "hit"); without one, the
        # faces read the live entries directly. An always-empty dict keeps that choice off the hit path.
        self._fast: dict[Any, Any] = _EMPTY if on_event is not None else core.entries
        self._hits = 0  # hits served by the faces' inline paths; the core counts its own
        self._finalizer = weakref.finalize(self, core.close)

    def __repr__(self) -> str:
        return f"<{self._repr_name} entries={len(self._core.entries)} config={self.config!r}>"

    def _fresh(self, secret_id: str) -> SecretValue | None:
        """The hit path: the default stage's value within ttl, or None. A dict read and a clock read."""
        try:
            entry = self._fast.get(secret_id)
        except TypeError:  # unhashable: the slow path names the mistake
            return None
        if entry is not None and (now := self._timer()) < entry.fresh_until:
            entry.last_read = now
            self._hits += 1
            return entry.value  # type: ignore[no-any-return]
        return None

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

    @property
    def size(self) -> int:
        """Values cached now (one per secret and stage or version read; at most ``config.max_size``)."""
        return len(self._core.entries)

    def add_backend_observer(self, observer: BackendObserver) -> Callable[[], None]:
        """Call ``observer(call)`` before every call this cache makes to its backend; returns the function
        that removes it.

        The seam for metrics and traces of the calls a cache makes (:mod:`secretcache.otel`, ``serve
        --metrics``): ``call`` is a :class:`~secretcache.stats.BackendCall` (method, secret ids, stage,
        forced, backend; never a value). The observer runs on the thread making the call, inside the
        ``contextvars`` context of the read that asked for it (so the caller's current trace span is current
        there); what it returns, if callable, is called after the call with the error it ended in, or None.
        Hits never reach it: with no observer a fetch pays one attribute read, and a hit nothing at all.
        An observer that raises is logged, never raised. Shared by every face of one cache.
        """
        return self._core.add_observer(observer)


def sync_face(cache: _Face) -> SecretCache:
    """The blocking face of ``cache``: itself for a SecretCache; for an AsyncSecretCache, a SecretCache over
    the same core (same entries, flights, backend, counters and per-cache state such as the rotation
    policy's), for code that must read from a worker thread. It owns nothing: no finalizer, so dropping it
    never closes the core. Its hits go through the core (no inline path), so the async cache's ``stats``
    count them. Cheap to make: callers need not keep it."""
    from .cache import SecretCache

    if isinstance(cache, SecretCache):
        return cache
    if not isinstance(cache, _Face):
        raise TypeError(f"cache must be a SecretCache or an AsyncSecretCache, got {type(cache).__name__}")
    twin = SecretCache.__new__(SecretCache)
    twin.config = cache.config
    twin._core = cache._core
    twin._timer = cache._core.timer
    twin._fast = _EMPTY
    twin._hits = 0
    return twin
