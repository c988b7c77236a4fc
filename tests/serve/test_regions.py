"""Regions as AWS users set them (``AWS_REGION`` alone is enough) for every AWS client the package builds:
``secretcache get``, the default cache, ``serve`` and its events listener; an SQS queue URL naming another
Region is polled there; a permanent configuration error stops the listener (and serve) with an ERROR."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from secretcache import CacheConfig, SecretCache
from secretcache.backends.aws import AwsBackend
from secretcache.backends.aws_clients import aws_client, queue_url_region, region_of_arn, resolve_region
from secretcache.errors import RegionNotConfiguredError, SecretCacheError
from secretcache.events import EventListener
from tests.fixtures.fix_canary import CANARY, canary_value
from tests.fixtures.fix_serve import unique
from tests.fixtures.serving import ROOT, TOKEN, Serve

pytestmark = pytest.mark.integration

ACCOUNT = "123456789012"  # moto's default account


def wait_for(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def event(name: str) -> str:
    return json.dumps({"detail-type": "AWS API Call via CloudTrail", "source": "aws.secretsmanager",
                       "detail": {"eventName": "PutSecretValue", "requestParameters": {"secretId": name}}})


def only_aws_region(tmp_path: Path, region: str = "us-east-1", **extra: str) -> dict[str, str]:
    """An environment whose only Region setting is AWS_REGION (what Lambda and other SDKs set)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_REGION=region,
               AWS_EC2_METADATA_DISABLED="true", AWS_CONFIG_FILE=str(tmp_path / "no-config"),
               AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "no-credentials"), PYTHONPATH=str(ROOT))
    env.update(extra)
    return env


@pytest.fixture
def no_region(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))


# -- the resolver ---------------------------------------------------------------------------------


def test_regions_named_by_queue_urls_and_arns() -> None:
    assert queue_url_region(f"https://sqs.eu-west-1.amazonaws.com/{ACCOUNT}/q") == "eu-west-1"
    assert queue_url_region(f"https://sqs.cn-north-1.amazonaws.com.cn/{ACCOUNT}/q") == "cn-north-1"
    assert queue_url_region(f"https://ap-south-1.queue.amazonaws.com/{ACCOUNT}/q") == "ap-south-1"
    assert queue_url_region(f"https://queue.amazonaws.com/{ACCOUNT}/q") == "us-east-1"
    assert queue_url_region(f"http://127.0.0.1:5000/{ACCOUNT}/q") is None
    assert queue_url_region(f"https://vpce-1.sqs.eu-west-1.vpce.amazonaws.com/{ACCOUNT}/q") is None
    assert region_of_arn("arn:aws:secretsmanager:eu-central-1:1:secret:prod/db-AbCdEf") == "eu-central-1"
    assert region_of_arn("arn:aws:ssm:us-west-2:1:parameter/app") == "us-west-2"
    assert region_of_arn("prod/db") is None


