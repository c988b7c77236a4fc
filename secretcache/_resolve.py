"""References resolved through a cache: the one resolver behind ``env``, ``inject``, ``aws_lambda`` and ``cli``.

It tells whether a read would touch the backend (freshness) and whether BatchGetSecretValue can fetch it
(batching), and runs the routine environment injection and ``@with_secrets`` share:
prefetch what is due with one batch call, then resolve each name, and clear what was resolved when an
error passes, so a traceback (or an error tracker capturing locals) does not carry it.

Errors name the variable or argument and the reference, never a value.

It is typed against :class:`Reader`, the three calls it makes of a cache, and imports no cache: the
grammar is :mod:`.refs`, the conversions are the value's own (:meth:`SecretValue.text`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from .errors import InvalidReferenceError, SecretCacheError, SecretUnavailableError
from .refs import SecretRef, is_whole, parse_reference, render_template

if TYPE_CHECKING:
    from .model import SecretValue


class Reader(Protocol):
    """What the resolver asks of a cache (a :class:`~secretcache.SecretCache`, or the blocking face of an
    async one): whether a read would fetch, one batch fetch, and the string a reference names."""

    def peek(
        self, secret_id: str, *, version_id: str | None = None, version_stage: str | None = None
    ) -> SecretValue | None: ...

    def prefetch(self, secret_ids: Iterable[str]) -> Mapping[str, SecretCacheError]: ...

    def resolve(self, ref: SecretRef) -> str: ...


Prefetch = Callable[[Reader, list[str]], Mapping[str, SecretCacheError]]


# -- errors ---------------------------------------------------------------------------------------


def relabel(error: SecretCacheError, message: str) -> SecretCacheError:
    """The same kind of error with a message that says where it happened (chain it to the original)."""
    if isinstance(error, InvalidReferenceError):
        return InvalidReferenceError(message, reference=error.reference, secret_id=error.secret_id)
    try:
        return type(error)(message, secret_id=error.secret_id, code=error.code)
    except TypeError:  # a backend's own subclass with another constructor
        return SecretCacheError(message, secret_id=error.secret_id, code=error.code)


# -- freshness and batching ---------------------------------------------------------------------


def is_fresh(cache: Any, ref: SecretRef) -> bool:
    """True when ``cache`` holds ``ref``'s secret within ttl: a read would not touch the backend.

    No I/O, no lock: the same check the cache's hit path makes, on its entry table.
    """
    peek = getattr(cache, "peek", None)
    if peek is None:
        return False
    try:
        return peek(ref.secret_id, version_id=ref.version_id, version_stage=ref.version_stage) is not None
    except SecretCacheError:
        return False


def batchable(cache: Any, ref: SecretRef) -> bool:
    """Whether BatchGetSecretValue can fetch ``ref``: it returns AWSCURRENT versions only."""
    if ref.version_id is not None:
        return False
    stage = ref.version_stage or getattr(getattr(cache, "config", None), "version_stage", "AWSCURRENT")
    return stage == "AWSCURRENT"


def due(cache: Any, refs: Iterable[SecretRef]) -> list[str]:
    """The secret ids among ``refs`` that one batch call can fetch and that a read would fetch."""
    return list(dict.fromkeys(ref.secret_id for ref in refs if batchable(cache, ref) and not is_fresh(cache, ref)))


# -- prefetch, then resolve ---------------------------------------------------------------------


class Named(NamedTuple):
    """A reference as the user wrote it, under the name it is resolved for (a variable, an argument)."""

    name: str
    text: str
    refs: tuple[SecretRef, ...]
    whole: bool  # the text is one reference (else a template with references inside)

    @classmethod
    def parse(cls, name: str, text: str) -> Named:
        """Raises :class:`InvalidReferenceError` naming the reference (not the name: callers add it)."""
        return cls(name, text, parse_reference(text), is_whole(text))


def _prefetch(cache: Reader, ids: list[str]) -> Mapping[str, SecretCacheError]:
    return cache.prefetch(ids)


def resolve_all(
    cache: Reader, items: Iterable[Named], *, label: str, prefetch: Prefetch = _prefetch
) -> dict[str, str]:
    """``{name: resolved string}`` for every item; all or nothing.

    Secrets that are due (not fresh, and batchable) are fetched first with one ``prefetch`` call when
    there are several (one due secret costs one GetSecretValue either way). A permanent failure in that
    batch (not found, denied, deleted) is raised without asking again; a transient one is retried by
    the read. Every error is the cache's typed error, relabelled ``<label> 'NAME' (reference '...'): ...``
    and chained to the original. When an error passes, the values resolved so far are cleared.
    """
    items = list(items)
    ids = due(cache, (ref for item in items for ref in item.refs))
    failures = prefetch(cache, ids) if len(ids) > 1 else {}
    values: dict[str, str] = {}
    try:
        for item in items:
            values[item.name] = _resolve_one(cache, item, failures, label)
    except BaseException:
        values.clear()  # no resolved value stays reachable from this frame's traceback
        raise
    return values


def _resolve_one(cache: Reader, item: Named, failures: Mapping[str, SecretCacheError], label: str) -> str:
    def one(ref: SecretRef) -> str:
        shown = item.text if item.whole else str(ref)
        failed = failures.get(ref.secret_id)
        try:
            if failed is not None and not isinstance(failed, SecretUnavailableError) and batchable(cache, ref):
                raise failed  # permanent (not found, denied, ...): asking again would only cost a call
            return cache.resolve(ref)
        except SecretCacheError as e:
            raise relabel(e, f"{label} {item.name!r} (reference {shown[:200]!r}): {e}") from e

    if item.whole:
        return one(item.refs[0])
    return render_template(item.text, one)
