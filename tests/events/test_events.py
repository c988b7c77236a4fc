"""EventListener on moto's SQS (HTTP server): CloudTrail-shaped EventBridge messages refresh or drop the
named secret in the caches, in process and in ``serve``; malformed messages and queue outages never stop
the listener nor leak a body."""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from secretcache import CacheConfig, SecretCache
from secretcache.backends.aws import AwsBackend
from secretcache.events import EventListener, secret_ids_of
from tests.fixtures.fix_canary import CANARY, canary_value
from tests.fixtures.fix_serve import unique
from tests.fixtures.serving import serving

pytestmark = pytest.mark.integration

HOUR = CacheConfig(ttl=3600)


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def cloudtrail(event_name: str, secret_id: str, arn: str | None = None) -> str:
    detail: dict[str, Any] = {
        "eventSource": "secretsmanager.amazonaws.com", "eventName": event_name,
        "requestParameters": {"secretId": secret_id}, "responseElements": {"arn": arn} if arn else None,
    }
    return json.dumps({"version": "0", "id": str(uuid.uuid4()), "detail-type": "AWS API Call via CloudTrail",
                       "source": "aws.secretsmanager", "account": "123456789012", "region": "us-east-1",
                       "resources": [], "detail": detail})


@pytest.fixture(scope="module")
def sqs(moto_url: str) -> Any:
    import boto3

    return boto3.client("sqs", region_name="us-east-1", endpoint_url=moto_url)


@pytest.fixture
def queue(sqs: Any) -> str:
    return str(sqs.create_queue(QueueName=f"sm-events-{uuid.uuid4().hex[:8]}")["QueueUrl"])


@pytest.fixture
def cache(moto_url: str) -> Iterator[SecretCache]:
    with SecretCache(AwsBackend(region_name="us-east-1", endpoint_url=moto_url), config=HOUR) as built:
        yield built


def listen(queue: str, sqs: Any, *caches: SecretCache, **kwargs: Any) -> EventListener:
    return EventListener(queue, caches=caches, client=sqs, wait_time=1, **kwargs)


def test_put_secret_value_by_arn_refreshes_a_cache_that_reads_by_name(
    admin: Any, sqs: Any, queue: str, cache: SecretCache
) -> None:
    name, old, new = unique("ev"), canary_value("old"), canary_value("new")
    arn = admin.create_secret(Name=name, SecretString=old)["ARN"]
    assert cache.get_secret_string(name) == old
    with listen(queue, sqs, cache) as listener:
        admin.put_secret_value(SecretId=name, SecretString=new)
        sqs.send_message(QueueUrl=queue, MessageBody=cloudtrail("PutSecretValue", arn, arn))
        wait_for(lambda: cache.get_secret_string(name) == new)
        wait_for(lambda: listener.applied == 1)
    assert sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["ApproximateNumberOfMessages"])[
        "Attributes"]["ApproximateNumberOfMessages"] == "0"


def test_update_secret_version_stage_by_name_refreshes_a_cache_that_reads_by_arn(
    admin: Any, sqs: Any, queue: str, cache: SecretCache
) -> None:
    name, old, new = unique("ev"), canary_value("old"), canary_value("new")
    arn = admin.create_secret(Name=name, SecretString=old)["ARN"]
    old_id = admin.describe_secret(SecretId=name)["VersionIdsToStages"]
    current = next(iter(old_id))
    pending = admin.put_secret_value(SecretId=name, SecretString=new, VersionStages=["AWSPENDING"])["VersionId"]
    assert cache.get_secret_string(arn) == old
    with listen(queue, sqs, cache):
        admin.update_secret_version_stage(SecretId=name, VersionStage="AWSCURRENT", MoveToVersionId=pending,
                                          RemoveFromVersionId=current)
        sqs.send_message(QueueUrl=queue, MessageBody=cloudtrail("UpdateSecretVersionStage", name))
        wait_for(lambda: cache.get_secret_string(arn) == new)


def test_delete_secret_drops_it_from_the_cache(admin: Any, sqs: Any, queue: str, cache: SecretCache) -> None:
    name = unique("ev")
    admin.create_secret(Name=name, SecretString=canary_value("del"))
    cache.get_secret_string(name)
    with listen(queue, sqs, cache) as listener:
        sqs.send_message(QueueUrl=queue, MessageBody=cloudtrail("DeleteSecret", name))
        wait_for(lambda: listener.applied == 1)
    assert cache.peek(name) is None


