"""secretcache: a fast, rotation-aware in-process cache for AWS Secrets Manager.

``import secretcache`` is light: boto3, asyncio and the database drivers load only when used.
Heavy names (``AsyncSecretCache``, backends, decorators) are loaded on first access (PEP 562).

This module only re-exports: the default cache and its shortcuts live in ``cache``, the version in
``_version``, so no module of the package needs to import the package root.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._version import __version__
from .cache import (
    SecretCache,
    default_cache,
    get,
    get_secret_binary,
    get_secret_json,
    get_secret_string,
    set_default_cache,
)
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
    from .env import inject_env, resolve_env, secret_env
    from .inject import inject_secret

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
    "inject_env": ".env",
    "resolve_env": ".env",
    "secret_env": ".env",  # a module name  # nosec B105
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
