"""A drop-in for ``aws_secretsmanager_caching``: change one import, keep your code.

::

    # from aws_secretsmanager_caching import SecretCache, SecretCacheConfig, InjectSecretString
    from secretcache.compat import SecretCache, SecretCacheConfig, InjectSecretString

Same names, arguments and results, backed by :class:`secretcache.SecretCache`. Where we differ, we
differ on purpose (docs/compat.md has the whole table):

- a missing stage or a binary secret read as a string raises a typed error instead of returning ``None``;
  every error is a :class:`~secretcache.SecretCacheError` (not botocore's ``ClientError``);
- reads use GetSecretValue only: no DescribeSecret call, so no ``secretsmanager:DescribeSecret`` permission;
- ``refresh_secret_now`` fetches at once (the official one sleeps 2.5-5 s first) and returns a bool;
- the decorators find ``self`` exactly (the official heuristic can inject in the wrong position), an
  argument passed explicitly wins, and a bad secret raises an error that is both a
  ``SecretFormatError`` and a ``RuntimeError`` (what the official decorators raise).
"""

from __future__ import annotations

import functools
import json
import types
import warnings
from collections.abc import Callable
from copy import deepcopy
from typing import TYPE_CHECKING, Any, ClassVar

from .errors import SecretCacheError, SecretFormatError
from .refs import shown_key

if TYPE_CHECKING:
    from .cache import SecretCache as NativeCache
    from .config import CacheConfig

__all__ = [
    "InjectKeywordedSecretString",
    "InjectSecretString",
    "SecretCache",
    "SecretCacheConfig",
    "SecretInjectionError",
]

_OUR_BACKOFF_MAX = 30.0


class SecretInjectionError(SecretFormatError, RuntimeError):
    """A decorator could not build its argument (not JSON, a missing key). A ``RuntimeError`` too, as in
    ``aws_secretsmanager_caching``, so existing ``except RuntimeError`` handlers keep working."""


class SecretCacheConfig:
    """The official configuration object: the same fields, defaults and ``TypeError`` for unknown names.

    How each field is honoured (see :meth:`to_cache_config`):

    ============================== ===========================================================
    ``max_cache_size``             ``CacheConfig.max_size``
    ``exception_retry_delay_base`` ``CacheConfig.backoff_base`` (seconds)
    ``exception_retry_delay_max``  ``CacheConfig.backoff_max`` when you set it; otherwise our 30 s
                                   (the official 3600 s default can hide a recovered secret for an hour)
    ``exception_retry_growth_factor`` accepted and ignored: our backoff doubles, with full jitter
    ``default_version_stage``      ``CacheConfig.version_stage``
    ``secret_refresh_interval``    ``CacheConfig.ttl``, with ``jitter=0.5``: each value is refreshed after
                                   a random time in [interval/2, interval], as the official library does
    ``secret_cache_hook``          accepted and ignored, with a warning: values are kept as
                                   ``SecretValue`` objects, which the hook cannot transform
    ============================== ===========================================================
    """

    OPTION_DEFAULTS: ClassVar[dict[str, Any]] = {
        "max_cache_size": 1024,
        "exception_retry_delay_base": 1,
        "exception_retry_growth_factor": 2,
        "exception_retry_delay_max": 3600,
        "default_version_stage": "AWSCURRENT",
        "secret_refresh_interval": 3600,  # an option name  # nosec B105
        "secret_cache_hook": None,  # an option name  # nosec B105
    }

    max_cache_size: int
    exception_retry_delay_base: float
    exception_retry_growth_factor: float
    exception_retry_delay_max: float
    default_version_stage: str
    secret_refresh_interval: float
    secret_cache_hook: Any

    def __init__(self, **kwargs: Any) -> None:
        options = deepcopy(self.OPTION_DEFAULTS)
        for key, value in kwargs.items():
            if key not in options:
                raise TypeError(f"Unexpected keyword argument {key}")
            options[key] = value
        for key, value in options.items():
            setattr(self, key, value)
        self._explicit = frozenset(kwargs)

    def __repr__(self) -> str:
        fields = ", ".join(f"{key}={getattr(self, key)!r}" for key in self.OPTION_DEFAULTS)
        return f"SecretCacheConfig({fields})"

    def to_cache_config(self) -> CacheConfig:
        """The equivalent :class:`~secretcache.CacheConfig`; ``ValueError`` names the field at fault."""
        from .config import CacheConfig

        growth = self.exception_retry_growth_factor
        if isinstance(growth, bool) or not isinstance(growth, (int, float)) or growth < 1:
            raise ValueError(
                f"SecretCacheConfig.exception_retry_growth_factor must be a number >= 1, got {growth!r}"
            )
        if self.secret_cache_hook is not None:
            warnings.warn(
                "secretcache.compat ignores secret_cache_hook: cached values are held as SecretValue objects "
                "(never shown in repr or logs) and are not passed through the hook",
                UserWarning,
                stacklevel=3,
            )
        base = self.exception_retry_delay_base
        explicit_max = "exception_retry_delay_max" in self._explicit
        backoff_max = self.exception_retry_delay_max if explicit_max else _OUR_BACKOFF_MAX
        if not explicit_max and isinstance(base, (int, float)) and base > backoff_max:
            backoff_max = base
        try:
            return CacheConfig(
                ttl=self.secret_refresh_interval,
                jitter=0.5,
                max_size=self.max_cache_size,
                version_stage=self.default_version_stage,
                backoff_base=base,
                backoff_max=backoff_max,
            )
        except (TypeError, ValueError) as e:
            names = {"ttl": "secret_refresh_interval", "max_size": "max_cache_size",
                     "version_stage": "default_version_stage", "backoff_base": "exception_retry_delay_base",
                     "backoff_max": "exception_retry_delay_max"}
            text = str(e)
            for ours, theirs in names.items():
                text = text.replace(f"CacheConfig.{ours}", f"SecretCacheConfig.{theirs}")
            raise ValueError(text) from None


