"""The ``@inject_secret`` decorator: secrets passed to functions as keyword arguments.

``@inject_secret`` reads through the cache on *every* call (so a rotation is seen within one ttl,
and at once after ``cache.refresh``); the caller can always pass the argument explicitly, and then
no read happens. The wrapper machinery here (:func:`wrap`) also serves ``aws_lambda.with_secrets``;
references are parsed and resolved by ``_resolve``, environment injection lives in ``env``.

Errors name the function parameter and the reference, never a value. When an exception passes
through one of our frames, the values it resolved are cleared from that frame first, so a traceback
(or an error tracker capturing locals) does not carry them.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Collection, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple, TypeGuard, TypeVar

from ._resolve import Named, is_fresh
from .cache import default_cache
from .errors import InvalidReferenceError
from .model import SecretRef, SecretValue
from .refs import shown_key

if TYPE_CHECKING:
    import inspect

    from ._face import AnySecretCache
    from .aio import AsyncSecretCache
    from .cache import SecretCache

__all__ = ["inject_secret"]

R = TypeVar("R")


def _is_async_cache(cache: object) -> TypeGuard[AsyncSecretCache]:
    if "secretcache.aio" not in sys.modules:  # nobody built an AsyncSecretCache without importing it
        return False
    from .aio import AsyncSecretCache

    return isinstance(cache, AsyncSecretCache)


# -- what to inject -----------------------------------------------------------------------------


class Injection:
    """What a decorator injects: keyword argument name -> string, read through a cache on each call."""

    names: tuple[str, ...]

    def refs(self) -> tuple[SecretRef, ...]:
        raise NotImplementedError

    def resolve(self, cache: SecretCache, names: Collection[str]) -> dict[str, str]:
        raise NotImplementedError

    async def resolve_async(self, cache: AsyncSecretCache, names: Collection[str]) -> dict[str, str]:
        raise NotImplementedError

    def fresh(self, cache: SecretCache) -> bool:
        """True when every secret needed is within ttl, so :meth:`resolve` will not block."""
        return all(is_fresh(cache, ref) for ref in self.refs())


class References(Injection):
    """One reference per keyword argument (``inject_secret(ref, into=...)``, ``with_secrets(kw=ref)``)."""

    def __init__(self, references: Mapping[str, str]) -> None:
        self.items = {name: Named.parse(name, text) for name, text in references.items()}
        self.names = tuple(self.items)

    def refs(self) -> tuple[SecretRef, ...]:
        return tuple(ref for item in self.items.values() for ref in item.refs)

    def resolve(self, cache: SecretCache, names: Collection[str]) -> dict[str, str]:
        return {name: cache.get(self.items[name].text) for name in names}

    async def resolve_async(self, cache: AsyncSecretCache, names: Collection[str]) -> dict[str, str]:
        return {name: await cache.get(self.items[name].text) for name in names}


class Fields(Injection):
    """Several top-level JSON keys of one secret version, read once per call (``fields=``)."""

    def __init__(self, reference: str, fields: Mapping[str, str]) -> None:
        ref = SecretRef.parse(reference)
        if ref.json_key is not None:
            raise InvalidReferenceError(
                f"inject_secret(fields=...) reads keys of one JSON secret: give the secret id without "
                f"a JSON key, got {reference[:200]!r}",
                reference=reference,
            )
        self.ref = ref
        self.fields = dict(fields)
        self.names = tuple(self.fields)

    def refs(self) -> tuple[SecretRef, ...]:
        return (self.ref,)

    def _pick(self, value: SecretValue, names: Collection[str]) -> dict[str, str]:
        return {name: value.field(self.fields[name]) for name in names}

    def resolve(self, cache: SecretCache, names: Collection[str]) -> dict[str, str]:
        ref = self.ref
        value = cache.get_secret_value(
            ref.secret_id, version_id=ref.version_id, version_stage=ref.version_stage
        )
        return self._pick(value, names)

    async def resolve_async(self, cache: AsyncSecretCache, names: Collection[str]) -> dict[str, str]:
        ref = self.ref
        value = await cache.get_secret_value(
            ref.secret_id, version_id=ref.version_id, version_stage=ref.version_stage
        )
        return self._pick(value, names)


# -- how to inject ------------------------------------------------------------------------------


class ArgumentPlan(NamedTuple):
    """Where each injected name goes in a call: a positional slot (by index) or a keyword."""

    positional: tuple[tuple[str, int], ...]  # (name, index in the full signature), ascending index
    public: inspect.Signature  # the signature callers see: injected parameters removed


def plan_for(func: Callable[..., Any], names: Collection[str], *, who: str) -> ArgumentPlan:
    """Check ``names`` against ``func``'s parameters now, at decoration time, and plan the calls."""
    import inspect

    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{who}: cannot read the signature of {func!r}") from e
    params = signature.parameters
    takes_kwargs = any(p.kind is p.VAR_KEYWORD for p in params.values())
    fname = getattr(func, "__qualname__", repr(func))
    positional: list[tuple[str, int]] = []
    for name in names:
        if not isinstance(name, str) or not name.isidentifier():
            raise TypeError(f"{who}: {name!r} is not a valid keyword argument name")
        param = params.get(name)
        if param is None:
            if takes_kwargs:
                continue
            listed = ", ".join(params) or "none"
            raise TypeError(f"{who}: {fname}() has no parameter {name!r} (its parameters: {listed})")
        if param.kind is param.POSITIONAL_ONLY:
            raise TypeError(
                f"{who}: parameter {name!r} of {fname}() is positional-only; it cannot be injected"
            )
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise TypeError(f"{who}: {name!r} of {fname}() collects extra arguments; name a single parameter")
        if param.kind is param.POSITIONAL_OR_KEYWORD:
            positional.append((name, list(params).index(name)))
    public = signature.replace(parameters=[p for p in params.values() if p.name not in names])
    return ArgumentPlan(tuple(sorted(positional, key=lambda item: item[1])), public)


