"""SecretsSettingsSource: pydantic-settings fields from Secrets Manager, fetched together, through the cache."""

from __future__ import annotations

import json
import logging
import traceback
from typing import Any

import pytest
from pydantic import Field
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, SettingsError

from secretcache import SecretCache
from secretcache.settings import SecretsSettingsSource
from secretcache.testing import InMemoryBackend
from tests.fixtures.fix_canary import CANARY, canary_value


def with_source(cache: SecretCache, model: type[BaseSettings]) -> type[BaseSettings]:
    """``model`` with the source after init, env and dotenv (which win over it)."""

    class Configured(model):  # type: ignore[valid-type, misc]
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            return init_settings, env_settings, dotenv_settings, SecretsSettingsSource(settings_cls, cache=cache)

    return Configured


class PerField(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="APP_")

    api_key: str = Field(json_schema_extra={"secret": "prod/api-key"})
    db_password: str = Field(json_schema_extra={"secret": "prod/db#password"})
    db_port: int = Field(json_schema_extra={"secret": "prod/db#port"})
    webhook: str = Field(json_schema_extra={"secret": "prod/webhook#signing_key"})
    region: str = "us-east-1"


@pytest.fixture
def secrets() -> dict[str, str]:
    return {
        "prod/api-key": canary_value("api"),
        "prod/db": json.dumps({"password": canary_value("db"), "port": 5432}),
        "prod/webhook": json.dumps({"signing_key": canary_value("hook")}),
    }


def test_every_secret_of_a_model_comes_from_one_batch_call(secrets: dict[str, str]) -> None:
    backend = InMemoryBackend(secrets)
    with SecretCache(backend) as cache:
        settings: Any = with_source(cache, PerField)()
        assert settings.api_key == secrets["prod/api-key"]
        assert settings.db_password == json.loads(secrets["prod/db"])["password"]
        assert settings.db_port == 5432
        assert settings.webhook == json.loads(secrets["prod/webhook"])["signing_key"]
        assert settings.region == "us-east-1"
        assert backend.calls["BatchGetSecretValue"] == 1
        assert backend.calls["GetSecretValue"] == 0
        with_source(cache, PerField)()  # built again: all cache hits
        assert sum(backend.calls.values()) == 1


def test_one_batch_get_secret_value_on_moto(secrets: dict[str, str]) -> None:
    import boto3
    from moto import mock_aws

    from devtools.moto_helpers import count_calls

    with mock_aws():
        client = boto3.client("secretsmanager", region_name="us-east-1")
        for name, value in secrets.items():
            client.create_secret(Name=name, SecretString=value)
        batch, single = count_calls(client, "BatchGetSecretValue"), count_calls(client, "GetSecretValue")
        with SecretCache(client=client) as cache:
            settings: Any = with_source(cache, PerField)()
        assert settings.db_port == 5432
        assert settings.api_key == secrets["prod/api-key"]
        assert len(batch) == 1
        assert sorted(batch[0]["SecretIdList"]) == ["prod/api-key", "prod/db", "prod/webhook"]
        assert single == []


