"""AwsBackend details: lazy clients, configuration, Region failover, error mapping, no value in messages."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from devtools.moto_helpers import count_calls, inject, moto_server_fixture
from secretcache.backends.aws import AwsBackend
from secretcache.errors import (
    RegionNotConfiguredError,
    SecretAccessDeniedError,
    SecretCacheError,
    SecretDecryptionError,
    SecretDeletedError,
    SecretNotFoundError,
    SecretThrottledError,
    SecretUnavailableError,
)
from tests.fixtures.fix_canary import CANARY, canary_value

EAST, WEST, CENTRAL = "us-east-1", "us-west-2", "eu-central-1"


def one_attempt() -> Any:
    from botocore.config import Config

    return Config(retries={"mode": "standard", "total_max_attempts": 1})


@pytest.fixture
def aws() -> Iterator[Any]:
    """moto in process, with an admin client in us-east-1."""
    import boto3
    from moto import mock_aws

    with mock_aws():
        yield boto3.client("secretsmanager", region_name=EAST)


class CountingSession:
    """A boto3 session stand-in that counts the clients it builds."""

    def __init__(self) -> None:
        import boto3

        self.inner = boto3.session.Session()
        self.regions: list[str | None] = []

    def client(self, service: str, region_name: str | None = None, **kwargs: Any) -> Any:
        self.regions.append(region_name)
        return self.inner.client(service, region_name=region_name, **kwargs)


class RaisingClient:
    """A client whose every call raises ``error``."""

    def __init__(self, error: BaseException) -> None:
        self.error = error

    def get_secret_value(self, **_: Any) -> Any:
        raise self.error

    def batch_get_secret_value(self, **_: Any) -> Any:
        raise self.error


# -- construction ----------------------------------------------------------------------------------

def test_building_a_backend_imports_and_creates_nothing_until_the_first_fetch() -> None:
    code = (
        "import sys\n"
        "from secretcache.backends import AwsBackend\n"
        "b = AwsBackend(region_name='us-east-1', failover_regions=['us-west-2'])\n"
        "repr(b)\n"
        "heavy = [m for m in ('boto3', 'botocore') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_the_first_fetch_creates_one_client_however_many_threads_race(aws: Any) -> None:
    aws.create_secret(Name="race", SecretString="v")
    session = CountingSession()
    backend = AwsBackend(session=session, region_name=EAST)  # type: ignore[arg-type]
    assert session.regions == []
    barrier = threading.Barrier(8)
    results: list[str | None] = []

    def read() -> None:
        barrier.wait()
        results.append(backend.get_secret_value("race").secret_string)

    threads = [threading.Thread(target=read) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert results == ["v"] * 8
    assert session.regions == [EAST]


def test_a_given_client_is_used_as_is(aws: Any) -> None:
    aws.create_secret(Name="given", SecretString="v")
    calls = count_calls(aws, "GetSecretValue")
    backend = AwsBackend(client=aws)
    assert backend.client is aws
    assert backend.get_secret_value("given").secret_string == "v"
    assert calls == [{"SecretId": "given"}]


def test_a_given_session_builds_the_client_in_its_region(aws: Any) -> None:
    import boto3

    west = boto3.client("secretsmanager", region_name=WEST)
    west.create_secret(Name="west-only", SecretString="w")
    backend = AwsBackend(session=boto3.session.Session(region_name=WEST))
    assert backend.get_secret_value("west-only").secret_string == "w"
    assert backend.client.meta.region_name == WEST


def test_default_config_has_few_attempts_short_timeouts_and_our_user_agent() -> None:
    from botocore.config import Config

    from secretcache import __version__

    config = AwsBackend(region_name=EAST).client.meta.config
    assert config.retries == {"mode": "standard", "total_max_attempts": 3}
    assert (config.connect_timeout, config.read_timeout) == (3, 5)
    assert f"secretcache/{__version__}" in config.user_agent_extra
    merged = AwsBackend(region_name=EAST, config=Config(read_timeout=1)).client.meta.config
    assert (merged.read_timeout, merged.connect_timeout) == (1, 3)


def test_endpoint_url_is_used_for_the_primary_client() -> None:
    backend = AwsBackend(region_name=EAST, endpoint_url="http://127.0.0.1:4566")
    assert backend.client.meta.endpoint_url == "http://127.0.0.1:4566"


def test_the_endpoint_variable_is_honoured_through_boto3(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", "http://127.0.0.1:4567")
    assert AwsBackend(region_name=EAST).client.meta.endpoint_url == "http://127.0.0.1:4567"


moto_server_url = moto_server_fixture(scope="function")  # never alive while a mock_aws test runs


@pytest.mark.integration
def test_a_default_backend_reads_from_the_server_the_endpoint_variable_names(
    moto_server_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3

    boto3.client("secretsmanager", region_name=EAST, endpoint_url=moto_server_url).create_secret(
        Name="over/http", SecretString="v")
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", moto_server_url)
    backend = AwsBackend()
    assert backend.get_secret_value("over/http").secret_string == "v"
    with pytest.raises(SecretNotFoundError):
        backend.get_secret_value("over/missing")


def test_failover_regions_must_be_a_sequence_of_names() -> None:
    with pytest.raises(TypeError):
        AwsBackend(failover_regions="us-west-2")


# -- requests and values ---------------------------------------------------------------------------

def test_version_id_and_stage_are_sent_only_when_given(aws: Any) -> None:
    arn = aws.create_secret(Name="params", SecretString="v")["ARN"]
    calls = count_calls(aws, "GetSecretValue")
    backend = AwsBackend(client=aws)
    current = backend.get_secret_value(arn)
    backend.get_secret_value(arn, version_stage="AWSCURRENT")
    backend.get_secret_value(arn, version_id=current.version_id)
    assert calls == [{"SecretId": arn}, {"SecretId": arn, "VersionStage": "AWSCURRENT"},
                     {"SecretId": arn, "VersionId": current.version_id}]


def test_values_keep_the_created_date_and_share_interned_stage_names(aws: Any) -> None:
    aws.create_secret(Name="dated", SecretString="v")
    value = AwsBackend(client=aws).get_secret_value("dated")
    assert value.created_date is not None
    assert value.created_date.tzinfo is not None
    assert value.version_stages[0] is sys.intern("AWSCURRENT")


def test_botocore_retries_are_on_by_default(aws: Any) -> None:
    aws.create_secret(Name="retried", SecretString="v")
    backend = AwsBackend(region_name=EAST)
    attempts = inject(backend.client, "5xx")
    calls = count_calls(backend.client, "GetSecretValue")
    assert backend.get_secret_value("retried").secret_string == "v"
    assert (len(attempts), len(calls)) == (2, 1)  # one API call, retried once by botocore


def test_batch_sends_each_id_once_and_nothing_for_no_ids(aws: Any) -> None:
    aws.create_secret(Name="dup", SecretString="v")
    calls = count_calls(aws, "BatchGetSecretValue")
    backend = AwsBackend(client=aws)
    assert backend.batch_get_secret_values([]) == ([], {})
    values, errors = backend.batch_get_secret_values(["dup", "dup"])
    assert [v.secret_string for v in values] == ["v"]
    assert errors == {}
    assert calls == [{"SecretIdList": ["dup"]}]


def test_a_non_json_answer_is_unavailable_and_never_quoted(aws: Any) -> None:
    from botocore.awsrequest import AWSResponse

    secret = canary_value("garbled")
    aws.create_secret(Name="garbled", SecretString="v")

    class Raw:
        def stream(self, **_: Any) -> Iterator[bytes]:
            yield secret.encode()

    aws.meta.events.register_first("before-send.secrets-manager.GetSecretValue",
                                   lambda **_: AWSResponse("https://x", 200, {}, Raw()))
    with pytest.raises(SecretUnavailableError) as info:
        AwsBackend(client=aws).get_secret_value("garbled")
    assert CANARY not in str(info.value)
    assert CANARY not in repr(info.value)


# -- failover --------------------------------------------------------------------------------------

@pytest.fixture
def replicated(aws: Any) -> str:
    """A secret in us-east-1 with replicas in us-west-2 and eu-central-1; returns its ARN."""
    arn: str = aws.create_secret(Name="replicated", SecretString="v",
                                 AddReplicaRegions=[{"Region": WEST}, {"Region": CENTRAL}])["ARN"]
    return arn


def failover_backend() -> tuple[AwsBackend, dict[str, list[dict[str, Any]]]]:
    backend = AwsBackend(region_name=EAST, failover_regions=[WEST, CENTRAL], config=one_attempt())
    calls = {region: count_calls(backend.client_for(None if region == EAST else region), "GetSecretValue")
             for region in (EAST, WEST, CENTRAL)}
    return backend, calls


@pytest.mark.parametrize("step", ["5xx", "throttle", "conn", "timeout"])
def test_a_transient_failure_fails_over_to_the_next_region_with_the_arn_rewritten(
    replicated: str, step: str
) -> None:
    backend, calls = failover_backend()
    inject(backend.client, step)
    value = backend.get_secret_value(replicated)
    assert value.secret_string == "v"
    assert value.arn == replicated.replace(EAST, WEST)
    assert calls == {EAST: [{"SecretId": replicated}], WEST: [{"SecretId": replicated.replace(EAST, WEST)}],
                     CENTRAL: []}


def test_a_name_is_reused_as_is_in_the_failover_region(replicated: str) -> None:
    backend, calls = failover_backend()
    inject(backend.client, "5xx")
    inject(backend.client_for(WEST), "throttle")
    assert backend.get_secret_value("replicated").secret_string == "v"
    assert [len(calls[r]) for r in (EAST, WEST, CENTRAL)] == [1, 1, 1]
    assert calls[CENTRAL] == [{"SecretId": "replicated"}]


@pytest.mark.parametrize("step", ["denied", None])
def test_a_permanent_failure_never_fails_over(replicated: str, step: str | None) -> None:
    session = CountingSession()
    backend = AwsBackend(session=session, region_name=EAST, failover_regions=[WEST],  # type: ignore[arg-type]
                         config=one_attempt())
    inject(backend.client, step)
    secret_id = replicated if step else replicated.replace("replicated", "missing")
    with pytest.raises((SecretAccessDeniedError, SecretNotFoundError)):
        backend.get_secret_value(secret_id)
    assert session.regions == [EAST]  # the replica's client was never even built


def test_replica_clients_of_a_given_client_keep_its_configuration(replicated: str) -> None:
    import boto3
    from botocore.config import Config

    given = boto3.client("secretsmanager", region_name=EAST,
                         config=Config(retries={"mode": "standard", "total_max_attempts": 1}, read_timeout=7))
    backend = AwsBackend(client=given, failover_regions=[WEST])
    inject(given, "conn")
    assert backend.get_secret_value(replicated).arn == replicated.replace(EAST, WEST)
    replica = backend.client_for(WEST)
    assert replica.meta.region_name == WEST
    assert replica.meta.config.retries == {"mode": "standard", "total_max_attempts": 1}
    assert replica.meta.config.read_timeout == 7


def test_when_every_region_fails_the_last_transient_error_is_raised(replicated: str) -> None:
    backend, calls = failover_backend()
    inject(backend.client, "5xx")
    inject(backend.client_for(WEST), "5xx")
    inject(backend.client_for(CENTRAL), "throttle")
    with pytest.raises(SecretThrottledError) as info:
        backend.get_secret_value(replicated)
    assert info.value.secret_id == replicated
    assert [len(calls[r]) for r in (EAST, WEST, CENTRAL)] == [1, 1, 1]


def test_batch_fails_over_and_reports_errors_under_the_ids_asked_for(replicated: str) -> None:
    backend = AwsBackend(region_name=EAST, failover_regions=[WEST], config=one_attempt())
    inject(backend.client, "throttle", op="BatchGetSecretValue")
    missing = replicated.replace("replicated", "missing")
    values, errors = backend.batch_get_secret_values([replicated, missing])
    assert [v.arn for v in values] == [replicated.replace(EAST, WEST)]
    assert list(errors) == [missing]
    assert isinstance(errors[missing], SecretNotFoundError)


# -- error mapping ---------------------------------------------------------------------------------

def client_error(code: str, status: int, message: str = "AWS says no") -> Exception:
    from botocore.exceptions import ClientError

    return ClientError({"Error": {"Code": code, "Message": message},
                        "ResponseMetadata": {"HTTPStatusCode": status}}, "GetSecretValue")


def botocore_error(name: str) -> Exception:
    import botocore.exceptions as b

    kwargs: dict[str, dict[str, Any]] = {
        "EndpointConnectionError": {"endpoint_url": "https://x"},
        "ConnectionClosedError": {"endpoint_url": "x"},
        "ReadTimeoutError": {"endpoint_url": "x"}, "ConnectTimeoutError": {"endpoint_url": "x"},
        "ProxyConnectionError": {"proxy_url": "x"}, "SSLError": {"endpoint_url": "x", "error": "bad"},
        "CredentialRetrievalError": {"provider": "ec2", "error_msg": "timeout"},
        "PartialCredentialsError": {"provider": "env", "cred_var": "AWS_SECRET_ACCESS_KEY"},
        "ParamValidationError": {"report": "Invalid length for parameter VersionId"},
        "UnauthorizedSSOTokenError": {}, "NoCredentialsError": {}, "NoRegionError": {},
        "MetadataRetrievalError": {"error_msg": "x"},
        "IncompleteReadError": {"actual_bytes": 1, "expected_bytes": 2},
    }
    error: Exception = getattr(b, name)(**kwargs[name])
    return error


@pytest.mark.parametrize(("error", "expected", "code"), [
    (client_error("ThrottlingException", 400), SecretThrottledError, "ThrottlingException"),
    (client_error("InternalServiceError", 500), SecretUnavailableError, "InternalServiceError"),
    (client_error("ServiceUnavailable", 503), SecretUnavailableError, "ServiceUnavailable"),
    (client_error("502", 502, "Bad Gateway"), SecretUnavailableError, "502"),
    (client_error("ResourceNotFoundException", 400), SecretNotFoundError, "ResourceNotFoundException"),
    (client_error("AccessDeniedException", 400), SecretAccessDeniedError, "AccessDeniedException"),
    (client_error("ExpiredTokenException", 400), SecretAccessDeniedError, "ExpiredTokenException"),
    (client_error("DecryptionFailure", 400), SecretDecryptionError, "DecryptionFailure"),
    (client_error("InvalidRequestException", 400, "You can't perform this operation on the secret because "
                  "it was marked for deletion."), SecretDeletedError, "InvalidRequestException"),
    (client_error("InvalidRequestException", 400, "You tried to   perform the operation on a secret that's "
                  "currently marked deleted."), SecretDeletedError, "InvalidRequestException"),
    (client_error("InvalidParameterException", 400), SecretCacheError, "InvalidParameterException"),
    (botocore_error("EndpointConnectionError"), SecretUnavailableError, None),
    (botocore_error("ConnectionClosedError"), SecretUnavailableError, None),
    (botocore_error("ReadTimeoutError"), SecretUnavailableError, None),
    (botocore_error("ConnectTimeoutError"), SecretUnavailableError, None),
    (botocore_error("ProxyConnectionError"), SecretUnavailableError, None),
    (botocore_error("SSLError"), SecretUnavailableError, None),
    (botocore_error("CredentialRetrievalError"), SecretUnavailableError, None),
    (botocore_error("MetadataRetrievalError"), SecretUnavailableError, None),
    (botocore_error("IncompleteReadError"), SecretUnavailableError, None),
    (botocore_error("NoCredentialsError"), SecretAccessDeniedError, None),
    (botocore_error("PartialCredentialsError"), SecretAccessDeniedError, None),
    (botocore_error("UnauthorizedSSOTokenError"), SecretAccessDeniedError, None),
    (botocore_error("NoRegionError"), RegionNotConfiguredError, None),
    (botocore_error("ParamValidationError"), SecretCacheError, None),
], ids=lambda p: p if isinstance(p, str) else None)
def test_each_botocore_failure_maps_to_its_typed_error_chained(
    error: Exception, expected: type, code: str | None
) -> None:
    backend = AwsBackend(client=RaisingClient(error))  # type: ignore[arg-type]
    for call in (lambda: backend.get_secret_value("prod/db"),
                 lambda: backend.batch_get_secret_values(["prod/db"])):
        with pytest.raises(SecretCacheError) as info:
            call()
        assert type(info.value) is expected
        assert info.value.code == code
        assert info.value.__cause__ is error


def test_an_error_that_is_not_botocore_passes_through_untyped() -> None:
    backend = AwsBackend(client=RaisingClient(RuntimeError("boom")))  # type: ignore[arg-type]
    with pytest.raises(RuntimeError):
        backend.get_secret_value("prod/db")


def test_missing_credentials_say_what_to_configure(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                 "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    backend = AwsBackend(region_name=EAST, endpoint_url="http://127.0.0.1:9", config=one_attempt())
    with pytest.raises(SecretAccessDeniedError, match="AWS_ACCESS_KEY_ID") as info:
        backend.get_secret_value("prod/db")
    assert info.value.secret_id == "prod/db"


def test_a_missing_region_says_what_to_configure(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    with pytest.raises(RegionNotConfiguredError, match="region_name=") as info:
        AwsBackend().get_secret_value("prod/db")
    assert info.value.secret_id == "prod/db"
    for place in ("AWS_REGION", "AWS_DEFAULT_REGION", "~/.aws/config", "full ARN"):
        assert place in str(info.value)


def test_aws_region_alone_is_enough(monkeypatch: pytest.MonkeyPatch, tmp_path: Any, aws: Any) -> None:
    """boto3 ignores AWS_REGION (Lambda and the other SDKs set it); our clients read it after the chain."""
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_REGION", WEST)
    backend = AwsBackend()
    with pytest.raises(SecretNotFoundError):  # asked in WEST: the secret lives only in EAST
        backend.get_secret_value("region/only-east")
    assert backend.client.meta.region_name == WEST
    monkeypatch.setenv("AWS_DEFAULT_REGION", EAST)  # the botocore chain comes first
    assert AwsBackend().client.meta.region_name == EAST


def test_with_no_region_anywhere_an_arn_is_read_in_its_own_region(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any, aws: Any
) -> None:
    arn = aws.create_secret(Name="region/by-arn", SecretString="v")["ARN"]
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    assert AwsBackend().get_secret_value(arn).name == "region/by-arn"


def test_no_error_message_carries_the_secret_value(aws: Any) -> None:
    secret = canary_value("aws")
    aws.create_secret(Name="canary", SecretString=secret)
    backend = AwsBackend(region_name=EAST, config=one_attempt())
    texts = [repr(backend), repr(backend.get_secret_value("canary"))]
    for step in ("throttle", "5xx", "denied", "conn", "closed", "timeout"):
        inject(backend.client, step)
        with pytest.raises(SecretCacheError) as info:
            backend.get_secret_value("canary")
        texts += [str(info.value), repr(info.value), str(info.value.__cause__)]
    assert not [t for t in texts if CANARY in t]


# -- malformed answers: transient, naming the id, and no value in any frame of the traceback ---------


class AnswerClient:
    """A client stand-in answering GetSecretValue with ``answer`` and BatchGetSecretValue with ``pages``
    in turn (an exception in ``pages`` is raised)."""

    def __init__(self, answer: Any = None, pages: list[Any] | None = None) -> None:
        self.answer = answer
        self.pages = list(pages or [])

    def get_secret_value(self, **_: Any) -> Any:
        return self.answer

    def batch_get_secret_value(self, **_: Any) -> Any:
        page = self.pages.pop(0)
        if isinstance(page, BaseException):
            raise page
        return page


def assert_clean(error: BaseException) -> None:
    """No canary in the message, in any local of a secretcache frame, or in a traceback formatted with
    every frame's locals (as error trackers capture them); and formatting it does not fail."""
    import traceback

    from tests.fixtures.fix_canary_checks import leaking_locals

    assert CANARY not in str(error)
    assert leaking_locals(error) == []
    text = "".join(traceback.TracebackException(type(error), error, error.__traceback__,
                                                capture_locals=True).format())
    assert CANARY not in text