def test_resolution_order(no_region: None, monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_region() is None
    assert resolve_region(resource_region="ap-south-1") == "ap-south-1"
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    assert resolve_region(resource_region="ap-south-1") == "eu-west-1"
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-west-2")  # the botocore chain comes before AWS_REGION
    assert resolve_region() == "us-west-2"
    assert resolve_region(region_name="ca-central-1") == "ca-central-1"


def test_no_region_anywhere_is_one_typed_error_naming_every_place(no_region: None) -> None:
    with pytest.raises(RegionNotConfiguredError) as info:
        aws_client("sqs", what="polling the events queue q")
    text = str(info.value)
    for place in ("region_name=", "AWS_REGION", "AWS_DEFAULT_REGION", "~/.aws/config", "queue URL"):
        assert place in text
    with pytest.raises(RegionNotConfiguredError, match="full ARN"):
        aws_client("secretsmanager")


def test_every_client_takes_the_same_endpoint_and_merged_config(no_region: None,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from botocore.config import Config

    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    for service in ("secretsmanager", "sqs", "ssm", "sts"):
        client = aws_client(service, endpoint_url="http://127.0.0.1:9", config=Config(connect_timeout=7))
        assert client.meta.region_name == "eu-west-1"
        assert client.meta.endpoint_url == "http://127.0.0.1:9"
        assert client.meta.config.connect_timeout == 7
        assert client.meta.config.retries["total_max_attempts"] == 3
    assert aws_client("sqs").meta.config.read_timeout > 20  # outlasts a 20 s long poll
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:8")  # as botocore reads it
    assert aws_client("sqs").meta.endpoint_url == "http://127.0.0.1:8"


# -- the events listener ----------------------------------------------------------------------------


@pytest.fixture
def admin_west(moto_url: str) -> Any:
    import boto3

    return boto3.client("secretsmanager", region_name="eu-west-1", endpoint_url=moto_url)


def test_a_queue_url_in_another_region_is_polled_there(moto_url: str, admin_west: Any,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")  # the chain says us-east-1; the queue is elsewhere
    sqs_west = boto3.client("sqs", region_name="eu-west-1", endpoint_url=moto_url)
    name = f"ev-west-{uuid.uuid4().hex[:8]}"
    sqs_west.create_queue(QueueName=name)
    queue_url = f"https://sqs.eu-west-1.amazonaws.com/{ACCOUNT}/{name}"  # as AWS writes it
    secret, old, new = unique("ev-west"), canary_value("old"), canary_value("new")
    admin_west.create_secret(Name=secret, SecretString=old)
    with SecretCache(AwsBackend(region_name="eu-west-1", endpoint_url=moto_url),
                     config=CacheConfig(ttl=3600)) as cache:
        assert cache.get_secret_string(secret) == old
        with EventListener(queue_url, caches=[cache], endpoint_url=moto_url, wait_time=1) as listener:
            admin_west.put_secret_value(SecretId=secret, SecretString=new)
            sqs_west.send_message(QueueUrl=sqs_west.get_queue_url(QueueName=name)["QueueUrl"],
                                  MessageBody=event(secret))
            wait_for(lambda: listener.applied == 1)
            assert listener.client.meta.region_name == "eu-west-1"
            assert listener.failure is None
        assert cache.get_secret_string(secret) == new


def test_aws_region_alone_is_enough_for_the_listener(moto_url: str, admin: Any, no_region: None,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3

    monkeypatch.setenv("AWS_REGION", "us-east-1")
    sqs = boto3.client("sqs", region_name="us-east-1", endpoint_url=moto_url)
    queue = sqs.create_queue(QueueName=f"ev-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    secret = unique("ev-region")
    admin.create_secret(Name=secret, SecretString=canary_value("v"))
    with SecretCache(AwsBackend(endpoint_url=moto_url)) as cache:  # the backend, too, from AWS_REGION
        cache.get_secret_string(secret)
        with EventListener(queue, caches=[cache], endpoint_url=moto_url, wait_time=1) as listener:
            sqs.send_message(QueueUrl=queue, MessageBody=event(secret))
            wait_for(lambda: listener.applied == 1)
            assert listener.client.meta.region_name == "us-east-1"


def test_a_missing_queue_stops_the_listener_at_error_once(moto_url: str, caplog: pytest.LogCaptureFixture) -> None:
    failures: list[BaseException] = []
    caplog.set_level(logging.DEBUG, logger="secretcache")
    queue = f"{moto_url}/{ACCOUNT}/no-such-queue-{uuid.uuid4().hex[:8]}"
    with SecretCache(AwsBackend(region_name="us-east-1", endpoint_url=moto_url)) as cache:
        listener = EventListener(queue, caches=[cache], region_name="us-east-1", endpoint_url=moto_url,
                                 wait_time=1, backoff_base=0.01, on_failure=failures.append)
        with listener:
            wait_for(lambda: listener.failure is not None)
            time.sleep(0.3)  # would be several retries, were it retried
        assert failures == [listener.failure]
        assert listener.errors == 1
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR and r.name == "secretcache.events"]
    assert len(errors) == 1
    assert "NonExistentQueue" in errors[0].getMessage() or "QueueDoesNotExist" in errors[0].getMessage()
    assert not [r for r in caplog.records if r.levelno == logging.WARNING and r.name == "secretcache.events"]
    assert any("events: polling" in r.getMessage() for r in caplog.records)  # the start-up line


def test_no_region_stops_the_listener_naming_what_to_set(no_region: None, caplog: pytest.LogCaptureFixture) -> None:
    listener = EventListener("http://127.0.0.1:9/1/q", caches=[], wait_time=1)
    with listener:
        wait_for(lambda: listener.failure is not None)
    assert isinstance(listener.failure, RegionNotConfiguredError)
    (record,) = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert "AWS_REGION" in record.getMessage()


# -- the command line: get, serve and its listener, with AWS_REGION only -----------------------------


def test_secretcache_get_with_only_aws_region(moto_url: str, admin: Any, tmp_path: Path) -> None:
    secret = unique("cli-region")
    admin.create_secret(Name=secret, SecretString="cli-value")
    env = only_aws_region(tmp_path, AWS_ENDPOINT_URL=moto_url)
    done = subprocess.run([sys.executable, "-m", "secretcache", "get", secret], env=env, cwd=ROOT,  # nosec B603
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "cli-value"


def test_the_default_cache_with_only_aws_region(moto_url: str, admin: Any, tmp_path: Path) -> None:
    secret = unique("default-region")
    admin.create_secret(Name=secret, SecretString="default-cache-value")
    code = f"import secretcache; print(secretcache.get_secret_string({secret!r}))"
    env = only_aws_region(tmp_path, AWS_ENDPOINT_URL_SECRETS_MANAGER=moto_url)
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT,  # nosec B603
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "default-cache-value"


@pytest.fixture
def serve_only_aws_region(tmp_path: Path) -> Iterator[Callable[..., Serve]]:
    started: list[Serve] = []

    def start(*args: str, **kwargs: Any) -> Serve:
        env = only_aws_region(tmp_path, AWS_TOKEN=TOKEN)
        server = Serve(["--port", "0", "--log-level", "info", *args], env, **kwargs)
        started.append(server)
        return server

    yield start
    for server in started:
        server.kill()


def test_serve_and_its_listener_with_only_aws_region(moto_url: str, admin: Any,
                                                     serve_only_aws_region: Callable[..., Serve]) -> None:
    import boto3

    sqs = boto3.client("sqs", region_name="us-east-1", endpoint_url=moto_url)
    queue = sqs.create_queue(QueueName=f"ev-serve-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    secret, old, new = unique("serve-region"), canary_value("old"), canary_value("new")
    admin.create_secret(Name=secret, SecretString=old)
    server = serve_only_aws_region("--endpoint-url", moto_url, "--ttl", "3600", "--events-queue", queue)

    def served() -> str:
        status, body = server.request(f"/secretsmanager/get?secretId={secret}")
        assert status == 200, body
        return str(json.loads(body)["SecretString"])

    assert served() == old
    admin.put_secret_value(SecretId=secret, SecretString=new)
    sqs.send_message(QueueUrl=queue, MessageBody=event(secret))
    wait_for(lambda: served() == new)
    assert server.stop() == 0
    assert "events: polling" in server.stderr
    assert "us-east-1" in server.stderr
    assert "serve: stopped" in server.stderr
    assert server.stderr.count("listening on") == 1
    assert CANARY not in server.stderr


def test_serve_exits_1_when_its_events_queue_does_not_exist(moto_url: str,
                                                            serve_only_aws_region: Callable[..., Serve]) -> None:
    server = serve_only_aws_region("--endpoint-url", moto_url, "--events-queue",
                                   f"{moto_url}/{ACCOUNT}/missing-{uuid.uuid4().hex[:8]}")
    assert server.proc.wait(30) == 1  # by itself, no signal sent
    server.stop()
    assert "ERROR" in server.stderr
    assert "Stopping the events listener" in server.stderr


def test_serve_logs_a_configuration_failure_once_and_answers_agent_json(
    serve_only_aws_region: Callable[..., Serve], tmp_path: Path, moto_url: str
) -> None:
    env = only_aws_region(tmp_path, AWS_TOKEN=TOKEN)
    del env["AWS_REGION"]
    server = Serve(["--port", "0", "--endpoint-url", moto_url, "--prefetch", "prod/db"], env)
    try:
        from secretcache.backends import AgentBackend

        with pytest.raises(SecretCacheError) as info:
            AgentBackend(server.url, token=TOKEN).get_secret_value("prod/db")
        assert "pass --region, set AWS_REGION or AWS_DEFAULT_REGION" in str(info.value)  # whole, not cut
        for _ in range(3):
            status, body = server.request("/secretsmanager/get?secretId=prod/db")
            assert status == 500
            doc = json.loads(body)
            assert doc["__type"] == "NoRegionError"
            assert "--region" in doc["message"]
            assert "region_name=" not in doc["message"]
    finally:
        server.stop()
    assert server.stderr.count("serve: requests fail: no AWS Region configured") == 1
    assert "prefetch of secret 'prod/db' failed: RegionNotConfiguredError: no AWS Region configured" in server.stderr
