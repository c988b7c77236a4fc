"""``@with_secrets``: secrets for AWS Lambda handlers, fetched in the init phase and refreshed inline.

::

    from secretcache.aws_lambda import with_secrets

    @with_secrets(db_password="prod/db#password", api_key="prod/api-key")
    def handler(event, context, *, db_password, api_key):
        ...

What it does, and why:

- **Prefetch at import time.** Decorating the handler (which happens while Lambda imports the module,
  in the init phase) fetches every referenced secret with BatchGetSecretValue: one call for up to 20
  secrets. A failure there is logged (ids and error types only) and never stops the import: the first
  invocation fetches again.
- **Inline refresh, no threads.** Lambda freezes the environment between invocations, so background
  refresh threads would run at random, or sign requests that expire while frozen. The cache built here
  refreshes on the invocation that finds a value past its ttl; when several are due, they are
  refreshed with one batch call.
- **A failure is never cached.** Each invocation retries what failed before (the cache built here has
  no backoff: Lambda runs one invocation at a time per environment, which paces the retries).
  A transient failure with a cached value serves that value (stale-if-error), as ``SecretCache`` does.
- **The Parameters and Secrets Lambda Extension**: ``backend="extension"`` reads through it
  (``http://localhost:$PARAMETERS_SECRETS_EXTENSION_HTTP_PORT``, default 2773, token from
  ``AWS_SESSION_TOKEN``). The extension caches too (``SECRETS_MANAGER_TTL``, default 300 s), so a value
  can be up to both ttls old.
- **SnapStart**: when ``snapshot_restore_py`` is importable, an after-restore hook marks every cached
  value stale, so a restored snapshot never serves what was fetched before the snapshot without
  checking it first.

The handler receives the values as keyword arguments; arguments passed explicitly (in tests) win.
``handler.secret_cache`` is the cache used.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, TypeVar

from ._resolve import due, resolve_all
from .errors import SecretCacheError
from .inject import References, wrap

if TYPE_CHECKING:
    from .backends.base import SecretsBackend
    from .cache import SecretCache
    from .config import CacheConfig

__all__ = ["EXTENSION_PORT_VARIABLE", "lambda_config", "with_secrets"]

R = TypeVar("R")
EXTENSION_PORT_VARIABLE = "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT"

logger = logging.getLogger("secretcache.aws_lambda")


def lambda_config() -> CacheConfig:
    """The configuration of the cache ``with_secrets`` builds: inline refresh, no backoff, else defaults."""
    from .config import CacheConfig

    return CacheConfig(background_refresh=False, backoff_base=0.0, backoff_max=0.0)


def _extension_backend() -> SecretsBackend:
    from .backends.agent import AgentBackend

    raw = os.environ.get(EXTENSION_PORT_VARIABLE, "2773")
    try:
        port = int(raw)
    except ValueError:
        port = 0
    if not 1 <= port <= 65535:
        raise ValueError(f"${EXTENSION_PORT_VARIABLE} must be a port number (1-65535), got {raw!r}")
    return AgentBackend(f"http://localhost:{port}")


def _backend_for(backend: SecretsBackend | str | None) -> SecretsBackend | None:
    if backend is None or backend == "aws":
        return None  # SecretCache builds AwsBackend on the first fetch
    if backend == "extension":
        return _extension_backend()
    if isinstance(backend, str):
        raise ValueError(
            f"with_secrets: backend must be 'aws', 'extension' or a SecretsBackend, got {backend!r}"
        )
    return backend


def _register_snapstart_hook(cache: SecretCache) -> bool:
    """After a SnapStart restore, every cached value is due for a check on its next read."""
    try:
        from snapshot_restore_py import register_after_restore
    except ImportError:
        return False
    register_after_restore(cache.mark_stale)
    return True


def _prefetch(cache: SecretCache, ids: Collection[str], *, when: str) -> dict[str, SecretCacheError]:
    """Batch-fetch ``ids``; return the failures by id, logged (ids and error types, never a value)."""
    if not ids:
        return {}
    try:
        failures = cache.prefetch(ids)
    except SecretCacheError as e:
        failures = dict.fromkeys(ids, e)
    except Exception as e:  # e.g. no Region configured: the reads will report it properly
        logger.warning("secretcache: prefetch %s failed (%s); secrets will be fetched on use", when,
                       type(e).__name__)
        return {}
    if failures:
        logger.warning(
            "secretcache: prefetch %s failed for %s; they will be fetched again on use", when,
            ", ".join(f"{secret_id!r} ({type(err).__name__})" for secret_id, err in sorted(failures.items())),
        )
    return failures


class _LambdaReferences(References):
    """The handler's references: what is due is refreshed with one batch call, then each is resolved."""

    def resolve(self, cache: SecretCache, names: Collection[str]) -> dict[str, str]:
        return resolve_all(cache, (self.items[name] for name in names), label="with_secrets: argument",
                           prefetch=functools.partial(_prefetch, when="on invocation"))


def with_secrets(
    *, cache: SecretCache | None = None, backend: SecretsBackend | str | None = None, **references: str
) -> Callable[[Callable[..., R]], Callable[..., R]]:
    """Inject secrets into a Lambda handler as keyword arguments: ``@with_secrets(kwarg="reference", ...)``.

    ``cache``: a :class:`~secretcache.SecretCache` to read through (default: one built for this handler
    with :func:`lambda_config`). ``backend``: ``"aws"`` (default, boto3), ``"extension"`` (the
    Parameters and Secrets Lambda Extension) or any ``SecretsBackend``; not both ``cache`` and
    ``backend``. References take every form (``prod/db#password``, ARNs, ``{{resolve:...}}``).

    Raises ``TypeError`` (unknown handler parameter, a coroutine handler) and
    :class:`~secretcache.InvalidReferenceError` when the decorator is applied, i.e. at import.
    """
    if not references:
        raise TypeError("with_secrets needs at least one kwarg='reference'")
    if cache is not None and backend is not None:
        raise TypeError("with_secrets takes cache= or backend=, not both")
    injection = _LambdaReferences(references)  # validates every reference now
    if cache is None:
        from .cache import SecretCache

        cache = SecretCache(_backend_for(backend), config=lambda_config())
    use: SecretCache = cache

    def decorate(handler: Callable[..., R]) -> Callable[..., R]:
        import inspect

        if inspect.iscoroutinefunction(handler) or inspect.isasyncgenfunction(handler):
            raise TypeError("with_secrets: Lambda's Python runtime calls handlers synchronously; "
                            "decorate a plain def handler(event, context)")
        wrapper = wrap(handler, injection, use, who="with_secrets")
        _prefetch(use, due(use, injection.refs()), when="at init")
        _register_snapstart_hook(use)
        wrapper.secret_cache = use
        return wrapper  # type: ignore[no-any-return]

    return decorate