def big() -> str:
    return canary_value("big") * 4000  # ~100 KB: over Secrets Manager's 64 KiB limit


MALFORMED = {
    "string-is-a-number": {"SecretString": 12345},
    "string-is-an-object": {"SecretString": {"k": "CANARY"}},
    "string-is-a-list": {"SecretString": ["CANARY"]},
    "binary-is-a-str": {"SecretBinary": "CANARY"},
    "too-large": {"SecretString": "BIG"},
    "too-large-binary": {"SecretBinary": "BIGBYTES"},
    "no-value": {},
    "arn-not-a-str": {"SecretString": "CANARY", "ARN": 5},
    "stages-not-strs": {"SecretString": "CANARY", "VersionStages": [1, 2]},
    "name-not-a-str": {"SecretString": "CANARY", "Name": ["x"]},
}


def materialise(template: dict[str, Any]) -> dict[str, Any]:
    def fill(v: Any) -> Any:
        if v == "CANARY":
            return canary_value("malformed")
        if v == "BIG":
            return big()
        if v == "BIGBYTES":
            return big().encode()
        if isinstance(v, dict):
            return {k: fill(x) for k, x in v.items()}
        if isinstance(v, list):
            return [fill(x) for x in v]
        return v

    return {"Name": "app/m", **fill(template)}


