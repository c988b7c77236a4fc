"""@inject_secret: what it injects, where, when it reads, who wins, and what it refuses at decoration time."""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

import secretcache
from secretcache import (
    AsyncSecretCache,
    InvalidReferenceError,
    SecretCache,
    SecretFormatError,
    SecretNotFoundError,
    inject_secret,
)
from secretcache.config import CacheConfig
from secretcache.testing import InMemoryBackend
from tests.fixtures.fakes import FakeClock
from tests.fixtures.fix_canary import CANARY, canary_value

TTL = 60.0


@pytest.fixture
def password() -> str:
    return canary_value("pw")


@pytest.fixture
def token() -> str:
    return canary_value("token")


@pytest.fixture
def store(password: str, token: str) -> InMemoryBackend:
    return InMemoryBackend({
        "app/db": json.dumps({"username": "app", "password": password, "port": 5432}),
        "app/token": token,
        "app/text": "not json " + CANARY,
        "app/blob": CANARY.encode(),
    })


@pytest.fixture
def cache(store: InMemoryBackend, clock: FakeClock) -> Iterator[SecretCache]:
    with SecretCache(store, config=CacheConfig(ttl=TTL, jitter=0.0, background_refresh=False), timer=clock) as c:
        yield c


def gets(store: InMemoryBackend) -> int:
    return store.calls["GetSecretValue"]


# -- what and where -------------------------------------------------------------------------------


def test_injects_the_resolved_string_into_the_named_keyword(cache: SecretCache, token: str) -> None:
    @inject_secret("app/token", into="token", cache=cache)
    def call_api(path: str, token: str) -> tuple[str, str]:
        return path, token

    assert call_api("/v1") == ("/v1", token)
    assert call_api(path="/v2") == ("/v2", token)


def test_fields_inject_several_json_keys_from_one_read(cache: SecretCache, store: InMemoryBackend,
                                                       password: str) -> None:
    @inject_secret("app/db", fields={"user": "username", "pw": "password", "port": "port"}, cache=cache)
    def connect(host: str, *, user: str, pw: str, port: str) -> tuple[str, str, str, str]:
        return host, user, pw, port

    assert connect("db") == ("db", "app", password, "5432")  # non-string JSON values rendered as JSON
    assert gets(store) == 1


def test_every_reference_form_works(cache: SecretCache, store: InMemoryBackend, password: str) -> None:
    arn = store.arn("app/db")
    forms = [
        "app/db#password",
        f"{arn}:password::",
        "{{resolve:secretsmanager:app/db:SecretString:password}}",
    ]
    for form in forms:
        @inject_secret(form, into="pw", cache=cache)
        def read(pw: str) -> str:
            return pw

        assert read() == password, form

    template = "postgres://app:{{resolve:secretsmanager:app/db:SecretString:password}}@db/app"

    @inject_secret(template, into="url", cache=cache)
    def dsn(url: str) -> str:
        return url

    assert dsn() == f"postgres://app:{password}@db/app"


def test_signature_and_metadata_are_kept_with_injected_parameters_removed(cache: SecretCache) -> None:
    @inject_secret("app/db", fields={"user": "username", "pw": "password"}, cache=cache)
    def connect(host: str, user: str, pw: str, *, timeout: float = 5.0) -> str:
        """Connect to the database."""
        return host

    assert connect.__name__ == "connect"
    assert connect.__doc__ == "Connect to the database."
    assert connect.__wrapped__ is not None  # type: ignore[attr-defined]
    signature = inspect.signature(connect)
    assert list(signature.parameters) == ["host", "timeout"]
    assert signature.parameters["timeout"].kind is inspect.Parameter.KEYWORD_ONLY
    assert signature.return_annotation == "str"  # annotations are strings in this module


def test_positional_arguments_after_an_injected_parameter_shift_behind_it(cache: SecretCache,
                                                                          token: str) -> None:
    @inject_secret("app/token", into="token", cache=cache)
    def request(method: str, token: str, path: str, *rest: str) -> tuple[Any, ...]:
        return method, token, path, rest

    # Callers see request(method, path, *rest): the token slots in between.
    assert request("GET", "/a", "x", "y") == ("GET", token, "/a", ("x", "y"))
    assert request("GET", path="/b") == ("GET", token, "/b", ())


