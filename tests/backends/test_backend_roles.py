"""AwsBackend(role_arn=...): cross-account reads through sts:AssumeRole, on moto in process.

What moto isolates, and so what these tests can show: moto keeps one Secrets Manager per account and
picks the account from the access key a request is signed with; the credentials its AssumeRole returns
belong to the role ARN's account. A secret created in account 111111111111 is therefore invisible to
the default account's credentials and visible through the role. What moto does not model: the role's
trust policy and the external id (any AssumeRole succeeds unless IAM enforcement is switched on, when
the caller's own policy must allow sts:AssumeRole), the secret's resource policy and the KMS key policy
(no cross-account permission check on Secrets Manager). Those parts are AWS's and docs/cache.md says
how to set them up.
"""

from __future__ import annotations

import datetime
import json
import logging
import threading
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from secretcache import CacheConfig, SecretCache
from secretcache.backends import AwsBackend
from secretcache.errors import (
    AssumeRoleDeniedError,
    AssumeRoleError,
    AssumeRoleUnavailableError,
    SecretAccessDeniedError,
    SecretNotFoundError,
    SecretUnavailableError,
)
from tests.fixtures import fakes
from tests.fixtures.fix_canary import CANARY, canary_value

EAST, WEST = "us-east-1", "us-west-2"
OTHER = "111111111111"
ROLE = f"arn:aws:iam::{OTHER}:role/secret-reader"
HOME = "123456789012"  # moto's default account: the caller's own
THREADS = 16


@pytest.fixture
def aws() -> Iterator[None]:
    from moto import mock_aws

    with mock_aws():
        yield


def assume_role_calls(account: str = OTHER) -> list[Any]:
    """Every AssumeRole moto answered for a role of ``account`` (moto records each one it serves)."""
    from moto.sts.models import sts_backends

    return list(sts_backends[account]["aws"].assumed_roles)


def create_in_other_account(name: str, value: str, region: str = EAST) -> str:
    """Create ``name`` in the role's account (with the role's own credentials); its ARN."""
    admin = AwsBackend(role_arn=ROLE, role_session_name="admin").session.client("secretsmanager", region_name=region)
    return str(admin.create_secret(Name=name, SecretString=value)["ARN"])


def run_threads(n: int, work: Callable[[int], Any]) -> list[Any]:
    """``work(i)`` in ``n`` threads released together; their results (an exception counts as a result)."""
    return fakes.run_threads(n, work, together=True)


# -- reading another account's secret ---------------------------------------------------------------


@pytest.mark.usefixtures("aws")
def test_a_secret_of_another_account_is_read_through_the_role_and_not_without_it() -> None:
    value = canary_value()
    arn = create_in_other_account("shared/db", value)
    assert f":{OTHER}:" in arn

    through_role = AwsBackend(role_arn=ROLE, region_name=EAST).get_secret_value("shared/db")
    assert through_role.secret_string == value
    assert through_role.arn == arn
    with pytest.raises(SecretNotFoundError):
        AwsBackend(region_name=EAST).get_secret_value("shared/db")

    # The same name in the caller's own account is another secret: each side reads its own.
    import boto3

    boto3.client("secretsmanager", region_name=EAST).create_secret(Name="shared/db", SecretString="home")
    assert AwsBackend(region_name=EAST).get_secret_value("shared/db").secret_string == "home"
    with SecretCache(AwsBackend(role_arn=ROLE, region_name=EAST)) as cache:
        assert cache.get_secret_string("shared/db") == value


@pytest.mark.usefixtures("aws")
def test_the_role_is_assumed_with_the_session_name_and_external_id_given() -> None:
    create_in_other_account("ext/one", "v")
    before = len(assume_role_calls())
    backend = AwsBackend(role_arn=ROLE, region_name=EAST, external_id="partner-7781", role_session_name="billing")
    backend.get_secret_value("ext/one")
    calls = assume_role_calls()[before:]
    assert [(c.role_arn, c.session_name, c.external_id) for c in calls] == [(ROLE, "billing", "partner-7781")]
    default = AwsBackend(role_arn=ROLE, region_name=EAST)
    default.get_secret_value("ext/one")
    assert assume_role_calls()[-1].session_name == "secretcache"
    assert assume_role_calls()[-1].external_id is None


# -- one AssumeRole per expiry period ---------------------------------------------------------------


