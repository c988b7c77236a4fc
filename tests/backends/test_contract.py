"""One contract, four backends: InMemoryBackend, AwsBackend on the benchmarks' boto-shaped client over an
InMemoryBackend (``devtools.fake_client``), AwsBackend on moto in process, AwsBackend on moto's HTTP server.
Every scenario runs against each and expects the same values, labels, error classes and ``.code``s, so
a test written against InMemoryBackend holds against AWS, and so do the benchmarks' figures.

A small *store driver* per backend does the writes (boto3 calls for moto, methods for InMemoryBackend)
and the fault injection (botocore ``before-send`` hook / InMemoryBackend faults: one set of fault names).
The backend kind is a module-scoped parameter, so pytest runs each kind's tests together and the
in-process mock and the HTTP server never share moto's state at the same time.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from devtools.moto_helpers import count_calls, inject, moto_server, reset_moto_server
from secretcache import SecretCache
from secretcache.backends.aws import AwsBackend, map_botocore_error
from secretcache.errors import (
    SecretAccessDeniedError,
    SecretCacheError,
    SecretDeletedError,
    SecretNotFoundError,
    SecretThrottledError,
    SecretUnavailableError,
)
from secretcache.testing import InMemoryBackend
from tests.canary import CANARY, canary_value

REGION, ACCOUNT = "us-east-1", "123456789012"
PARTIAL = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:"


class MemoryStore:
    """Drives an InMemoryBackend; the backend under test is that InMemoryBackend."""

    def __init__(self) -> None:
        self.memory = InMemoryBackend(region=REGION, account_id=ACCOUNT)
        self.backend: InMemoryBackend | AwsBackend = self.memory

    def create(self, name: str, value: str | bytes) -> str:
        self.memory.put_secret(name, value)
        return self.memory.arn(name)

    def put(self, name: str, value: str | bytes, stages: tuple[str, ...] = ("AWSCURRENT",)) -> str:
        return self.memory.put_secret(name, value, stages=stages)

    def move(self, name: str, stage: str, move_to: str | None, remove_from: str | None) -> None:
        self.memory.update_version_stage(name, stage, move_to_version_id=move_to,
                                         remove_from_version_id=remove_from)

    def stages(self, name: str) -> dict[str, tuple[str, ...]]:
        return {vid: tuple(sorted(s)) for vid, s in self.memory.version_stages(name).items()}

    def delete(self, name: str, force: bool = False) -> None:
        self.memory.delete_secret(name, force=force)

    def restore(self, name: str) -> None:
        self.memory.restore_secret(name)

    def fault(self, *steps: str, op: str = "GetSecretValue") -> None:
        for step in steps:
            self.memory.fail_next(step, operation=op)

    def deny_batch(self) -> None:
        self.memory.deny_batch = True

    def calls(self, op: str) -> int:
        return self.memory.calls[op]

    def set_batch_page_size(self, size: int, monkeypatch: pytest.MonkeyPatch) -> None:
        self.memory.batch_page_size = size


class AdapterStore(MemoryStore):
    """The same InMemoryBackend read through the benchmarks' boto-shaped client: the backend under test
    is an AwsBackend on ``devtools.fake_client.FakeSecretsManager``, as the benchmarks run secretcache.
    Calls are counted by that client, as the benchmarks count them."""

    def __init__(self) -> None:
        from devtools.fake_client import FakeSecretsManager

        super().__init__()
        self.client = FakeSecretsManager(self.memory)
        self.backend = AwsBackend(client=self.client)  # type: ignore[arg-type]

    def calls(self, op: str) -> int:
        return self.client.calls.snapshot().get(op, 0)


class BotoStore:
    """Drives moto through boto3; the backend under test is an AwsBackend with one attempt per call."""

    def __init__(self, endpoint: str | None) -> None:
        import boto3
        from botocore.config import Config

        one_attempt = Config(retries={"mode": "standard", "total_max_attempts": 1})
        self.admin = boto3.client("secretsmanager", region_name=REGION, endpoint_url=endpoint)
        if endpoint is None:  # in process: a client handed to the backend, as users of client= do
            client = boto3.client("secretsmanager", region_name=REGION, config=one_attempt)
            self.backend = AwsBackend(client=client)
        else:  # over HTTP: the backend builds its own client
            self.backend = AwsBackend(region_name=REGION, endpoint_url=endpoint, config=one_attempt)
        self._calls = {op: count_calls(self.backend.client, op)
                       for op in ("GetSecretValue", "BatchGetSecretValue")}

    def _admin(self, method: str, name: str, **kwargs: Any) -> Any:
        from botocore.exceptions import ClientError

        try:
            return getattr(self.admin, method)(SecretId=name, **kwargs)
        except ClientError as e:
            raise map_botocore_error(e, name) from e

    def create(self, name: str, value: str | bytes) -> str:
        field = "SecretBinary" if isinstance(value, bytes) else "SecretString"
        return str(self.admin.create_secret(Name=name, **{field: value})["ARN"])

    def put(self, name: str, value: str | bytes, stages: tuple[str, ...] = ("AWSCURRENT",)) -> str:
        field = "SecretBinary" if isinstance(value, bytes) else "SecretString"
        answer = self._admin("put_secret_value", name, VersionStages=list(stages), **{field: value})
        return str(answer["VersionId"])

    def move(self, name: str, stage: str, move_to: str | None, remove_from: str | None) -> None:
        kwargs = {k: v for k, v in (("MoveToVersionId", move_to), ("RemoveFromVersionId", remove_from)) if v}
        self._admin("update_secret_version_stage", name, VersionStage=stage, **kwargs)

    def stages(self, name: str) -> dict[str, tuple[str, ...]]:
        described = self._admin("describe_secret", name)["VersionIdsToStages"]
        return {vid: tuple(sorted(s)) for vid, s in described.items() if s}  # moto lists unlabelled ones (G7)

    def delete(self, name: str, force: bool = False) -> None:
        if force:
            self._admin("delete_secret", name, ForceDeleteWithoutRecovery=True)
        else:
            self._admin("delete_secret", name, RecoveryWindowInDays=7)

    def restore(self, name: str) -> None:
        self._admin("restore_secret", name)

    def fault(self, *steps: str, op: str = "GetSecretValue") -> None:
        inject(self.backend.client, *steps, op=op)

    def deny_batch(self) -> None:
        inject(self.backend.client, op="BatchGetSecretValue", then="denied")

    def calls(self, op: str) -> int:
        return len(self._calls[op])

    def set_batch_page_size(self, size: int, monkeypatch: pytest.MonkeyPatch) -> None:
        import moto.secretsmanager.models

        monkeypatch.setattr(moto.secretsmanager.models, "MAX_RESULTS_DEFAULT", size)


Store = MemoryStore | AdapterStore | BotoStore


KINDS = ["memory", "adapter", "moto", pytest.param("server", marks=pytest.mark.integration)]


@pytest.fixture(scope="module", params=KINDS)
def kind(request: pytest.FixtureRequest) -> Iterator[tuple[str, str | None]]:
    if request.param == "server":
        with moto_server() as endpoint:
            yield "server", endpoint
    else:
        yield request.param, None


@pytest.fixture
def store(kind: tuple[str, str | None]) -> Iterator[Store]:
    name, endpoint = kind
    if name == "memory":
        yield MemoryStore()
    elif name == "adapter":
        yield AdapterStore()
    elif name == "moto":
        from moto import mock_aws

        with mock_aws():
            yield BotoStore(None)
    else:
        assert endpoint is not None
        reset_moto_server(endpoint)
        yield BotoStore(endpoint)


def unique(prefix: str = "app/db") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# -- reads -----------------------------------------------------------------------------------------

def test_name_full_arn_and_partial_arn_read_the_same_version(store: Store) -> None:
    name = unique()
    arn = store.create(name, "v1")
    by_name = store.backend.get_secret_value(name)
    assert by_name.secret_string == "v1"
    assert by_name.name == name
    assert by_name.arn == arn
    assert by_name.version_stages == ("AWSCURRENT",)
    assert by_name.created_date is not None
    for secret_id in (arn, PARTIAL + name):
        value = store.backend.get_secret_value(secret_id)
        seen = (value.name, value.arn, value.version_id, value.secret_string)
        assert seen == (name, arn, by_name.version_id, "v1")


def test_version_id_and_version_stage_select_versions(store: Store) -> None:
    name = unique()
    store.create(name, "v1")
    old = store.backend.get_secret_value(name).version_id
    new = store.put(name, "v2")
    assert store.backend.get_secret_value(name, version_id=old).secret_string == "v1"
    assert store.backend.get_secret_value(name, version_id=new).secret_string == "v2"
    assert store.backend.get_secret_value(name, version_stage="AWSPREVIOUS").version_id == old
    both = store.backend.get_secret_value(name, version_id=new, version_stage="AWSCURRENT")
    assert both.secret_string == "v2"


def test_binary_values_come_back_as_the_same_bytes(store: Store) -> None:
    name, blob = unique(), bytes(range(256)) * 4
    store.create(name, blob)
    value = store.backend.get_secret_value(name)
    assert value.secret_binary == blob
    assert value.secret_string is None


# -- labels ----------------------------------------------------------------------------------------

def test_putting_awspending_leaves_awscurrent_alone(store: Store) -> None:
    name = unique()
    store.create(name, "current")
    pending = store.put(name, "pending", ("AWSPENDING",))
    assert store.backend.get_secret_value(name).secret_string == "current"
    assert store.backend.get_secret_value(name, version_stage="AWSPENDING").version_id == pending
    assert store.stages(name)[pending] == ("AWSPENDING",)


def test_plain_put_moves_awscurrent_and_marks_the_old_version_awsprevious(store: Store) -> None:
    name = unique()
    store.create(name, "v1")
    v1 = store.backend.get_secret_value(name).version_id
    v2 = store.put(name, "v2")
    v3 = store.put(name, "v3")
    assert store.stages(name) == {v2: ("AWSPREVIOUS",), v3: ("AWSCURRENT",)}
    assert v1 not in store.stages(name)


def test_rotation_moves_awscurrent_and_plain_reads_follow_it(store: Store) -> None:
    """createSecret then finishSecret, as AWS's rotation functions do (moto needs the G1 fix)."""
    name = unique()
    store.create(name, "old-password")
    old = store.backend.get_secret_value(name).version_id
    new = store.put(name, "new-password", ("AWSPENDING",))
    store.move(name, "AWSCURRENT", new, old)
    assert store.stages(name) == {old: ("AWSPREVIOUS",), new: ("AWSCURRENT", "AWSPENDING")}
    current = store.backend.get_secret_value(name)
    assert (current.version_id, current.secret_string) == (new, "new-password")
    assert store.backend.get_secret_value(name, version_stage="AWSPREVIOUS").secret_string == "old-password"
    values, errors = store.backend.batch_get_secret_values([name])
    assert [v.secret_string for v in values] == ["new-password"]
    assert errors == {}


