"""The Agent API's ``roleArn`` as a function (``AgentApi``), in process, for both of its paths: the one that
answers hits without waiting (``fresh_only``, uvicorn's event loop) and the one that may fetch. One
InMemoryBackend per role stands in for the accounts; the AWS side end to end is test_serve_roles.py."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from urllib.parse import quote

import pytest

from secretcache import CacheConfig, SecretCache
from secretcache.errors import AssumeRoleDeniedError, AssumeRoleUnavailableError
from secretcache.serve import AgentApi
from secretcache.testing import InMemoryBackend

ROLE_A, ROLE_B, ROLE_C = (f"arn:aws:iam::{n * 12}:role/reader" for n in "123")
TOKEN = "t0k"


def token(name: str) -> str | None:
    return TOKEN if name == "x-aws-parameters-secrets-token" else None


class Accounts:
    """A cache per role over that role's own InMemoryBackend (ValueError for a malformed ARN, as serve's)."""

    def __init__(self) -> None:
        self.backends = {role: InMemoryBackend({"app/db": f"value in {role}"}) for role in (ROLE_A, ROLE_B, ROLE_C)}
        self.made: list[str] = []
        self.caches: list[SecretCache] = []

    def __call__(self, role_arn: str) -> SecretCache:
        if role_arn not in self.backends:
            raise ValueError(role_arn)
        self.made.append(role_arn)
        cache = SecretCache(self.backends[role_arn], config=CacheConfig(ttl=300))
        self.caches.append(cache)
        return cache


@pytest.fixture
def accounts() -> Accounts:
    return Accounts()


@pytest.fixture
def api_for(accounts: Accounts) -> Iterator[Callable[..., AgentApi]]:
    made: list[AgentApi] = []
    with SecretCache(InMemoryBackend({"app/db": "value at home"}), config=CacheConfig(ttl=300)) as cache:
        def build(**kwargs: object) -> AgentApi:
            api = AgentApi(cache, token=TOKEN, role_cache=accounts, **kwargs)  # type: ignore[arg-type]
            made.append(api)
            return api

        yield build
        for api in made:
            api.close()


def ask(api: AgentApi, secret_id: str, role: str | None = None, *, path_style: bool = False,
        fresh_only: bool = False, extra: str = "") -> tuple[int, object] | None:
    params = ([f"roleArn={quote(role, safe='')}"] if role is not None else []) + ([extra] if extra else [])
    if path_style:
        target = f"/v1/{secret_id}" + ("?" + "&".join(params) if params else "")
    else:
        target = "&".join([f"/secretsmanager/get?secretId={secret_id}", *params])
    response = api.handle("GET", target, token, fresh_only=fresh_only)
    if response is None:
        return None
    try:
        return response.status, json.loads(response.body)
    except ValueError:
        return response.status, response.body.decode()


def value_of(answer: tuple[int, object] | None) -> object:
    assert answer is not None
    assert answer[0] == 200, answer
    assert isinstance(answer[1], dict)
    return answer[1]["SecretString"]


def test_each_role_reads_and_caches_its_own_answer_in_both_styles(api_for: Callable[..., AgentApi],
                                                                   accounts: Accounts) -> None:
    api = api_for()
    for path_style in (False, True):
        assert value_of(ask(api, "app/db", ROLE_A, path_style=path_style)) == f"value in {ROLE_A}"
        assert value_of(ask(api, "app/db", ROLE_B, path_style=path_style)) == f"value in {ROLE_B}"
        assert value_of(ask(api, "app/db", path_style=path_style)) == "value at home"
    # The hits are answered on the fast path, each from its role's cache.
    assert value_of(ask(api, "app/db", ROLE_A, fresh_only=True)) == f"value in {ROLE_A}"
    assert value_of(ask(api, "app/db", ROLE_B, fresh_only=True)) == f"value in {ROLE_B}"
    assert value_of(ask(api, "app/db", fresh_only=True)) == "value at home"
    assert accounts.made == [ROLE_A, ROLE_B]  # one cache per role, made once
    assert accounts.backends[ROLE_A].count("app/db") == 1
    assert accounts.backends[ROLE_B].count("app/db") == 1


def test_a_malformed_arn_and_the_role_limit_are_400(api_for: Callable[..., AgentApi]) -> None:
    api = api_for(max_roles=2)
    for fresh_only in (True, False):
        assert ask(api, "app/db", "arn:aws:iam::1:role/x", fresh_only=fresh_only) == (
            400, "invalid roleArn format, expected arn:<partition>:iam::<account>:role/<name>")
    value_of(ask(api, "app/db", ROLE_A))
    value_of(ask(api, "app/db", ROLE_B, path_style=True))
    for fresh_only in (True, False):
        answer = ask(api, "app/db", ROLE_C, fresh_only=fresh_only)
        assert answer is not None
        status, doc = answer
        assert status == 400
        assert isinstance(doc, dict)
        assert doc["__type"] == "MaxRolesExceeded"
        assert "(2)" in doc["message"]
        assert ROLE_C in doc["message"]
    assert value_of(ask(api, "app/db", ROLE_A, extra="refreshNow=true")) == f"value in {ROLE_A}"
    with pytest.raises(ValueError, match="MaxRolesExceeded"):
        api.cache_for(ROLE_C)


def test_a_failed_assume_role_is_403_and_a_role_that_never_answered_is_forgotten(
        api_for: Callable[..., AgentApi], accounts: Accounts) -> None:
    api = api_for(max_roles=1)
    accounts.backends[ROLE_A].fail_always(AssumeRoleDeniedError("sts:AssumeRole of role refused", code="AccessDenied"))
    answer = ask(api, "app/db", ROLE_A)
    assert answer is not None
    assert answer[0] == 403
    assert isinstance(answer[1], dict)
    assert answer[1]["__type"] == "AccessDeniedException"
    # Forgotten: the only place is free for another role, which then holds it.
    assert value_of(ask(api, "app/db", ROLE_B)) == f"value in {ROLE_B}"
    answer = ask(api, "app/db", ROLE_A)
    assert answer is not None
    assert isinstance(answer[1], dict)
    assert answer[1]["__type"] == "MaxRolesExceeded"


def test_a_role_that_answered_keeps_its_place_and_sts_outages_keep_their_transient_code(
        api_for: Callable[..., AgentApi], accounts: Accounts) -> None:
    api = api_for(max_roles=1)
    assert value_of(ask(api, "app/db", ROLE_A)) == f"value in {ROLE_A}"
    accounts.backends[ROLE_A].fail_always(AssumeRoleUnavailableError("sts:AssumeRole throttled", code="Throttling"))
    answer = ask(api, "app/db", ROLE_A, extra="refreshNow=true")  # a forced read: no stale value
    assert answer is not None
    assert answer[0] == 403
    assert isinstance(answer[1], dict)
    assert answer[1]["__type"] == "Throttling"
    assert value_of(ask(api, "app/db", ROLE_A)) == f"value in {ROLE_A}"  # still cached, still its place


def test_without_a_role_cache_roleArn_is_an_unknown_parameter() -> None:
    with SecretCache(InMemoryBackend({"app/db": "v"})) as cache:
        api = AgentApi(cache, token=TOKEN)
        assert ask(api, "app/db", ROLE_A) == (400, "unknown parameter: roleArn")
        assert value_of(ask(api, "app/db")) == "v"