@pytest.mark.usefixtures("aws")
def test_sixteen_threads_at_a_cold_start_assume_the_role_once_for_every_region() -> None:
    create_in_other_account("cold/east", "east")
    west_arn = create_in_other_account("cold/west", "west", region=WEST)
    backend = AwsBackend(role_arn=ROLE, region_name=EAST)
    before = len(assume_role_calls())

    # Half the readers name a secret of another Region by ARN: that Region's client is built on the fly
    # and signs with the same assumed credentials.
    results = run_threads(THREADS, lambda i: backend.get_secret_value("cold/east" if i % 2 else west_arn))

    assert [getattr(r, "secret_string", r) for r in results] == ["west", "east"] * (THREADS // 2)
    assert len(assume_role_calls()) - before == 1
    assert backend.client_for(WEST) is not backend.client


class Clock:
    """botocore's clock for the role's credentials, and the clock STS issues them by (see stamp_expiry)."""

    def __init__(self) -> None:
        self.now = datetime.datetime.now(datetime.timezone.utc)

    def __call__(self) -> datetime.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += datetime.timedelta(**delta)


@pytest.mark.usefixtures("aws")
def test_one_assume_role_per_expiry_period_with_sixteen_threads_across_expiries() -> None:
    import boto3

    create_in_other_account("period/db", "v")
    clock = Clock()
    issued: list[datetime.datetime] = []

    def stamp_expiry(parsed: dict[str, Any], **_: Any) -> None:
        # STS issues 1-hour credentials by the same clock botocore refreshes them by.
        parsed["Credentials"]["Expiration"] = clock() + datetime.timedelta(hours=1)
        issued.append(clock())

    base = boto3.session.Session(region_name=EAST)
    base.events.register("after-call.sts.AssumeRole", stamp_expiry)
    backend = AwsBackend(role_arn=ROLE, session=base)
    credentials = backend.session.get_credentials()
    # botocore's RefreshableCredentials take their clock as the time_fetcher constructor argument; the
    # test swaps it on the instance the backend built (no module is patched).
    credentials._time_fetcher = clock
    assert type(credentials).__name__ == "DeferredRefreshableCredentials"

    def herd() -> None:
        results = run_threads(THREADS, lambda _: backend.get_secret_value("period/db").secret_string)
        assert results == ["v"] * THREADS

    herd()  # cold start: everyone waits for the one AssumeRole
    assert len(issued) == 1
    herd()  # within the period: no call at all
    assert len(issued) == 1
    clock.advance(minutes=55)  # 5 minutes before expiry: the mandatory window, everyone waits for one
    herd()
    assert len(issued) == 2
    clock.advance(minutes=47)  # 13 minutes before the new expiry: advisory, one refreshes, others sign on
    herd()
    assert len(issued) == 3
    clock.advance(hours=2)  # well past expiry (a process that slept): one call again
    herd()
    assert len(issued) == 4
    assert issued == sorted(issued)


# -- failures ---------------------------------------------------------------------------------------


def sts_error(status: int, code: str, message: str) -> Any:
    """An STS (query protocol, XML) error answer."""
    from botocore.awsrequest import AWSResponse

    body = (f'<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type>'
            f"<Code>{code}</Code><Message>{message}</Message></Error><RequestId>r</RequestId></ErrorResponse>")

    class Raw:
        def stream(self, **_: Any) -> Iterator[bytes]:
            yield body.encode()

    return AWSResponse("https://sts.invalid", status, {"content-type": "text/xml"}, Raw())


def failing_sts(fault: Callable[[Any], Any]) -> Any:
    """A source session whose every AssumeRole attempt gets ``fault(request)`` instead of moto's answer."""
    import boto3

    base = boto3.session.Session(region_name=EAST)
    base.events.register_first("before-send.sts.AssumeRole", lambda request, **_: fault(request))
    return base


@pytest.mark.usefixtures("aws")
def test_an_assume_role_refused_by_iam_is_access_denied() -> None:
    import boto3
    from moto.core import set_initial_no_auth_action_count

    create_in_other_account("denied/db", "v")
    iam = boto3.client("iam", region_name=EAST)
    iam.create_user(UserName="reader")
    policy = {"Version": "2012-10-17",
              "Statement": [{"Effect": "Allow", "Action": "secretsmanager:*", "Resource": "*"}]}
    iam.put_user_policy(UserName="reader", PolicyName="sm-only", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName="reader")["AccessKey"]
    session = boto3.session.Session(aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"],
                                    region_name=EAST)

    @set_initial_no_auth_action_count(0)  # moto checks the caller's IAM policy from here on
    def read() -> AssumeRoleDeniedError:
        with pytest.raises(AssumeRoleDeniedError) as caught:
            AwsBackend(role_arn=ROLE, session=session).get_secret_value("denied/db")
        return caught.value

    error = read()
    assert isinstance(error, SecretAccessDeniedError)
    assert isinstance(error, AssumeRoleError)
    assert error.code == "AccessDenied"
    assert error.secret_id == "denied/db"
    assert ROLE in str(error)
    assert "sts:AssumeRole" in str(error)


@pytest.mark.usefixtures("aws")
def test_a_refused_role_fails_a_prefetch_with_one_assume_role_not_one_per_secret() -> None:
    names = [f"batch/{i}" for i in range(5)]
    for name in names:
        create_in_other_account(name, "v")
    attempts: list[int] = []
    refused = failing_sts(lambda _: attempts.append(1) or sts_error(403, "AccessDenied", "not authorized"))
    with SecretCache(AwsBackend(role_arn=ROLE, session=refused)) as cache:
        failures = cache.prefetch(names)
    assert sorted(failures) == names
    assert all(isinstance(error, AssumeRoleDeniedError) for error in failures.values())
    assert [error.secret_id for error in failures.values()] == list(failures)
    assert len(attempts) == 1  # not the batch's, then one per secret


@pytest.mark.usefixtures("aws")
def test_a_throttled_or_unreachable_sts_is_transient() -> None:
    from botocore.exceptions import EndpointConnectionError

    create_in_other_account("flaky/db", "v")
    throttled = failing_sts(lambda _: sts_error(400, "Throttling", "Rate exceeded"))
    with pytest.raises(AssumeRoleUnavailableError) as caught:
        AwsBackend(role_arn=ROLE, session=throttled).get_secret_value("flaky/db")
    assert isinstance(caught.value, SecretUnavailableError)
    assert caught.value.code == "Throttling"

    def unreachable(request: Any) -> Any:
        raise EndpointConnectionError(endpoint_url=request.url)

    with pytest.raises(AssumeRoleUnavailableError) as caught:
        AwsBackend(role_arn=ROLE, session=failing_sts(unreachable)).get_secret_value("flaky/db")
    assert "EndpointConnectionError" in str(caught.value)


@pytest.mark.usefixtures("aws")
def test_a_cache_serves_its_value_while_sts_is_down_and_raises_the_denial() -> None:
    import boto3

    create_in_other_account("stale/db", "v")
    down = threading.Event()

    def maybe_throttle(_: Any) -> Any:
        return sts_error(400, "Throttling", "Rate exceeded") if down.is_set() else None

    clock = Clock()
    base = failing_sts(maybe_throttle)
    base.events.register("after-call.sts.AssumeRole",
                         lambda parsed, **_: parsed["Credentials"].__setitem__("Expiration", clock() +
                                                                               datetime.timedelta(hours=1)))
    backend = AwsBackend(role_arn=ROLE, session=base)
    backend.session.get_credentials()._time_fetcher = clock
    cache = SecretCache(backend, config=CacheConfig(ttl=0))
    try:
        assert cache.get_secret_string("stale/db") == "v"
        down.set()
        clock.advance(hours=2)  # the credentials expired and STS throttles: the cached value is served
        assert cache.get_secret_string("stale/db") == "v"
    finally:
        cache.close()
    assert boto3  # imported for the session the helpers build


# -- configuration ----------------------------------------------------------------------------------


@pytest.mark.parametrize("arn", [
    "role/reader", "arn:aws:iam::12345:role/x", "arn:aws:iam::123456789012:user/x", "arn:aws:iam::123456789012:role/",
    "arn:aws:sts::123456789012:role/x", 'arn:aws:iam::123456789012:role/x","injected', " " + ROLE,
])
def test_a_malformed_role_arn_is_refused_at_construction(arn: str) -> None:
    with pytest.raises(ValueError, match="role_arn"):
        AwsBackend(role_arn=arn)


def test_role_options_that_sts_would_refuse_are_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="role_session_name"):
        AwsBackend(role_arn=ROLE, role_session_name="has space")
    with pytest.raises(ValueError, match="external_id"):
        AwsBackend(role_arn=ROLE, external_id="x")
    with pytest.raises(ValueError, match="external_id"):
        AwsBackend(external_id="partner-7781")
    with pytest.raises(TypeError, match="client"):
        AwsBackend(object(), role_arn=ROLE)  # type: ignore[arg-type]