def test_methods_static_and_class_methods_in_either_decorator_order(cache: SecretCache, token: str) -> None:
    class Client:
        prefix = "c"

        @inject_secret("app/token", into="token", cache=cache)
        def method(self, path: str, token: str) -> tuple[Any, ...]:
            return self.prefix, path, token

        @staticmethod
        @inject_secret("app/token", into="token", cache=cache)
        def static_inside(path: str, token: str) -> tuple[str, str]:
            return path, token

        @inject_secret("app/token", into="token", cache=cache)
        @staticmethod
        def static_outside(path: str, token: str) -> tuple[str, str]:
            return path, token

        @classmethod
        @inject_secret("app/token", into="token", cache=cache)
        def class_inside(cls, token: str) -> tuple[str, str]:
            return cls.prefix, token

        @inject_secret("app/token", into="token", cache=cache)  # type: ignore[arg-type]
        @classmethod
        def class_outside(cls, token: str) -> tuple[str, str]:
            return cls.prefix, token

    client = Client()
    assert client.method("/p") == ("c", "/p", token)
    assert Client.static_inside("/s") == ("/s", token)
    assert Client.static_outside("/s") == ("/s", token)
    assert client.static_outside("/s") == ("/s", token)
    assert Client.class_inside() == ("c", token)
    assert Client.class_outside() == ("c", token)


def test_a_function_taking_kwargs_accepts_any_injected_name(cache: SecretCache, token: str) -> None:
    @inject_secret("app/token", into="api_token", cache=cache)
    def handler(event: str, **kwargs: str) -> dict[str, str]:
        return kwargs

    assert handler("e") == {"api_token": token}


# -- when it reads --------------------------------------------------------------------------------


def test_reads_through_the_cache_on_every_call_and_sees_a_rotation_after_ttl(
    cache: SecretCache, store: InMemoryBackend, clock: FakeClock, token: str
) -> None:
    @inject_secret("app/token", into="token", cache=cache)
    def current(token: str) -> str:
        return token

    assert current() == token
    assert current() == token
    assert gets(store) == 1  # the second call was a cache hit
    rotated = canary_value("rotated")
    store.rotate("app/token", rotated)
    assert current() == token  # within ttl: the cached value, by design
    clock.advance(TTL + 1)
    assert current() == rotated  # past ttl: refreshed (inline, with this config) on the next call
    assert gets(store) == 2


def test_sees_a_rotation_immediately_after_refresh(cache: SecretCache, store: InMemoryBackend) -> None:
    @inject_secret("app/db", fields={"pw": "password"}, cache=cache)
    def current(pw: str) -> str:
        return pw

    current()
    rotated = canary_value("rotated")
    store.rotate("app/db", json.dumps({"password": rotated}))
    cache.refresh("app/db")
    assert current() == rotated


def test_an_explicit_argument_wins_and_nothing_is_read(cache: SecretCache, store: InMemoryBackend) -> None:
    @inject_secret("app/missing", into="token", cache=cache)
    def call(path: str, token: str) -> str:
        return token

    @inject_secret("app/missing", fields={"user": "username", "pw": "password"}, cache=cache)
    def connect(user: str, pw: str) -> tuple[str, str]:
        return user, pw

    assert call("/p", token="explicit") == "explicit"
    assert connect(user="u", pw="p") == ("u", "p")
    assert gets(store) == 0  # the secret does not even exist: it was never asked for


def test_an_explicit_value_for_one_field_keeps_the_others_injected(cache: SecretCache, password: str) -> None:
    @inject_secret("app/db", fields={"user": "username", "pw": "password"}, cache=cache)
    def connect(user: str, pw: str) -> tuple[str, str]:
        return user, pw

    assert connect(user="admin") == ("admin", password)


def test_cache_none_uses_the_default_cache_looked_up_at_call_time(store: InMemoryBackend, token: str) -> None:
    @inject_secret("app/token", into="token")
    def current(token: str) -> str:
        return token

    first, second = InMemoryBackend({"app/token": token}), InMemoryBackend({"app/token": "second"})
    previous = secretcache.set_default_cache(SecretCache(first))
    try:
        assert current() == token
        secretcache.set_default_cache(SecretCache(second))
        assert current() == "second"
    finally:
        secretcache.set_default_cache(previous)
    assert first.calls["GetSecretValue"] == second.calls["GetSecretValue"] == 1


