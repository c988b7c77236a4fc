"""SecretValue (one immutable version of a secret) and SecretRef (the reference forms we accept).

Size: the value type and the reference grammars it is read by (~500 lines, the parameter forms
included); they share the bounded quoting of ids and keys in messages, so they stay together.

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
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from datetime import datetime

from .errors import InvalidReferenceError, SecretFormatError
from .parameters import PREFIX, check_selector, is_parameter, validate_parameter_id

__all__ = [
    "MAX_SECRET_BYTES",
    "SecretRef",
    "SecretValue",
    "find_references",
    "is_reference",
    "render_template",
]

MAX_SECRET_BYTES = 65_536
"""Secrets Manager's limit on a SecretString or SecretBinary."""

_NAME_RE = re.compile(r"[A-Za-z0-9/_+=.@\-]{1,512}")
_ARN_RE = re.compile(
    r"arn:(?P<partition>aws|aws-cn|aws-us-gov|aws-iso[a-z-]*):secretsmanager:"
    r"(?P<region>[a-z0-9-]+):(?P<account>\d{12}):secret:(?P<rest>.+)"
)
_TEMPLATE_RE = re.compile(r"\{\{resolve:(secretsmanager|ssm|ssm-secure):(.*?)\}\}")
_MAX_SHOWN = 200
# One shared tuple for the usual label sets: ~48 bytes less per cached value.
_COMMON_STAGES: dict[tuple[str, ...], tuple[str, ...]] = {
    stages: stages
    for stages in [("AWSCURRENT",), ("AWSPREVIOUS",), ("AWSPENDING",), ("AWSCURRENT", "AWSPENDING"),
                   ("AWSPENDING", "AWSCURRENT"), ()]
}


def _shown(reference: str) -> str:
    """The reference as it appears in an error message: bounded, so a pasted blob cannot flood logs."""
    return reference if len(reference) <= _MAX_SHOWN else reference[:_MAX_SHOWN] + "..."


def _shown_key(key: object) -> str:
    """A JSON key as it appears in an error message: quoted and bounded like a reference (a key is data
    from the secret or the caller, and a 10,000-character one must not make a 10,000-character message)."""
    return repr(_shown(key if isinstance(key, str) else repr(key)))


def _bad(reference: str, why: str) -> InvalidReferenceError:
    return InvalidReferenceError(f"invalid secret reference {_shown(reference)!r}: {why}", reference=reference)


_ARN_HEADS: dict[str, str] = {}


def _value_problem(string: object, binary: object) -> str | None:
    """Why a (SecretString, SecretBinary) pair is not a valid version, or None. Never raises (a raise from
    here would leave the value in this frame's locals in the traceback) and never quotes the value."""
    if (string is None) == (binary is None):
        return "a version holds exactly one of SecretString and SecretBinary"
    if string is not None and not isinstance(string, str):
        return f"SecretString must be str, got {type(string).__name__}"
    if binary is not None and not isinstance(binary, (bytes, bytearray, memoryview)):
        return f"SecretBinary must be bytes, got {type(binary).__name__}"
    # surrogatepass: JSON's "\ud800" escapes decode to lone surrogates, which a strict encode() rejects.
    size = len(string.encode("utf-8", "surrogatepass")) if isinstance(string, str) else memoryview(binary).nbytes  # type: ignore[arg-type]
    if size > MAX_SECRET_BYTES:
        return f"value is {size} bytes, over the {MAX_SECRET_BYTES}-byte limit"
    return None


def _refusal(name: str, string: object, binary: object) -> str | None:
    """Why a (SecretString, SecretBinary) pair is not a valid version of ``name``, or None. Never quotes the value."""
    problem = _value_problem(string, binary)
    return None if problem is None else f"secret {name!r}: {problem}"


def _metadata_problem(name: object, arn: object, version_id: object, version_stages: object) -> str | None:
    """Why an answer's identifying fields are unusable, or None (they hold no value: safe to inspect)."""
    if not isinstance(name, str) or not name:
        return f"Name must be a non-empty str, got {type(name).__name__}"
    for field, given in (("ARN", arn), ("VersionId", version_id)):
        if given is not None and not isinstance(given, str):
            return f"{field} must be a str, got {type(given).__name__}"
    if not isinstance(version_stages, (list, tuple)) or not all(isinstance(s, str) for s in version_stages):
        return "VersionStages must be a list of str"
    return None


