"""BaseSecretCache: what SecretCache and AsyncSecretCache share, everything that never waits.

Both faces run one :class:`~secretcache._core.Core`; they differ only in how a caller waits for a
fetch (blocking on a ``Flight``, or awaiting it). Construction (one path, :meth:`BaseSecretCache._attach`,
for a new cache and for a face sharing another's core), the control calls that never fetch and the
per-cache state of integrations are written here once. :data:`AnySecretCache` is the type of every
``cache=`` argument that takes either face; this module knows neither subclass.

Loaded with ``import secretcache``, so it imports nothing heavy (no asyncio, logging or dataclasses).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn, TypeAlias, TypeVar

from ._core import CachedRead, Core, ForkAware
from .backends.base import SecretsBackend
from .model import SecretValue

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

    from .config import CacheConfig
    from .stats import CacheStats, EventHook

_EMPTY: dict[Any, Any] = {}
_F = TypeVar("_F", bound="BaseSecretCache")
_S = TypeVar("_S", bound=ForkAware)


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


def id_list(secret_ids: Iterable[str]) -> list[str]:
    """The ids to prefetch; a lone str is refused, since iterating it would prefetch its characters."""
    if isinstance(secret_ids, str):
        raise TypeError("prefetch takes an iterable of secret ids, not a single str")
    return list(secret_ids)


class BaseSecretCache:
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
        self._open(backend_factory(backend, client), config, on_event, timer, random)

    @classmethod
    def with_backend_factory(
        cls: type[_F], factory: SecretsBackend | Callable[[], SecretsBackend], *, config: CacheConfig | None = None
    ) -> _F:
        """A cache whose backend ``factory`` builds on the first fetch, so nothing is imported or connected
        unless a secret is read (the ``secretcache`` command's ``AwsBackend``, built from --region and
        --endpoint-url, loads boto3 only then). The constructor takes a built backend; this takes a recipe."""
        if not (callable(factory) or isinstance(factory, SecretsBackend)):
            raise TypeError(f"factory must be a callable returning a SecretsBackend, got {type(factory).__name__}")
        face = cls.__new__(cls)
        BaseSecretCache._open(face, factory, config, None, None, None)
        return face

    @classmethod
    def _sharing(cls: type[_F], other: BaseSecretCache) -> _F:
        """A face of this class over ``other``'s core (same entries, flights, backend, counters and
        per-cache state). It owns nothing: no finalizer, so dropping it never closes the core; its hits go
        through the core (no inline path), so ``other.stats`` counts them."""
        face = cls.__new__(cls)
        BaseSecretCache._attach(face, other._core, owner=False, inline_hits=False)
        return face

    def _open(
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
        core = Core(backend, config or CacheConfig(), on_event, timer=timer, random=random)
        # With an event hook every read goes through the core (which emits "hit"); without one, the
        # faces read the live entries directly.
        self._attach(core, owner=True, inline_hits=on_event is None)

    def _attach(self, core: Core, *, owner: bool, inline_hits: bool) -> None:
        """The one place a face is wired to a core: a new cache (``owner``: closing the core when the
        face is collected) and a face sharing another's core."""
        self.config = core.config
        self._core = core
        self._timer = core.timer
        # An always-empty dict keeps the choice of an inline hit path off the hit path itself.
        self._fast: dict[Any, Any] = core.entries if inline_hits else _EMPTY
        self._hits = 0  # hits served by the faces' inline paths; the core counts its own
        if owner:
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

    def cached(self) -> list[CachedRead]:
        """What is cached now, one :class:`CachedRead` per entry (any age): which secret, which stage or
        version it was read by, and the value. Never fetches; for listeners that decide what to refresh
        (:mod:`secretcache.events`)."""
        return self._core.cached_reads()

    def invalidate(self, secret_id: str | None = None) -> None:
        """Drop one secret (every stage and version of it), or everything."""
        self._core.invalidate(secret_id)

    def mark_stale(self) -> None:
        """Make every cached stage due for refresh on its next read (e.g. after a SnapStart restore)."""
        self._core.mark_stale()

    def state_for(self, owner: object, make: Callable[[], _S]) -> _S:
        """State an integration keeps per cache under its own ``owner`` key, made by ``make()`` on first use
        (the rotation policy's per-secret state). It lives as long as the cache, is shared by every face
        over the same core, and gets ``after_fork()`` in a forked child."""
        return self._core.state_for(owner, make)

    @property
    def stats(self) -> CacheStats:
        """Counters since creation: hits, misses, refreshes, backend_calls, errors, stale_served."""
        return self._core.stats(self._hits)


AnySecretCache: TypeAlias = BaseSecretCache
"""The type of a ``cache=`` argument that takes either face (a SecretCache or an AsyncSecretCache): the
base both share, so an integration types its argument without importing the async face."""