def test_generators_read_when_iteration_starts(cache: SecretCache, store: InMemoryBackend,
                                               token: str) -> None:
    @inject_secret("app/token", into="token", cache=cache)
    def stream(n: int, token: str) -> Iterator[str]:
        for i in range(n):
            yield f"{i}:{token}"

    assert inspect.isgeneratorfunction(stream)
    gen = stream(2)
    assert gets(store) == 0
    assert list(gen) == [f"0:{token}", f"1:{token}"]
    assert gets(store) == 1


async def test_async_generators_are_supported_with_asend_and_aclose(cache: SecretCache, token: str) -> None:
    @inject_secret("app/token", into="token", cache=cache)
    async def echo(token: str) -> AsyncIterator[str]:
        received = yield "ready"
        while True:
            received = yield f"{received}:{token}"

    assert inspect.isasyncgenfunction(echo)
    agen = echo()
    assert await agen.asend(None) == "ready"
    assert await agen.asend("a") == f"a:{token}"
    await agen.aclose()


# -- async ----------------------------------------------------------------------------------------


async def test_coroutine_functions_get_the_value(cache: SecretCache, token: str) -> None:
    @inject_secret("app/token", into="token", cache=cache)
    async def handler(request: str, token: str) -> tuple[str, str]:
        await asyncio.sleep(0)
        return request, token

    assert inspect.iscoroutinefunction(handler)
    assert await handler("r") == ("r", token)


async def test_a_miss_in_an_async_function_never_blocks_the_loop(cache: SecretCache, store: InMemoryBackend,
                                                                 token: str) -> None:
    @inject_secret("app/token", into="token", cache=cache)
    async def handler(token: str) -> str:
        return token

    gate = store.hold(operation="GetSecretValue")
    call = asyncio.ensure_future(handler())
    await asyncio.to_thread(store.wait_held, 1)  # the fetch is in flight, held at the gate
    ticks = 0
    for _ in range(5):  # the loop keeps running other work while the fetch is held
        await asyncio.sleep(0)
        ticks += 1
    assert ticks == 5
    assert not call.done()
    gate.set()
    assert await call == token