def value_from_answer(
    name: object,
    arn: object,
    version_id: object,
    version_stages: object,
    secret_string: object,
    secret_binary: object,
    created_date: object,
) -> SecretValue | str:
    """A :class:`SecretValue` from the fields of a backend's answer, or why the answer is malformed.

    For backends: a malformed answer is the service's (or a proxy's) fault, so they raise it as the
    transient :class:`~secretcache.errors.SecretUnavailableError` rather than :class:`SecretFormatError`,
    which is for values built by user code. Returns the problem instead of raising, and chains nothing:
    a raise from here (or an exception kept as a cause) would carry the answer in its frames' locals
    into every traceback and error tracker. The problem names fields and types, never a value.
    """
    try:
        problem = _value_problem(secret_string, secret_binary) or _metadata_problem(
            name, arn, version_id, version_stages)
        if problem is None:
            return SecretValue(name, arn, version_id, version_stages, secret_string,  # type: ignore[arg-type]
                               secret_binary, created_date)  # type: ignore[arg-type]
    except Exception as e:  # a field of a type no check foresaw: report its kind, drop the exception
        problem = f"unusable ({type(e).__name__})"
    return problem


def _split_arn(arn: str | None, name: str) -> tuple[str | None, str | None]:
    """``arn:...:secret:`` + name + ``-XXXXXX`` as (a shared head, the suffix); any other ARN as (arn, None)."""
    if arn is None:
        return None, None
    at = arn.find(":secret:") + 8
    if at < 8 or not arn.startswith(name, at):
        return arn, None
    head = arn[:at]
    head = _ARN_HEADS.setdefault(head, head) if len(_ARN_HEADS) < 256 else head
    return head, arn[at + len(name):]