@pytest.mark.parametrize("kind", sorted(MALFORMED))
def test_a_malformed_answer_is_transient_names_the_secret_and_holds_no_value(kind: str) -> None:
    backend = AwsBackend(client=AnswerClient(materialise(MALFORMED[kind])))  # type: ignore[arg-type]
    with pytest.raises(SecretCacheError) as info:
        backend.get_secret_value("app/m")
    assert type(info.value) is SecretUnavailableError
    assert info.value.secret_id == "app/m"
    assert "'app/m'" in str(info.value)
    assert_clean(info.value)


GARBLED = {
    "truncated-json": b'{"Name": "g", "SecretString": "%s',
    "object-string": b'{"Name": "g", "SecretString": {"k": "%s"}}',
    "invalid-base64": b'{"Name": "g", "SecretBinary": "%s!!"}',
    "a-list": b'[{"Name": "g", "SecretString": "%s"}]',
    "bad-date": b'{"Name": "g", "SecretString": "%s", "CreatedDate": "never"}',
    "date-is-a-list": b'{"Name": "g", "SecretString": "%s", "CreatedDate": [1]}',
}


def garbled_answer(template: bytes) -> Any:
    """A before-send hook answering 200 with ``template`` holding a canary. Built here so that the test's
    own frame (first in the traceback formatted with locals) holds no canary."""
    from botocore.awsrequest import AWSResponse

    from devtools.moto_helpers import _Raw

    body = template % canary_value("garbled").encode()

    def answer(**_: Any) -> Any:
        return AWSResponse("https://garbled.invalid", 200, {"content-type": "application/x-amz-json-1.1"},
                           _Raw(body))

    return answer


