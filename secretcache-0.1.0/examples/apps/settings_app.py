"""A pydantic-settings app whose secrets come from Secrets Manager through secretcache, in one batch call.

Run it: ``python examples/apps/settings_app.py`` (an in-memory store stands in for Secrets Manager; in
production drop the ``set_default_cache`` line and the default cache reads AWS).
"""

from __future__ import annotations

import json

from pydantic import Field
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

import secretcache
from secretcache import SecretCache
from secretcache.settings import SecretsSettingsSource
from secretcache.testing import InMemoryBackend


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="APP_", secretcache_secret_id="prod/app")  # type: ignore[typeddict-unknown-key]

    username: str  # from the "username" key of prod/app
    password: str
    port: int = 5432
    api_key: str = Field(json_schema_extra={"secret": "prod/api-key"})
    debug: bool = False  # APP_DEBUG=1 in the environment wins over everything below it

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource,
                                   dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource,
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, dotenv_settings, SecretsSettingsSource(settings_cls)


def main() -> None:
    store = InMemoryBackend({"prod/app": json.dumps({"username": "app", "password": "example", "port": 6432}),
                             "prod/api-key": "example-key"})
    secretcache.set_default_cache(SecretCache(store))
    settings = Settings()
    print(f"user={settings.username} port={settings.port} debug={settings.debug}")
    print(f"Secrets Manager calls: {dict(store.calls)}")


if __name__ == "__main__":
    main()
