"""SecretRef and the reference grammars: every form of "which secret, which version, which key" we accept.

Reference forms:

- a secret id: a name (``prod/db``), a full ARN or a partial ARN;
- ``<secret-id>#<json-key>``: one top-level key of a JSON secret;
- the ECS/Batch ``valueFrom`` ARN ``arn:aws:secretsmanager:R:A:secret:NAME:json-key:version-stage:version-id``;
- the CloudFormation dynamic reference
  ``{{resolve:secretsmanager:SECRET-ID:SecretString:json-key:version-stage:version-id}}``,
  also embedded in a longer string (see :func:`render_template`);
- a Parameter Store parameter (:mod:`secretcache.parameters`): ``ssm:NAME[:version-or-label][#json-key]``,
  a parameter ARN ``arn:aws:ssm:R:A:parameter/NAME[#json-key]`` (the ECS ``valueFrom`` form), and
  CloudFormation's ``{{resolve:ssm:NAME[:VERSION]}}`` / ``{{resolve:ssm-secure:NAME[:VERSION]}}``.

A grammar of its own, apart from the value (:mod:`.model`) and the resolver (:mod:`._resolve`): the cache
faces, the resolver and every integration parse references here, and this module imports nothing of the
package but its errors and the parameter ids (:mod:`.parameters`). Messages quote references and keys
bounded (:func:`shown_key`), so a pasted blob cannot flood a log.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import NamedTuple

from ._messages import bounded
from .errors import InvalidReferenceError
from .parameters import PREFIX, check_selector, is_parameter, validate_parameter_id

__all__ = [
    "SecretRef", "find_references", "is_reference", "is_template", "is_whole", "parse_reference",
    "render_template", "shown_key", "validate_secret_id",
]

_NAME_RE = re.compile(r"[A-Za-z0-9/_+=.@\-]{1,512}")
_ARN_RE = re.compile(
    r"arn:(?P<partition>aws|aws-cn|aws-us-gov|aws-iso[a-z-]*):secretsmanager:"
    r"(?P<region>[a-z0-9-]+):(?P<account>\d{12}):secret:(?P<rest>.+)"
)
_TEMPLATE_RE = re.compile(r"\{\{resolve:(secretsmanager|ssm|ssm-secure):(.*?)\}\}")


def shown_key(key: object) -> str:
    """A JSON key as it appears in an error message: quoted and bounded like a reference (a key is data
    from the secret or the caller, and a 10,000-character one must not make a 10,000-character message)."""
    return repr(bounded(key if isinstance(key, str) else repr(key)))


def _bad(reference: str, why: str) -> InvalidReferenceError:
    return InvalidReferenceError(f"invalid secret reference {bounded(reference)!r}: {why}", reference=reference)


class SecretRef(NamedTuple):
    """A parsed reference: which secret, which version, and optionally one JSON key."""

    secret_id: str
    json_key: str | None = None
    version_stage: str | None = None
    version_id: str | None = None

    @classmethod
    def parse(cls, reference: str) -> SecretRef:
        """Parse any accepted form; raise :class:`InvalidReferenceError` naming the reference."""
        return _parse_cached(reference)

    def __str__(self) -> str:
        text = self.secret_id if self.json_key is None else f"{self.secret_id}#{self.json_key}"
        if self.version_stage:
            text += f" (stage {self.version_stage})"
        if self.version_id:
            text += f" (version {self.version_id})"
        return text


def validate_secret_id(secret_id: object, *, reference: str | None = None) -> str:
    """Check a secret id (name, ARN or partial ARN) and return it."""
    if not isinstance(secret_id, str):
        raise InvalidReferenceError(
            f"secret id must be a str, got {type(secret_id).__name__}", reference=None
        )
    shown = reference if reference is not None else secret_id
    if not secret_id:
        raise _bad(shown, "the secret id is empty")
    if is_parameter(secret_id):
        return validate_parameter_id(secret_id, reference=reference)
    if secret_id.startswith("arn:"):
        m = _ARN_RE.fullmatch(secret_id)
        if m is None or ":" in m["rest"] or not _NAME_RE.fullmatch(m["rest"]):
            raise _bad(shown, "not a Secrets Manager secret ARN (arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME)")
        return secret_id
    if not _NAME_RE.fullmatch(secret_id):
        raise _bad(shown, "a secret name uses 1-512 letters, digits and /_+=.@-")
    return secret_id


def _empty_to_none(text: str) -> str | None:
    return text or None


def _versioned(reference: str, secret_id: str, key: str, stage: str, version: str) -> SecretRef:
    if stage and version:
        raise _bad(reference, "give a version stage or a version id, not both")
    return SecretRef(validate_secret_id(secret_id, reference=reference), _empty_to_none(key),
                     _empty_to_none(stage), _empty_to_none(version))


def _parse_arn_form(reference: str) -> SecretRef:
    m = _ARN_RE.fullmatch(reference)
    if m is None:
        raise _bad(reference, "not a Secrets Manager secret ARN (arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME)")
    parts = m["rest"].split(":")
    base = reference[: m.start("rest")] + parts[0]
    if len(parts) == 1:
        return SecretRef(validate_secret_id(base, reference=reference))
    if len(parts) == 4:
        return _versioned(reference, base, parts[1], parts[2], parts[3])
    raise _bad(reference, "an ECS valueFrom ARN ends in :json-key:version-stage:version-id (all three, empty allowed)")


def _parse_template_body(reference: str, body: str, service: str = "secretsmanager") -> SecretRef:
    if service != "secretsmanager":
        return _parse_template_parameter(reference, body)
    if body.startswith("arn:"):
        pieces = body.split(":")
        secret_id, rest = ":".join(pieces[:7]), pieces[7:]
    else:
        secret_id, *rest = body.split(":")
    if len(rest) > 4:
        raise _bad(reference, "too many fields after the secret id")
    rest += [""] * (4 - len(rest))
    kind, key, stage, version = rest
    if kind not in ("", "SecretString"):
        raise _bad(reference, f"the field after the secret id must be SecretString, got {kind!r}")
    return _versioned(reference, secret_id, key, stage, version)


def _parameter_ref(reference: str, secret_id: str, select: str, key: str | None) -> SecretRef:
    """A parameter's reference with its selector: digits are a version, anything else a label."""
    validate_parameter_id(secret_id, reference=reference)
    version = select if select.isdigit() else None
    label = None if select.isdigit() or not select else select
    try:
        check_selector(secret_id, version, label)
    except InvalidReferenceError as e:
        raise _bad(reference, str(e)) from None
    return SecretRef(secret_id, key, label, version)