def test_environment_variables_win_over_secrets(secrets: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_API_KEY", "from-env")
    with SecretCache(InMemoryBackend(secrets)) as cache:
        settings: Any = with_source(cache, PerField)()
    assert settings.api_key == "from-env"
    assert settings.db_port == 5432


class FromOneSecret(BaseSettings):
    model_config = SettingsConfigDict(secretcache_secret_id="prod/app")  # type: ignore[typeddict-unknown-key]

    username: str
    password: str
    port: int = 0
    debug: bool = False
    tags: list[str] = []
    signing: str = Field(alias="signingKey")
    other: str = Field(default="default", json_schema_extra={"secret": "prod/other"})


def test_a_model_secret_fills_same_named_keys_and_aliases() -> None:
    app = {"username": "svc", "password": canary_value("pw"), "port": 6379, "tags": ["a", "b"],
           "signingKey": canary_value("sig")}
    other = canary_value("other")
    backend = InMemoryBackend({"prod/app": json.dumps(app), "prod/other": other})
    with SecretCache(backend) as cache:
        settings: Any = with_source(cache, FromOneSecret)()
    assert (settings.username, settings.password, settings.port) == ("svc", app["password"], 6379)
    assert settings.tags == ["a", "b"]
    assert settings.signing == app["signingKey"]
    assert settings.debug is False  # absent from the secret: the default
    assert settings.other == other
    assert backend.calls["BatchGetSecretValue"] == 1


def test_a_missing_key_names_field_and_secret_and_no_value(secrets: dict[str, str]) -> None:
    secrets["prod/webhook"] = json.dumps({"other_key": canary_value("hook")})
    with SecretCache(InMemoryBackend(secrets)) as cache, pytest.raises(SettingsError) as info:
        with_source(cache, PerField)()
    message = str(info.value)
    assert '"webhook"' in message
    assert "prod/webhook" in message
    assert CANARY not in message


def test_a_missing_secret_names_field_and_secret(secrets: dict[str, str]) -> None:
    del secrets["prod/db"]
    backend = InMemoryBackend(secrets)
    with SecretCache(backend) as cache, pytest.raises(SettingsError) as info:
        with_source(cache, PerField)()
    assert '"db_password"' in str(info.value)
    assert "prod/db" in str(info.value)
    assert backend.calls["GetSecretValue"] == 0  # the batch's failure is reported, not fetched again


def test_a_model_secret_that_is_not_json_is_a_settings_error() -> None:
    with SecretCache(InMemoryBackend({"prod/app": canary_value("text")})) as cache, \
            pytest.raises(SettingsError) as info:
        with_source(cache, FromOneSecret)()
    assert "prod/app" in str(info.value)
    assert CANARY not in str(info.value)


def test_a_reference_naming_a_stage_is_read_at_that_stage() -> None:
    old = canary_value("old")
    backend = InMemoryBackend({"prod/k": old})
    backend.rotate("prod/k", canary_value("new"))

    class Previous(BaseSettings):
        key: str = Field(json_schema_extra={"secret": "{{resolve:secretsmanager:prod/k:SecretString::AWSPREVIOUS}}"})

    with SecretCache(backend) as cache:
        assert with_source(cache, Previous)().key == old  # type: ignore[attr-defined]


def test_a_bad_reference_is_a_settings_error() -> None:
    class Bad(BaseSettings):
        key: str = Field(json_schema_extra={"secret": "bad#"})

    with SecretCache(InMemoryBackend()) as cache, pytest.raises(SettingsError, match='"key"'):
        with_source(cache, Bad)()



# -- fields set by earlier sources are not fetched; the model secret as a constructor argument ------------


def test_no_call_when_earlier_sources_set_every_field(secrets: dict[str, str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    backend = InMemoryBackend(secrets)
    for name, value in (("APP_API_KEY", "env-key"), ("APP_DB_PASSWORD", "env-pw"), ("APP_DB_PORT", "6543"),
                        ("APP_WEBHOOK", "env-hook")):
        monkeypatch.setenv(name, value)
    with SecretCache(backend) as cache:
        settings: Any = with_source(cache, PerField)()
        assert (settings.api_key, settings.db_password, settings.db_port, settings.webhook) == (
            "env-key", "env-pw", 6543, "env-hook")
    assert sum(backend.calls.values()) == 0


def test_only_the_fields_left_are_fetched(secrets: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    # The secrets of the fields the environment sets do not even exist: fetching them would fail.
    backend = InMemoryBackend({"prod/db": secrets["prod/db"]})
    monkeypatch.setenv("APP_API_KEY", "env-key")
    monkeypatch.setenv("APP_WEBHOOK", "env-hook")
    with SecretCache(backend) as cache:
        settings: Any = with_source(cache, PerField)()
        assert settings.api_key == "env-key"
        assert settings.db_port == 5432
    assert backend.calls["GetSecretValue"] + backend.calls["BatchGetSecretValue"] == 1


def test_an_unreachable_aws_does_not_matter_when_the_environment_sets_everything(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from botocore.config import Config

    from secretcache.backends import AwsBackend

    for name, value in (("APP_API_KEY", "k"), ("APP_DB_PASSWORD", "p"), ("APP_DB_PORT", "1"), ("APP_WEBHOOK", "w")):
        monkeypatch.setenv(name, value)
    dead = AwsBackend(region_name="us-east-1", endpoint_url="http://127.0.0.1:9",
                      config=Config(retries={"mode": "standard", "total_max_attempts": 1}))
    with SecretCache(dead) as cache:
        settings: Any = with_source(cache, PerField)()
    assert settings.db_port == 1


class ModelSecret(BaseSettings):
    api_key: str
    db_port: int


def test_the_model_secret_as_a_constructor_argument() -> None:
    backend = InMemoryBackend({"prod/app": json.dumps({"api_key": canary_value("app"), "db_port": 5})})

    class Configured(ModelSecret):
        @classmethod
        def settings_customise_sources(
            cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            return init_settings, SecretsSettingsSource(settings_cls, cache=cache, secret_id="prod/app")

    with SecretCache(backend) as cache:
        settings = Configured()
        assert settings.db_port == 5
        assert settings.api_key.startswith("sc-canary")
        assert Configured(api_key="given", db_port=1).db_port == 1  # init wins, and nothing more is read
    assert sum(backend.calls.values()) == 1
    with pytest.raises(SettingsError, match="secret_id must be a secret id"):
        SecretsSettingsSource(ModelSecret, secret_id="")


class Typed(BaseSettings):
    port: int = Field(json_schema_extra={"secret": "prod/db#port"})
    workers: int = Field(default=1, json_schema_extra={"secret": "prod/workers"}, gt=0)


class TypedFromOneSecret(BaseSettings):
    model_config = SettingsConfigDict(secretcache_secret_id="prod/app")  # type: ignore[typeddict-unknown-key]

    timeout: float = 1.0


@pytest.mark.parametrize(("model", "secrets", "field", "secret"), [
    (Typed, {"prod/db": json.dumps({"port": canary_value("port")}), "prod/workers": "3"}, "port", "prod/db"),
    (Typed, {"prod/db": json.dumps({"port": 5432}), "prod/workers": canary_value("workers")}, "workers",
     "prod/workers"),
    (TypedFromOneSecret, {"prod/app": json.dumps({"timeout": canary_value("timeout")})}, "timeout", "prod/app"),
])
def test_a_value_that_fails_validation_is_named_never_shown(
    model: type[BaseSettings], secrets: dict[str, str], field: str, secret: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with SecretCache(InMemoryBackend(secrets)) as cache, pytest.raises(Exception) as info:
        with_source(cache, model)()
    error = info.value
    assert isinstance(error, SettingsError)
    texts = [str(error), repr(error), "".join(traceback.format_exception(error))]
    for text in texts:
        assert CANARY not in text
    assert f'"{field}"' in str(error)
    assert secret in str(error)
    assert "valid" in str(error)  # pydantic's message, without the input
    assert CANARY not in caplog.text


def test_a_constraint_failure_is_named_never_shown() -> None:
    secrets = {"prod/db": json.dumps({"port": 5432}), "prod/workers": "-7"}
    with SecretCache(InMemoryBackend(secrets)) as cache, pytest.raises(SettingsError) as info:
        with_source(cache, Typed)()
    assert "greater than 0" in str(info.value)
    assert "-7" not in str(info.value)
    assert '"workers"' in str(info.value)


def test_valid_values_still_validate_as_their_types() -> None:
    secrets = {"prod/db": json.dumps({"port": "5432"}), "prod/workers": "3"}
    with SecretCache(InMemoryBackend(secrets)) as cache:
        settings: Any = with_source(cache, Typed)()
    assert (settings.port, settings.workers) == (5432, 3)
