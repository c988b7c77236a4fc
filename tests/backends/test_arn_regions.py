"""References by full ARN are read in the ARN's Region (moto, in process: both Regions)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from devtools.moto_helpers import count_calls, inject
from secretcache import SecretCache
from secretcache.backends.aws import AwsBackend
from tests.fixtures.fix_canary import canary_value

EAST, WEST, IRELAND = "us-east-1", "us-west-2", "eu-west-1"


def one_attempt() -> Any:
    from botocore.config import Config

    return Config(retries={"mode": "standard", "total_max_attempts": 1})


@pytest.fixture
def moto() -> Iterator[Any]:
    import boto3
    from moto import mock_aws

    with mock_aws():
        yield boto3


def test_an_arn_in_another_region_is_read_there_through_a_default_in_us_east_1(moto: Any) -> None:
    value = canary_value("ireland")
    arn = moto.client("secretsmanager", region_name=IRELAND).create_secret(Name="eu/app", SecretString=value)["ARN"]
    backend = AwsBackend(region_name=EAST)
    with SecretCache(backend) as cache:
        assert cache.get_secret_string(arn) == value
    assert backend.client_for(IRELAND).meta.region_name == IRELAND
    assert backend.client.meta.region_name == EAST


def test_a_partial_arn_and_an_ecs_value_from_arn_are_read_in_their_region(moto: Any) -> None:
    import json

    secret = json.dumps({"password": canary_value("pw")})
    arn = moto.client("secretsmanager", region_name=IRELAND).create_secret(Name="eu/db", SecretString=secret)["ARN"]
    with SecretCache(AwsBackend(region_name=EAST)) as cache:
        assert cache.get_secret_string(arn[:-7]) == secret  # partial ARN: the name without its suffix
        assert cache.get(f"{arn}:password::") == json.loads(secret)["password"]


def test_names_still_go_to_the_primary_region(moto: Any) -> None:
    value = canary_value("east")
    moto.client("secretsmanager", region_name=EAST).create_secret(Name="app", SecretString=value)
    moto.client("secretsmanager", region_name=IRELAND).create_secret(Name="app", SecretString=canary_value("eu"))
    backend = AwsBackend(region_name=EAST)
    assert backend.get_secret_value("app").secret_string == value
    assert IRELAND not in backend._clients


def test_a_batch_asks_each_region_for_its_own_arns(moto: Any) -> None:
    east_value, eu_value = canary_value("e"), canary_value("i")
    moto.client("secretsmanager", region_name=EAST).create_secret(Name="east/a", SecretString=east_value)
    eu_arn = moto.client("secretsmanager", region_name=IRELAND).create_secret(
        Name="eu/b", SecretString=eu_value)["ARN"]
    backend = AwsBackend(region_name=EAST)
    with SecretCache(backend) as cache:
        got = cache.get_many(["east/a", eu_arn])
        assert got["east/a"].secret_string == east_value
        assert got[eu_arn].secret_string == eu_value


def test_a_region_client_reuses_a_custom_endpoint(moto: Any) -> None:
    backend = AwsBackend(region_name=EAST, endpoint_url="http://127.0.0.1:4566")
    assert backend.client_for(IRELAND).meta.endpoint_url == "http://127.0.0.1:4566"
    given = moto.client("secretsmanager", region_name=EAST, endpoint_url="http://127.0.0.1:4567")
    assert AwsBackend(client=given).client_for(IRELAND).meta.endpoint_url == "http://127.0.0.1:4567"
    standard = AwsBackend(client=moto.client("secretsmanager", region_name=EAST))
    assert standard.client_for(IRELAND).meta.endpoint_url == f"https://secretsmanager.{IRELAND}.amazonaws.com"


def test_failover_regions_keep_working_for_an_arn_of_another_region(moto: Any) -> None:
    arn = moto.client("secretsmanager", region_name=IRELAND).create_secret(
        Name="eu/replicated", SecretString="v", AddReplicaRegions=[{"Region": WEST}])["ARN"]
    backend = AwsBackend(region_name=EAST, failover_regions=[WEST], config=one_attempt())
    inject(backend.client_for(IRELAND), "5xx")
    west_calls = count_calls(backend.client_for(WEST), "GetSecretValue")
    value = backend.get_secret_value(arn)
    assert value.arn == arn.replace(IRELAND, WEST)
    assert len(west_calls) == 1
