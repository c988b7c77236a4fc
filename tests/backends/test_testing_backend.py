"""InMemoryBackend beyond the shared contract: AWS's label rules in detail, deletion, limits, faults,
gates, latency and call counts."""

from __future__ import annotations

import re
import threading
from typing import Any

import pytest

import secretcache.backends.memory
from secretcache import SecretCache
from secretcache.errors import (
    SecretAccessDeniedError,
    SecretCacheError,
    SecretDecryptionError,
    SecretDeletedError,
    SecretFormatError,
    SecretNotFoundError,
    SecretThrottledError,
    SecretUnavailableError,
)
from secretcache.model import SecretValue
from secretcache.testing import (
    CONNECTION_FAULTS,
    FAULT_NAMES,
    Call,
    InMemoryBackend,
    patch_moto_staging_labels,
)
from tests.fixtures.fix_canary import CANARY, canary_value


def stages(backend: InMemoryBackend, name: str) -> dict[str, tuple[str, ...]]:
    return {vid: tuple(sorted(s)) for vid, s in backend.version_stages(name).items()}


# -- the store ---------------------------------------------------------------------------------------

def test_seeded_secrets_have_aws_shaped_arns_and_resolve_by_every_id_form() -> None:
    backend = InMemoryBackend({"app/db": "s3cret", "blob": b"\x00\x01"})
    arn = backend.arn("app/db")
    assert re.fullmatch(r"arn:aws:secretsmanager:us-east-1:123456789012:secret:app/db-[A-Za-z0-9]{6}", arn)
    for secret_id in ("app/db", arn, arn[:-7]):
        assert backend.get_secret_value(secret_id).secret_string == "s3cret"
    assert backend.get_secret_value("blob").secret_binary == b"\x00\x01"
    wrong_ids = (arn[:-6] + "ZZZZZZ", arn.replace("us-east-1", "us-west-2"), arn[:-7].replace("1234", "9999"))
    for wrong in wrong_ids:
        with pytest.raises(SecretNotFoundError):
            backend.get_secret_value(wrong)


def test_the_first_version_is_awscurrent_whatever_stages_are_asked() -> None:
    backend = InMemoryBackend()
    first = backend.put_secret("s", "v1", stages=("AWSPENDING",))
    assert stages(backend, "s") == {first: ("AWSCURRENT", "AWSPENDING")}


def test_a_plain_put_moves_only_awscurrent_and_awsprevious() -> None:
    """AWS keeps other labels where they are (moto drops them: gap G6)."""
    backend = InMemoryBackend()
    v1 = backend.put_secret("s", "v1", stages=("AWSCURRENT", "blue"))
    v2 = backend.put_secret("s", "v2")
    v3 = backend.put_secret("s", "v3")
    assert stages(backend, "s") == {v1: ("blue",), v2: ("AWSPREVIOUS",), v3: ("AWSCURRENT",)}


def test_a_label_put_on_a_new_version_leaves_the_old_one() -> None:
    backend = InMemoryBackend({"s": "v1"})
    p1 = backend.put_secret("s", "p1", stages=("AWSPENDING",))
    p2 = backend.put_secret("s", "p2", stages=("AWSPENDING",))
    assert p1 not in backend.version_stages("s")  # no label left: deprecated, hidden as AWS hides it
    assert backend.get_secret_value("s", version_stage="AWSPENDING").version_id == p2
    assert backend.get_secret_value("s", version_id=p1).secret_string == "p1"  # still readable by id


def test_a_client_request_token_makes_puts_idempotent() -> None:
    backend = InMemoryBackend({"s": "v1"})
    token = "0" * 32
    assert backend.put_secret("s", "v2", version_id=token) == token
    assert backend.put_secret("s", "v2", version_id=token) == token
    with pytest.raises(SecretCacheError) as info:
        backend.put_secret("s", "other", version_id=token)
    assert info.value.code == "ResourceExistsException"


def test_rotate_leaves_new_current_with_pending_and_the_old_one_previous() -> None:
    backend = InMemoryBackend({"s": "v1"})
    v1 = backend.get_secret_value("s").version_id
    v2 = backend.rotate("s", "v2")
    v3 = backend.rotate("s", "v3")
    assert stages(backend, "s") == {v2: ("AWSPREVIOUS",), v3: ("AWSCURRENT", "AWSPENDING")}
    assert v1 not in backend.version_stages("s")
    assert backend.get_secret_value("s").secret_string == "v3"
    assert backend.get_secret_value("s", version_stage="AWSPREVIOUS").secret_string == "v2"


