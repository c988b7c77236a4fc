"""The parameter reference forms (``ssm:``, parameter ARNs, ``{{resolve:ssm:...}}``) everywhere a secret
reference is accepted: parsing, keys apart from secrets, env injection, ``@inject_secret``, serve's route."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest

from secretcache import SecretCache, SecretRef, inject_env, inject_secret, resolve_env
from secretcache.errors import InvalidReferenceError, SecretNotFoundError
from secretcache.model import is_reference
from secretcache.parameters import is_parameter, parameter_name
from secretcache.serve._app import AgentApi
from secretcache.testing import InMemoryBackend
from tests.fixtures.fix_canary import CANARY, canary_value

ARN = "arn:aws:ssm:eu-west-1:123456789012:parameter/app/db-url"


@pytest.mark.parametrize(("reference", "expected"), [
    ("ssm:/app/db-url", SecretRef("ssm:/app/db-url")),
    ("ssm:plain", SecretRef("ssm:plain")),
    ("ssm:/app/db-url#password", SecretRef("ssm:/app/db-url", "password")),
    ("ssm:/app/db-url:3", SecretRef("ssm:/app/db-url", None, None, "3")),
    ("ssm:/app/db-url:blue#k", SecretRef("ssm:/app/db-url", "k", "blue")),
    (ARN, SecretRef(ARN)),
    (f"{ARN}#password", SecretRef(ARN, "password")),
    ("{{resolve:ssm:/app/db-url}}", SecretRef("ssm:/app/db-url")),
    ("{{resolve:ssm:/app/db-url:2}}", SecretRef("ssm:/app/db-url", None, None, "2")),
    ("{{resolve:ssm-secure:/app/db-url:2}}", SecretRef("ssm:/app/db-url", None, None, "2")),
    ("{{resolve:ssm:" + ARN + ":4}}", SecretRef(ARN, None, None, "4")),
    ("ssm:/aws/reference/secretsmanager/prod/db", SecretRef("ssm:/aws/reference/secretsmanager/prod/db")),
])
def test_parameter_references_parse(reference: str, expected: SecretRef) -> None:
    assert SecretRef.parse(reference) == expected
    assert is_parameter(expected.secret_id)


def test_a_parameters_name_comes_from_its_id_or_arn() -> None:
    assert parameter_name("ssm:/app/db-url") == "/app/db-url"
    assert parameter_name("ssm:plain") == "plain"
    assert parameter_name(ARN) == "/app/db-url"
    assert parameter_name("arn:aws:ssm:eu-west-1:123456789012:parameter/plain") == "plain"


@pytest.mark.parametrize("reference", [
    "ssm:", "ssm:a/b", "ssm:/a/", "ssm:/a//b", "ssm:/a:", "ssm:/a#", "ssm:/a b",
    "arn:aws:ssm:us-east-1:1:parameter/x", "{{resolve:ssm:/a:blue}}", "{{resolve:ssm:/a:1:2}}",
    "{{resolve:ssm-secure:}}", "ssm:/a:bad label",
])
def test_malformed_parameter_references_are_refused_naming_them(reference: str) -> None:
    with pytest.raises(InvalidReferenceError) as e:
        SecretRef.parse(reference)
    assert reference[:12] in str(e.value) or reference in str(e.value.reference or "")


def test_environment_values_that_are_parameter_references() -> None:
    assert is_reference(ARN)
    assert is_reference(f"{ARN}#key")
    assert is_reference("{{resolve:ssm:/app/x}}")
    assert is_reference("postgres://u:{{resolve:ssm-secure:/app/pw}}@h/db")
    assert not is_reference("ssm:/app/x")  # a bare ssm: value may be plain text; --env / mappings resolve it
    assert not is_reference("arn:aws:ssm:us-east-1:123456789012:document/x")


@pytest.fixture
def memory() -> InMemoryBackend:
    store = InMemoryBackend()
    store.put_secret("ssm:/app/db", json.dumps({"password": canary_value("env-param"), "user": "app"}))
    store.put_secret("ssm:/app/url", "https://example")
    store.put_secret("app/db", "a secret, not the parameter")
    return store


@pytest.fixture
def clean_env() -> Iterator[None]:
    before = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(before)


def test_secrets_and_parameters_of_the_same_name_are_cached_apart(memory: InMemoryBackend) -> None:
    with SecretCache(memory) as cache:
        assert cache.get("app/db") == "a secret, not the parameter"
        assert cache.get("ssm:/app/db#user") == "app"
        assert cache.get("{{resolve:ssm:/app/url}}") == "https://example"
        assert cache.get("url={{resolve:ssm:/app/url}}/v1") == "url=https://example/v1"


def test_inject_env_and_resolve_env_take_parameter_references(memory: InMemoryBackend, clean_env: None) -> None:
    with SecretCache(memory) as cache:
        names = inject_env({"DB_PASSWORD": "ssm:/app/db#password", "URL": "{{resolve:ssm:/app/url}}"},
                           cache=cache)
        assert names == ["DB_PASSWORD", "URL"]
        assert os.environ["DB_PASSWORD"].startswith(CANARY)
        assert os.environ["URL"] == "https://example"
        resolved = resolve_env({"A": "{{resolve:ssm:/app/url}}", "B": "ssm:/app/url"}, cache=cache)
        assert resolved == {"A": "https://example", "B": "ssm:/app/url"}


def test_inject_secret_takes_a_parameter_reference(memory: InMemoryBackend) -> None:
    with SecretCache(memory) as cache:
        @inject_secret("ssm:/app/db#user", into="user", cache=cache)
        def who(user: str) -> str:
            return user

        assert who() == "app"


def test_serves_parameter_route_maps_a_missing_parameter_to_parameter_not_found(memory: InMemoryBackend) -> None:
    with SecretCache(memory) as cache:
        api = AgentApi(cache, token="t")

        def headers(name: str) -> str | None:
            return "t" if name == "x-aws-parameters-secrets-token" else None

        found = api.handle("GET", "/systemsmanager/parameters/get?name=/app/url", headers)
        assert found is not None
        assert found.status == 200
        body = json.loads(found.body)["Parameter"]
        assert (body["Name"], body["Value"], body["Type"]) == ("ssm:/app/url", "https://example", "String")
        missing = api.handle("GET", "/systemsmanager/parameters/get?name=/app/missing", headers)
        assert missing is not None
        assert missing.status == 400
        assert json.loads(missing.body)["__type"] == "ParameterNotFound"
        with pytest.raises(SecretNotFoundError):
            cache.get("ssm:/app/missing")


def test_get_path_on_a_backend_that_cannot_list_says_so(memory: InMemoryBackend) -> None:
    from secretcache.errors import SecretCacheError

    with SecretCache(memory) as cache:
        with pytest.raises(SecretCacheError) as e:
            cache.get_path("ssm:/app/")
        assert "cannot list a Parameter Store path" in str(e.value)
        assert e.value.secret_id == "ssm:/app/"
