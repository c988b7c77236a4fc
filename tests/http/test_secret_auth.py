"""SecretAuth against a real HTTP API on 127.0.0.1 whose token rotates as single-user rotation does."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import requests

from secretcache import AsyncSecretCache, CacheConfig, SecretCache
from secretcache.credentials import auth_stats
from secretcache.errors import SecretFormatError
from secretcache.http import SecretAuth
from secretcache.testing import InMemoryBackend
from tests.fixtures.fix_canary import CANARY, canary_value
from tests.programs.rotating_server import SECRET, TokenAPI, basic, run_rotations, token_api

LONG = CacheConfig(ttl=3600)
ROTATIONS = 10
THREADS = 8


@pytest.fixture
def api() -> Iterator[TokenAPI]:
    with token_api() as server:
        yield server


def api_calls(backend: InMemoryBackend) -> int:
    return sum(backend.calls.values())


# -- rotation under load ------------------------------------------------------------------------------

def test_eight_threads_across_ten_rotations_lose_no_request(api: TokenAPI) -> None:
    failures: list[int] = []
    stop = threading.Event()
    with SecretCache(api.backend, config=LONG) as cache, \
            httpx.Client(base_url=api.url, auth=SecretAuth(SECRET, cache=cache), timeout=10) as client:

        def worker() -> None:
            while not stop.is_set():
                status = client.get("/work").status_code
                if status != 200:
                    failures.append(status)

        threads = [threading.Thread(target=worker) for _ in range(THREADS)]
        for t in threads:
            t.start()
        try:
            api.wait_ok(THREADS)
            api.backend.reset_calls()
            run_rotations(api, ROTATIONS, per_phase=4 * THREADS)
        finally:
            stop.set()
            for t in threads:
                t.join(10)
        calls = api_calls(api.backend)
        stats = auth_stats(SECRET, cache=cache)
    print(f"\nhttpx, {THREADS} threads, {ROTATIONS} rotations: {api.ok} requests accepted, "
          f"{len(failures)} failed, {calls} API calls ({calls / ROTATIONS:.1f} per rotation), "
          f"{api.refused} refused sends, {stats}")
    assert failures == []
    assert calls <= 3 * ROTATIONS


async def test_asyncio_tasks_across_ten_rotations_lose_no_request(api: TokenAPI) -> None:
    failures: list[int] = []
    stop = asyncio.Event()
    cache = AsyncSecretCache(api.backend, config=LONG)
    try:
        async with httpx.AsyncClient(base_url=api.url, auth=SecretAuth(SECRET, cache=cache), timeout=10) as client:

            async def worker() -> None:
                while not stop.is_set():
                    status = (await client.get("/work")).status_code
                    if status != 200:
                        failures.append(status)

            async def wait_ok(more: int) -> None:
                target = api.ok + more
                async with asyncio.timeout(20) if sys.version_info >= (3, 11) else _nullcontext():
                    while api.ok < target:
                        await asyncio.sleep(0.002)

            tasks = [asyncio.create_task(worker()) for _ in range(THREADS)]
            try:
                await wait_ok(THREADS)
                api.backend.reset_calls()
                await wait_ok(4 * THREADS)
                for _ in range(ROTATIONS):
                    _, version = api.begin_rotation()
                    await wait_ok(4 * THREADS)
                    api.finish_rotation(version)
                    await wait_ok(4 * THREADS)
            finally:
                stop.set()
                await asyncio.wait_for(asyncio.gather(*tasks), 20)
        calls = api_calls(api.backend)
    finally:
        await cache.close()
    print(f"\nhttpx async, {THREADS} tasks, {ROTATIONS} rotations: {api.ok} accepted, {len(failures)} failed, "
          f"{calls} API calls ({calls / ROTATIONS:.1f} per rotation)")
    assert failures == []
    assert calls <= 3 * ROTATIONS


class _nullcontext:
    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc: object) -> None:
        return None


def test_requests_threads_across_rotations_lose_no_request(api: TokenAPI) -> None:
    failures: list[int] = []
    stop = threading.Event()
    with SecretCache(api.backend, config=LONG) as cache:
        auth = SecretAuth(SECRET, cache=cache)

        def worker() -> None:
            with requests.Session() as session:
                while not stop.is_set():
                    status = session.get(f"{api.url}/work", auth=auth, timeout=10).status_code
                    if status != 200:
                        failures.append(status)

        threads = [threading.Thread(target=worker) for _ in range(4)]
        for t in threads:
            t.start()
        try:
            api.wait_ok(4)
            api.backend.reset_calls()
            run_rotations(api, 5, per_phase=16)
        finally:
            stop.set()
            for t in threads:
                t.join(10)
    assert failures == []
    assert api_calls(api.backend) <= 3 * 5


# -- what is not retried ---------------------------------------------------------------------------

@pytest.mark.parametrize("status", [403, 500])
def test_other_statuses_are_not_retried(api: TokenAPI, status: int) -> None:
    with SecretCache(api.backend, config=LONG) as cache, \
            httpx.Client(base_url=api.url, auth=SecretAuth(SECRET, cache=cache)) as client:
        assert client.get("/work").status_code == 200
        api.backend.reset_calls()
        assert client.get(f"/status/{status}").status_code == status
        assert requests.get(f"{api.url}/status/{status}", auth=SecretAuth(SECRET, cache=cache),
                            timeout=10).status_code == status
    assert api.sends[f"/status/{status}"] == 2  # one each
    assert api_calls(api.backend) == 0


def test_a_configured_status_is_retried(api: TokenAPI) -> None:
    with SecretCache(api.backend, config=LONG) as cache, httpx.Client(
            base_url=api.url, auth=SecretAuth(SECRET, cache=cache, retry_statuses=(401, 403))) as client:
        assert client.get("/work").status_code == 200
        api.backend.rotate(SECRET, canary_value("new"))
        assert client.get("/status/403").status_code == 403
    assert api.sends["/status/403"] == 2  # the cached version, then the new one; nothing else to try


def test_a_streaming_upload_is_not_replayed(api: TokenAPI) -> None:
    with SecretCache(api.backend, config=LONG) as cache, \
            httpx.Client(base_url=api.url, auth=SecretAuth(SECRET, cache=cache)) as client:
        assert client.get("/work").status_code == 200
        api.begin_rotation()  # the API now refuses the cached token

        def upload() -> Iterator[bytes]:
            yield b"part-1,"
            yield b"part-2"

        assert client.post("/upload", content=upload()).status_code == 401
        assert api.sends["/upload"] == 1
        assert client.post("/upload", content=b"replayable").status_code == 200  # the policy ran meanwhile

    with SecretCache(api.backend, config=LONG) as cache:
        auth = SecretAuth(SECRET, cache=cache)
        assert requests.get(f"{api.url}/work", auth=auth, timeout=10).status_code == 200
        api.begin_rotation()
        response = requests.post(f"{api.url}/stream", data=iter([b"a", b"b"]), auth=auth, timeout=10)
        assert response.status_code == 401
        assert api.sends["/stream"] == 1


async def test_an_async_streaming_upload_is_not_replayed(api: TokenAPI) -> None:
    async def upload() -> Any:
        yield b"chunk"

    cache = AsyncSecretCache(api.backend, config=LONG)
    try:
        async with httpx.AsyncClient(base_url=api.url, auth=SecretAuth(SECRET, cache=cache)) as client:
            assert (await client.get("/work")).status_code == 200
            api.begin_rotation()
            assert (await client.post("/upload", content=upload())).status_code == 401
            assert api.sends["/upload"] == 1
            assert (await client.get("/work")).status_code == 200
    finally:
        await cache.close()


def test_a_wrong_token_fails_after_at_most_three_sends_with_the_last_response(api: TokenAPI) -> None:
    with SecretCache(api.backend, config=LONG) as cache:
        api.accepted = "a-token-secrets-manager-does-not-have"
        with httpx.Client(base_url=api.url, auth=SecretAuth(SECRET, cache=cache)) as client:
            response = client.get("/wrong")
        assert response.status_code == 401
        assert api.sends["/wrong"] <= 3
        response = requests.get(f"{api.url}/wrong-requests", auth=SecretAuth(SECRET, cache=cache), timeout=10)
        assert response.status_code == 401
        assert api.sends["/wrong-requests"] <= 3
        assert len(response.history) == api.sends["/wrong-requests"] - 1


def test_a_rotation_is_followed_by_requests_with_a_body(api: TokenAPI) -> None:
    with SecretCache(api.backend, config=LONG) as cache:
        auth = SecretAuth(SECRET, cache=cache)
        assert requests.get(f"{api.url}/work", auth=auth, timeout=10).status_code == 200
        api.begin_rotation()
        response = requests.post(f"{api.url}/json", json={"n": 1}, auth=auth, timeout=10)
        assert response.status_code == 200
        assert len(response.history) >= 1
        assert api.bodies[-1] == b'{"n": 1}'


# -- headers ------------------------------------------------------------------------------------------

def test_a_custom_header_without_scheme_sends_the_bare_value() -> None:
    with token_api(scheme="", header="X-Api-Key") as api, SecretCache(api.backend) as cache, \
            httpx.Client(base_url=api.url, auth=SecretAuth(SECRET, scheme=None, header="X-Api-Key",
                                                          cache=cache)) as client:
        assert client.get("/work").status_code == 200


def test_basic_auth_from_a_json_secret() -> None:
    password = canary_value("pw")
    backend = InMemoryBackend({"api/basic": json.dumps({"username": "svc", "password": password})})
    with token_api() as api, SecretCache(backend) as cache:
        api.scheme, api.accepted = "Basic", basic("svc", password)
        auth = SecretAuth("api/basic", scheme="Basic", cache=cache)
        with httpx.Client(base_url=api.url, auth=auth) as client:
            assert client.get("/work").status_code == 200
        assert requests.get(f"{api.url}/work", auth=auth, timeout=10).status_code == 200


def test_a_json_key_reference_sends_that_key() -> None:
    token = canary_value("k")
    backend = InMemoryBackend({"api/keys": json.dumps({"token": token})})
    with token_api() as api, SecretCache(backend) as cache:
        api.accepted = token
        with httpx.Client(base_url=api.url, auth=SecretAuth("api/keys#token", cache=cache)) as client:
            assert client.get("/work").status_code == 200


def test_basic_auth_without_username_and_password_names_the_secret_not_the_value() -> None:
    backend = InMemoryBackend({"api/basic": json.dumps({"user": canary_value("u")})})
    with SecretCache(backend) as cache, httpx.Client(
            base_url="http://127.0.0.1:9", auth=SecretAuth("api/basic", scheme="Basic", cache=cache)) as client, \
            pytest.raises(SecretFormatError) as info:
        client.get("/work")
    assert "api/basic" in str(info.value)
    assert CANARY not in str(info.value)


def test_the_repr_names_the_reference_never_the_value(api: TokenAPI) -> None:
    with SecretCache(api.backend) as cache:
        auth = SecretAuth(SECRET, cache=cache)
        with httpx.Client(base_url=api.url, auth=auth) as client:
            client.get("/work")
        assert repr(auth) == "SecretAuth('api/token', scheme='Bearer', header='Authorization')"
        assert CANARY not in repr(auth)
        assert CANARY not in repr(vars(auth))


def test_a_reference_naming_a_stage_is_sent_without_retry(api: TokenAPI) -> None:
    with SecretCache(api.backend) as cache, httpx.Client(
            base_url=api.url, auth=SecretAuth(f"{{{{resolve:secretsmanager:{SECRET}:SecretString::AWSPREVIOUS}}}}",
                                              cache=cache)) as client:
        api.finish_rotation(api.begin_rotation()[1])  # AWSPREVIOUS: the token the API no longer accepts
        assert client.get("/prev").status_code == 401
    assert api.sends["/prev"] == 1


@pytest.mark.parametrize("kwargs", [{"scheme": ""}, {"header": ""}, {"retry_statuses": (99,)}])
def test_bad_arguments_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        SecretAuth(SECRET, **kwargs)


@pytest.mark.parametrize("statuses", [401, "401", None])
def test_retry_statuses_that_are_no_tuple_say_so(statuses: Any) -> None:
    with pytest.raises(TypeError, match=r"retry_statuses must be a tuple of HTTP status codes, e\.g\. \(401,\)"):
        SecretAuth(SECRET, retry_statuses=statuses)


def test_a_give_up_logs_under_the_http_logger_without_prefix(api: TokenAPI, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    caplog.set_level(logging.DEBUG, logger="secretcache")
    with SecretCache(api.backend, config=LONG) as cache:
        api.accepted = "a-token-secrets-manager-does-not-have"
        with httpx.Client(base_url=api.url, auth=SecretAuth(SECRET, cache=cache)) as client:
            assert client.get("/give-up-log").status_code == 401
    gave_up = [r for r in caplog.records if "refused" in r.getMessage()]
    assert gave_up
    assert {r.name for r in gave_up} == {"secretcache.http"}
    assert not [r for r in caplog.records if r.name == "secretcache.db"]
    assert not gave_up[-1].getMessage().startswith("secretcache:")


def test_a_generic_login_give_up_logs_under_the_credentials_logger(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from secretcache.credentials import login

    caplog.set_level(logging.INFO, logger="secretcache")

    def refuse(_: Any) -> None:
        raise PermissionError("refused")

    with SecretCache(InMemoryBackend({"svc/login": "pw"})) as cache, pytest.raises(PermissionError):
        login("svc/login", refuse, is_auth_failure=lambda e: isinstance(e, PermissionError), cache=cache)
    names = {r.name for r in caplog.records if "refused" in r.getMessage()}
    assert names == {"secretcache.credentials"}


def test_import_secretcache_loads_no_http_client_or_pydantic() -> None:
    code = ("import sys, secretcache; heavy = [m for m in ('httpx', 'requests', 'pydantic', 'pydantic_settings') "
            "if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"
