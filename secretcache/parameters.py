"""Parameter Store ids: how an ``ssm:`` reference or a parameter ARN names a parameter, and a path's listing.

One cache holds secrets and parameters side by side. A parameter's id is ``ssm:NAME`` (``ssm:/app/db-url``,
``ssm:plain``) or its ARN ``arn:aws:ssm:REGION:ACCOUNT:parameter/NAME``; neither can be a Secrets Manager
id (a secret name never holds ``:``, a secret ARN says ``secretsmanager``), so the two never collide in
the cache's keys. ``ssm:/aws/reference/secretsmanager/ID`` reads a secret through Parameter Store.

Selectors are SSM's own: ``version_id="3"`` reads ``NAME:3`` and ``version_stage="blue"`` the label
``NAME:blue``. Parameters have no AWSCURRENT: no selector (or ``AWSCURRENT``) reads the latest version,
whatever ``CacheConfig.version_stage`` says (a label cannot start with ``aws``, so ``AWSCURRENT`` can name
nothing else), except through a ``/aws/reference/secretsmanager/`` path, where stages are the secret's.

Loaded with ``import secretcache`` (the reference grammar uses it): ``re`` only.
"""

from __future__ import annotations

import re

from ._messages import bounded
from .errors import InvalidReferenceError

__all__ = [
    "LATEST_STAGE",
    "MAX_BATCH",
    "PREFIX",
    "REFERENCE_PATH",
    "api_name",
    "check_selector",
    "is_parameter",
    "names_parameter",
    "parameter_name",
    "region_of",
    "selector",
    "validate_parameter_id",
    "validate_path",
]

PREFIX = "ssm:"
"""What starts a parameter reference: ``ssm:/app/db-url``."""

REFERENCE_PATH = "/aws/reference/secretsmanager/"
"""Parameter Store's path to Secrets Manager: ``ssm:/aws/reference/secretsmanager/prod/db`` reads ``prod/db``."""

MAX_BATCH = 10
"""GetParameters takes at most 10 names per call."""

LATEST_STAGE = "AWSCURRENT"
"""The stage that means "the latest version" when a parameter is read (SSM has no stages)."""

# SSM names: letters, digits, and . - _ ; a hierarchy adds / (then the name starts with /). The reference
# path's secret part follows Secrets Manager's rules (which add + = @).
_NAME_RE = re.compile(r"(/[A-Za-z0-9_.\-/]{1,2047}|[A-Za-z0-9_.\-]{1,2048})")
_REFERENCE_RE = re.compile(re.escape(REFERENCE_PATH) + r"[A-Za-z0-9/_+=.@\-]{1,512}")
_ARN_RE = re.compile(
    r"arn:(?P<partition>aws|aws-cn|aws-us-gov|aws-iso[a-z-]*):ssm:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):"
    r"parameter/(?P<name>[^:#]+)"
)
_LABEL_RE = re.compile(r"[A-Za-z0-9_.\-]{1,100}")


def is_parameter(secret_id: object) -> bool:
    """Whether an id names a parameter (``ssm:NAME`` or a parameter ARN) rather than a secret."""
    return isinstance(secret_id, str) and (
        secret_id.startswith(PREFIX) or (secret_id.startswith("arn:") and ":ssm:" in secret_id[:32])
    )


def _bad(shown: str, why: str) -> InvalidReferenceError:
    return InvalidReferenceError(f"invalid parameter reference {bounded(shown)!r}: {why}", reference=shown)


def _valid_name(name: str) -> bool:
    if name.startswith(REFERENCE_PATH):
        return _REFERENCE_RE.fullmatch(name) is not None
    return _NAME_RE.fullmatch(name) is not None and "//" not in name and not name.endswith("/")


def validate_parameter_id(secret_id: str, *, reference: str | None = None) -> str:
    """Check ``ssm:NAME`` or a parameter ARN (no selector: those are ``version_id`` / ``version_stage``)."""
    shown = reference if reference is not None else secret_id
    if secret_id.startswith(PREFIX):
        name = secret_id[len(PREFIX):]
        if not name:
            raise _bad(shown, "the parameter name after 'ssm:' is empty")
        if not _valid_name(name):
            raise _bad(shown, "a parameter name uses letters, digits and _.-, and / for a hierarchy "
                              "(then it starts with /); at most 2048 characters")
        return secret_id
    m = _ARN_RE.fullmatch(secret_id)
    if m is None or not _valid_name(parameter_name(secret_id)):
        raise _bad(shown, "not a parameter ARN (arn:aws:ssm:REGION:ACCOUNT:parameter/NAME)")
    return secret_id


def validate_path(path: object) -> str:
    """Check a ``get_path`` argument: ``ssm:/a/hierarchy/`` (the trailing ``/`` optional)."""
    if not isinstance(path, str):
        raise InvalidReferenceError(f"a parameter path must be a str, got {type(path).__name__}")
    name = path[len(PREFIX):] if path.startswith(PREFIX) else None
    if name is None or not name.startswith("/") or (name != "/" and not _valid_name(name.rstrip("/"))):
        raise _bad(path, "a parameter path is 'ssm:' and a hierarchy starting with /, e.g. 'ssm:/app/prod/'")
    return path


def parameter_name(secret_id: str) -> str:
    """The parameter's name as SSM reports it (``/app/db-url``), from ``ssm:NAME`` or an ARN."""
    if secret_id.startswith(PREFIX):
        return secret_id[len(PREFIX):]
    m = _ARN_RE.fullmatch(secret_id)
    tail = m["name"] if m is not None else secret_id.rpartition(":parameter/")[2]
    return "/" + tail if "/" in tail else tail


def api_name(secret_id: str) -> str:
    """The ``Name`` to send: the name for ``ssm:NAME``, the whole ARN for an ARN (which may be another
    account's shared parameter, only reachable by ARN)."""
    return secret_id[len(PREFIX):] if secret_id.startswith(PREFIX) else secret_id


def region_of(secret_id: str) -> str | None:
    """The Region a parameter ARN names; None for ``ssm:NAME``."""
    m = _ARN_RE.fullmatch(secret_id)
    return m["region"] if m is not None else None


def selector(secret_id: str, version_id: str | None, version_stage: str | None) -> str | None:
    """SSM's selector for a read: the version number, or a label; None for the latest version."""
    if version_id is not None:
        return version_id
    if version_stage is None or (version_stage == LATEST_STAGE and REFERENCE_PATH not in secret_id):
        return None
    return version_stage


def check_selector(secret_id: str, version_id: str | None, version_stage: str | None) -> None:
    """Refuse a version that is not a number, or a label SSM could not hold, naming the parameter."""
    if version_id is not None and not version_id.isdigit() and REFERENCE_PATH not in secret_id:
        raise InvalidReferenceError(
            f"parameter {secret_id!r}: version_id must be a version number, got {version_id[:64]!r}",
            secret_id=secret_id)
    if version_stage is not None and _LABEL_RE.fullmatch(version_stage) is None:
        raise InvalidReferenceError(
            f"parameter {secret_id!r}: a label uses 1-100 letters, digits and _.-, got {version_stage[:64]!r}",
            secret_id=secret_id)


def names_parameter(secret_id: str, name: str) -> bool:
    """Whether an answer named ``name`` is for the parameter ``secret_id``."""
    return name == parameter_name(secret_id)
