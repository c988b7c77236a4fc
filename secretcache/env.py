"""Environment injection: references in environment values resolved through the cache.

Values that hold a reference (the ECS ``valueFrom`` ARN and ``{{resolve:secretsmanager:...}}``, also
inside a longer value) are resolved; everything else is left alone. All the referenced secrets are
fetched with one BatchGetSecretValue where possible (``_resolve.resolve_all``). Errors name the
variable and the reference, never a value; all or nothing: on an error nothing is returned or set.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING

from ._resolve import Named, relabel, resolve_all
from .cache import blocking_cache
from .errors import InvalidReferenceError
from .model import is_reference

if TYPE_CHECKING:
    from ._face import AnySecretCache

__all__ = ["inject_env", "resolve_env", "secret_env"]


def _plan_env(values: Mapping[str, str], explicit: Collection[str]) -> list[Named]:
    items: list[Named] = []
    for name, text in values.items():
        if not isinstance(name, str) or not name or "=" in name or "\0" in name:
            raise ValueError(f"invalid environment variable name {name!r}")
        if not isinstance(text, str):
            raise TypeError(
                f"environment variable {name!r}: the value must be a str, got {type(text).__name__}"
            )
        if name not in explicit and not is_reference(text):
            continue
        try:
            items.append(Named.parse(name, text))
        except InvalidReferenceError as e:
            raise relabel(e, f"environment variable {name!r}: {e}") from e
    return items


def resolve_values(
    values: Mapping[str, str], *, explicit: Collection[str] = (), cache: AnySecretCache | None = None
) -> dict[str, str]:
    """``values`` with every reference resolved; names in ``explicit`` are references whatever they look like.

    Others count as references when they hold an ECS ``valueFrom`` ARN or a ``{{resolve:secretsmanager:...}}``
    (also inside a longer value). Secrets not already fresh in the cache are fetched first with one
    ``cache.prefetch`` (BatchGetSecretValue, 20 per call). All or nothing: an error names the variable
    and the reference, and nothing is returned.
    """
    items = _plan_env(values, explicit)
    if not items:
        return dict(values)
    use = blocking_cache(cache)  # None: the default cache; an async cache: its blocking twin
    resolved = resolve_all(use, items, label="environment variable")
    out = dict(values)
    out.update(resolved)
    return out


def resolve_env(
    environ: Mapping[str, str] | None = None, *, cache: AnySecretCache | None = None
) -> dict[str, str]:
    """A copy of ``environ`` (default ``os.environ``) with every reference in a value resolved.

    References are the ECS ``valueFrom`` ARN (``arn:aws:secretsmanager:R:A:secret:NAME[:key:stage:id]``)
    and ``{{resolve:secretsmanager:...}}``, also inside a longer value; every other value is copied
    untouched. The referenced secrets are fetched with one BatchGetSecretValue where possible.
    """
    return resolve_values(os.environ if environ is None else environ, cache=cache)


def inject_env(
    mapping: Mapping[str, str] | None = None, *, override: bool = True, cache: AnySecretCache | None = None
) -> list[str]:
    """Resolve ``{NAME: reference}`` and the references already in ``os.environ`` into ``os.environ``.

    ``mapping`` values are references in any form (``prod/db#password`` too). With
    ``override=False`` a name already set in the environment keeps its value. All or nothing:
    if one reference fails, the environment is not changed. Returns the names set, sorted.
    """
    env = os.environ
    values: dict[str, str] = {}
    for name, reference in (mapping or {}).items():
        if override or name not in env:
            values[name] = reference
    explicit = set(values)
    for name, text in env.items():
        if name not in values and is_reference(text):
            values[name] = text
    resolved = resolve_values(values, explicit=explicit, cache=cache)
    try:
        env.update(resolved)
    finally:
        resolved.clear()
    return sorted(values)


@contextmanager
def secret_env(
    mapping: Mapping[str, str] | None = None, *, override: bool = True, cache: AnySecretCache | None = None
) -> Iterator[list[str]]:
    """:func:`inject_env` for the duration of a ``with`` block; the variables it set are restored on exit.

    Yields the names set. Variables the block itself adds or changes, other than those, are left alone.
    """
    before = {name: os.environ.get(name) for name in (mapping or {})}
    before.update((name, text) for name, text in os.environ.items() if is_reference(text))
    names = inject_env(mapping, override=override, cache=cache)
    try:
        yield names
    finally:
        for name in names:
            old = before.get(name)
            if old is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = old