def arrange(
    plan: ArgumentPlan, args: tuple[Any, ...], kwargs: dict[str, Any], values: dict[str, str]
) -> tuple[Any, ...]:
    """Place the injected values into the call (``kwargs`` is updated in place); return the positional args.

    Callers see the signature without the injected parameters, so when their positional arguments reach
    an injected positional parameter, the value is inserted at its slot and the later arguments shift
    behind it. Otherwise it goes by keyword. An explicit keyword argument for an injected name wins
    (and is moved to the slot when one is needed).
    """
    moved: list[Any] | None = None
    slotted: set[str] = set()
    for name, index in plan.positional:
        if len(args if moved is None else moved) >= index:
            if moved is None:
                moved = list(args)
            moved.insert(index, kwargs.pop(name) if name in kwargs else values[name])
            slotted.add(name)
    for name, value in values.items():
        if name not in slotted:
            kwargs[name] = value
    return args if moved is None else tuple(moved)


def wrap(func: Any, injection: Injection, cache: Any, *, who: str) -> Any:
    """Build the wrapper for ``func`` (function, method, coroutine function, generator or async generator)."""
    if isinstance(func, (staticmethod, classmethod)):
        return type(func)(wrap(func.__func__, injection, cache, who=who))
    if not callable(func):
        raise TypeError(f"{who} decorates a function, got {type(func).__name__}")
    import inspect

    plan = plan_for(func, injection.names, who=who)
    names = injection.names
    is_async = inspect.iscoroutinefunction(func) or inspect.isasyncgenfunction(func)
    if _is_async_cache(cache) and not is_async:
        raise TypeError(f"{who}: an AsyncSecretCache can only feed coroutine functions; use a SecretCache")

    def sync_values(kwargs: dict[str, Any]) -> dict[str, str]:
        wanted = [name for name in names if name not in kwargs]
        if not wanted:
            return {}
        use = cache if cache is not None else default_cache()
        return injection.resolve(use, wanted)

    async def async_values(kwargs: dict[str, Any]) -> dict[str, str]:
        wanted = [name for name in names if name not in kwargs]
        if not wanted:
            return {}
        use = cache if cache is not None else default_cache()
        if _is_async_cache(use):
            return await injection.resolve_async(use, wanted)
        if injection.fresh(use):
            return injection.resolve(use, wanted)  # a hit: a dict lookup, no need to leave the loop
        import asyncio

        return await asyncio.to_thread(injection.resolve, use, wanted)  # a miss must not block the loop

    wrapper: Callable[..., Any]
    if inspect.isasyncgenfunction(func):

        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            values = await async_values(kwargs)
            call_args = arrange(plan, args, kwargs, values)
            values = {}
            agen = func(*call_args, **kwargs)
            call_args, kwargs = (), {}
            try:
                item = await agen.__anext__()
                while True:
                    try:
                        sent = yield item
                    except GeneratorExit:
                        await agen.aclose()
                        raise
                    except BaseException as e:
                        item = await agen.athrow(e)
                    else:
                        item = await agen.asend(sent)
            except StopAsyncIteration:
                return

    elif inspect.iscoroutinefunction(func):

        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            values = await async_values(kwargs)
            call_args = arrange(plan, args, kwargs, values)
            values = {}
            try:
                return await func(*call_args, **kwargs)
            except BaseException:
                call_args, kwargs = (), {}
                raise

    elif inspect.isgeneratorfunction(func):

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            values = sync_values(kwargs)  # read when iteration starts, like the generator's own body
            call_args = arrange(plan, args, kwargs, values)
            values = {}
            generator = func(*call_args, **kwargs)
            call_args, kwargs = (), {}
            return (yield from generator)

    else:

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            values = sync_values(kwargs)
            call_args = arrange(plan, args, kwargs, values)
            values = {}
            try:
                return func(*call_args, **kwargs)
            except BaseException:
                call_args, kwargs = (), {}
                raise

    functools.update_wrapper(wrapper, func)
    wrapper.__signature__ = plan.public  # type: ignore[union-attr]
    return wrapper


