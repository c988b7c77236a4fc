"""Parameter Store and Secrets Manager through one cache: ``ssm:`` references, batches, a hierarchy, settings.

Powertools users move like this (docs/parameters.md has the whole table)::

    - from aws_lambda_powertools.utilities import parameters
    - url = parameters.get_parameter("/app/prod/db-url", decrypt=True, max_age=300)
    - everything = parameters.get_parameters("/app/prod/", decrypt=True)
    + import secretcache
    + url = secretcache.get("ssm:/app/prod/db-url")
    + everything = secretcache.default_cache().get_path("ssm:/app/prod/")

Run it: ``python examples/parameters.py`` (against moto, in process: ``pip install moto``).
"""

from __future__ import annotations

import json
import os

from pydantic import BaseModel
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from secretcache import SecretCache
from secretcache.backends import AwsBackend
from secretcache.settings import SecretsSettingsSource

REGION = "us-east-1"


def seed() -> None:
    """What an operator would have put in Parameter Store and Secrets Manager (here: moto)."""
    import boto3

    ssm = boto3.client("ssm", region_name=REGION)
    ssm.put_parameter(Name="/app/prod/api_url", Value="https://api.example.com", Type="String")
    ssm.put_parameter(Name="/app/prod/db/host", Value="db.internal", Type="String")
    ssm.put_parameter(Name="/app/prod/db/port", Value="5432", Type="String")
    ssm.put_parameter(Name="/app/prod/db/password", Value="example-password", Type="SecureString")
    ssm.put_parameter(Name="/app/prod/feature", Value=json.dumps({"checkout": True}), Type="String")
    ssm.put_parameter(Name="/app/prod/feature", Value=json.dumps({"checkout": False}), Type="String",
                      Overwrite=True)
    boto3.client("secretsmanager", region_name=REGION).create_secret(Name="prod/api-key",
                                                                     SecretString="example-api-key")


class Database(BaseModel):
    host: str
    port: int
    password: str


class Settings(BaseSettings):
    """Every field from the parameters under /app/prod/: ``db/host`` fills ``db.host``."""

    api_url: str
    db: Database

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        path = SecretsSettingsSource(settings_cls, cache=CACHE, parameter_path="/app/prod/")
        return init_settings, env_settings, path


CACHE = SecretCache(AwsBackend(region_name=REGION))


def main() -> None:
    # One cache, two services: a parameter and a secret side by side.
    print("api url:", CACHE.get("ssm:/app/prod/api_url"))
    print("api key:", len(CACHE.get("prod/api-key")), "chars")
    # A JSON key, an older version, CloudFormation's form.
    print("checkout now:", CACHE.get("ssm:/app/prod/feature#checkout"))
    print("checkout in version 1:", CACHE.get("ssm:/app/prod/feature:1#checkout"))
    print("resolved:", CACHE.get("{{resolve:ssm:/app/prod/api_url}}/v1/orders"))
    # A hierarchy: one GetParametersByPath walk, its parameters cached with it.
    everything = CACHE.get_path("ssm:/app/prod/")
    print("under /app/prod/:", sorted(everything))
    calls = CACHE.stats.backend_calls
    CACHE.get("ssm:/app/prod/db/host")  # a hit: the walk cached it
    print("calls for a listed parameter:", CACHE.stats.backend_calls - calls)
    # Settings from the same hierarchy (the cached walk again: no call).
    settings = Settings()  # type: ignore[call-arg]
    print("settings:", settings.api_url, settings.db.host, settings.db.port, f"<{len(settings.db.password)} chars>")
    print("cache stats:", CACHE.stats)


if __name__ == "__main__":
    for key, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing")):
        os.environ.setdefault(key, value)
    from moto import mock_aws

    with mock_aws():
        seed()
        main()
