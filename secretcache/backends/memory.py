"""InMemoryBackend: a faithful in-process Secrets Manager, the backend tests and demos run on.

Size: one fake Secrets Manager (versions and labels, scripted outcomes and faults, gates, a call
log); split, every part would import the rest.

``InMemoryBackend`` keeps versions and staging labels as AWS does (PutSecretValue and
UpdateSecretVersionStage label moves, AWSPREVIOUS following AWSCURRENT, deletion with a recovery
window), answers name / full ARN / partial ARN lookups, and raises exactly the typed errors
(same classes and ``.code``) that :class:`~secretcache.backends.AwsBackend` raises against AWS for
the same situations. Faults, scripted answers, latency and a gate holding calls in flight are
injectable, and calls are counted and logged, so tests can assert on behaviour instead of timing. pytest
fixtures live in :mod:`secretcache.pytest_plugin`; :mod:`secretcache.testing` re-exports this module's
names, where tests have always imported them from.
"""

from __future__ import annotations

import secrets
import string
import sys
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, NamedTuple

from ..errors import SecretCacheError, SecretFormatError, SecretUnavailableError, error_for_code
from ..model import MAX_SECRET_BYTES, SecretValue
from .base import BATCH_LIMIT

__all__ = ["CONNECTION_FAULTS", "FAULTS", "FAULT_NAMES", "Call", "InMemoryBackend"]

Fault = str | int | BaseException | type[BaseException] | Callable[[Any], Any]
"""What a read may be made to fail with: a name from :data:`FAULT_NAMES`, an AWS error code, an HTTP
status, an exception (class or instance), or a callable taking the secret id (None for a batch of
several) and returning one of those."""

Outcome = Fault | SecretValue | None
"""What a scripted read answers with: a :data:`Fault` to raise, a :class:`SecretValue` to return as it
is (even one the store could not hold), or None: the store's own answer. A callable may return any of
these, so it can also just observe the call (``lambda secret_id: seen.append(secret_id)``)."""

FAULTS = {
    "throttle": ("ThrottlingException", 400, "Rate exceeded"),
    "5xx": ("InternalServiceError", 500, "An error occurred on the server side"),
    "denied": ("AccessDeniedException", 400, "User is not authorized to perform this operation"),
}
"""Named faults that are AWS error answers: name -> (error code, HTTP status, message)."""

CONNECTION_FAULTS = {"conn": "could not connect", "timeout": "read timed out"}
"""Named faults with no AWS answer (the request never got one): name -> what happened."""

FAULT_NAMES = (*FAULTS, *CONNECTION_FAULTS)
"""The one set of fault names, shared by :class:`InMemoryBackend`, the test suite's botocore hook and
fault proxy, and the benchmarks' boto-shaped client."""

GET, BATCH, DESCRIBE = "GetSecretValue", "BatchGetSecretValue", "DescribeSecret"
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
class _Planned:
    outcome: Outcome
    times: int | None  # None: until heal() (or another fail_always for the same calls)
    operation: str | None
    secret_id: str | None
    fresh: bool = True  # raise a copy of a stored SecretCacheError (it may be raised again)

    def matches(self, operation: str, ids: Sequence[str]) -> bool:
        return (self.operation in (None, operation)) and (self.secret_id is None or self.secret_id in ids)


class Call(NamedTuple):
    """One read as :attr:`InMemoryBackend.call_log` records it."""

    operation: str
    secret_ids: tuple[str, ...]
    version_id: str | None = None
    version_stage: str | None = None


def _aws_error(code: str, message: str, secret_id: str | None, status: int = 400) -> SecretCacheError:
    return error_for_code(code, message, secret_id=secret_id, http_status=status)


