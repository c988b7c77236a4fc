"""SecretValue: one immutable version of a secret, and the conversions a reader asks of it (text, binary, JSON).

The reference grammars live in :mod:`.refs`; their names are re-exported here, where they have always been
importable from (``from secretcache.model import SecretRef``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datetime import datetime

from .errors import SecretFormatError
from .refs import SecretRef, find_references, is_reference, render_template, shown_key, validate_secret_id

__all__ = [
    "MAX_SECRET_BYTES",
    "SecretRef",
    "SecretValue",
    "find_references",
    "is_reference",
    "render_template",
    "validate_secret_id",
]

MAX_SECRET_BYTES = 65_536
"""Secrets Manager's limit on a SecretString or SecretBinary."""

# One shared tuple for the usual label sets: ~48 bytes less per cached value.
_COMMON_STAGES: dict[tuple[str, ...], tuple[str, ...]] = {
    stages: stages
    for stages in [("AWSCURRENT",), ("AWSPREVIOUS",), ("AWSPENDING",), ("AWSCURRENT", "AWSPENDING"),
                   ("AWSPENDING", "AWSCURRENT"), ()]
}


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
            raise SecretFormatError(f"secret {self.name!r} has no JSON key {shown_key(key)}", secret_id=self.name)
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
                    f"secret {self.name!r}: JSON key {shown_key(key)} cannot be rendered ({problem})",
                    secret_id=self.name,
                ) from None
        rendered[key] = text
        return text

    def text(self, json_key: str | None = None) -> str:
        """The string a reader asks for: the whole SecretString, or one top-level JSON key of it
        (:meth:`field`). :class:`SecretFormatError` for a binary secret."""
        if json_key is not None:
            return self.field(json_key)
        text = self.secret_string
        if text is None:
            raise SecretFormatError(
                f"secret {self.name!r} holds SecretBinary, which cannot be used as a string; "
                "read it with get_secret_binary",
                secret_id=self.name,
            )
        return text

    def binary(self) -> bytes:
        """The SecretBinary; :class:`SecretFormatError` for a string secret."""
        if self.secret_binary is None:
            raise SecretFormatError(
                f"secret {self.name!r} holds SecretString; use get_secret_string", secret_id=self.name
            )
        return self.secret_binary