def test_update_version_stage_follows_aws_rules_and_errors() -> None:
    backend = InMemoryBackend({"s": "v1"})
    v1 = backend.get_secret_value("s").version_id
    v2 = backend.put_secret("s", "v2", stages=("AWSPENDING",))
    bad = [
        {"stage": "AWSCURRENT", "move_to_version_id": v2},  # attached to v1: must name it
        {"stage": "AWSCURRENT", "move_to_version_id": v2, "remove_from_version_id": v2},  # v2 lacks it
        {"stage": "AWSCURRENT", "move_to_version_id": "f" * 32, "remove_from_version_id": v1},
        {"stage": "AWSPENDING", "move_to_version_id": v1},  # any label, not only AWSCURRENT
    ]
    for kwargs in bad:
        with pytest.raises(SecretCacheError) as info:
            backend.update_version_stage("s", **kwargs)
        assert type(info.value) is SecretCacheError
        assert info.value.code == "InvalidParameterException", kwargs
    assert stages(backend, "s") == {v1: ("AWSCURRENT",), v2: ("AWSPENDING",)}
    backend.update_version_stage("s", "AWSPENDING", remove_from_version_id=v2)  # detach only
    backend.update_version_stage("s", "blue", move_to_version_id=v2)  # a new custom label
    backend.update_version_stage("s", "AWSCURRENT", move_to_version_id=v2, remove_from_version_id=v1)
    assert stages(backend, "s") == {v1: ("AWSPREVIOUS",), v2: ("AWSCURRENT", "blue")}
    with pytest.raises(SecretNotFoundError):
        backend.update_version_stage("nope", "AWSCURRENT")


def test_deletion_is_recoverable_until_forced() -> None:
    backend = InMemoryBackend({"s": "v1"})
    arn = backend.arn("s")
    backend.delete_secret("s")
    for call in (lambda: backend.get_secret_value("s"), lambda: backend.put_secret("s", "v2"),
                 lambda: backend.delete_secret("s"), lambda: backend.rotate("s", "v2")):
        with pytest.raises(SecretDeletedError, match="marked for deletion"):
            call()
    backend.restore_secret(arn)
    assert backend.get_secret_value(arn).secret_string == "v1"
    backend.delete_secret("s", force=True)
    with pytest.raises(SecretNotFoundError):
        backend.get_secret_value(arn)
    backend.put_secret("s", "reborn")  # a new secret of the same name: a new ARN suffix
    assert backend.get_secret_value("s").secret_string == "reborn"
    assert backend.arn("s") != arn


def test_values_over_65536_bytes_are_refused_without_quoting_them() -> None:
    backend = InMemoryBackend()
    backend.put_secret("max", "x" * 65_536)
    backend.put_secret("max-bin", b"\xff" * 65_536)
    big = canary_value("big") + "x" * 65_536
    for value in (big, big.encode()):
        with pytest.raises(SecretFormatError) as info:
            backend.put_secret("big", value)
        assert CANARY not in str(info.value)
    with pytest.raises(TypeError):
        backend.put_secret("s", 42)  # type: ignore[arg-type]


def test_repr_shows_no_values() -> None:
    secret = canary_value("repr")
    backend = InMemoryBackend({"s": secret})
    assert CANARY not in repr(backend)
    assert CANARY not in repr(backend.get_secret_value("s"))


# -- faults -------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("fault", "expected", "code"), [
    ("throttle", SecretThrottledError, "ThrottlingException"),
    ("ThrottlingException", SecretThrottledError, "ThrottlingException"),
    ("5xx", SecretUnavailableError, "InternalServiceError"),
    ("conn", SecretUnavailableError, None),
    ("timeout", SecretUnavailableError, None),
    (503, SecretUnavailableError, None),
    ("denied", SecretAccessDeniedError, "AccessDeniedException"),
    ("DecryptionFailure", SecretDecryptionError, "DecryptionFailure"),
    (SecretDeletedError, SecretDeletedError, None),
    (SecretThrottledError("slow down", secret_id="s", code="ThrottlingException"), SecretThrottledError,
     "ThrottlingException"),
])
def test_faults_raise_the_typed_error_aws_backend_would(fault: Any, expected: type, code: str | None) -> None:
    backend = InMemoryBackend({"s": "v1"})
    backend.fail_next(fault, times=2)
    raised = []
    for _ in range(2):
        with pytest.raises(SecretCacheError) as info:
            backend.get_secret_value("s")
        assert type(info.value) is expected
        assert info.value.code == code
        assert info.value.secret_id == "s"
        raised.append(info.value)
    assert raised[0] is not raised[1]  # a fresh exception each time
    assert backend.get_secret_value("s").secret_string == "v1"
    assert backend.calls["GetSecretValue"] == 3


def test_an_untyped_exception_is_raised_as_given() -> None:
    backend = InMemoryBackend({"s": "v1"})
    boom = RuntimeError("boom")
    backend.fail_next(boom)
    with pytest.raises(RuntimeError) as info:
        backend.get_secret_value("s")
    assert info.value is boom