def inject_secret(
    reference: str,
    *,
    into: str | None = None,
    fields: Mapping[str, str] | None = None,
    cache: AnySecretCache | None = None,
) -> Callable[[Callable[..., R]], Callable[..., R]]:
    """Pass a secret to the decorated function as a keyword argument, read through the cache on every call.

    ``@inject_secret("prod/db#password", into="password")`` passes one string (any reference form,
    templates included); ``@inject_secret("prod/db", fields={"user": "username", "password": "password"})``
    passes several top-level JSON keys of one secret version. ``cache=None`` uses the module-level
    default cache, looked up at call time.

    Works on functions, methods, static and class methods (either decorator order), coroutine
    functions (a cache hit is served on the loop; a miss is read in a worker thread, so the loop never
    blocks; an :class:`~secretcache.AsyncSecretCache` is awaited directly), generators and async
    generators (read when iteration starts). The injected parameters disappear from
    ``inspect.signature`` (frameworks such as FastAPI then do not mistake them for request
    parameters); a caller who passes one by keyword wins, and then nothing is read.

    Raises ``TypeError`` when applied to a function that has no such parameter (unless it takes
    ``**kwargs``), and :class:`InvalidReferenceError` for a malformed reference, at decoration time.
    """
    if (into is None) == (fields is None):
        raise TypeError("inject_secret takes exactly one of into='kwarg' or fields={'kwarg': 'json_key'}")
    injection: Injection
    if into is not None:
        if not isinstance(into, str) or not into.isidentifier():
            raise TypeError(f"inject_secret: into= must name a keyword argument, got {into!r}")
        injection = References({into: reference})
    else:
        if not isinstance(fields, Mapping) or not fields:
            raise TypeError("inject_secret: fields= must be a non-empty mapping {'kwarg': 'json_key'}")
        for kwarg, key in fields.items():
            if not isinstance(kwarg, str) or not kwarg.isidentifier():
                raise TypeError(f"inject_secret: fields= key {kwarg!r} is not a valid keyword argument name")
            if not isinstance(key, str) or not key:
                raise TypeError(f"inject_secret: fields[{kwarg!r}] must be a non-empty JSON key, got {shown_key(key)}")
        injection = Fields(reference, fields)

    def decorate(func: Callable[..., R]) -> Callable[..., R]:
        return wrap(func, injection, cache, who="inject_secret")  # type: ignore[no-any-return]

    return decorate
