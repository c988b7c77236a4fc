"""The examples in examples/: each runs as a script, and their code works against our own fixtures.

(examples/lambda_handler.py is imported cold and invoked in tests/decorators/test_lambda.py.)
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import inspect
import json

import pytest

from secretcache import SecretCache
from secretcache.testing import InMemoryBackend
from tests.fixtures.examples import EXAMPLES, load, run_example
from tests.fixtures.fix_canary import canary_value


def test_every_example_is_tested() -> None:
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == [
        "fastapi_async.py", "flask_wsgi.py", "lambda_handler.py", "migrate_from_official.py", "mounted_files.py",
        "parameters.py",
    ]


# -- fastapi_async ----------------------------------------------------------------------------------


def test_fastapi_example_runs() -> None:
    out = run_example("fastapi_async.py").splitlines()
    assert out[0].startswith('200 {"as_user": "app", "orders": [')
    assert out[2] == '422 {"detail": {"missing": [], "unknown": ["db_password"]}}'
    assert out[3:5] == ['200 {"valid": true}', '200 {"valid": false}']
    assert "db_password" not in out[5]  # the signature the framework sees
    assert out[6] == "Secrets Manager calls: 2"


async def test_fastapi_example_endpoints_read_through_the_default_cache(
    use_secret_cache: SecretCache, secret_backend: InMemoryBackend
) -> None:
    module = load("fastapi_async")
    key = canary_value("key")
    secret_backend.put_secret("prod/db", json.dumps({"username": "app", "password": canary_value("pw")}))
    secret_backend.put_secret("prod/webhook", json.dumps({"signing_key": key}))
    assert list(inspect.signature(module.list_orders).parameters) == ["customer", "limit"]
    status, body = await module.app.request("/orders", {"customer": "c9", "limit": "1"})
    assert (status, body) == (200, {"orders": [{"id": 0, "customer": "c9"}], "as_user": "app"})
    signature = hmac.new(key.encode(), b"payload", hashlib.sha256).hexdigest()
    assert await module.app.request("/webhooks/verify", {"body": "payload", "signature": signature}) == (
        200, {"valid": True})
    new_key = canary_value("new-key")
    secret_backend.rotate("prod/webhook", json.dumps({"signing_key": new_key}))
    use_secret_cache.refresh("prod/webhook")
    assert await module.app.request("/webhooks/verify", {"body": "payload", "signature": signature}) == (
        200, {"valid": False})
    await asyncio.sleep(0)


# -- flask_wsgi -------------------------------------------------------------------------------------


def test_wsgi_example_runs() -> None:
    assert run_example("flask_wsgi.py").splitlines() == [
        '200 OK {"ok": true}',
        '200 OK {"hello": "world", "database": "db.internal:5432/app"}',
        '401 Unauthorized {"error": "unauthorized"}',
        '401 Unauthorized {"error": "unauthorized"}',
        '200 OK {"hello": "world", "database": "db.internal:5432/app"}',
    ]


def test_wsgi_example_checks_the_current_token(use_secret_cache: SecretCache, secret_backend: InMemoryBackend,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    module = load("flask_wsgi")
    token = canary_value("token")
    secret_backend.put_secret("prod/api-token", token)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    assert module.call("/", token=token).startswith("200 OK")
    assert module.call("/", token="nope").startswith("401")
    assert module.call("/").startswith("401")
    assert secret_backend.calls["GetSecretValue"] == 1  # every request after the first was a cache hit


# -- migrate_from_official -------------------------------------------------------------------------


def test_migration_example_runs() -> None:
    out = run_example("migrate_from_official.py", no_aws_configuration=True).splitlines()
    assert out[:6] == [
        "connect(host='db.internal', user='app', password=<9 chars>)",
        "GET /v1/orders with an API key of 12 chars",
        "connect(host='db.internal', user='app', password=<9 chars>)",
        "refreshed: True",
        "connect(host='db.internal', user='app2', password=<1 chars>)",
        "no AWSPENDING version: SecretNotFoundError",
    ]
    assert out[6].startswith("cache stats: CacheStats(")


# -- parameters ------------------------------------------------------------------------------------


def test_parameters_example_runs() -> None:
    out = run_example("parameters.py").splitlines()
    assert out[:8] == [
        "api url: https://api.example.com",
        "api key: 15 chars",
        "checkout now: false",
        "checkout in version 1: true",
        "resolved: https://api.example.com/v1/orders",
        "under /app/prod/: ['ssm:/app/prod/api_url', 'ssm:/app/prod/db/host', 'ssm:/app/prod/db/password', "
        "'ssm:/app/prod/db/port', 'ssm:/app/prod/feature']",
        "calls for a listed parameter: 0",
        "settings: https://api.example.com db.internal 5432 <16 chars>",
    ]
    assert "example-password" not in "\n".join(out)
