"""OAuth2ClientCredentials against a real token endpoint and API on 127.0.0.1 (tests/http/oauth2_server.py)."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator

import httpx
import pytest
import requests

from secretcache import AsyncSecretCache, CacheConfig, SecretCache
from secretcache.credentials import AuthPolicy, auth_stats
from secretcache.errors import OAuth2Error, SecretFormatError
from secretcache.http import OAuth2ClientCredentials
from tests.fixtures.fix_canary import CANARY
from tests.programs.oauth2_server import SECRET, OAuthServer, oauth_server

LONG = CacheConfig(ttl=3600)
THREADS = 16


@pytest.fixture
def server() -> Iterator[OAuthServer]:
    with oauth_server() as s:
        yield s


@pytest.fixture
def cache(server: OAuthServer) -> Iterator[SecretCache]:
    with SecretCache(server.backend, config=LONG) as c:
        yield c


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def gets(server: OAuthServer) -> int:
    return server.backend.calls["GetSecretValue"]


# -- one token for everybody --------------------------------------------------------------------------

def test_sixteen_threads_share_one_token_request(server: OAuthServer, cache: SecretCache) -> None:
    server.token_delay = 0.2  # the first token answer is slow, so the other threads arrive while it is out
    auth = OAuth2ClientCredentials(SECRET, f"{server.url}/token", cache=cache)
    barrier = threading.Barrier(THREADS)
    statuses: list[int] = []
    with httpx.Client(auth=auth, timeout=10) as client:

        def worker() -> None:
            barrier.wait(10)
            statuses.append(client.get(f"{server.url}/api").status_code)

        threads = [threading.Thread(target=worker) for _ in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)
    assert statuses == [200] * THREADS
    assert server.token_requests == 1
    assert auth.token_requests == 1
    assert server.auth_methods == ["basic"]
    assert gets(server) == 1


async def test_asyncio_tasks_share_one_token_request(server: OAuthServer) -> None:
    server.token_delay = 0.2
    cache = AsyncSecretCache(server.backend, config=LONG)
    try:
        auth = OAuth2ClientCredentials(SECRET, f"{server.url}/token", cache=cache)
        async with httpx.AsyncClient(auth=auth, timeout=10) as client:
            responses = await asyncio.wait_for(
                asyncio.gather(*(client.get(f"{server.url}/api") for _ in range(THREADS))), 30)
    finally:
        await cache.close()
    assert [r.status_code for r in responses] == [200] * THREADS
    assert server.token_requests == 1


def test_requests_threads_share_one_token_with_httpx(server: OAuthServer, cache: SecretCache) -> None:
    auth = OAuth2ClientCredentials(SECRET, f"{server.url}/token", cache=cache, auth_method="client_secret_post",
                                   scope=["reports:read", "reports:write"])
    statuses: list[int] = []

    def worker() -> None:
        with requests.Session() as session:
            for _ in range(5):
                statuses.append(session.get(f"{server.url}/api", auth=auth, timeout=10).status_code)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    with httpx.Client(auth=auth, timeout=10) as client:
        statuses.append(client.get(f"{server.url}/api").status_code)
    assert statuses == [200] * 21
    assert server.token_requests == 1
    assert server.auth_methods == ["post"]


# -- lifetime ---------------------------------------------------------------------------------------------

def test_token_is_reused_until_expires_in_minus_the_margin(server: OAuthServer, cache: SecretCache) -> None:
    server.expires_in = 100
    clock = Clock()
    auth = OAuth2ClientCredentials(SECRET, f"{server.url}/token", cache=cache, early_expiry=30, clock=clock)
    with httpx.Client(auth=auth, timeout=10) as client:
        assert client.get(f"{server.url}/api").status_code == 200
        clock.now += 69.9
        assert client.get(f"{server.url}/api").status_code == 200
        assert server.token_requests == 1  # still within 100 - 30 seconds
        clock.now += 0.2
        assert client.get(f"{server.url}/api").status_code == 200
        assert server.token_requests == 2
        clock.now += 69.9
        assert client.get(f"{server.url}/api").status_code == 200
        assert server.token_requests == 2
    assert gets(server) == 1  # the client secret is not read again for a new token


def test_short_lifetime_margin_is_at_most_half_and_expiry_always_refetches(server: OAuthServer,
                                                                          cache: SecretCache) -> None:
    server.expires_in = "10"  # some endpoints send a string
    clock = Clock()
    auth = OAuth2ClientCredentials(SECRET, f"{server.url}/token", cache=cache, early_expiry=0, clock=clock)
    with httpx.Client(auth=auth, timeout=10) as client:
        client.get(f"{server.url}/api")
        clock.now += 9.99
        client.get(f"{server.url}/api")
        assert server.token_requests == 1
        clock.now += 0.01  # expires_in has passed: fetched again
        client.get(f"{server.url}/api")
        assert server.token_requests == 2
    server.expires_in = 10
    short = OAuth2ClientCredentials(SECRET, f"{server.url}/token", cache=cache, early_expiry=30, clock=clock)
    with httpx.Client(auth=short, timeout=10) as client:
        client.get(f"{server.url}/api")
        clock.now += 4.9  # the margin is min(30, 10 / 2)
        client.get(f"{server.url}/api")
        assert server.token_requests == 3
        clock.now += 0.2
        client.get(f"{server.url}/api")
        assert server.token_requests == 4


def test_without_expires_in_the_token_is_kept_until_the_api_refuses_it(server: OAuthServer,
                                                                       cache: SecretCache) -> None:
    server.expires_in = None
    clock = Clock()
    auth = OAuth2ClientCredentials(SECRET, f"{server.url}/token", cache=cache, clock=clock)
    with httpx.Client(auth=auth, timeout=10) as client:
        client.get(f"{server.url}/api")
        clock.now += 10 ** 6
        assert client.get(f"{server.url}/api").status_code == 200
        assert server.token_requests == 1
        server.revoke_tokens()
        assert client.get(f"{server.url}/api").status_code == 200
        assert server.token_requests == 2


# -- a 401 from the API ----------------------------------------------------------------------------------

@pytest.mark.parametrize("library", ["httpx", "httpx-async", "requests"])
def test_api_refusing_every_token_gives_the_401_after_one_new_token_and_two_sends(
        server: OAuthServer, cache: SecretCache, library: str) -> None:
    auth = OAuth2ClientCredentials(SECRET, f"{server.url}/token", cache=cache)
    server.refuse_all = True
    url = f"{server.url}/api"
    if library == "httpx":
        with httpx.Client(auth=auth, timeout=10) as client:
            status = client.post(url, content=b"payload").status_code
    elif library == "requests":
        response = requests.post(url, data=b"payload", auth=auth, timeout=10)
        status = response.status_code
        assert [r.status_code for r in response.history] == [401]
    else:

        async def send() -> int:
            async with httpx.AsyncClient(auth=auth, timeout=10) as client:
                return (await client.post(url, content=b"payload")).status_code

        status = asyncio.run(asyncio.wait_for(send(), 30))
    assert status == 401
    assert server.api_sends == 2
    assert server.token_requests == 2  # the first token and one new one
    assert gets(server) == 1  # a refused token is not a refused client secret


def test_revoked_token_gets_one_new_token_and_the_request_succeeds(server: OAuthServer,
                                                                   cache: SecretCache) -> None:
    auth = OAuth2ClientCredentials(SECRET, f"{server.url}/token", cache=cache)
    with httpx.Client(auth=auth, timeout=10) as client:
        assert client.get(f"{server.url}/api").status_code == 200
        server.revoke_tokens()
        assert client.get(f"{server.url}/api").status_code == 200
    assert server.api_refused == 1
    assert server.token_requests == 2
    assert requests.get(f"{server.url}/api", auth=auth, timeout=10).status_code == 200


def test_streaming_body_is_not_sent_twice(server: OAuthServer, cache: SecretCache) -> None:
    auth = OAuth2ClientCredentials(SECRET, f"{server.url}/token", cache=cache)
    server.refuse_all = True

    def chunks() -> Iterator[bytes]:
        yield b"once"

    with httpx.Client(auth=auth, timeout=10) as client:
        assert client.post(f"{server.url}/api", content=chunks()).status_code == 401
    assert server.api_sends == 1
    assert server.token_requests == 1


# -- a rotated client secret -----------------------------------------------------------------------------

def test_rotated_client_secret_runs_the_policy_and_no_call_fails(server: OAuthServer, cache: SecretCache) -> None:
    """8 threads call the API while the client secret rotates 5 times (the endpoint refuses the old secret
    with invalid_client and revokes its tokens at once): 0 failed calls."""
    auth = OAuth2ClientCredentials(SECRET, f"{server.url}/token", cache=cache)
    failures: list[int] = []
    stop = threading.Event()
    done = [0]
    with httpx.Client(auth=auth, timeout=10) as client:

        def worker() -> None:
            while not stop.is_set():
                status = client.get(f"{server.url}/api").status_code
                if status != 200:
                    failures.append(status)
                done[0] += 1

        def wait_calls(n: int) -> None:
            target = done[0] + n
            for _ in range(10_000):
                if done[0] >= target:
                    return
                stop.wait(0.002)
            raise AssertionError("the workers stopped making calls")

        threads = [threading.Thread(target=worker) for _ in range(8)]
        for t in threads:
            t.start()
        try:
            wait_calls(16)
            server.backend.reset_calls()
            for _ in range(5):
                server.rotate()
                wait_calls(32)
        finally:
            stop.set()
            for t in threads:
                t.join(20)
    stats = auth_stats(SECRET, cache=cache)
    print(f"\n8 threads, 5 client-secret rotations: {server.api_ok} API calls accepted, {len(failures)} failed, "
          f"{server.token_requests} token requests ({server.token_refused} refused), "
          f"{gets(server)} GetSecretValue, {stats}")
    assert failures == []
    assert gets(server) <= 3 * 5


@pytest.mark.parametrize("library", ["httpx", "requests"])
def test_single_user_rotation_between_set_and_finish_uses_awspending(server: OAuthServer, cache: SecretCache,
                                                                     library: str) -> None:
    auth = OAuth2ClientCredentials(SECRET, f"{server.url}/token", cache=cache)
    url = f"{server.url}/api"

    def get() -> int:
        if library == "httpx":
            with httpx.Client(auth=auth, timeout=10) as client:
                return client.get(url).status_code
        return requests.get(url, auth=auth, timeout=10).status_code

    assert get() == 200
    version = server.rotate(stage="AWSPENDING")  # setSecret done, finishSecret not yet
    assert get() == 200
    assert server.token_refused >= 1
    server.finish(version)
    server.revoke_tokens()
    assert get() == 200


def test_policy_gives_up_with_oauth2_error_naming_the_secret_without_values(server: OAuthServer,
                                                                           cache: SecretCache,
                                                                           caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    auth = OAuth2ClientCredentials(SECRET, f"{server.url}/token", cache=cache,
                                   policy=AuthPolicy(min_refresh_interval=0))
    with server.lock:
        server.accepted_secret = "nobody-has-this"
    with httpx.Client(auth=auth, timeout=10) as client, pytest.raises(OAuth2Error) as caught:
        client.get(f"{server.url}/api")
    error = caught.value
    assert error.code == "invalid_client"
    assert error.secret_id == SECRET
    assert SECRET in str(error)
    text = f"{error} {error!r} {getattr(error, '__notes__', '')}"
    assert CANARY not in text
    assert "bad client secret" not in text  # the endpoint's description is not copied
    assert server.api_sends == 0
    assert all(CANARY not in r.getMessage() for r in caplog.records)


def test_other_token_endpoint_errors_are_raised_at_once(server: OAuthServer, cache: SecretCache) -> None:
    auth = OAuth2ClientCredentials(SECRET, f"{server.url}/missing", cache=cache)
    with pytest.raises(OAuth2Error) as caught:
        requests.get(f"{server.url}/api", auth=auth, timeout=10)
    assert caught.value.code == "http_404"
    assert gets(server) == 1  # no forced refresh for an error that is not a refused client


def test_secret_without_client_keys_is_a_format_error(server: OAuthServer, cache: SecretCache) -> None:
    server.backend.put_secret(SECRET, '{"client_id": "x", "password": "' + CANARY + '"}')
    auth = OAuth2ClientCredentials(SECRET, f"{server.url}/token", cache=cache)
    with pytest.raises(SecretFormatError, match="client_secret") as caught:
        requests.get(f"{server.url}/api", auth=auth, timeout=10)
    assert CANARY not in str(caught.value)


# -- nothing leaves -----------------------------------------------------------------------------------

@pytest.mark.parametrize("library", ["httpx", "requests"])
def test_cross_origin_redirect_never_carries_the_token(server: OAuthServer, cache: SecretCache,
                                                       library: str) -> None:
    with oauth_server() as other:
        auth = OAuth2ClientCredentials(SECRET, f"{server.url}/token", cache=cache)
        target = f"{server.url}/redirect?to={other.url}/echo"
        if library == "httpx":
            with httpx.Client(auth=auth, timeout=10, follow_redirects=True) as client:
                assert client.get(target).status_code == 200
        else:
            assert requests.get(target, auth=auth, timeout=10).status_code == 200
        assert len(other.headers_seen) == 1
        assert "Authorization" not in other.headers_seen[0]
        assert all(CANARY not in v for v in other.headers_seen[0].values())


def test_reprs_and_debug_logs_hold_no_secret_or_token(server: OAuthServer, cache: SecretCache,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    auth = OAuth2ClientCredentials(SECRET, f"{server.url}/token", cache=cache)
    with httpx.Client(auth=auth, timeout=10) as client:
        client.get(f"{server.url}/api")
        server.rotate()
        client.get(f"{server.url}/api")
    assert server.token_requests >= 2
    texts = [repr(auth), str(auth), *(r.getMessage() for r in caplog.records)]
    assert all(CANARY not in t for t in texts)
    assert any(r.name.startswith("secretcache") for r in caplog.records)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="token_url"):
        OAuth2ClientCredentials(SECRET, "/token")
    with pytest.raises(ValueError, match="auth_method"):
        OAuth2ClientCredentials(SECRET, "https://a.example/token", auth_method="private_key_jwt")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="early_expiry"):
        OAuth2ClientCredentials(SECRET, "https://a.example/token", early_expiry=-1)