class SecretValue:
    """One version of a secret, as GetSecretValue returned it. Immutable; repr never shows the value.

    Exactly one of ``secret_string`` and ``secret_binary`` is set. ``json()`` parses once per
    version and hands each caller its own copy, so mutating a result never changes the cache.
    (A hand-written slotted class rather than a dataclass: ``dataclasses`` would add ~8 ms to
    ``import secretcache``.)
    """

    __slots__ = (
        "_arn_head", "_arn_tail", "_json", "created_date", "name", "secret_binary", "secret_string", "version_id",
        "version_stages",
    )
    name: str
    _arn_head: str | None
    _arn_tail: str | None
    version_id: str | None
    version_stages: tuple[str, ...]
    secret_string: str | None
    secret_binary: bytes | None
    created_date: datetime | None
    _json: tuple[dict[str, Any], bool, dict[str, str]] | None

    def __init__(
        self,
        name: str,
        arn: str | None = None,
        version_id: str | None = None,
        version_stages: Iterable[str] = (),
        secret_string: str | None = None,
        secret_binary: bytes | None = None,
        created_date: datetime | None = None,
    ) -> None:
        problem = _refusal(name, secret_string, secret_binary)
        if problem is not None:
            del secret_string, secret_binary  # keep the value out of this frame's locals in tracebacks
            raise SecretFormatError(problem, secret_id=name)
        init = object.__setattr__
        # The value is stored first and the arguments dropped: whatever below raises (a malformed ARN or
        # stage list), this frame's locals then hold it only inside ``self``, whose repr hides it.
        init(self, "secret_string", secret_string)
        init(self, "secret_binary", bytes(secret_binary) if secret_binary is not None else None)
        del secret_string, secret_binary
        init(self, "name", name)
        head, tail = _split_arn(arn, name)
        init(self, "_arn_head", head)
        init(self, "_arn_tail", tail)
        init(self, "version_id", version_id)
        stages = tuple(version_stages)
        init(self, "version_stages", _COMMON_STAGES.get(stages, stages))
        init(self, "created_date", created_date)
        init(self, "_json", None)

    @property
    def arn(self) -> str | None:
        """The secret's ARN (kept as a shared Region/account prefix plus suffix: ~60 bytes less per value)."""
        head, tail = self._arn_head, self._arn_tail
        return head if tail is None else f"{head}{self.name}{tail}"

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"SecretValue is immutable (tried to set {name!r})")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"SecretValue is immutable (tried to delete {name!r})")

    def __reduce__(self) -> tuple[type[SecretValue], tuple[Any, ...]]:
        return (type(self), (self.name, self.arn, self.version_id, self.version_stages,
                             self.secret_string, self.secret_binary, self.created_date))

    def __repr__(self) -> str:
        # Never raises and never shows a value, even half-built (``__init__`` raised part way, or
        # ``SecretValue.__new__(SecretValue)``): tracebacks with locals (pytest --showlocals, Sentry,
        # ``TracebackException(capture_locals=True)``) call repr on every local, ``self`` included.
        try:
            if getattr(self, "secret_string", None) is not None:
                kind = "string"
            elif getattr(self, "secret_binary", None) is not None:
                kind = "binary"
            else:
                kind = "value"
            name = getattr(self, "name", None)
            version_id = getattr(self, "version_id", None)
            stages = getattr(self, "version_stages", ())
            return (
                f"SecretValue(name={name!r}, version_id={version_id!r}, "
                f"version_stages={stages!r}, {kind}=<redacted>)"
            )
        except Exception:  # a subclass's odd attribute: still say what it is, never fail
            return "SecretValue(<redacted>)"

    __str__ = __repr__

    def _json_state(self) -> tuple[dict[str, Any], bool, dict[str, str]]:
        """(parsed object, whether it is flat, rendered fields), parsed once per version."""
        if self._json is not None:
            return self._json
        if self.secret_string is None:
            raise SecretFormatError(f"secret {self.name!r} is binary, not a JSON string", secret_id=self.name)
        import json  # loaded with the first JSON secret, not with the package

        try:
            obj = json.loads(self.secret_string)
        except json.JSONDecodeError as e:
            problem: str | None = f"is not valid JSON (line {e.lineno}, column {e.colno})"
        except (ValueError, RecursionError) as e:  # an integer too long to convert, nesting too deep
            problem = f"is not usable JSON ({type(e).__name__})"
        else:
            problem = None
        if problem is not None:
            # Raised outside the except block: the decode error's .doc is the whole secret text, so it
            # must be neither the cause nor the (suppressed, still reachable) __context__.
            raise SecretFormatError(f"secret {self.name!r} {problem}", secret_id=self.name)
        if not isinstance(obj, dict):
            kind = type(obj).__name__
            del obj  # error reporters capture frame locals: the parsed value must not be one of them
            raise SecretFormatError(f"secret {self.name!r} is JSON but not an object (got {kind})", secret_id=self.name)
        flat = not any(isinstance(v, (dict, list)) for v in obj.values())
        state: tuple[dict[str, Any], bool, dict[str, str]] = (obj, flat, {})
        object.__setattr__(self, "_json", state)  # a cache of a pure function of the immutable value
        return state

    def json(self) -> dict[str, Any]:
        """The value parsed as a JSON object: a fresh copy each call (cheap when the object is flat)."""
        obj, flat, _ = self._json_state()
        if flat:
            return dict(obj)
        import json

        # A nested object: parse again rather than copy.deepcopy, which is slower and recurses in Python
        # (a RecursionError at ~800 levels that json.loads, iterative in C, parsed fine).
        assert self.secret_string is not None  # _json_state() raised for a binary secret
        copy: dict[str, Any] = json.loads(self.secret_string)
        return copy

    def field(self, key: str) -> str:
        """One top-level JSON key as a string; non-string values are rendered as JSON (``1000``, ``true``)."""
        obj, _, rendered = self._json_state()
        try:
            return rendered[key]
        except KeyError:
            pass
        if key not in obj:
            del obj, rendered  # error reporters capture frame locals: the parsed value must not be one of them
            raise SecretFormatError(f"secret {self.name!r} has no JSON key {_shown_key(key)}", secret_id=self.name)
        raw = obj[key]
        if isinstance(raw, str):
            text = raw
        else:
            import json

            try:
                text = json.dumps(raw, separators=(",", ":"))
            except (ValueError, RecursionError) as e:  # nesting too deep, an integer too long to print
                problem = type(e).__name__
                del obj, rendered, raw  # error reporters capture frame locals
                raise SecretFormatError(
                    f"secret {self.name!r}: JSON key {_shown_key(key)} cannot be rendered ({problem})",
                    secret_id=self.name,
                ) from None
        rendered[key] = text
        return text


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
