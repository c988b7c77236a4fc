"""The Agent API as a function (``secretcache.serve._app``), in process: routing, the token rules and
the error mapping, without a socket (the same rules end to end are in test_serve.py)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import pytest

from secretcache import CacheConfig, SecretCache
from secretcache.errors import (
    SecretAccessDeniedError,
    SecretCacheError,
    SecretDeletedError,
    SecretNotFoundError,
    SecretThrottledError,
    SecretUnavailableError,
)
from secretcache.serve import AgentApi, error_status, read_token
from secretcache.testing import InMemoryBackend
from tests.fixtures.fix_canary import CANARY, canary_value


@pytest.fixture
def memory() -> InMemoryBackend:
    return InMemoryBackend()


@pytest.fixture
def api(memory: InMemoryBackend) -> Iterator[AgentApi]:
    with SecretCache(memory, config=CacheConfig(ttl=300)) as cache:
        yield AgentApi(cache, token="t0k")


def headers(**given: str) -> object:
    lowered = {k.lower().replace("_", "-"): v for k, v in given.items()}
    return lowered.get


TOKEN = headers(X_Aws_Parameters_Secrets_Token="t0k")


def test_the_rules_come_in_the_agents_order(api: AgentApi) -> None:
    forwarded = headers(X_Forwarded_For="1.2.3.4", X_Aws_Parameters_Secrets_Token="t0k")
    assert api.handle("POST", "/ping", forwarded).status == 400  # type: ignore[arg-type]
    assert api.handle("POST", "/ping", TOKEN).status == 405  # type: ignore[arg-type]
    assert api.handle("GET", "/ping", headers()).body == b"healthy"  # type: ignore[arg-type]
    assert api.handle("GET", "/v1/x", headers()).status == 403  # type: ignore[arg-type]
    assert api.handle("GET", "/v1/x", headers(X_Vault_Token="nope")).status == 403  # type: ignore[arg-type]
    assert api.handle("GET", "/other", TOKEN).status == 404  # type: ignore[arg-type]
    assert api.handle("GET", "/v1/", TOKEN).status == 404  # type: ignore[arg-type]
    assert api.handle("GET", "/v1/x?secretId=y", TOKEN).status == 400  # type: ignore[arg-type]


def test_a_read_renders_get_secret_value_json(api: AgentApi, memory: InMemoryBackend) -> None:
    value = canary_value("app")
    memory.put_secret("app/one", value)
    memory.put_secret("app/bin", b"\x00\x01" + value.encode())
    response = api.handle("GET", "/secretsmanager/get?secretId=app/one", TOKEN)  # type: ignore[arg-type]
    doc = json.loads(response.body)
    assert response.status == 200
    assert response.content_type == "application/json"
    assert doc["SecretString"] == value
    assert doc["Name"] == "app/one"
    assert doc["VersionStages"] == ["AWSCURRENT"]
    again = api.handle("GET", "/secretsmanager/get?secretId=app/one", TOKEN)  # type: ignore[arg-type]
    assert again.body is response.body  # rendered once per cached version
    binary = json.loads(api.handle("GET", "/v1/app%2Fbin", TOKEN).body)  # type: ignore[arg-type]
    assert base64.b64decode(binary["SecretBinary"]) == b"\x00\x01" + value.encode()


def test_refresh_now_fetches_again(api: AgentApi, memory: InMemoryBackend) -> None:
    memory.put_secret("app/r", "one")
    api.handle("GET", "/v1/app/r", TOKEN)  # type: ignore[arg-type]
    memory.put_secret("app/r", "two")
    assert json.loads(api.handle("GET", "/v1/app/r", TOKEN).body)["SecretString"] == "one"  # type: ignore[arg-type]
    forced = api.handle("GET", "/v1/app/r?refreshNow=true", TOKEN)  # type: ignore[arg-type]
    assert json.loads(forced.body)["SecretString"] == "two"


@pytest.mark.parametrize(("error", "expected"), [
    (SecretNotFoundError("m", code="ResourceNotFoundException"), (400, "ResourceNotFoundException")),
    (SecretNotFoundError("m"), (400, "ResourceNotFoundException")),
    (SecretAccessDeniedError("m", code="AccessDeniedException"), (400, "AccessDeniedException")),
    (SecretDeletedError("m", code="InvalidRequestException"), (400, "InvalidRequestException")),
    (SecretThrottledError("m", code="ThrottlingException"), (400, "ThrottlingException")),
    (SecretUnavailableError("m", code="InternalServiceError"), (500, "InternalServiceError")),
    (SecretUnavailableError("m", code="ServiceUnavailable"), (503, "ServiceUnavailable")),
    (SecretUnavailableError("fetch timed out"), (504, "TimeoutError")),
    (SecretUnavailableError("endpoint unreachable"), (502, "ConnectionError")),
    (SecretCacheError("m", code="InvalidParameterException"), (400, "InvalidParameterException")),
])
def test_typed_errors_map_back_to_the_agents_status_and_code(
    error: SecretCacheError, expected: tuple[int, str]
) -> None:
    assert error_status(error) == expected


def test_an_error_body_holds_no_value(api: AgentApi, memory: InMemoryBackend) -> None:
    memory.put_secret("app/e", canary_value("err"))
    memory.fail_next("denied")
    response = api.handle("GET", "/v1/app/e", TOKEN)  # type: ignore[arg-type]
    assert response.status == 400
    assert json.loads(response.body)["__type"] == "AccessDeniedException"
    assert CANARY.encode() not in response.body


def test_no_token_configured_still_needs_the_header(memory: InMemoryBackend) -> None:
    with SecretCache(memory) as cache:
        api = AgentApi(cache, token=None)
        assert api.handle("GET", "/nowhere", headers()).status == 403  # type: ignore[arg-type]
        assert api.handle("GET", "/nowhere", headers(X_Vault_Token="")).status == 404  # type: ignore[arg-type]


def test_read_token_follows_the_agents_order(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "tok"
    path.write_text("  file-token\n")
    assert read_token({}, None) is None
    assert read_token({"AWS_SESSION_TOKEN": "s", "AWS_CONTAINER_AUTHORIZATION_TOKEN": "c"}, None) == "s"
    assert read_token({"AWS_TOKEN": f"file://{path}", "AWS_SESSION_TOKEN": "s"}, None) == "file-token"
    assert read_token({"AWS_TOKEN": "env"}, str(path)) == "file-token"
    path.write_text("")
    with pytest.raises(ValueError, match="empty"):
        read_token({}, str(path))