async def test_a_hit_in_an_async_function_stays_on_the_loop(cache: SecretCache, token: str,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    @inject_secret("app/token", into="token", cache=cache)
    async def handler(token: str) -> tuple[str, int]:
        return token, threading.get_ident()

    await handler()  # a miss: read in a worker thread

    async def no_threads(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a cache hit must not go through a worker thread")

    monkeypatch.setattr(asyncio, "to_thread", no_threads)
    value, thread = await handler()
    assert value == token
    assert thread == threading.get_ident()


async def test_an_async_secret_cache_is_awaited_directly(store: InMemoryBackend, token: str) -> None:
    async with AsyncSecretCache(store) as acache:
        @inject_secret("app/token", into="token", cache=acache)
        async def handler(token: str) -> str:
            return token

        assert await handler() == token


def test_an_async_secret_cache_on_a_sync_function_is_refused_at_decoration(store: InMemoryBackend) -> None:
    acache = AsyncSecretCache(store)
    with pytest.raises(TypeError, match="AsyncSecretCache can only feed coroutine functions"):
        @inject_secret("app/token", into="token", cache=acache)
        def handler(token: str) -> str:
            return token


# -- refused at decoration ------------------------------------------------------------------------


def test_naming_a_parameter_the_function_lacks_fails_when_applied(cache: SecretCache) -> None:
    expected = r"connect\(\) has no parameter 'pasword' \(its parameters: host, password\)"
    with pytest.raises(TypeError, match=expected):
        @inject_secret("app/db#password", into="pasword", cache=cache)
        def connect(host: str, password: str) -> None: ...

    with pytest.raises(TypeError, match="has no parameter 'pw'"):
        @inject_secret("app/db", fields={"user": "username", "pw": "password"}, cache=cache)
        def connect2(user: str) -> None: ...


@pytest.mark.parametrize(("kwargs", "message"), [
    ({}, "exactly one of into="),
    ({"into": "a", "fields": {"b": "c"}}, "exactly one of into="),
    ({"into": "not-an-identifier"}, "into= must name a keyword argument"),
    ({"fields": {}}, "non-empty mapping"),
    ({"fields": {"1bad": "key"}}, "not a valid keyword argument name"),
    ({"fields": {"pw": ""}}, "non-empty JSON key"),
])
def test_wrong_decorator_arguments_raise_type_error(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(TypeError, match=message):
        inject_secret("app/db", **kwargs)


def test_positional_only_and_catch_all_parameters_cannot_be_injected(cache: SecretCache) -> None:
    def positional_only(token: str, /) -> None: ...

    def star_args(*token: str) -> None: ...

    with pytest.raises(TypeError, match="positional-only"):
        inject_secret("app/token", into="token", cache=cache)(positional_only)
    with pytest.raises(TypeError, match="collects extra arguments"):
        inject_secret("app/token", into="token", cache=cache)(star_args)


@pytest.mark.parametrize("reference", [
    "bad reference",
    "arn:aws:secretsmanager:us-east-1:123456789012:secret:x:a:b",  # 3 trailing segments: neither ECS form
    "{{resolve:secretsmanager:app/db:SecretBinary:password}}",
    "x{{resolve:secretsmanager:app/db",
    "",
])
def test_a_malformed_reference_fails_when_applied(reference: str) -> None:
    with pytest.raises(InvalidReferenceError) as info:
        inject_secret(reference, into="token")
    assert isinstance(info.value, ValueError)
    assert repr(reference)[:30] in str(info.value)


def test_fields_need_a_secret_id_not_a_json_key_reference() -> None:
    with pytest.raises(InvalidReferenceError, match="give the secret id without a JSON key"):
        inject_secret("app/db#password", fields={"pw": "password"})


def test_applied_to_something_not_callable_raises_type_error() -> None:
    with pytest.raises(TypeError, match="decorates a function"):
        inject_secret("app/token", into="token")(42)  # type: ignore[arg-type]


# -- bad secrets at call time: typed errors naming the culprit, never the value ---------------------


@pytest.mark.parametrize(("reference", "fields", "error", "names"), [
    ("app/db", {"pw": "passwd"}, SecretFormatError, ["app/db", "passwd"]),
    ("app/text", {"pw": "password"}, SecretFormatError, ["app/text", "not valid JSON"]),
    ("app/blob", {"pw": "password"}, SecretFormatError, ["app/blob", "binary"]),
    ("app/gone", {"pw": "password"}, SecretNotFoundError, ["app/gone"]),
])
def test_bad_secrets_raise_typed_errors_naming_the_culprit_never_the_value(
    cache: SecretCache, reference: str, fields: dict[str, str], error: type[Exception], names: list[str]
) -> None:
    @inject_secret(reference, fields=fields, cache=cache)
    def use(pw: str) -> str:
        return pw

    with pytest.raises(error) as info:
        use()
    text = str(info.value) + repr(info.value)
    for name in names:
        assert name in text
    assert CANARY not in text
    cause = info.value.__cause__ or info.value.__context__
    assert cause is None or CANARY not in str(cause)


def test_a_binary_secret_cannot_be_injected_as_a_string(cache: SecretCache) -> None:
    @inject_secret("app/blob", into="token", cache=cache)
    def use(token: str) -> str:
        return token

    with pytest.raises(SecretFormatError, match="app/blob") as info:
        use()
    assert CANARY not in str(info.value)


def _frames_in_package(tb: Any) -> Iterator[Any]:
    while tb is not None:
        if tb.tb_frame.f_globals.get("__name__", "").startswith("secretcache"):
            yield tb.tb_frame
        tb = tb.tb_next


def test_when_the_function_raises_our_frames_no_longer_hold_the_secret(cache: SecretCache) -> None:
    @inject_secret("app/db", fields={"user": "username", "pw": "password"}, cache=cache)
    def connect(user: str, pw: str) -> None:
        raise ConnectionError("database unreachable")

    with pytest.raises(ConnectionError) as info:
        connect()
    frames = list(_frames_in_package(info.value.__traceback__))
    assert frames, "expected the wrapper's frame in the traceback"
    for frame in frames:
        assert CANARY not in repr(frame.f_locals)


async def test_when_a_coroutine_raises_our_frames_no_longer_hold_the_secret(cache: SecretCache) -> None:
    @inject_secret("app/token", into="token", cache=cache)
    async def call(token: str) -> None:
        raise ConnectionError("upstream unreachable")

    with pytest.raises(ConnectionError) as info:
        await call()
    for frame in _frames_in_package(info.value.__traceback__):
        assert CANARY not in repr(frame.f_locals)


def test_inject_secret_is_exported_lazily_from_the_package() -> None:
    assert "inject_secret" in secretcache.__all__
    assert secretcache.inject_secret is inject_secret
    assert "secretcache.inject" in sys.modules
    assert functools.update_wrapper  # the wrapper machinery is the standard one
