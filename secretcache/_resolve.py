"""References resolved through a cache: the one resolver behind ``env``, ``inject``, ``aws_lambda`` and ``cli``.

It parses references (one, or a template with several inside), tells whether a read would touch the
backend (freshness) and whether BatchGetSecretValue can fetch it (batching), picks the string a
reference names in a value, and runs the routine environment injection and ``@with_secrets`` share:
prefetch what is due with one batch call, then resolve each name, and clear what was resolved when an
error passes, so a traceback (or an error tracker capturing locals) does not carry it.

Errors name the variable or argument and the reference, never a value.

Loaded with ``import secretcache`` (the cache faces take :func:`string_of` from here): nothing heavy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from .errors import InvalidReferenceError, SecretCacheError, SecretFormatError, SecretUnavailableError
from .model import SecretRef, SecretValue, find_references, render_template

if TYPE_CHECKING:
    from .cache import SecretCache

Prefetch = Callable[["SecretCache", list[str]], Mapping[str, SecretCacheError]]


# -- references ---------------------------------------------------------------------------------


def parse_reference(reference: object) -> tuple[SecretRef, ...]:
    """The secrets a reference reads: one for a plain reference, one per ``{{resolve:...}}`` in a template.

    Raises :class:`InvalidReferenceError` naming the reference; never returns an empty tuple.
    """
    try:
        return (SecretRef.parse(reference),)  # type: ignore[arg-type]  # parse rejects non-str itself
    except InvalidReferenceError:
        if not isinstance(reference, str) or "{{resolve:" not in reference:
            raise
    refs = tuple(find_references(reference))
    render_template(reference, lambda ref: "")  # raises on a malformed or unterminated {{resolve:...}}
    if not refs:
        raise InvalidReferenceError(f"invalid secret reference {reference[:200]!r}", reference=reference)
    return refs


def is_whole(reference: str) -> bool:
    """True when ``reference`` is one reference, False for a template with references inside."""
    try:
        SecretRef.parse(reference)
    except InvalidReferenceError:
        return False
    return True


def is_template(reference: str) -> bool:
    """A value with ``{{resolve:...}}`` inside a longer string, rendered piece by piece."""
    return "{{resolve:" in reference and not (
        reference.startswith("{{") and reference.endswith("}}") and reference.count("{{") == 1
    )


def string_of(value: SecretValue, json_key: str | None = None) -> str:
    """The string a reference names in ``value``: the whole SecretString, or one top-level JSON key of it."""
    if json_key is not None:
        return value.field(json_key)
    text = value.secret_string
    if text is None:
        raise SecretFormatError(
            f"secret {value.name!r} holds SecretBinary, which cannot be used as a string; "
            "read it with get_secret_binary",
            secret_id=value.name,
        )
    return text


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


def _prefetch(cache: SecretCache, ids: list[str]) -> Mapping[str, SecretCacheError]:
    return cache.prefetch(ids)


def resolve_all(
    cache: SecretCache, items: Iterable[Named], *, label: str, prefetch: Prefetch = _prefetch
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


def _resolve_one(cache: SecretCache, item: Named, failures: Mapping[str, SecretCacheError], label: str) -> str:
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