def _raised_or_value(outcome: Outcome, secret_id: str | None, *, fresh: bool) -> BaseException | SecretValue | None:
    """What one planned outcome does to this call: an exception to raise, a value to return, or None.

    ``fresh``: a stored SecretCacheError instance is raised as a copy, since re-raising one instance
    would grow its traceback; a scripted one-shot instance is raised as it is.
    """
    while callable(outcome) and not isinstance(outcome, type):
        outcome = outcome(secret_id)
    if outcome is None or isinstance(outcome, SecretValue):
        return outcome
    if isinstance(outcome, SecretCacheError):
        return outcome.copy() if fresh else outcome
    if isinstance(outcome, BaseException):
        return outcome
    if isinstance(outcome, type) and issubclass(outcome, BaseException):
        if issubclass(outcome, SecretCacheError):
            return outcome(f"injected {outcome.__name__} (secret {secret_id!r})", secret_id=secret_id)
        return outcome(f"injected {outcome.__name__}")
    if isinstance(outcome, int):
        return error_for_code(None, f"HTTP {outcome} (injected)", secret_id=secret_id, http_status=outcome)
    if not isinstance(outcome, str):
        raise TypeError(f"not a fault or an outcome: {type(outcome).__name__}")
    if outcome in CONNECTION_FAULTS:
        error = SecretUnavailableError(
            f"Secrets Manager unreachable reading secret {secret_id!r} ({CONNECTION_FAULTS[outcome]}, injected)",
            secret_id=secret_id,
        )
        # What the transport raised, as AwsBackend chains botocore's error (a boto-shaped client reads it).
        error.__cause__ = (ConnectionRefusedError if outcome == "conn" else TimeoutError)(CONNECTION_FAULTS[outcome])
        return error
    code, status, message = FAULTS.get(outcome, (outcome, 500 if "Internal" in outcome else 400, "injected"))
    return _aws_error(code, message, secret_id, status)