class SecretCache:
    """The official ``SecretCache`` API over :class:`secretcache.SecretCache` (available as ``.cache``).

    ``client``: a boto3 or botocore ``secretsmanager`` client (default: one from the standard AWS
    configuration chain, built on the first read).
    """

    def __init__(self, config: SecretCacheConfig | None = None, client: Any = None) -> None:
        from .cache import SecretCache as Native

        if config is not None and not isinstance(config, SecretCacheConfig):
            raise TypeError(f"config must be a SecretCacheConfig, got {type(config).__name__}")
        self._config = deepcopy(config) if config is not None else SecretCacheConfig()
        self.cache: NativeCache = Native(client=client, config=self._config.to_cache_config())
        self._stages: dict[str, set[str]] = {}

    def __repr__(self) -> str:
        return f"<secretcache.compat.SecretCache over {self.cache!r}>"

    def _remember(self, secret_id: str, version_stage: str | None) -> str | None:
        if version_stage is not None and version_stage != self._config.default_version_stage:
            self._stages.setdefault(secret_id, set()).add(version_stage)
        return version_stage or None

    def get_secret_string(self, secret_id: str, version_stage: str | None = None) -> str:
        """The SecretString; raises (never returns ``None``) when the stage or the string is missing."""
        return self.cache.get_secret_string(secret_id, version_stage=self._remember(secret_id, version_stage))

    def get_secret_binary(self, secret_id: str, version_stage: str | None = None) -> bytes:
        """The SecretBinary; raises (never returns ``None``) when the stage or the binary is missing."""
        return self.cache.get_secret_binary(secret_id, version_stage=self._remember(secret_id, version_stage))

    def refresh_secret_now(self, secret_id: str) -> bool:
        """Fetch the secret now (every stage read so far); True when that worked. Never sleeps.

        On failure the cached values are kept and False is returned, as in the official library.
        """
        ok = True
        for stage in (None, *sorted(self._stages.get(secret_id, ()))):
            try:
                self.cache.refresh(secret_id, version_stage=stage)
            except SecretCacheError:
                ok = False
        return ok


def _read_json_object(cache: Any, secret_id: str) -> dict[str, Any]:
    """The secret parsed as a JSON object. Errors name the secret, never its text (nor does any cause)."""
    text = cache.get_secret_string(secret_id)
    problem: str | None = None
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as e:
        problem, parsed = f"is not valid JSON (line {e.lineno}, column {e.colno})", None
    del text
    if problem is None and not isinstance(parsed, dict):
        problem, parsed = f"is JSON but not an object (got {type(parsed).__name__})", None
    if problem is not None:  # raised outside the except block, so __context__ does not hold the text
        raise SecretInjectionError(f"secret {secret_id!r} {problem}", secret_id=secret_id)
    return parsed  # type: ignore[no-any-return]


class _SecretFirst:
    """A function that gets the secret string as its first argument, or as its second when it is
    accessed as a method (``self`` first): the descriptor protocol says which, no guessing needed."""

    def __init__(self, func: Callable[..., Any], read: Callable[[], str]) -> None:
        functools.update_wrapper(self, func)
        self._func = func
        self._read = read

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._func(self._read(), *args, **kwargs)

    def _as_method(self, instance: Any, *args: Any, **kwargs: Any) -> Any:
        return self._func(instance, self._read(), *args, **kwargs)

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self
        return types.MethodType(self._as_method, instance)


class InjectSecretString:
    """``@InjectSecretString(secret_id, cache)``: the secret string as the first positional argument
    (after ``self`` for methods), read through the cache on every call."""

    def __init__(self, secret_id: str, cache: Any) -> None:
        self.cache = cache
        self.secret_id = secret_id

    def __call__(self, func: Callable[..., Any]) -> Any:
        return _SecretFirst(func, lambda: self.cache.get_secret_string(self.secret_id))


class InjectKeywordedSecretString:
    """``@InjectKeywordedSecretString(secret_id, cache, kwarg="json_key", ...)``: JSON keys of the secret
    as keyword arguments (the JSON values as they are: numbers stay numbers), read on every call.
    An argument passed explicitly wins."""

    def __init__(self, secret_id: str, cache: Any, **kwargs: str) -> None:
        self.cache = cache
        self.kwarg_map = kwargs
        self.secret_id = secret_id

    def __call__(self, func: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(func)
        def _wrapped_func(*args: Any, **kwargs: Any) -> Any:
            secret = _read_json_object(self.cache, self.secret_id)
            resolved: dict[str, Any] = {}
            missing: str | None = None
            for kwarg, key in self.kwarg_map.items():
                if kwarg in kwargs:
                    continue
                if key not in secret:
                    missing = key
                    break
                resolved[kwarg] = secret[key]
            secret = {}
            if missing is not None:
                resolved = {}
                raise SecretInjectionError(f"secret {self.secret_id!r} has no JSON key {shown_key(missing)}",
                                           secret_id=self.secret_id)
            resolved.update(kwargs)
            try:
                return func(*args, **resolved)
            except BaseException:
                resolved = {}
                raise

        return _wrapped_func