def test_the_role_shows_in_the_repr_and_nothing_is_called_until_a_read() -> None:
    backend = AwsBackend(role_arn=ROLE, region_name=EAST)
    assert ROLE in repr(backend)
    assert backend.role_arn == ROLE


# -- no credential anywhere -------------------------------------------------------------------------


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.texts: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.texts.append(self.format(record))


@pytest.fixture
def debug_logs() -> Iterator[Capture]:
    """Every logger at DEBUG (botocore's and urllib3's included), formatted with tracebacks."""
    capture = Capture()
    root = logging.getLogger()
    names = ["botocore", "boto3", "urllib3", "secretcache"]
    levels = {name: logging.getLogger(name).level for name in names}
    root_level = root.level
    root.addHandler(capture)
    root.setLevel(logging.DEBUG)
    for name in names:
        logging.getLogger(name).setLevel(logging.DEBUG)
    try:
        yield capture
    finally:
        root.removeHandler(capture)
        root.setLevel(root_level)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


@pytest.mark.usefixtures("aws")
def test_no_credential_in_any_debug_record_repr_or_error(debug_logs: Capture) -> None:
    import boto3

    create_in_other_account("quiet/db", canary_value())
    source_secret, source_token = canary_value(), canary_value()
    base = boto3.session.Session(aws_access_key_id="AKIDSOURCE0000000001", aws_secret_access_key=source_secret,
                                 aws_session_token=source_token, region_name=EAST)
    backend = AwsBackend(role_arn=ROLE, session=base)
    cache = SecretCache(backend)
    try:
        cache.get_secret_value("quiet/db")
        cache.refresh("quiet/db")
        assumed = backend.session.get_credentials().get_frozen_credentials()
        with pytest.raises(SecretNotFoundError) as missing:
            backend.get_secret_value("quiet/nothing-here")
        throttled = AwsBackend(role_arn=ROLE, session=failing_sts(lambda _: sts_error(400, "Throttling", "slow")))
        with pytest.raises(AssumeRoleUnavailableError) as failed:
            throttled.get_secret_value("quiet/db")
    finally:
        cache.close()

    credentials = {"assumed access key": assumed.access_key, "assumed secret key": assumed.secret_key,
                   "assumed session token": assumed.token, "source secret key": source_secret,
                   "source session token": source_token, "canary": CANARY}
    assert all(credentials.values())
    # botocore logged the canonical requests it signed (with their x-amz-security-token), redacted.
    assert any(text.startswith("botocore.auth DEBUG CanonicalRequest") for text in debug_logs.texts)
    places = {f"log record {i}": text for i, text in enumerate(debug_logs.texts)}
    places.update({"repr(backend)": repr(backend), "repr(cache)": repr(cache)})
    for name, error in (("not found", missing.value), ("AssumeRole failure", failed.value)):
        places[f"{name}: str"] = str(error)
        places[f"{name}: repr"] = repr(error)
        # From the frame below this test's (whose locals are the test's own) down, chained causes included.
        below = error.__traceback__.tb_next if error.__traceback__ is not None else None
        places[f"{name}: traceback with locals"] = "".join(
            traceback.TracebackException(type(error), error, below, capture_locals=True).format())
    leaks = [f"{what} in {where}" for where, text in places.items()
             for what, secret in credentials.items() if secret in text]
    assert leaks == []