@pytest.mark.parametrize("kind", sorted(GARBLED))
def test_a_garbled_body_is_transient_and_no_frame_or_cause_holds_it(aws: Any, kind: str) -> None:
    """The body reaches botocore's parser (a before-send hook answers for moto): whatever botocore
    raises on it, the caller gets SecretUnavailableError, chained to nothing that holds the body."""
    aws.meta.events.register_first("before-send.secrets-manager.GetSecretValue", garbled_answer(GARBLED[kind]),
                                   unique_id="garbled")
    backend = AwsBackend(client=aws)
    with pytest.raises(SecretCacheError) as info:
        backend.get_secret_value("g")
    assert type(info.value) is SecretUnavailableError
    assert info.value.secret_id == "g"
    assert info.value.__cause__ is None
    assert info.value.__context__ is None
    assert_clean(info.value)


def test_a_malformed_batch_entry_is_skipped_and_the_good_ones_kept() -> None:
    good = {"Name": "b/good", "SecretString": canary_value("good")}
    bad = {"Name": "b/bad", "SecretString": {"k": canary_value("bad")}}
    backend = AwsBackend(client=AnswerClient(pages=[{"SecretValues": [bad, good]}]))  # type: ignore[arg-type]
    values, errors = backend.batch_get_secret_values(["b/good", "b/bad"])
    assert [v.name for v in values] == ["b/good"]
    assert errors == {}


