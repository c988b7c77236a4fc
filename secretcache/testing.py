"""Test helpers for code that uses secretcache: ``InMemoryBackend``, a faithful in-process Secrets Manager.

``InMemoryBackend`` keeps versions and staging labels as AWS does (PutSecretValue and
UpdateSecretVersionStage label moves, AWSPREVIOUS following AWSCURRENT, deletion with a recovery
window), answers name / full ARN / partial ARN lookups, and raises exactly the typed errors
(same classes and ``.code``) that :class:`~secretcache.backends.AwsBackend` raises against AWS for
the same situations. Faults, latency and a gate holding calls in flight are injectable, and calls are
counted by operation, so tests can assert on behaviour instead of timing. pytest fixtures live in
:mod:`secretcache.pytest_plugin`.
"""

from __future__ import annotations

import secrets
import string
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone

from .backends.base import BATCH_LIMIT
from .errors import SecretCacheError, SecretFormatError, SecretUnavailableError, error_for_code
from .model import MAX_SECRET_BYTES, SecretValue

__all__ = ["FAULTS", "InMemoryBackend"]

Fault = str | int | BaseException | type[BaseException]

FAULTS = {
    "throttle": ("ThrottlingException", 400, "Rate exceeded"),
    "5xx": ("InternalServiceError", 500, "An error occurred on the server side"),
    "denied": ("AccessDeniedException", 400, "User is not authorized to perform this operation"),
}
"""Named faults (as in the tests' botocore hook): also ``"conn"`` and ``"timeout"`` (no AWS code)."""

GET, BATCH = "GetSecretValue", "BatchGetSecretValue"
_SUFFIX_CHARS = string.ascii_letters + string.digits


@dataclass
class _Version:
    value: str | bytes = field(repr=False)
    stages: list[str]
    created: datetime = field(default_factory=lambda: datetime.now(timezone.utc))


@dataclass
class _Secret:
    name: str
    arn: str
    versions: dict[str, _Version] = field(default_factory=dict)  # insertion order = creation order
    deleted: bool = False

    def holder(self, stage: str) -> str | None:
        return next((vid for vid, v in self.versions.items() if stage in v.stages), None)


@dataclass
class _Fault:
    fault: Fault
    times: int | None  # None: until heal()
    operation: str | None
    secret_id: str | None

    def matches(self, operation: str, ids: Sequence[str]) -> bool:
        return (self.operation in (None, operation)) and (self.secret_id is None or self.secret_id in ids)


def _aws_error(code: str, message: str, secret_id: str | None, status: int = 400) -> SecretCacheError:
    return error_for_code(code, message, secret_id=secret_id, http_status=status)


def _fault_error(fault: Fault, secret_id: str | None) -> BaseException:
    """A fresh exception for one injected fault (a stored instance re-raised would grow its traceback)."""
    if isinstance(fault, SecretCacheError):
        return fault.copy()
    if isinstance(fault, BaseException):
        return fault
    if isinstance(fault, type):
        if issubclass(fault, SecretCacheError):
            return fault(f"injected {fault.__name__} (secret {secret_id!r})", secret_id=secret_id)
        return fault(f"injected {fault.__name__}")
    if isinstance(fault, int):
        return error_for_code(None, f"HTTP {fault} (injected)", secret_id=secret_id, http_status=fault)
    if fault in ("conn", "timeout"):
        what = "could not connect" if fault == "conn" else "read timed out"
        return SecretUnavailableError(
            f"Secrets Manager unreachable reading secret {secret_id!r} ({what}, injected)",
            secret_id=secret_id,
        )
    code, status, message = FAULTS.get(fault, (fault, 500 if "Internal" in fault else 400, "injected"))
    return _aws_error(code, message, secret_id, status)