# -- fork -------------------------------------------------------------------------------------------


@pytest.mark.integration
def test_a_forked_child_assumes_the_role_again_with_credentials_of_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    """The parent's refreshable credentials carry a lock a parent thread may hold at the fork: the child
    rebuilds the session (and assumes the role itself) instead of sharing them."""
    import boto3

    from devtools.moto_helpers import moto_server
    from tests.fixtures.forking import fork_child, reap

    with moto_server() as url:
        monkeypatch.setenv("AWS_ENDPOINT_URL_STS", url)
        sts = boto3.client("sts", region_name=EAST, endpoint_url=url)
        creds = sts.assume_role(RoleArn=ROLE, RoleSessionName="setup")["Credentials"]
        boto3.client("secretsmanager", region_name=EAST, endpoint_url=url, aws_access_key_id=creds["AccessKeyId"],
                     aws_secret_access_key=creds["SecretAccessKey"], aws_session_token=creds["SessionToken"],
                     ).create_secret(Name="fork/db", SecretString="v")
        backend = AwsBackend(role_arn=ROLE, region_name=EAST, endpoint_url=url)
        assert backend.get_secret_value("fork/db").secret_string == "v"
        parent = backend.session.get_credentials()

        def check() -> dict[str, Any]:
            child = backend.session.get_credentials()
            return {"value": backend.get_secret_value("fork/db").secret_string, "same": child is parent,
                    "kind": type(child).__name__}

        assert reap(*fork_child(check)) == {"value": "v", "same": False, "kind": "DeferredRefreshableCredentials"}