def test_a_malformed_batch_page_is_transient() -> None:
    backend = AwsBackend(client=AnswerClient(pages=[{"SecretValues": canary_value("page")}]))  # type: ignore[arg-type]
    with pytest.raises(SecretUnavailableError) as info:
        backend.batch_get_secret_values(["b/x"])
    assert_clean(info.value)


def test_a_failing_second_batch_page_leaves_no_value_of_the_first_in_any_frame() -> None:
    from botocore.exceptions import ClientError

    throttled = ClientError({"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}},
                            "BatchGetSecretValue")
    first = lambda: {"SecretValues": [{"Name": "p/1", "SecretString": canary_value("page1")}],  # noqa: E731
                     "NextToken": "t"}  # a lambda: the test's own frame holds no canary
    backend = AwsBackend(client=AnswerClient(pages=[first(), throttled]))  # type: ignore[arg-type]
    with pytest.raises(SecretThrottledError) as info:
        backend.batch_get_secret_values(["p/1", "p/2"])
    assert_clean(info.value)


@pytest.mark.parametrize(("error", "library", "command_line"), [
    (botocore_error("NoRegionError"), "pass region_name=", "pass --region"),
    (botocore_error("NoCredentialsError"), "pass session= / client=", "instance/task role"),
])
def test_configuration_errors_advise_in_the_words_of_whoever_built_the_backend(
    error: Exception, library: str, command_line: str
) -> None:
    from secretcache.backends.aws import CommandLineAwsBackend

    with pytest.raises(SecretCacheError) as lib:
        AwsBackend(client=RaisingClient(error)).get_secret_value("prod/db")  # type: ignore[arg-type]
    with pytest.raises(SecretCacheError) as cli:
        CommandLineAwsBackend(client=RaisingClient(error)).get_secret_value("prod/db")  # type: ignore[arg-type]
    assert library in str(lib.value)
    assert command_line in str(cli.value)
    assert type(cli.value) is type(lib.value)
    for keyword in ("region_name=", "session=", "client="):
        assert keyword not in str(cli.value)