def test_faults_match_by_operation_and_secret_id() -> None:
    backend = InMemoryBackend({"a": "1", "b": "2"})
    backend.fail_next("throttle", operation="BatchGetSecretValue")
    backend.fail_next("5xx", secret_id="b")
    assert backend.get_secret_value("a").secret_string == "1"
    with pytest.raises(SecretUnavailableError):
        backend.get_secret_value("b")
    with pytest.raises(SecretThrottledError):
        backend.batch_get_secret_values(["a", "b"])
    assert len(backend.batch_get_secret_values(["a", "b"])[0]) == 2


def test_fail_always_lasts_until_heal() -> None:
    backend = InMemoryBackend({"s": "v1"})
    backend.fail_always("5xx")
    for _ in range(5):
        with pytest.raises(SecretUnavailableError):
            backend.get_secret_value("s")
    backend.heal()
    assert backend.get_secret_value("s").secret_string == "v1"


def test_a_denied_batch_raises_and_the_cache_falls_back_per_secret() -> None:
    backend = InMemoryBackend({"a": "1", "b": "2"})
    backend.deny_batch = True
    with pytest.raises(SecretAccessDeniedError):
        backend.batch_get_secret_values(["a"])
    with SecretCache(backend) as cache:
        assert cache.prefetch(["a", "b"]) == {}
        assert cache.get_secret_string("b") == "2"
    assert backend.calls == {"BatchGetSecretValue": 2, "GetSecretValue": 2}


def test_calls_are_counted_per_api_call_and_reset() -> None:
    backend = InMemoryBackend({f"s{i}": "v" for i in range(45)}, batch_page_size=10)
    backend.get_secret_value("s0")
    values, errors = backend.batch_get_secret_values([f"s{i}" for i in range(45)] + ["s0"])
    assert (len(values), errors) == (45, {})
    assert backend.calls == {"GetSecretValue": 1, "BatchGetSecretValue": 2 + 2 + 1}
    backend.reset_calls()
    assert sum(backend.calls.values()) == 0


# -- gates, latency, threads ------------------------------------------------------------------------------

def test_a_gate_holds_one_secret_in_flight_while_others_are_served() -> None:
    backend = InMemoryBackend({"held": "h", "free": "f"})
    gate = backend.hold(secret_id="held")
    result: list[str | None] = []
    reader = threading.Thread(target=lambda: result.append(backend.get_secret_value("held").secret_string))
    reader.start()
    backend.wait_held(1)
    assert backend.get_secret_value("free").secret_string == "f"
    backend.put_secret("held", "h2")  # the store stays writable while a read is in flight
    assert result == []
    gate.set()
    reader.join(10)
    assert result == ["h2"]  # the held request reads the store when it is let through


def test_heal_opens_every_gate() -> None:
    backend = InMemoryBackend({"s": "v"})
    backend.hold()
    reader = threading.Thread(target=backend.get_secret_value, args=("s",))
    reader.start()
    backend.wait_held(1)
    backend.heal()
    reader.join(10)
    assert not reader.is_alive()
    with pytest.raises(TimeoutError):
        backend.wait_held(1, timeout=0.01)


def test_latency_is_slept_outside_the_lock(monkeypatch: pytest.MonkeyPatch) -> None:
    backend = InMemoryBackend({"s": "v"}, latency=0.25)
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        assert backend._lock.acquire(blocking=False), "latency slept while holding the store lock"
        backend._lock.release()
        slept.append(seconds)

    monkeypatch.setattr(secretcache.backends.memory.time, "sleep", sleep)
    backend.get_secret_value("s")
    backend.batch_get_secret_values(["s"])
    assert slept == [0.25, 0.25]


