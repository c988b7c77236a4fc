"""The module-level default cache and the shortcuts that read through it (``secretcache.get(...)``).

The one piece of process-wide state in the package. It lives here, beside :class:`SecretCache` and apart
from the package face, so that the modules that fall back to it (``inject``, ``env``, ``db._auth``, the
pytest plugin) import it from here rather than from the package root. Loaded with ``import secretcache``:
it imports nothing heavy, and the cache itself (with its ``AwsBackend``) is built on first use. It imports
``SecretCache`` only when it needs the class, so it sits on the bottom floor of the import graph and the
modules that import it stay where they are (docs/architecture.md).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .cache import SecretCache

__all__ = ["default_cache", "get", "get_secret_binary", "get_secret_json", "get_secret_string", "set_default_cache"]

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
        from .cache import SecretCache

        with _default_lock:
            if _default is None:
                backend, config = default_cache_arguments()
                _default = SecretCache(backend, config=config)
            cache = _default
    return cache


def set_default_cache(cache: SecretCache | None) -> SecretCache | None:
    """Replace the module-level cache (``None`` resets it to be built lazily again); return the previous one."""
    global _default
    from .cache import SecretCache

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
) -> Mapping[str, Any]:
    """:meth:`SecretCache.get_secret_json` on the default cache."""
    return default_cache().get_secret_json(secret_id, version_id=version_id, version_stage=version_stage)


def get(reference: str) -> str:
    """:meth:`SecretCache.get` on the default cache: any reference form, including ``id#json-key``."""
    return default_cache().get(reference)
