"""secretcache: a fast, rotation-aware in-process cache for AWS Secrets Manager.

``import secretcache`` is light: boto3, asyncio and the database drivers load only when used.
Heavy names (``AsyncSecretCache``, backends, decorators) are loaded on first access (PEP 562).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .cache import SecretCache
from .errors import (
    InvalidReferenceError,
    SecretAccessDeniedError,
    SecretCacheError,
    SecretDecryptionError,
    SecretDeletedError,
    SecretFormatError,
    SecretNotFoundError,
    SecretThrottledError,
    SecretUnavailableError,
)
from .model import SecretRef, SecretValue
from .stats import CacheEvent, CacheStats

if TYPE_CHECKING:
    from .aio import AsyncSecretCache
    from .backends import AgentBackend, AwsBackend, SecretsBackend
    from .config import CacheConfig
    from .inject import inject_env, inject_secret, resolve_env, secret_env

__version__ = "0.1.0"

__all__ = [
    "AgentBackend",
    "AsyncSecretCache",
    "AwsBackend",
    "CacheConfig",
    "CacheEvent",
    "CacheStats",
    "InvalidReferenceError",
    "SecretAccessDeniedError",
    "SecretCache",
    "SecretCacheError",
    "SecretDecryptionError",
    "SecretDeletedError",
    "SecretFormatError",
    "SecretNotFoundError",
    "SecretRef",
    "SecretThrottledError",
    "SecretUnavailableError",
    "SecretValue",
    "SecretsBackend",
    "__version__",
    "default_cache",
    "get",
    "get_secret_binary",
    "get_secret_json",
    "get_secret_string",
    "inject_env",
    "inject_secret",
    "resolve_env",
    "secret_env",
    "set_default_cache",
]

_LAZY = {
    "AsyncSecretCache": ".aio",
    "CacheConfig": ".config",
    "AwsBackend": ".backends",
    "AgentBackend": ".backends",
    "SecretsBackend": ".backends",
    "inject_secret": ".inject",  # a module name  # nosec B105
    "inject_env": ".inject",
    "resolve_env": ".inject",
    "secret_env": ".inject",  # a module name  # nosec B105
}


def _public(value: Any) -> Any:
    """Show a public class under its public path (``secretcache.SecretCache``), as httpx does."""
    if isinstance(value, type):
        value.__module__ = __name__
    return value


for _name in __all__:
    if _name in globals():
        _public(globals()[_name])
del _name


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = globals()[name] = _public(getattr(importlib.import_module(module, __name__), name))
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


_default: SecretCache | None = None
_default_lock = threading.Lock()


def default_cache() -> SecretCache:
    """The module-level cache behind the shortcuts, created on first use (AwsBackend, default config)."""
    global _default
    cache = _default
    if cache is None:
        with _default_lock:
            if _default is None:
                _default = SecretCache()
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
) -> Mapping[str, Any]:
    """:meth:`SecretCache.get_secret_json` on the default cache."""
    return default_cache().get_secret_json(secret_id, version_id=version_id, version_stage=version_stage)


def get(reference: str) -> str:
    """:meth:`SecretCache.get` on the default cache: any reference form, including ``id#json-key``."""
    return default_cache().get(reference)
