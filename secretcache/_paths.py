"""``get_path``: a Parameter Store hierarchy read as one cached entry, its parameters stored beside it.

A path read is a :class:`Request` under its own key (the path id and a marker no caller's stage can
equal), so the core's one policy applies to it unchanged: one GetParametersByPath walk (all pages) per
ttl however many threads ask, stale-while-revalidate, stale-if-error and backoff. Its outcome is a
:class:`PathListing`, a ``SecretValue`` whose only payload is the parameters it found; the core stores
each of them as its own entry with the listing's freshness, so ``get("ssm:/app/prod/db")`` after
``get_path("ssm:/app/prod/")`` is a hit.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ._request import Request
from .model import SecretValue
from .parameters import PREFIX, validate_path

__all__ = ["PATH_MARKS", "PathListing", "is_path_request", "path_request"]

PATH_MARKS = ("\0path", "\0path-recursive")
"""The second element of a path read's key (one level, recursive). make_request refuses stages with a
NUL, so no read of a parameter or a secret can share the key."""


class PathListing(SecretValue):
    """The parameters under one path, as one cached outcome. Holds no value of its own (an empty string)."""

    __slots__ = ("parameters",)
    parameters: tuple[SecretValue, ...]

    def __init__(self, path: str, parameters: Iterable[SecretValue]) -> None:
        super().__init__(path, secret_string="")  # a listing holds no value of its own, not a password  # nosec B106
        object.__setattr__(self, "parameters", tuple(parameters))

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.name, self.parameters))

    def by_id(self) -> dict[str, SecretValue]:
        """``{"ssm:" + name: value}``, as ``get_path`` returns it."""
        return {PREFIX + value.name: value for value in self.parameters}

    def __repr__(self) -> str:
        return f"PathListing(path={self.name!r}, parameters={len(self.parameters)})"

    __str__ = __repr__


def path_request(path: str, recursive: bool) -> Request:
    """The read of ``path`` (``ssm:/app/prod/``); raises InvalidReferenceError for a malformed path."""
    validate_path(path)
    mark = PATH_MARKS[bool(recursive)]
    return Request((path, mark), path, mark, None)


def is_path_request(request: Request) -> bool:
    return request.version_stage in PATH_MARKS and isinstance(request.key, tuple)
