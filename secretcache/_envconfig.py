"""The default cache configured by the environment: ``SECRETCACHE_BACKEND``, ``SECRETCACHE_AGENT_URL``,
``SECRETCACHE_TTL``.

So the same application code runs on Lambda (the extension: ``agent``), ECS and a laptop (``aws``) and
EKS (``files:/mnt/secrets-store``, or ``files:/mnt/secrets-store,aws`` to reach AWS for what the files
do not hold), by configuration alone. Read when the default cache is first built, never at import:
``import secretcache`` succeeds whatever the variables say, and a bad value fails the first read with
an error naming the variable (and again on every read until it is fixed: nothing half-built is kept).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from ._messages import bounded
from .errors import SecretCacheError

if TYPE_CHECKING:
    from .backends.base import SecretsBackend
    from .config import CacheConfig

__all__ = ["AGENT_URL_VAR", "BACKEND_VAR", "DEFAULT_AGENT_URL", "TTL_VAR", "backend_from_environment",
           "config_from_environment", "default_cache_arguments"]

BACKEND_VAR = "SECRETCACHE_BACKEND"
AGENT_URL_VAR = "SECRETCACHE_AGENT_URL"
TTL_VAR = "SECRETCACHE_TTL"
DEFAULT_AGENT_URL = "http://127.0.0.1:2773"
_FORMS = "aws, agent or files:/PATH (several joined by ',' make a chain, e.g. files:/mnt/secrets-store,aws)"
_SHOWN = 120


def _shown(value: str) -> str:
    return repr(bounded(value, _SHOWN))


def _bad(variable: str, value: str, why: str) -> SecretCacheError:
    return SecretCacheError(f"${variable}={_shown(value)}: {why}")


def backend_from_environment(
    environ: Mapping[str, str] | None = None, *, aws: Callable[[], SecretsBackend] | None = None
) -> SecretsBackend | None:
    """The backend ``SECRETCACHE_BACKEND`` names, or None when it is unset, empty or ``aws`` (the caller's
    own default AWS backend applies). ``aws`` builds the AWS backend of a chain (default ``AwsBackend()``).
    Raises :class:`~secretcache.errors.SecretCacheError` naming the variable for a bad value."""
    env = os.environ if environ is None else environ
    raw = env.get(BACKEND_VAR, "")
    parts = [part.strip() for part in raw.split(",")]
    if parts == [""] or parts == ["aws"]:
        return None
    backends: list[SecretsBackend] = []
    for part in parts:
        if part == "aws":
            if aws is None:
                from .backends.aws import AwsBackend

                backends.append(AwsBackend())
            else:
                backends.append(aws())
        elif part == "agent":
            backends.append(_agent(env))
        elif part.startswith("files:"):
            backends.append(_files(raw, part[len("files:"):]))
        else:
            why = "an empty entry" if not part else f"unknown backend {_shown(part)}"
            raise _bad(BACKEND_VAR, raw, f"{why}; expected {_FORMS}")
    if len(backends) == 1:
        return backends[0]
    from .backends.chain import ChainBackend

    return ChainBackend(*backends)


def _agent(env: Mapping[str, str]) -> SecretsBackend:
    from .backends.agent import AgentBackend

    url = env.get(AGENT_URL_VAR) or DEFAULT_AGENT_URL
    try:
        return AgentBackend(url)
    except ValueError:
        raise _bad(AGENT_URL_VAR, url, "expected an http(s) URL such as http://127.0.0.1:2773") from None


def _files(raw: str, path: str) -> SecretsBackend:
    from .backends.files import FileBackend

    if not path:
        raise _bad(BACKEND_VAR, raw, "files: needs the mount's directory, e.g. files:/mnt/secrets-store")
    return FileBackend(path)


def config_from_environment(environ: Mapping[str, str] | None = None) -> CacheConfig | None:
    """``CacheConfig(ttl=SECRETCACHE_TTL)``, or None when the variable is unset or empty."""
    env = os.environ if environ is None else environ
    raw = env.get(TTL_VAR, "").strip()
    if not raw:
        return None
    from .config import CacheConfig

    try:
        ttl = float(raw)
    except ValueError:
        ttl = math.nan
    if math.isnan(ttl) or ttl < 0:
        raise _bad(TTL_VAR, raw, "expected a number of seconds >= 0 (e.g. 300)")
    return CacheConfig(ttl=ttl)


def default_cache_arguments(environ: Mapping[str, str] | None = None) -> tuple[SecretsBackend | None,
                                                                               CacheConfig | None]:
    """``(backend, config)`` for the default ``SecretCache`` as the variables configure it (None: the default).

    The caller builds the cache, so this module never imports the cache (no cycle through the default cache).
    """
    config = config_from_environment(environ)  # the cheap check first: nothing is built when it fails
    return backend_from_environment(environ), config
