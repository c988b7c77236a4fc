"""SecretsSettingsSource with ``secretcache_parameter_path``: a model filled from a Parameter Store hierarchy
(prefix stripped, ``/`` nesting into sub-models), one cached paged read per model, errors without values."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict
from pydantic_settings.exceptions import SettingsError

from devtools.moto_helpers import count_calls
from secretcache import SecretCache
from secretcache.backends import AwsBackend
from secretcache.settings import SecretsSettingsSource
from tests.fixtures.fix_canary import CANARY, canary_value

REGION = "us-east-1"


@pytest.fixture
def ssm() -> Iterator[Any]:
    import boto3
    from moto import mock_aws

    with mock_aws():
        yield boto3.client("ssm", region_name=REGION)


class Database(BaseModel):
    host: str
    port: int
    password: str


def model(cache: SecretCache, path: str, **extra: Any) -> type[BaseSettings]:
    class Settings(BaseSettings):
        model_config = SettingsConfigDict(secretcache_parameter_path=path, **extra)  # type: ignore[typeddict-unknown-key]

        api_url: str
        timeout: int = 5
        db: Database
        hosts: list[str] = []
        token: str = Field(default="", json_schema_extra={"secret": "ssm:/other/token"})

        @classmethod
        def settings_customise_sources(
            cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            return init_settings, SecretsSettingsSource(settings_cls, cache=cache)

    return Settings


def fill(ssm: Any, password: str) -> None:
    ssm.put_parameter(Name="/app/prod/api_url", Value="https://api.example", Type="String")
    ssm.put_parameter(Name="/app/prod/db/host", Value="db.internal", Type="String")
    ssm.put_parameter(Name="/app/prod/db/port", Value="5432", Type="String")
    ssm.put_parameter(Name="/app/prod/db/password", Value=password, Type="SecureString")
    ssm.put_parameter(Name="/app/prod/hosts", Value=json.dumps(["a", "b"]), Type="StringList")
    for i in range(12):  # more than a page of parameters the model does not name
        ssm.put_parameter(Name=f"/app/prod/unused/p{i}", Value="x", Type="String")
    ssm.put_parameter(Name="/other/token", Value="tok", Type="SecureString")


def test_a_model_is_filled_from_a_hierarchy_with_one_cached_paged_read(ssm: Any) -> None:
    password = canary_value("settings-path")
    fill(ssm, password)
    backend = AwsBackend(region_name=REGION)
    pages = count_calls(backend.ssm_client_for(None), "GetParametersByPath", service="ssm")
    with SecretCache(backend) as cache:
        settings_cls = model(cache, "/app/prod/")
        first: Any = settings_cls()
        assert first.api_url == "https://api.example"
        assert first.db == Database(host="db.internal", port=5432, password=password)
        assert first.hosts == ["a", "b"]
        assert first.timeout == 5
        assert first.token == "tok"  # a per-field ssm: reference beside the path
        assert len(pages) == 2  # 17 parameters: two pages, each read once
        again: Any = settings_cls()
        assert again.db.password == password
        assert len(pages) == 2  # the second model is a cache hit
        assert CANARY not in repr(SecretsSettingsSource(settings_cls, cache=cache))


@pytest.mark.parametrize("path", ["ssm:/app/prod", "/app/prod"])
def test_the_path_may_carry_ssm_and_lack_the_trailing_slash(ssm: Any, path: str) -> None:
    fill(ssm, "pw")
    with SecretCache(AwsBackend(region_name=REGION)) as cache:
        assert model(cache, path)().api_url == "https://api.example"  # type: ignore[attr-defined]


def test_a_bad_path_or_a_failed_read_is_a_settings_error_without_values(ssm: Any) -> None:
    with SecretCache(AwsBackend(region_name=REGION)) as cache:
        with pytest.raises(SettingsError) as bad:
            model(cache, "app/prod")()
        assert "secretcache_parameter_path" in str(bad.value)
        ssm.put_parameter(Name="/broken/hosts", Value=canary_value("not-json"), Type="SecureString")
        ssm.put_parameter(Name="/broken/api_url", Value="u", Type="String")
        ssm.put_parameter(Name="/broken/db/host", Value="h", Type="String")
        ssm.put_parameter(Name="/other/token", Value="t", Type="String")
        with pytest.raises(SettingsError) as broken:
            model(cache, "/broken/")()
        assert "hosts" in str(broken.value)
        assert CANARY not in str(broken.value)


def test_the_parameter_path_keyword_and_fields_set_earlier(ssm: Any) -> None:
    fill(ssm, "pw")
    backend = AwsBackend(region_name=REGION)
    pages = count_calls(backend.ssm_client_for(None), "GetParametersByPath", service="ssm")

    class Small(BaseSettings):
        api_url: str
        timeout: int = 5

        @classmethod
        def settings_customise_sources(
            cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            return init_settings, SecretsSettingsSource(settings_cls, cache=cache, parameter_path="/app/prod")

    with SecretCache(backend) as cache:
        assert Small().api_url == "https://api.example"
        assert len(pages) == 2
        cache.invalidate()
        given = Small(api_url="from-init", timeout=1)  # every field set earlier: the path is not read
        assert given.api_url == "from-init"
        assert len(pages) == 2