def _parse_parameter(reference: str) -> SecretRef:
    """``ssm:NAME[:selector][#key]`` or ``arn:...:ssm:...:parameter/NAME[:selector][#key]``."""
    head, sep, key = reference.partition("#")
    if sep and not key:
        raise _bad(reference, "the JSON key after '#' is empty")
    # The name starts after "ssm:" or ":parameter/"; a ':' after that starts the selector.
    at = len(PREFIX) if head.startswith(PREFIX) else max(head.find(":parameter/") + 1, 0)
    name, colon, select = head[at:].partition(":")
    secret_id = head[:at] + name
    if colon and not select:
        raise _bad(reference, "the version or label after ':' is empty")
    return _parameter_ref(reference, secret_id, select, key or None)


def _parse_template_parameter(reference: str, body: str) -> SecretRef:
    """``{{resolve:ssm:NAME[:VERSION]}}`` and ``{{resolve:ssm-secure:...}}`` (NAME may be an ARN)."""
    if body.startswith("arn:"):
        pieces = body.split(":")
        name, rest = ":".join(pieces[:6]), pieces[6:]
    else:
        name, *rest = body.split(":")
    if len(rest) > 1 or (rest and not rest[0].isdigit()):
        raise _bad(reference, "expected {{resolve:ssm:NAME[:VERSION]}} with a version number")
    secret_id = name if name.startswith("arn:") else PREFIX + name
    return _parameter_ref(reference, secret_id, rest[0] if rest else "", None)


def _parse(reference: str) -> SecretRef:
    if not isinstance(reference, str):
        raise InvalidReferenceError(f"a secret reference must be a str, got {type(reference).__name__}")
    if not reference:
        raise _bad(reference, "the reference is empty")
    if reference.startswith("{{"):
        m = _TEMPLATE_RE.fullmatch(reference)
        if m is None:
            raise _bad(reference, "expected {{resolve:secretsmanager:SECRET-ID[:SecretString[:key[:stage[:id]]]]}}")
        return _parse_template_body(reference, m[2], m[1])
    if is_parameter(reference):
        return _parse_parameter(reference)
    if reference.startswith("arn:"):
        m = _ARN_RE.fullmatch(reference)
        parts = m["rest"].split(":") if m is not None else []
        if len(parts) == 4 and "#" not in parts[0]:
            return _parse_arn_form(reference)  # ECS valueFrom: its JSON key may itself hold a '#'
    secret_id, sep, key = reference.partition("#")
    if sep:
        if not key:
            raise _bad(reference, "the JSON key after '#' is empty")
        return SecretRef(validate_secret_id(secret_id, reference=reference), key)
    if reference.startswith("arn:"):
        return _parse_arn_form(reference)
    return SecretRef(validate_secret_id(reference))


_parse_memo: dict[str, SecretRef] = {}


def _parse_cached(reference: str) -> SecretRef:
    try:
        return _parse_memo[reference]
    except (KeyError, TypeError):
        pass
    ref = _parse(reference)
    if len(_parse_memo) < 4096:  # references come from code and config: a small, bounded memo
        _parse_memo[reference] = ref
    return ref


def is_reference(value: str) -> bool:
    """True when an environment value holds a reference we resolve: an ECS ARN (a secret's or a parameter's)
    or a ``{{resolve:secretsmanager|ssm|ssm-secure:...}}``. A bare ``ssm:NAME`` is resolved only where it is
    given as a reference (``inject_env`` mapping, ``secretcache run --env``): as a value it may be plain text."""
    if value.startswith("arn:aws"):
        head = value[:40]
        if ":secretsmanager:" in head or (":ssm:" in head and ":parameter/" in value):
            return True
    return "{{resolve:secretsmanager:" in value or "{{resolve:ssm:" in value or "{{resolve:ssm-secure:" in value


def find_references(text: str) -> list[SecretRef]:
    """The ``{{resolve:secretsmanager:...}}`` references embedded in ``text``, in order."""
    return [_parse_template_body(m[0], m[2], m[1]) for m in _TEMPLATE_RE.finditer(text)]


def render_template(text: str, resolve: Callable[[SecretRef], str]) -> str:
    """Replace every embedded ``{{resolve:secretsmanager:...}}`` in ``text`` with ``resolve(ref)``."""
    if "{{resolve:" in text and _TEMPLATE_RE.search(text) is None:
        raise _bad(text, "an unterminated or malformed {{resolve:secretsmanager:...}}")
    return _TEMPLATE_RE.sub(lambda m: resolve(_parse_template_body(m[0], m[2], m[1])), text)


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