def test_concurrent_rotations_and_reads_keep_labels_consistent() -> None:
    backend = InMemoryBackend({"s": "0"})
    barrier = threading.Barrier(6)
    seen: list[tuple[str | None, str | None, tuple[str, ...]]] = []
    failures: list[BaseException] = []

    def rotate(n: int) -> None:
        barrier.wait()
        for i in range(50):
            backend.rotate("s", f"value-{n}-{i}")

    def read(_: int) -> None:
        barrier.wait()
        for _ in range(200):
            v = backend.get_secret_value("s")
            seen.append((v.version_id, v.secret_string, v.version_stages))

    def run(body: Any, n: int) -> None:
        try:
            body(n)
        except BaseException as e:
            failures.append(e)

    threads = [threading.Thread(target=run, args=(rotate if n < 2 else read, n)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert failures == []
    labels = [s for stage_list in backend.version_stages("s").values() for s in stage_list]
    assert sorted(labels) == ["AWSCURRENT", "AWSPENDING", "AWSPREVIOUS"]
    assert all("AWSCURRENT" in stages_ for _, _, stages_ in seen)
    by_version: dict[str | None, str | None] = {}
    for version_id, value, _ in seen:
        assert by_version.setdefault(version_id, value) == value  # a version never changes value


# -- scripts, the call log, active reads --------------------------------------------------------------------

def test_a_script_answers_the_next_reads_in_order_before_a_standing_fault() -> None:
    backend = InMemoryBackend({"s": "v1"})
    backend.fail_always("5xx", secret_id="s")
    boom = SecretAccessDeniedError("denied (secret 's')", secret_id="s", code="AccessDeniedException")
    seen: list[str | None] = []
    backend.script("s", boom, lambda sid: seen.append(sid), SecretValue("s", secret_string="scripted"))
    with pytest.raises(SecretAccessDeniedError) as info:
        backend.get_secret_value("s")
    assert info.value is boom  # a one-shot instance is raised as given
    assert backend.get_secret_value("s").secret_string == "v1"  # the callable observed; the store answered
    assert seen == ["s"]
    assert backend.get_secret_value("s").secret_string == "scripted"
    with pytest.raises(SecretUnavailableError):  # the script ran out: the standing fault again
        backend.get_secret_value("s")


def test_a_later_fail_always_for_the_same_calls_replaces_the_earlier_one() -> None:
    backend = InMemoryBackend({"s": "v1"})
    backend.fail_always("denied", secret_id="s")
    backend.fail_always(lambda sid: SecretThrottledError(f"slow (secret {sid!r})", secret_id=sid), secret_id="s")
    with pytest.raises(SecretThrottledError):
        backend.get_secret_value("s")
    backend.heal()
    assert backend.get_secret_value("s").secret_string == "v1"


def test_the_call_log_counts_by_secret_and_active_reads_are_waited_for() -> None:
    backend = InMemoryBackend({"a": "1", "b": "2"})
    gate = backend.hold(operation="GetSecretValue", secret_id="a")
    reader = threading.Thread(target=backend.get_secret_value, args=("a",), kwargs={"version_stage": "AWSCURRENT"})
    reader.start()
    backend.wait_for_calls(1, active=True)
    assert backend.active == 1
    backend.batch_get_secret_values(["a", "b"])
    gate.set()
    reader.join(10)
    backend.wait_for_calls(2)
    assert backend.active == 0
    assert backend.count("a") == 1
    assert backend.count("a", operation="BatchGetSecretValue") == 1
    assert list(backend.call_log) == [Call("GetSecretValue", ("a",), None, "AWSCURRENT"),
                                      Call("BatchGetSecretValue", ("a", "b"))]
    with pytest.raises(TimeoutError):
        backend.wait_for_calls(3, timeout=0.01)
    backend.reset_calls()
    assert backend.count("a") == 0
    assert list(backend.call_log) == []


def test_describe_secret_is_a_read_and_failures_take_the_failure_latency(monkeypatch: pytest.MonkeyPatch) -> None:
    backend = InMemoryBackend({"s": "v1"}, latency=0.25, failure_latency=0.01)
    slept: list[float] = []
    monkeypatch.setattr(secretcache.backends.memory.time, "sleep", slept.append)
    version = backend.get_secret_value("s").version_id
    described = backend.describe_secret(backend.arn("s"))
    assert (described["Name"], described["VersionIdsToStages"]) == ("s", {version: ["AWSCURRENT"]})
    backend.fail_next("throttle", operation="DescribeSecret")
    with pytest.raises(SecretThrottledError):
        backend.describe_secret("s")
    assert slept == [0.25, 0.25, 0.01]
    assert backend.calls == {"GetSecretValue": 1, "DescribeSecret": 2}


def test_fault_names_are_one_set() -> None:
    assert FAULT_NAMES == ("throttle", "5xx", "denied", "conn", "timeout")
    for name in FAULT_NAMES:
        backend = InMemoryBackend({"s": "v1"})
        backend.fail_next(name)
        with pytest.raises(SecretCacheError) as info:
            backend.get_secret_value("s")
        cause = info.value.__cause__
        assert (name in CONNECTION_FAULTS) == isinstance(cause, OSError)


def test_the_moto_fix_makes_plain_reads_follow_awscurrent_and_is_applied_once() -> None:
    import boto3
    from moto import mock_aws

    undo = patch_moto_staging_labels()  # the session already applied it: a no-op, and so is its undo
    undo()
    with mock_aws():
        sm = boto3.client("secretsmanager", region_name="us-east-1")
        sm.create_secret(Name="r", SecretString="old")
        old = sm.get_secret_value(SecretId="r")["VersionId"]
        new = sm.put_secret_value(SecretId="r", SecretString="new", VersionStages=["AWSPENDING"])["VersionId"]
        sm.update_secret_version_stage(SecretId="r", VersionStage="AWSCURRENT", MoveToVersionId=new,
                                       RemoveFromVersionId=old)
        assert sm.get_secret_value(SecretId="r")["SecretString"] == "new"
