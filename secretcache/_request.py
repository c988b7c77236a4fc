"""What one read asks for (:class:`Request`), the key it is cached under, and whether an answer is for it."""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple, TypeAlias

from .errors import InvalidReferenceError, SecretUnavailableError
from .model import validate_secret_id
from .parameters import LATEST_STAGE, check_selector, is_parameter, names_parameter

if TYPE_CHECKING:
    from .model import SecretValue

__all__ = ["Key", "Request", "check_answer", "key_parts", "make_request"]

Key: TypeAlias = "str | tuple[str, str] | tuple[str, str | None, str]"
"""``secret_id`` for the default stage; ``(secret_id, stage)``; ``(secret_id, stage|None, version_id)``."""

_SUFFIX = 7  # "-" and the 6 characters Secrets Manager appends to a name in a full ARN


class Request(NamedTuple):
    """What one read asks for, and the key it is cached under."""

    key: Key
    secret_id: str
    version_stage: str | None
    version_id: str | None


def make_request(secret_id: str, version_id: str | None, version_stage: str | None, default_stage: str) -> Request:
    """Validate a read and compute its key (the default stage shares the plain ``secret_id`` key)."""
    validate_secret_id(secret_id)
    for name, given in (("version_id", version_id), ("version_stage", version_stage)):
        if given is not None and (not isinstance(given, str) or not given):
            raise InvalidReferenceError(f"secret {secret_id!r}: {name} must be a non-empty str", secret_id=secret_id)
    if is_parameter(secret_id):
        return _parameter_request(secret_id, version_id, version_stage)
    key: Key
    if version_id is not None:
        key = (secret_id, version_stage, version_id)
    elif version_stage is None or version_stage == default_stage:
        key = secret_id
    else:
        key = (secret_id, version_stage)
    stage = version_stage if version_stage is not None or version_id is not None else default_stage
    return Request(key, secret_id, stage, version_id)


def _parameter_request(secret_id: str, version_id: str | None, version_stage: str | None) -> Request:
    """A parameter's read: no selector (or AWSCURRENT) is the latest version, under the plain id, whatever
    the configured default stage (a Secrets Manager notion); a label or a version number is keyed apart."""
    check_selector(secret_id, version_id, version_stage)
    if version_stage == LATEST_STAGE and version_id is None:
        version_stage = None
    key: Key
    if version_id is not None:
        key = (secret_id, version_stage, version_id)
    elif version_stage is None:
        key = secret_id
    else:
        key = (secret_id, version_stage)
    return Request(key, secret_id, version_stage, version_id)


def key_parts(key: Key) -> tuple[str, str | None, str | None]:
    """``(secret_id, version_stage, version_id)`` of a cache key, read back from the layout above (stage
    None: the configured default stage)."""
    if isinstance(key, str):
        return key, None, None
    if len(key) == 2:
        return key[0], key[1], None
    return key[0], key[1], key[2]


def _without_region(arn: str) -> str:
    parts = arn.split(":", 4)
    if len(parts) == 5:
        parts[3] = ""  # a replica in another Region answers with its own Region in the ARN
    return ":".join(parts)


def names_secret(secret_id: str, value: SecretValue) -> bool:
    """Whether ``value`` is a version of the secret ``secret_id`` names (a name, a full or a partial ARN)."""
    if value.name == secret_id:
        return True
    if is_parameter(secret_id):
        return names_parameter(secret_id, value.name)
    if not secret_id.startswith("arn:"):
        return value.name == secret_id
    arn = value.arn
    if arn:
        asked, got = _without_region(secret_id), _without_region(arn)
        return got == asked or (len(got) == len(asked) + _SUFFIX and got.startswith(asked) and got[len(asked)] == "-")
    tail = secret_id.rpartition(":secret:")[2]  # no ARN in the answer: compare the name in the asked ARN
    return value.name == tail or (value.name == tail[:-_SUFFIX] and tail[-_SUFFIX:-_SUFFIX + 1] == "-")


def check_answer(request: Request, value: SecretValue) -> SecretUnavailableError | None:
    """Why ``value`` is not an answer to ``request`` (another secret, another version), or None.

    A crossed answer (a socket shared across a fork, a confused proxy) is a transient failure: it is
    never cached or returned, and the next attempt asks again. The message names ids, never values.
    """
    if not names_secret(request.secret_id, value):
        problem = f"an answer for secret {value.name!r}"
    elif request.version_id is not None and value.version_id != request.version_id:
        problem = f"version {value.version_id!r} where {request.version_id!r} was asked"
    elif is_parameter(request.secret_id) and request.version_stage is not None \
            and request.version_stage[:1] != "\0" and request.version_stage not in value.version_stages:
        problem = f"an answer without the label {request.version_stage!r} that was asked"
    else:
        return None
    return SecretUnavailableError(
        f"{'Parameter Store' if is_parameter(request.secret_id) else 'Secrets Manager'} sent {problem} "
        f"reading secret {request.secret_id!r}; discarded",
        secret_id=request.secret_id,
    )