class InMemoryBackend:
    """A thread-safe, in-process Secrets Manager that behaves like AWS (see the module docstring).

    ``secrets`` seeds it: ``{name: value}``. ``latency`` is slept in every read (releasing the GIL).
    ``batch_page_size`` is how many values one BatchGetSecretValue page holds: lower it to exercise
    NextToken loops. ``deny_batch = True`` makes BatchGetSecretValue raise AccessDeniedException, as
    when IAM or an SCP denies it. ``calls`` counts reads by operation (``calls["GetSecretValue"]``).
    """

    def __init__(
        self,
        secrets: Mapping[str, str | bytes] | None = None,
        *,
        region: str = "us-east-1",
        account_id: str = "123456789012",
        latency: float = 0.0,
        batch_page_size: int = BATCH_LIMIT,
    ) -> None:
        self.region = region
        self.account_id = account_id
        self.latency = latency
        self.batch_page_size = batch_page_size
        self.deny_batch = False
        self.calls: Counter[str] = Counter()
        self._secrets: dict[str, _Secret] = {}
        self._faults: list[_Fault] = []
        self._gates: list[tuple[threading.Event, str | None, str | None]] = []
        self._held = 0
        self._lock = threading.RLock()  # rotate() runs put and label move as one atomic step
        self._changed = threading.Condition(self._lock)
        for name, value in (secrets or {}).items():
            self.put_secret(name, value)

    def __repr__(self) -> str:
        return f"InMemoryBackend(secrets={len(self._secrets)}, region={self.region!r})"

    # -- the store: what AWS's write APIs do ---------------------------------------------------------

    def _find(self, secret_id: str) -> _Secret:
        """Look up by name, full ARN or partial ARN (the ARN without its ``-XXXXXX`` suffix)."""
        found = self._secrets.get(secret_id)
        if found is None and secret_id.startswith("arn:"):
            prefix = f"arn:aws:secretsmanager:{self.region}:{self.account_id}:secret:"
            found = next((s for s in self._secrets.values() if s.arn == secret_id), None)
            if found is None and secret_id.startswith(prefix):
                found = self._secrets.get(secret_id[len(prefix):])
        if found is None:
            raise _aws_error("ResourceNotFoundException", "Secrets Manager can't find the specified secret.",
                             secret_id)
        return found

    def _check_live(self, secret: _Secret, secret_id: str) -> None:
        if secret.deleted:
            raise _aws_error("InvalidRequestException", "You can't perform this operation on the secret "
                             "because it was marked for deletion.", secret_id)

    def arn(self, name: str) -> str:
        """The secret's full ARN (``arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME-XXXXXX``)."""
        with self._lock:
            return self._find(name).arn

    def version_stages(self, secret_id: str) -> dict[str, tuple[str, ...]]:
        """DescribeSecret's ``VersionIdsToStages``: labelled versions only, as AWS shows them."""
        with self._lock:
            secret = self._find(secret_id)
            return {vid: tuple(v.stages) for vid, v in secret.versions.items() if v.stages}

    def put_secret(self, name: str, value: str | bytes, *, stages: Iterable[str] = ("AWSCURRENT",),
                   version_id: str | None = None) -> str:
        """Add a version (CreateSecret when ``name`` is new, else PutSecretValue); return its VersionId.

        As in AWS: each label in ``stages`` leaves the version that had it; when AWSCURRENT moves, the
        version it left becomes AWSPREVIOUS; ``stages=("AWSPENDING",)`` leaves AWSCURRENT alone; the
        first version of a secret is always AWSCURRENT. ``version_id`` is the ClientRequestToken.
        """
        if not isinstance(value, (str, bytes)):
            kind = type(value).__name__
            del value  # no secret in a traceback's frame locals (nor in the other raises below)
            raise TypeError(f"a secret value is str or bytes, got {kind}")
        version = _Version(value, [])
        del value
        size = len(version.value.encode() if isinstance(version.value, str) else version.value)
        if size > MAX_SECRET_BYTES:
            raise SecretFormatError(
                f"secret {name!r}: value is {size} bytes, over the {MAX_SECRET_BYTES}-byte limit",
                secret_id=name,
            )
        labels = [sys.intern(s) for s in dict.fromkeys(stages)]
        with self._lock:
            try:
                secret = self._find(name)
            except SecretCacheError:
                if name.startswith("arn:"):
                    raise
                suffix = "".join(secrets.choice(_SUFFIX_CHARS) for _ in range(6))
                arn = f"arn:aws:secretsmanager:{self.region}:{self.account_id}:secret:{name}-{suffix}"
                secret = self._secrets[name] = _Secret(name, arn)
            self._check_live(secret, name)
            if version_id is not None and version_id in secret.versions:
                if secret.versions[version_id].value != version.value:
                    raise _aws_error("ResourceExistsException", f"You can't use ClientRequestToken "
                                     f"{version_id} because that value is already in use for a version of "
                                     "the secret.", name)
                return version_id  # the same request again: idempotent, as in AWS
            if not secret.versions and "AWSCURRENT" not in labels:
                labels.append("AWSCURRENT")
            new_id = version_id or str(uuid.uuid4())
            secret.versions[new_id] = version
            for stage in labels:
                self._move(secret, stage, secret.holder(stage), new_id)
            return new_id

    def _move(self, secret: _Secret, stage: str, remove_from: str | None, move_to: str | None) -> None:
        if remove_from is not None:
            secret.versions[remove_from].stages.remove(stage)
        if move_to is not None and stage not in secret.versions[move_to].stages:
            secret.versions[move_to].stages.append(stage)
        if stage == "AWSCURRENT" and remove_from is not None and move_to not in (None, remove_from):
            previous = secret.holder("AWSPREVIOUS")
            if previous is not None:
                secret.versions[previous].stages.remove("AWSPREVIOUS")
            secret.versions[remove_from].stages.append("AWSPREVIOUS")
            if "AWSPREVIOUS" in secret.versions[move_to].stages:
                secret.versions[move_to].stages.remove("AWSPREVIOUS")

    def update_version_stage(self, secret_id: str, stage: str, *, move_to_version_id: str | None = None,
                             remove_from_version_id: str | None = None) -> None:
        """UpdateSecretVersionStage, with AWS's rules and errors.

        A label attached elsewhere moves only when ``remove_from_version_id`` names its holder
        (InvalidParameterException otherwise); moving AWSCURRENT puts AWSPREVIOUS on the old version.
        """
        def invalid(message: str) -> SecretCacheError:
            return _aws_error("InvalidParameterException", message, secret_id)

        with self._lock:
            secret = self._find(secret_id)
            self._check_live(secret, secret_id)
            for vid in (move_to_version_id, remove_from_version_id):
                if vid is not None and vid not in secret.versions:
                    raise invalid(f"Not a valid version: {vid}")
            holder = secret.holder(stage)
            if remove_from_version_id is not None and holder != remove_from_version_id:
                raise invalid(f"Version stage {stage} not found in version {remove_from_version_id}")
            if move_to_version_id is not None and holder not in (None, move_to_version_id) \
                    and remove_from_version_id is None:
                raise invalid(f"The parameter RemoveFromVersionId can't be empty. Staging label {stage} "
                              f"is currently attached to version {holder}, so you must explicitly reference "
                              "that version in RemoveFromVersionId.")
            self._move(secret, stage, remove_from_version_id, move_to_version_id)

    def rotate(self, name: str, new_value: str | bytes) -> str:
        """A whole rotation as AWS's rotation functions run it; return the new VersionId.

        createSecret puts ``new_value`` as AWSPENDING, finishSecret moves AWSCURRENT to it; the old
        version becomes AWSPREVIOUS and the new one keeps AWSPENDING alongside AWSCURRENT, as in AWS.
        """
        with self._lock:
            new_id = self.put_secret(name, new_value, stages=("AWSPENDING",))
            current = self._find(name).holder("AWSCURRENT")
            self.update_version_stage(name, "AWSCURRENT", move_to_version_id=new_id,
                                      remove_from_version_id=current)
            return new_id

    def delete_secret(self, secret_id: str, *, force: bool = False) -> None:
        """DeleteSecret: marked for deletion (reads raise SecretDeletedError), or gone with ``force``."""
        with self._lock:
            secret = self._find(secret_id)
            if force:
                del self._secrets[secret.name]
                return
            self._check_live(secret, secret_id)
            secret.deleted = True

    def restore_secret(self, secret_id: str) -> None:
        """RestoreSecret: cancel a scheduled deletion."""
        with self._lock:
            self._find(secret_id).deleted = False

    # -- faults, latency, gates, counters -------------------------------------------------------------

    def fail_next(self, fault: Fault, times: int = 1, *, operation: str | None = None,
                  secret_id: str | None = None) -> None:
        """Make the next ``times`` matching reads fail. ``fault``: an AWS error code
        (``"AccessDeniedException"``), a name from :data:`FAULTS` or ``"conn"`` / ``"timeout"``, an HTTP
        status (``503``), or an exception (class or instance). ``operation``: ``"GetSecretValue"`` or
        ``"BatchGetSecretValue"`` (default both); ``secret_id``: only calls for that id.
        """
        with self._lock:
            self._faults.append(_Fault(fault, times, operation, secret_id))

    def fail_always(self, fault: Fault, *, operation: str | None = None,
                    secret_id: str | None = None) -> None:
        """Like :meth:`fail_next`, until :meth:`heal`."""
        with self._lock:
            self._faults.append(_Fault(fault, None, operation, secret_id))

    def heal(self) -> None:
        """Drop every injected fault and open every gate."""
        with self._lock:
            self._faults.clear()
            gates, self._gates = self._gates, []
        for gate, _, _ in gates:
            gate.set()

    def hold(self, *, operation: str | None = None, secret_id: str | None = None) -> threading.Event:
        """Hold matching reads in flight until the returned event is set (see :meth:`wait_held`)."""
        gate = threading.Event()
        with self._lock:
            self._gates.append((gate, operation, secret_id))
        return gate

    def wait_held(self, n: int = 1, timeout: float = 10.0) -> None:
        """Block until ``n`` reads are waiting at a gate; raise ``TimeoutError`` otherwise."""
        with self._changed:
            if not self._changed.wait_for(lambda: self._held >= n, timeout):
                raise TimeoutError(f"expected {n} held calls, saw {self._held}")

    def reset_calls(self) -> None:
        """Zero the call counters."""
        with self._lock:
            self.calls.clear()

    def _enter(self, operation: str, ids: Sequence[str]) -> None:
        """Count the call, then apply gate, latency and any fault, as a request in flight would."""
        with self._lock:
            self.calls[operation] += 1
            fault = next((f for f in self._faults if f.matches(operation, ids)), None)
            if fault is not None and fault.times is not None:
                fault.times -= 1
                if fault.times <= 0:
                    self._faults.remove(fault)
            self._gates = [g for g in self._gates if not g[0].is_set()]  # opened gates hold nothing
            gates = [gate for gate, op, sid in self._gates
                     if op in (None, operation) and (sid is None or sid in ids)]
        for gate in gates:
            with self._changed:
                self._held += 1
                self._changed.notify_all()
            try:
                if not gate.wait(60.0):
                    raise TimeoutError("InMemoryBackend: a held call was never released (set the gate)")
            finally:
                with self._changed:
                    self._held -= 1
        if self.latency:
            time.sleep(self.latency)
        if fault is not None:
            raise _fault_error(fault.fault, ids[0] if len(ids) == 1 else None)
        if operation == BATCH and self.deny_batch:
            raise _aws_error("AccessDeniedException", "User is not authorized to perform: "
                             "secretsmanager:BatchGetSecretValue", None)

    # -- SecretsBackend ---------------------------------------------------------------------------------

    def _read(self, secret_id: str, version_id: str | None, version_stage: str | None) -> SecretValue:
        # botocore checks these lengths before sending; AwsBackend maps its error the same way.
        for param, given, low, high in (("VersionId", version_id, 32, 64),
                                        ("VersionStage", version_stage, 1, 256)):
            if given is not None and not low <= len(given) <= high:
                raise SecretCacheError(f"invalid request for secret {secret_id!r}: {param} must be "
                                       f"{low}-{high} characters, got {len(given)}", secret_id=secret_id)
        with self._lock:
            secret = self._find(secret_id)
            self._check_live(secret, secret_id)
            if version_id is not None:
                version = secret.versions.get(version_id)
                if version is None:
                    raise _aws_error("ResourceNotFoundException", "Secrets Manager can't find the specified "
                                     f"secret value for VersionId: {version_id}", secret_id)
                if version_stage is not None and version_stage not in version.stages:
                    raise _aws_error("InvalidRequestException", "You provided a VersionStage that is not "
                                     "associated to the provided VersionId.", secret_id)
            else:
                stage = version_stage or "AWSCURRENT"
                version_id = secret.holder(stage)
                if version_id is None:
                    raise _aws_error("ResourceNotFoundException", "Secrets Manager can't find the specified "
                                     f"secret value for staging label: {stage}", secret_id)
                version = secret.versions[version_id]
            value, stages, created = version.value, tuple(version.stages), version.created
            name, arn = secret.name, secret.arn
        if isinstance(value, bytes):
            return SecretValue(name, arn, version_id, stages, secret_binary=value, created_date=created)
        return SecretValue(name, arn, version_id, stages, secret_string=value, created_date=created)

    def get_secret_value(
        self, secret_id: str, *, version_id: str | None = None, version_stage: str | None = None
    ) -> SecretValue:
        self._enter(GET, (secret_id,))
        return self._read(secret_id, version_id, version_stage)

    def batch_get_secret_values(
        self, secret_ids: Sequence[str]
    ) -> tuple[list[SecretValue], dict[str, SecretCacheError]]:
        """BatchGetSecretValue as AwsBackend runs it: chunks of 20, each read in pages (each page a call)."""
        values: list[SecretValue] = []
        errors: dict[str, SecretCacheError] = {}
        unique = list(dict.fromkeys(secret_ids))
        for start in range(0, len(unique), BATCH_LIMIT):
            chunk = unique[start:start + BATCH_LIMIT]
            self._enter(BATCH, chunk)
            found: list[SecretValue] = []
            for secret_id in chunk:
                try:
                    found.append(self._read(secret_id, None, None))
                except SecretCacheError as e:
                    errors[secret_id] = e
            # Each further page of the chunk is one more call (AwsBackend follows NextToken).
            for _ in range(1, -(-len(found) // max(1, self.batch_page_size))):
                self._enter(BATCH, chunk)
            values += found
        return values, errors