def test_moving_awscurrent_without_remove_from_version_id_is_refused(store: Store) -> None:
    name = unique()
    store.create(name, "v1")
    pending = store.put(name, "v2", ("AWSPENDING",))
    with pytest.raises(SecretCacheError) as info:
        store.move(name, "AWSCURRENT", pending, None)
    assert type(info.value) is SecretCacheError
    assert info.value.code == "InvalidParameterException"
    assert store.backend.get_secret_value(name).secret_string == "v1"


# -- batch -----------------------------------------------------------------------------------------

def test_batch_of_more_than_20_ids_follows_chunks_and_next_token(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = [unique(f"batch/{i:02d}") for i in range(43)]
    for name in names:
        store.create(name, f"value-of-{name}")
    missing = [unique("batch/missing"), unique("batch/missing")]
    store.set_batch_page_size(8, monkeypatch)  # 3 chunks (20, 20, 3+2 missing): 3 + 3 + 1 pages
    values, errors = store.backend.batch_get_secret_values(names + missing)
    assert sorted((v.name, v.secret_string) for v in values) == sorted((n, f"value-of-{n}") for n in names)
    assert all(v.version_stages == ("AWSCURRENT",) for v in values)
    assert set(errors) == set(missing)
    kinds = {(type(e), e.code) for e in errors.values()}
    assert kinds == {(SecretNotFoundError, "ResourceNotFoundException")}
    assert errors[missing[0]].secret_id == missing[0]
    assert store.calls("BatchGetSecretValue") == 7
    assert store.calls("GetSecretValue") == 0


def test_batch_reports_a_secret_marked_for_deletion_by_id(store: Store) -> None:
    live, doomed = unique(), unique()
    store.create(live, "live")
    store.create(doomed, "doomed")
    store.delete(doomed)
    values, errors = store.backend.batch_get_secret_values([live, doomed])
    assert [v.name for v in values] == [live]
    assert type(errors[doomed]) is SecretDeletedError
    assert errors[doomed].code == "InvalidRequestException"


def test_denied_batch_raises_access_denied_and_the_cache_falls_back_per_secret(store: Store) -> None:
    names = [unique() for _ in range(3)]
    for name in names:
        store.create(name, f"v-{name}")
    store.deny_batch()
    with pytest.raises(SecretAccessDeniedError) as info:
        store.backend.batch_get_secret_values(names)
    assert info.value.code == "AccessDeniedException"
    with SecretCache(store.backend) as cache:
        assert cache.prefetch(names) == {}
        assert [cache.get_secret_string(n) for n in names] == [f"v-{n}" for n in names]
    assert store.calls("BatchGetSecretValue") == 2
    assert store.calls("GetSecretValue") == 3


# -- errors ----------------------------------------------------------------------------------------

def test_missing_secret_version_and_stage_are_not_found(store: Store) -> None:
    name = unique()
    arn = store.create(name, "v1")
    for kwargs in ({"secret_id": unique("nope")}, {"secret_id": arn[:-6] + "ZZZZZZ"},
                   {"secret_id": name, "version_id": str(uuid.uuid4())},
                   {"secret_id": name, "version_stage": "AWSPENDING"}):
        with pytest.raises(SecretNotFoundError) as info:
            store.backend.get_secret_value(**kwargs)
        assert info.value.code == "ResourceNotFoundException", kwargs
        assert info.value.secret_id == kwargs["secret_id"]


def test_a_stage_not_on_the_given_version_is_not_found(store: Store) -> None:
    name = unique()
    store.create(name, "v1")
    version = store.backend.get_secret_value(name).version_id
    with pytest.raises(SecretNotFoundError) as info:
        store.backend.get_secret_value(name, version_id=version, version_stage="AWSPREVIOUS")
    assert info.value.code == "InvalidRequestException"


def test_a_malformed_version_id_is_a_permanent_request_error(store: Store) -> None:
    name = unique()
    store.create(name, "v1")
    with pytest.raises(SecretCacheError) as info:
        store.backend.get_secret_value(name, version_id="short")
    assert type(info.value) is SecretCacheError
    assert info.value.code is None


def test_marked_for_deletion_is_deleted_until_restored_and_gone_when_forced(store: Store) -> None:
    name = unique()
    store.create(name, "v1")
    store.delete(name)
    with pytest.raises(SecretDeletedError) as info:
        store.backend.get_secret_value(name)
    assert info.value.code == "InvalidRequestException"
    store.restore(name)
    assert store.backend.get_secret_value(name).secret_string == "v1"
    store.delete(name, force=True)
    with pytest.raises(SecretNotFoundError):
        store.backend.get_secret_value(name)


def test_access_denied_is_typed(store: Store) -> None:
    name = unique()
    store.create(name, "v1")
    store.fault("denied")
    with pytest.raises(SecretAccessDeniedError) as info:
        store.backend.get_secret_value(name)
    assert info.value.code == "AccessDeniedException"
    assert info.value.secret_id == name
    assert store.backend.get_secret_value(name).secret_string == "v1"


@pytest.mark.parametrize(("step", "error", "code"), [
    ("throttle", SecretThrottledError, "ThrottlingException"),
    ("5xx", SecretUnavailableError, "InternalServiceError"),
    ("conn", SecretUnavailableError, None),
    ("timeout", SecretUnavailableError, None),
])
def test_transient_faults_are_unavailable_errors_and_pass(
    store: Store, step: str, error: type, code: str | None
) -> None:
    name = unique()
    store.create(name, "v1")
    store.fault(step)
    with pytest.raises(SecretUnavailableError) as info:
        store.backend.get_secret_value(name)
    assert type(info.value) is error
    assert info.value.code == code
    assert info.value.secret_id == name
    assert store.backend.get_secret_value(name).secret_string == "v1"
    assert store.calls("GetSecretValue") == 2


def test_transient_fault_on_the_batch_call_raises_it_whole(store: Store) -> None:
    names = [unique(), unique()]
    for name in names:
        store.create(name, "v")
    store.fault("throttle", op="BatchGetSecretValue")
    with pytest.raises(SecretThrottledError):
        store.backend.batch_get_secret_values(names)
    values, errors = store.backend.batch_get_secret_values(names)
    assert len(values) == 2
    assert errors == {}


def test_no_error_message_or_repr_contains_the_value(store: Store) -> None:
    name, secret = unique(), canary_value("contract")
    store.create(name, secret)
    texts = [repr(store.backend.get_secret_value(name)), str(store.backend.get_secret_value(name))]
    version = store.backend.get_secret_value(name).version_id
    for step in ("denied", "throttle", "5xx", "conn"):
        store.fault(step)
        with pytest.raises(SecretCacheError) as info:
            store.backend.get_secret_value(name)
        texts += [str(info.value), repr(info.value)]
    for kwargs in ({"version_stage": "AWSPENDING"}, {"version_id": version, "version_stage": "AWSPREVIOUS"}):
        with pytest.raises(SecretCacheError) as info:
            store.backend.get_secret_value(name, **kwargs)
        texts += [str(info.value), repr(info.value)]
    assert not [t for t in texts if CANARY in t or secret in t]
