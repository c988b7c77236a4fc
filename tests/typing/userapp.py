"""A user's module exercising secretcache's public API, checked with ``mypy --strict`` (never imported by
the tests, never run): both cache faces with every factory, the listener and the settings source type-check
without one ignore comment. tests/typing/test_user_typing.py runs mypy on it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import psycopg
import psycopg_pool
import redis
import redis.asyncio
import requests
from pydantic import Field
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

import secretcache
from secretcache import AsyncSecretCache, CacheConfig, SecretCache, SecretValue
from secretcache.backends import AgentBackend, AwsBackend
from secretcache.credentials import AuthPolicy, AuthStats, auth_stats, login, login_async
from secretcache.db import asyncpg as sc_asyncpg
from secretcache.db import psycopg as sc_psycopg
from secretcache.db import pymysql as sc_pymysql
from secretcache.db import sqlalchemy as sc_sqlalchemy
from secretcache.errors import RegionNotConfiguredError, SecretCacheError
from secretcache.events import EventListener
from secretcache.http import SecretAuth
from secretcache.inject import inject_secret
from secretcache.redis import CredentialProvider
from secretcache.redis import async_client as redis_async_client
from secretcache.redis import client as redis_client
from secretcache.settings import SecretsSettingsSource


def caches() -> tuple[SecretCache, AsyncSecretCache]:
    sync = SecretCache(AwsBackend(region_name="eu-west-1"), config=CacheConfig(ttl=60))
    agent = AsyncSecretCache(AgentBackend(unix_socket="/run/secretcache/serve.sock"))
    return sync, agent


def sync_reads(cache: SecretCache) -> str:
    doc = cache.get_secret_json("prod/app")
    doc["extra"] = 1  # your own copy: a dict, safe to change
    many: dict[str, SecretValue] = cache.get_many(["prod/a", "prod/b"], raise_on_error=False)
    value: SecretValue = many["prod/a"]
    top = secretcache.get_secret_json("prod/app")
    top["x"] = 2
    try:
        return cache.get("prod/app#api_key") + (value.secret_string or "")
    except RegionNotConfiguredError as e:
        raise SecretCacheError(str(e)) from e


async def async_reads(cache: AsyncSecretCache) -> str:
    doc = await cache.get_secret_json("prod/app")
    doc["extra"] = 1
    many: dict[str, SecretValue] = await cache.get_many(["prod/a"])
    return await cache.get("prod/app#api_key") + str(len(many))


def databases(cache: SecretCache, acache: AsyncSecretCache) -> None:
    policy = AuthPolicy()
    for c in (cache, acache):
        conn: psycopg.Connection[Any] = sc_psycopg.connect("prod/db", cache=c, policy=policy)
        conn.close()
        pool: psycopg_pool.ConnectionPool[Any] = sc_psycopg.connection_pool("prod/db", cache=c, open=False)
        pool.close()
        engine: Engine = sc_sqlalchemy.create_engine("postgresql+psycopg://", secret_id="prod/db", cache=c)
        engine.dispose()
        my = sc_pymysql.connect("prod/mysql", cache=c)
        my.close()
        make = sc_pymysql.creator("prod/mysql", cache=c)
        make().close()
    stats: AuthStats = auth_stats("prod/db", cache=acache)
    assert stats.refreshes >= 0


async def async_databases(acache: AsyncSecretCache, cache: SecretCache) -> None:
    for c in (acache, cache):
        conn: psycopg.AsyncConnection[Any] = await sc_psycopg.connect_async("prod/db", cache=c)
        await conn.close()
        pool: psycopg_pool.AsyncConnectionPool[Any] = sc_psycopg.async_connection_pool("prod/db", cache=c, open=False)
        await pool.close()
        engine: AsyncEngine = sc_sqlalchemy.create_async_engine(
            "postgresql+psycopg://", secret_id="prod/db", cache=c)
        await engine.dispose()
        pg = await sc_asyncpg.connect("prod/db", cache=c)
        await pg.close()
        pgpool = sc_asyncpg.create_pool("prod/db", cache=c)
        await pgpool.close()


def clients(cache: SecretCache, acache: AsyncSecretCache) -> None:
    sync_redis: redis.Redis = redis_client("prod/cache", cache=cache)
    async_redis: redis.asyncio.Redis = redis_async_client("prod/cache", cache=acache)
    provider = CredentialProvider("prod/cache", cache=acache)
    sync_redis.close()
    print(async_redis, provider)
    auth = SecretAuth("prod/api-token", cache=cache)
    with httpx.Client(auth=auth) as http_client:
        http_client.get("https://api.example.com/")
    requests.get("https://api.example.com/", auth=SecretAuth("prod/legacy", scheme="Basic", cache=acache),
                 timeout=5)
    checked: str = login("prod/smtp", lambda secret: secret.name, is_auth_failure=lambda e: False, cache=acache)
    assert checked


async def async_clients(acache: AsyncSecretCache) -> str:
    async with httpx.AsyncClient(auth=SecretAuth("prod/api-token", cache=acache)) as http_client:
        await http_client.get("https://api.example.com/")

    async def connect(secret: SecretValue) -> str:
        return secret.name

    return await login_async("prod/smtp", connect, is_auth_failure=lambda e: False, cache=acache)


def events(cache: SecretCache, acache: AsyncSecretCache) -> None:
    failures: list[BaseException] = []
    listener = EventListener("https://sqs.eu-west-1.amazonaws.com/123456789012/q", caches=[cache, acache],
                             endpoint_url=None, region_name="eu-west-1", on_failure=failures.append)
    with listener:
        assert listener.failure is None


class PerField(BaseSettings):
    api_key: str = Field(json_schema_extra={"secret": "prod/api-key"})


class FromOneSecret(BaseSettings):
    api_key: str
    db_port: int

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, SecretsSettingsSource(settings_cls, secret_id="prod/app")


def settings(acache: AsyncSecretCache) -> int:
    SecretsSettingsSource(PerField, cache=acache)
    return FromOneSecret().db_port


@inject_secret("prod/db#password", into="password")
def with_password(user: str, password: str = "") -> str:
    return f"{user}:{len(password)}"


@inject_secret("prod/db#password", into="password", cache=AsyncSecretCache())
async def with_password_async(password: str = "") -> int:
    return len(password)


async def injected() -> AsyncIterator[str]:
    name: str = with_password("app")  # the return type survives the decorator
    size: int = await with_password_async()
    yield f"{name}{size}"