class InMemoryBackend:
    """A thread-safe, in-process Secrets Manager that behaves like AWS (see the module docstring).

    ``secrets`` seeds it: ``{name: value}``. ``latency`` is slept in every read (releasing the GIL);
    ``failure_latency``, when set, in a read that fails with an injected fault instead (a refusal is
    usually quicker than an answer). ``batch_page_size`` is how many values one BatchGetSecretValue page
    holds: lower it to exercise NextToken loops. ``deny_batch = True`` makes BatchGetSecretValue raise
    AccessDeniedException, as when IAM or an SCP denies it.

    Observing: ``calls`` counts reads by operation (``calls["GetSecretValue"]``), :meth:`count` by
    secret, ``call_log`` keeps the last ``call_log_size`` reads as :class:`Call` records (0: none, for
    long runs that measure memory), ``active`` is
    the number of reads in progress (held at a gate or not), and :meth:`wait_for_calls` /
    :meth:`wait_held` wait for reads to arrive. Steering: :meth:`script` answers the next reads of a
    secret, :meth:`fail_next` / :meth:`fail_always` inject faults, :meth:`hold` holds reads in flight,
    :meth:`heal` undoes all three.
    """

    def __init__(
        self,
        secrets: Mapping[str, str | bytes] | None = None,
        *,
        region: str = "us-east-1",
        account_id: str = "123456789012",
        latency: float = 0.0,
        failure_latency: float | None = None,
        batch_page_size: int = BATCH_LIMIT,
        call_log_size: int = 10_000,
    ) -> None:
        self.region = region
        self.account_id = account_id
        self.latency = latency
        self.failure_latency = failure_latency
        self.batch_page_size = batch_page_size
        self.deny_batch = False
        self.calls: Counter[str] = Counter()
        self.call_log: deque[Call] = deque(maxlen=call_log_size)
        self.active = 0
        """Reads in progress right now (held at a gate or not)."""
        self._secrets: dict[str, _Secret] = {}
        self._planned: list[_Planned] = []  # fail_next and script: used up in order, before the standing ones
        self._standing: list[_Planned] = []  # fail_always
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

    # -- scripts, faults, latency, gates ---------------------------------------------------------------

    def script(self, secret_id: str, *outcomes: Outcome, operation: str = GET) -> None:
        """Answer the next reads of ``secret_id``, one outcome each, in order, before any fault.

        An outcome is a fault to raise (as for :meth:`fail_next`; an exception instance is raised as it
        is, not copied), a :class:`SecretValue` returned as it is, None (the store answers), or a
        callable of the secret id returning one of these; it runs when the call is let through a gate.
        """
        with self._lock:
            self._planned += [_Planned(o, 1, operation, secret_id, fresh=False) for o in outcomes]

    def fail_next(self, fault: Fault, times: int = 1, *, operation: str | None = None,
                  secret_id: str | None = None) -> None:
        """Make the next ``times`` matching reads fail. ``fault``: a name from :data:`FAULT_NAMES`
        (``"throttle"``, ``"5xx"``, ``"denied"``, ``"conn"``, ``"timeout"``), an AWS error code
        (``"DecryptionFailure"``), an HTTP status (``503``), an exception (class or instance), or a
        callable of the secret id returning one. ``operation``: ``"GetSecretValue"``,
        ``"BatchGetSecretValue"`` or ``"DescribeSecret"`` (default every read); ``secret_id``: only
        calls for that id. One-shot faults and scripts are used up before any :meth:`fail_always`.
        """
        with self._lock:
            self._planned.append(_Planned(fault, times, operation, secret_id))

    def fail_always(self, fault: Fault, *, operation: str | None = None,
                    secret_id: str | None = None) -> None:
        """Like :meth:`fail_next`, until :meth:`heal`; replaces an earlier one for the same calls."""
        with self._lock:
            self._standing = [f for f in self._standing if (f.operation, f.secret_id) != (operation, secret_id)]
            self._standing.append(_Planned(fault, None, operation, secret_id))

    def heal(self) -> None:
        """Drop every script and injected fault, and open every gate."""
        with self._lock:
            self._planned.clear()
            self._standing.clear()
            gates, self._gates = self._gates, []
        for gate, _, _ in gates:
            gate.set()

    def hold(self, *, operation: str | None = None, secret_id: str | None = None) -> threading.Event:
        """Hold matching reads in flight until the returned event is set (see :meth:`wait_held`)."""
        gate = threading.Event()
        with self._lock:
            self._gates.append((gate, operation, secret_id))
        return gate

    # -- observing -----------------------------------------------------------------------------------

    def count(self, secret_id: str | None = None, *, operation: str = GET) -> int:
        """Calls of ``operation`` made so far; with ``secret_id``, those naming it (as asked: name or ARN),
        counted in :attr:`call_log` (so among the last ``call_log_size`` calls)."""
        with self._lock:
            if secret_id is None:
                return self.calls[operation]
            if self.call_log.maxlen == 0:
                raise ValueError("count(secret_id) reads the call log, and this backend keeps none")
            return sum(1 for c in self.call_log if c.operation == operation and secret_id in c.secret_ids)

    def wait_for_calls(self, n: int, *, active: bool = False, timeout: float = 10.0) -> None:
        """Block until ``n`` reads were made (``active``: are in progress right now); ``TimeoutError``
        otherwise."""
        def reached() -> bool:
            return (self.active if active else sum(self.calls.values())) >= n

        with self._changed:
            if not self._changed.wait_for(reached, timeout):
                raise TimeoutError(f"expected {n} {'active ' if active else ''}calls, saw "
                                   f"{sum(self.calls.values())} ({self.active} active)")

    def wait_held(self, n: int = 1, timeout: float = 10.0) -> None:
        """Block until ``n`` reads are waiting at a gate; raise ``TimeoutError`` otherwise."""
        with self._changed:
            if not self._changed.wait_for(lambda: self._held >= n, timeout):
                raise TimeoutError(f"expected {n} held calls, saw {self._held}")

    def reset_calls(self) -> None:
        """Zero the call counters and empty the call log."""
        with self._lock:
            self.calls.clear()
            self.call_log.clear()

    @contextmanager
    def _in_flight(self) -> Iterator[None]:
        with self._changed:
            self.active += 1
            self._changed.notify_all()
        try:
            yield
        finally:
            with self._changed:
                self.active -= 1
                self._changed.notify_all()

    def _enter(self, operation: str, ids: Sequence[str], version_id: str | None = None,
               version_stage: str | None = None) -> SecretValue | None:
        """Count the call, then apply gate, latency and any planned outcome, as a request in flight would.

        Returns a scripted value to answer with, or None for the store's answer.
        """
        with self._changed:
            self.calls[operation] += 1
            self.call_log.append(Call(operation, tuple(ids), version_id, version_stage))
            self._changed.notify_all()
            planned = next((p for p in self._planned if p.matches(operation, ids)), None)
            if planned is not None:
                assert planned.times is not None
                planned.times -= 1
                if planned.times <= 0:
                    self._planned.remove(planned)
            else:
                planned = next((p for p in self._standing if p.matches(operation, ids)), None)
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
        answer = None
        if planned is not None:
            answer = _raised_or_value(planned.outcome, ids[0] if len(ids) == 1 else None, fresh=planned.fresh)
        failing = isinstance(answer, BaseException)
        delay = self.failure_latency if failing and self.failure_latency is not None else self.latency
        if delay:
            time.sleep(delay)
        if isinstance(answer, BaseException):
            raise answer
        if operation == BATCH and self.deny_batch:
            raise _aws_error("AccessDeniedException", "User is not authorized to perform: "
                             "secretsmanager:BatchGetSecretValue", None)
        return answer

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
        with self._in_flight():
            scripted = self._enter(GET, (secret_id,), version_id, version_stage)
            return scripted if scripted is not None else self._read(secret_id, version_id, version_stage)

    def batch_get_secret_values(
        self, secret_ids: Sequence[str]
    ) -> tuple[list[SecretValue], dict[str, SecretCacheError]]:
        """BatchGetSecretValue as AwsBackend runs it: chunks of 20, each read in pages (each page a call)."""
        values: list[SecretValue] = []
        errors: dict[str, SecretCacheError] = {}
        unique = list(dict.fromkeys(secret_ids))
        with self._in_flight():
            for start in range(0, len(unique), BATCH_LIMIT):
                chunk = unique[start:start + BATCH_LIMIT]
                self._enter_batch(chunk)
                found: list[SecretValue] = []
                for secret_id in chunk:
                    try:
                        found.append(self._read(secret_id, None, None))
                    except SecretCacheError as e:
                        errors[secret_id] = e
                # Each further page of the chunk is one more call (AwsBackend follows NextToken).
                for _ in range(1, -(-len(found) // max(1, self.batch_page_size))):
                    self._enter_batch(chunk)
                values += found
        return values, errors

    def _enter_batch(self, chunk: Sequence[str]) -> None:
        if self._enter(BATCH, chunk) is not None:
            raise TypeError("a scripted SecretValue answers GetSecretValue only")

    def describe_secret(self, secret_id: str) -> dict[str, Any]:
        """DescribeSecret, a read like the others (counted, held, delayed, faulted as ``"DescribeSecret"``):
        ``Name``, ``ARN``, ``VersionIdsToStages`` (labelled versions), ``CreatedDate``, and ``DeletedDate``
        when the secret is marked for deletion. No SecretsBackend calls it; boto-shaped clients over this
        store (such as the benchmarks') do."""
        with self._in_flight():
            if self._enter(DESCRIBE, (secret_id,)) is not None:
                raise TypeError("a scripted SecretValue answers GetSecretValue only")
            with self._lock:
                secret = self._find(secret_id)
                first = next(iter(secret.versions.values()), None)
                created = first.created if first is not None else datetime.now(timezone.utc)
                answer: dict[str, Any] = {
                    "ARN": secret.arn, "Name": secret.name, "CreatedDate": created,
                    "VersionIdsToStages": {vid: list(v.stages) for vid, v in secret.versions.items() if v.stages},
                }
                if secret.deleted:
                    answer["DeletedDate"] = datetime.now(timezone.utc)
                return answer