def test_a_malformed_message_is_dropped_by_id_never_by_body(
    admin: Any, sqs: Any, queue: str, cache: SecretCache, caplog: pytest.LogCaptureFixture
) -> None:
    name, old, new = unique("ev"), canary_value("old"), canary_value("new")
    admin.create_secret(Name=name, SecretString=old)
    cache.get_secret_string(name)
    bad_ids = [sqs.send_message(QueueUrl=queue, MessageBody=body)["MessageId"]
               for body in (f"not json {CANARY}", json.dumps({"detail": f"{CANARY}"}), json.dumps([1, 2]))]
    caplog.set_level(logging.INFO, logger="secretcache.events")
    with listen(queue, sqs, cache) as listener:
        wait_for(lambda: listener.dropped == 3)
        admin.put_secret_value(SecretId=name, SecretString=new)
        sqs.send_message(QueueUrl=queue, MessageBody=cloudtrail("PutSecretValue", name))
        wait_for(lambda: cache.get_secret_string(name) == new)
        assert listener.errors == 0
    for message_id in bad_ids:
        assert message_id in caplog.text
    assert CANARY not in caplog.text


class FlakyQueue:
    """An SQS client whose first ``failures`` receives fail (the queue is unreachable)."""

    def __init__(self, real: Any, failures: int) -> None:
        self.real, self.failures, self.calls = real, failures, 0

    def receive_message(self, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls <= self.failures:
            raise ConnectionError("queue unreachable")
        return self.real.receive_message(**kwargs)

    def delete_message(self, **kwargs: Any) -> Any:
        return self.real.delete_message(**kwargs)


def test_a_queue_outage_is_backed_off_and_the_listener_goes_on(
    admin: Any, sqs: Any, queue: str, cache: SecretCache
) -> None:
    name, new = unique("ev"), canary_value("new")
    admin.create_secret(Name=name, SecretString=canary_value("old"))
    cache.get_secret_string(name)
    flaky = FlakyQueue(sqs, failures=3)
    listener = EventListener(queue, caches=[cache], client=flaky, wait_time=1, backoff_base=0.05, backoff_max=0.2)
    with listener:
        wait_for(lambda: listener.errors == 3)
        admin.put_secret_value(SecretId=name, SecretString=new)
        sqs.send_message(QueueUrl=queue, MessageBody=cloudtrail("PutSecretValue", name))
        wait_for(lambda: cache.get_secret_string(name) == new)
        assert listener._thread is not None
        assert listener._thread.is_alive()
    assert not any(t.name == "secretcache-events" and t.is_alive() for t in threading.enumerate())


def test_a_failing_refresh_keeps_the_message_and_the_listener(
    admin: Any, sqs: Any, queue: str, cache: SecretCache
) -> None:
    name = unique("ev")
    admin.create_secret(Name=name, SecretString=canary_value("old"))
    cache.get_secret_string(name)
    failing = SecretCache(_Failing(), config=HOUR)
    failing._core.entries.update(cache._core.entries)  # it has the secret cached, and cannot refresh it
    with listen(queue, sqs, failing) as listener:
        sqs.send_message(QueueUrl=queue, MessageBody=cloudtrail("RotationSucceeded", name))
        wait_for(lambda: listener.errors >= 1)
        assert listener._thread is not None
        assert listener._thread.is_alive()
    failing.close()


class _Failing:
    def get_secret_value(self, secret_id: str, **_: Any) -> Any:
        raise RuntimeError("backend broken")

    def batch_get_secret_values(self, ids: Any) -> Any:
        raise RuntimeError("backend broken")


def test_event_shapes_name_the_secret() -> None:
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbCdEf"
    assert secret_ids_of(json.loads(cloudtrail("PutSecretValue", "prod/db", arn))) == (
        "PutSecretValue", ["prod/db", arn])
    rotation = {"detail-type": "AWS Service Event via CloudTrail", "source": "aws.secretsmanager",
                "detail": {"eventName": "RotationSucceeded", "additionalEventData": {"SecretId": arn}}}
    assert secret_ids_of(rotation) == ("RotationSucceeded", [arn])
    label = {"detail-type": "Secret Label Updated", "source": "aws.secretsmanager",
             "detail": {"name": "prod/db", "labelUpdated": "AWSCURRENT", "versionId": "v"}}
    assert secret_ids_of(label) == ("Secret Label Updated", ["prod/db"])
    old = {"detail": {"eventName": "RotateSecret", "responseElements": {"aRN": arn}}}
    assert secret_ids_of(old) == ("RotateSecret", [arn])


def test_serve_events_queue_refreshes_serves_cache(admin: Any, sqs: Any, queue: str, proxy: Any,
                                                  moto_url: str) -> None:
    name, old, new = unique("ev"), canary_value("old"), canary_value("new")
    arn = admin.create_secret(Name=name, SecretString=old)["ARN"]
    with serving(proxy.url, "--ttl", "3600", "--events-queue", queue,
                 env={"AWS_ENDPOINT_URL_SQS": moto_url}) as server:

        def served() -> str:
            status, body = server.request(f"/secretsmanager/get?secretId={name}")
            assert status == 200
            return str(json.loads(body)["SecretString"])

        assert served() == old
        admin.put_secret_value(SecretId=name, SecretString=new)
        assert served() == old  # ttl of an hour
        sqs.send_message(QueueUrl=queue, MessageBody=cloudtrail("PutSecretValue", arn, arn))
        wait_for(lambda: served() == new, timeout=15)


class CountingQueue:
    """The real SQS client, counting how often each message was received and which were deleted."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.received: dict[str, int] = {}
        self.deleted: list[str] = []
        self._handles: dict[str, str] = {}

    def receive_message(self, **kwargs: Any) -> Any:
        answer = self.real.receive_message(**kwargs)
        for message in answer.get("Messages") or []:
            self.received[message["MessageId"]] = self.received.get(message["MessageId"], 0) + 1
            self._handles[message["ReceiptHandle"]] = message["MessageId"]
        return answer

    def delete_message(self, **kwargs: Any) -> Any:
        self.deleted.append(self._handles.get(kwargs["ReceiptHandle"], "?"))
        return self.real.delete_message(**kwargs)


def queue_depth(sqs: Any, queue: str) -> int:
    attributes = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])


@pytest.fixture
def proxied_cache(proxy: Any) -> Iterator[SecretCache]:
    with SecretCache(AwsBackend(region_name="us-east-1", endpoint_url=proxy.url), config=HOUR) as built:
        yield built


@pytest.mark.parametrize("mode", ["denied", "ResourceNotFoundException"])
def test_a_permanently_failing_refresh_deletes_the_message_after_one_receive(
    admin: Any, sqs: Any, proxy: Any, proxied_cache: SecretCache, caplog: pytest.LogCaptureFixture, mode: str
) -> None:
    queue = sqs.create_queue(QueueName=f"sm-events-{uuid.uuid4().hex[:8]}",
                             Attributes={"VisibilityTimeout": "1"})["QueueUrl"]
    name, value = unique("ev"), canary_value("perm")
    admin.create_secret(Name=name, SecretString=value)
    assert proxied_cache.get_secret_string(name) == value
    caplog.set_level(logging.DEBUG)
    counting = CountingQueue(sqs)
    proxy.fail(mode)
    message_id = sqs.send_message(QueueUrl=queue, MessageBody=cloudtrail("PutSecretValue", name))["MessageId"]
    listener = EventListener(queue, caches=[proxied_cache], client=counting, wait_time=1)
    with listener:
        wait_for(lambda: message_id in counting.deleted)
        time.sleep(1.5)  # past the visibility timeout: a message left behind would be received again
    assert counting.received[message_id] == 1
    assert queue_depth(sqs, queue) == 0
    assert proxy.count("GetSecretValue", name) >= 2  # the first read, and the failed refresh
    if mode == "denied":
        assert listener.failed == 1
        assert "AccessDeniedException" in caplog.text
    else:  # not found: the secret is dropped from the cache, the message handled
        assert proxied_cache.peek(name) is None
    assert message_id in caplog.text
    assert name in caplog.text
    assert CANARY not in caplog.text


def test_a_throttled_refresh_leaves_the_message_for_redelivery(
    admin: Any, sqs: Any, proxy: Any, proxied_cache: SecretCache
) -> None:
    queue = sqs.create_queue(QueueName=f"sm-events-{uuid.uuid4().hex[:8]}",
                             Attributes={"VisibilityTimeout": "1"})["QueueUrl"]
    name, old, new = unique("ev"), canary_value("old"), canary_value("new")
    admin.create_secret(Name=name, SecretString=old)
    assert proxied_cache.get_secret_string(name) == old
    admin.put_secret_value(SecretId=name, SecretString=new)
    counting = CountingQueue(sqs)
    proxy.fail("throttle")
    message_id = sqs.send_message(QueueUrl=queue, MessageBody=cloudtrail("PutSecretValue", name))["MessageId"]
    listener = EventListener(queue, caches=[proxied_cache], client=counting, wait_time=1)
    with listener:
        wait_for(lambda: counting.received.get(message_id, 0) >= 2, timeout=15)  # not deleted: delivered again
        assert message_id not in counting.deleted
        assert proxied_cache.get_secret_string(name) == old
        proxy.clear()
        wait_for(lambda: message_id in counting.deleted, timeout=20)
        assert proxied_cache.get_secret_string(name) == new
    assert listener.failed == 0
    assert listener.applied == 1
    assert queue_depth(sqs, queue) == 0
