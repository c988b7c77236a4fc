"""secretcache.compat against aws_secretsmanager_caching: the same scenarios on both libraries (moto), the
results that must match, and the places where we differ on purpose."""

from __future__ import annotations

import importlib.metadata
import json
import re
import time
import types
import warnings
from collections.abc import Iterator
from typing import Any

import pytest

import secretcache.compat
from devtools.moto_helpers import count_calls, inject
from secretcache import SecretFormatError, SecretNotFoundError
from secretcache.compat import SecretInjectionError
from tests.fixtures.fix_canary import CANARY, canary_value

OFFICIAL, OURS = "official", "ours"


class Aws:
    def __init__(self, client: Any) -> None:
        self.client = client
        self.old = canary_value("old")
        self.value = canary_value("current")
        self.password = canary_value("pw")
        self.blob = CANARY.encode() + b"\x00\x01"
        client.create_secret(Name="compat/plain", SecretString=self.old)
        client.put_secret_value(SecretId="compat/plain", SecretString=self.value)  # old -> AWSPREVIOUS
        db = {"username": "app", "password": self.password, "port": 5432}
        client.create_secret(Name="compat/json", SecretString=json.dumps(db))
        client.create_secret(Name="compat/binary", SecretBinary=self.blob)
        client.create_secret(Name="compat/text", SecretString="not json " + CANARY)
        self.gets = count_calls(client, "GetSecretValue")
        self.describes = count_calls(client, "DescribeSecret")

    def calls(self) -> tuple[int, int]:
        """(DescribeSecret, GetSecretValue) calls so far."""
        return len(self.describes), len(self.gets)


@pytest.fixture(scope="module")
def botocore_session() -> Any:
    """One session for the module: each new session would load botocore's model files again (~0.2 s)."""
    import botocore.session

    return botocore.session.get_session()


@pytest.fixture
def aws(botocore_session: Any) -> Iterator[Aws]:
    from moto import mock_aws

    with mock_aws():
        yield Aws(botocore_session.create_client("secretsmanager", region_name="us-east-1"))


@pytest.fixture
def no_official_sleep(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The official refresh_secret_now sleeps 2.5-5 s first: record the sleeps instead of waiting."""
    from aws_secretsmanager_caching.cache import items

    slept: list[float] = []
    monkeypatch.setattr(items, "time", types.SimpleNamespace(sleep=slept.append))
    return slept


@pytest.fixture(params=[OFFICIAL, OURS])
def lib(request: pytest.FixtureRequest) -> types.ModuleType:
    if request.param == OFFICIAL:
        import aws_secretsmanager_caching

        return aws_secretsmanager_caching
    return secretcache.compat


def new_cache(lib: types.ModuleType, aws: Aws, **config: Any) -> Any:
    return lib.SecretCache(config=lib.SecretCacheConfig(**config), client=aws.client)


# -- the same results ------------------------------------------------------------------------------


def test_get_secret_string_and_binary(lib: types.ModuleType, aws: Aws) -> None:
    cache = new_cache(lib, aws)
    assert cache.get_secret_string("compat/plain") == aws.value
    assert cache.get_secret_binary("compat/binary") == aws.blob


def test_a_version_stage_is_read(lib: types.ModuleType, aws: Aws) -> None:
    cache = new_cache(lib, aws)
    assert cache.get_secret_string("compat/plain", version_stage="AWSPREVIOUS") == aws.old
    assert cache.get_secret_string("compat/plain", "AWSCURRENT") == aws.value
    previous_by_default = new_cache(lib, aws, default_version_stage="AWSPREVIOUS")
    assert previous_by_default.get_secret_string("compat/plain") == aws.old


def test_values_are_cached_until_the_refresh_interval(lib: types.ModuleType, aws: Aws) -> None:
    cache = new_cache(lib, aws)
    assert cache.get_secret_string("compat/plain") == aws.value
    before = aws.calls()
    aws.client.put_secret_value(SecretId="compat/plain", SecretString="changed")
    for _ in range(3):
        assert cache.get_secret_string("compat/plain") == aws.value
    assert aws.calls() == before


def test_refresh_secret_now_fetches_the_new_value_and_returns_true(lib: types.ModuleType, aws: Aws,
                                                                   no_official_sleep: list[float]) -> None:
    cache = new_cache(lib, aws)
    cache.get_secret_string("compat/plain")
    aws.client.put_secret_value(SecretId="compat/plain", SecretString="changed")
    assert cache.refresh_secret_now("compat/plain") is True
    assert cache.get_secret_string("compat/plain") == "changed"


def test_a_failed_refresh_returns_false_and_keeps_the_cached_value(lib: types.ModuleType, aws: Aws,
                                                                   no_official_sleep: list[float]) -> None:
    cache = new_cache(lib, aws)
    cache.get_secret_string("compat/plain")
    for op in ("DescribeSecret", "GetSecretValue"):
        inject(aws.client, op=op, then="denied")
    assert cache.refresh_secret_now("compat/plain") is False
    assert cache.get_secret_string("compat/plain") == aws.value


def test_config_fields_defaults_and_unknown_names(lib: types.ModuleType) -> None:
    config = lib.SecretCacheConfig()
    assert {name: getattr(config, name) for name in lib.SecretCacheConfig.OPTION_DEFAULTS} == {
        "max_cache_size": 1024, "exception_retry_delay_base": 1, "exception_retry_growth_factor": 2,
        "exception_retry_delay_max": 3600, "default_version_stage": "AWSCURRENT",
        "secret_refresh_interval": 3600, "secret_cache_hook": None,
    }
    assert lib.SecretCacheConfig(max_cache_size=10).max_cache_size == 10
    with pytest.raises(TypeError, match="Unexpected keyword argument max_size"):
        lib.SecretCacheConfig(max_size=10)


def test_inject_secret_string_passes_the_secret_first(lib: types.ModuleType, aws: Aws) -> None:
    cache = new_cache(lib, aws)

    @lib.InjectSecretString("compat/plain", cache)
    def use(secret: str, a: int, b: int = 0) -> tuple[str, int, int]:
        return secret, a, b

    assert use(1, b=2) == (aws.value, 1, 2)
    assert use.__name__ == "use"


def test_inject_secret_string_on_a_method_passes_it_after_self(lib: types.ModuleType, aws: Aws) -> None:
    cache = new_cache(lib, aws)

    class Service:
        @lib.InjectSecretString("compat/plain", cache)
        def call(self, secret: str, path: str) -> tuple[Any, str, str]:
            return self, secret, path

    service = Service()
    assert service.call("/p") == (service, aws.value, "/p")


def test_inject_keyworded_secret_string_passes_json_values_as_they_are(lib: types.ModuleType,
                                                                      aws: Aws) -> None:
    cache = new_cache(lib, aws)

    @lib.InjectKeywordedSecretString("compat/json", cache, user="username", pw="password", port="port")
    def connect(host: str, *, user: str, pw: str, port: int) -> tuple[str, str, str, int]:
        return host, user, pw, port

    assert connect("db") == ("db", "app", aws.password, 5432)  # the port stays an int


def test_decorators_read_through_the_cache_on_every_call(lib: types.ModuleType, aws: Aws,
                                                        no_official_sleep: list[float]) -> None:
    cache = new_cache(lib, aws)

    @lib.InjectSecretString("compat/plain", cache)
    def current(secret: str) -> str:
        return secret

    assert current() == aws.value
    aws.client.put_secret_value(SecretId="compat/plain", SecretString="rotated")
    assert cache.refresh_secret_now("compat/plain")
    assert current() == "rotated"


@pytest.mark.parametrize(("secret_id", "mapping", "message"), [
    ("compat/text", {"pw": "password"}, "not valid JSON"),
    ("compat/json", {"pw": "passwd"}, "passwd"),
])
def test_bad_json_secrets_raise_runtime_error_in_both(lib: types.ModuleType, aws: Aws, secret_id: str,
                                                      mapping: dict[str, str], message: str) -> None:
    cache = new_cache(lib, aws)

    @lib.InjectKeywordedSecretString(secret_id, cache, **mapping)
    def use(pw: str) -> str:
        return pw

    with pytest.raises(RuntimeError, match=message) as info:
        use()
    assert CANARY not in str(info.value)
    assert info.value.__cause__ is None
    assert info.value.__context__ is None or CANARY not in str(info.value.__context__)


# -- where we differ on purpose -------------------------------------------------------------------


def test_first_read_costs_one_get_and_no_describe_secret(lib: types.ModuleType, aws: Aws) -> None:
    new_cache(lib, aws).get_secret_string("compat/plain")
    # The official library calls DescribeSecret first (and needs secretsmanager:DescribeSecret for it).
    assert aws.calls() == ((1, 1) if lib.__name__ != secretcache.compat.__name__ else (0, 1))


def test_a_missing_stage_raises_instead_of_returning_none(lib: types.ModuleType, aws: Aws) -> None:
    cache = new_cache(lib, aws)
    if lib is secretcache.compat:
        with pytest.raises(SecretNotFoundError, match="compat/plain"):
            cache.get_secret_string("compat/plain", version_stage="AWSPENDING")
    else:
        assert cache.get_secret_string("compat/plain", version_stage="AWSPENDING") is None


def test_a_binary_secret_read_as_a_string_raises_instead_of_returning_none(lib: types.ModuleType,
                                                                          aws: Aws) -> None:
    cache = new_cache(lib, aws)
    if lib is secretcache.compat:
        with pytest.raises(SecretFormatError, match="compat/binary"):
            cache.get_secret_string("compat/binary")
        with pytest.raises(SecretFormatError, match="compat/plain"):
            cache.get_secret_binary("compat/plain")
    else:
        assert cache.get_secret_string("compat/binary") is None
        assert cache.get_secret_binary("compat/plain") is None


def test_a_missing_secret_raises_a_typed_error_not_botocore_client_error(lib: types.ModuleType,
                                                                        aws: Aws) -> None:
    from botocore.exceptions import ClientError

    cache = new_cache(lib, aws)
    expected = SecretNotFoundError if lib is secretcache.compat else ClientError
    with pytest.raises(expected, match=r"compat/missing|ResourceNotFound"):
        cache.get_secret_string("compat/missing")


def test_refresh_secret_now_never_sleeps(aws: Aws, no_official_sleep: list[float],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import aws_secretsmanager_caching

    official = new_cache(aws_secretsmanager_caching, aws)
    official.get_secret_string("compat/plain")
    assert official.refresh_secret_now("compat/plain")
    assert no_official_sleep
    assert 2.5 <= no_official_sleep[0] <= 5.001  # what the official call would have waited

    ours = new_cache(secretcache.compat, aws)
    ours.get_secret_string("compat/plain")

    def forbidden(seconds: float) -> None:
        raise AssertionError(f"refresh_secret_now slept {seconds} s")

    monkeypatch.setattr(time, "sleep", forbidden)
    assert ours.refresh_secret_now("compat/plain") is True


def test_refresh_secret_now_refreshes_every_stage_read_so_far(aws: Aws) -> None:
    cache = new_cache(secretcache.compat, aws)
    assert cache.get_secret_string("compat/plain", "AWSPREVIOUS") == aws.old
    aws.client.put_secret_value(SecretId="compat/plain", SecretString="third")
    assert cache.refresh_secret_now("compat/plain") is True
    assert cache.get_secret_string("compat/plain") == "third"
    assert cache.get_secret_string("compat/plain", "AWSPREVIOUS") == aws.value


class Record:
    def lookup(self) -> None:  # a method that happens to share the decorated function's name
        pass


def test_inject_secret_string_never_mistakes_a_plain_function_for_a_method(lib: types.ModuleType,
                                                                          aws: Aws) -> None:
    cache = new_cache(lib, aws)

    @lib.InjectSecretString("compat/plain", cache)
    def lookup(secret: str, record: Record) -> tuple[Any, Any]:
        return secret, record

    record = Record()
    if lib is secretcache.compat:
        assert lookup(record) == (aws.value, record)
    else:  # the official heuristic sees `record.__class__.lookup` and puts the secret second
        assert lookup(record) == (record, aws.value)


def test_an_explicit_keyword_argument_wins_over_an_injected_one(lib: types.ModuleType, aws: Aws) -> None:
    cache = new_cache(lib, aws)

    @lib.InjectKeywordedSecretString("compat/json", cache, user="username")
    def connect(user: str) -> str:
        return user

    if lib is secretcache.compat:
        assert connect(user="admin") == "admin"
    else:
        with pytest.raises(TypeError, match="multiple values"):
            connect(user="admin")


def test_decorator_errors_are_typed_as_well_as_runtime_errors(aws: Aws) -> None:
    cache = new_cache(secretcache.compat, aws)

    @secretcache.compat.InjectKeywordedSecretString("compat/json", cache, pw="passwd")
    def use(pw: str) -> str:
        return pw

    with pytest.raises(SecretInjectionError) as info:
        use()
    assert isinstance(info.value, SecretFormatError)
    assert isinstance(info.value, RuntimeError)
    assert info.value.secret_id == "compat/json"


def test_config_is_mapped_to_cache_config() -> None:
    config = secretcache.compat.SecretCacheConfig(
        max_cache_size=10, exception_retry_delay_base=2, exception_retry_delay_max=60,
        default_version_stage="AWSPREVIOUS", secret_refresh_interval=120,
    ).to_cache_config()
    assert (config.max_size, config.backoff_base, config.backoff_max) == (10, 2, 60)
    assert (config.version_stage, config.ttl, config.jitter) == ("AWSPREVIOUS", 120, 0.5)
    defaults = secretcache.compat.SecretCacheConfig().to_cache_config()
    assert (defaults.ttl, defaults.backoff_base, defaults.backoff_max) == (3600, 1, 30.0)  # our cap
    slow_start = secretcache.compat.SecretCacheConfig(exception_retry_delay_base=90)
    assert slow_start.to_cache_config().backoff_max == 90


@pytest.mark.parametrize(("field", "value"), [
    ("max_cache_size", 0),
    ("secret_refresh_interval", -1),
    ("exception_retry_delay_base", "1"),
    ("exception_retry_growth_factor", 0.5),
    ("default_version_stage", ""),
])
def test_invalid_config_values_raise_value_error_naming_the_field(aws: Aws, field: str, value: Any) -> None:
    with pytest.raises(ValueError, match=f"SecretCacheConfig.{field}"):
        new_cache(secretcache.compat, aws, **{field: value})


def test_a_secret_cache_hook_is_accepted_with_a_warning(aws: Aws) -> None:
    class Hook:
        def put(self, obj: Any) -> Any:
            return obj

        def get(self, cached: Any) -> Any:
            return cached

    with pytest.warns(UserWarning, match="ignores secret_cache_hook"):
        cache = new_cache(secretcache.compat, aws, secret_cache_hook=Hook())
    assert cache.get_secret_string("compat/plain") == aws.value


def test_a_wrong_config_type_is_refused() -> None:
    with pytest.raises(TypeError, match="SecretCacheConfig"):
        secretcache.compat.SecretCache(config={"max_cache_size": 1})  # type: ignore[arg-type]


def test_the_native_cache_is_reachable_for_a_gradual_migration(aws: Aws) -> None:
    cache = new_cache(secretcache.compat, aws)
    assert cache.cache.get("compat/json#port") == "5432"
    assert "SecretCache" in repr(cache)
    assert CANARY not in repr(cache)


# -- the official README, unchanged ---------------------------------------------------------------


def official_readme_blocks() -> list[str]:
    text = importlib.metadata.distribution("aws_secretsmanager_caching").read_text("METADATA") or ""
    return re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)


def test_the_official_readme_examples_run_unchanged_against_both(lib: types.ModuleType, aws: Aws,
                                                                no_official_sleep: list[float],
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    mysecret = json.dumps({"username": "u", "password": aws.password})
    aws.client.create_secret(Name="mysecret", SecretString=mysecret)
    aws.client.create_secret(Name="mysimplesecret", SecretString=aws.value)
    blocks = official_readme_blocks()
    assert len(blocks) == 3, "the official README changed: review this test"
    usage, refresh, decorators = blocks
    # The decorators block ends in a function whose body is only comments: not valid Python as printed.
    # We complete it with `...`, the same for both libraries; every other character is the README's.
    with pytest.raises(SyntaxError):
        compile(decorators, "README", "exec")
    decorators += "    ...\n"
    namespace: dict[str, Any] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for block in (usage, refresh, decorators):
            if lib is secretcache.compat:
                assert "from aws_secretsmanager_caching import" in block or "refresh_secret_now" in block
                block = block.replace("from aws_secretsmanager_caching import",
                                      "from secretcache.compat import")
            exec(compile(block, "README", "exec"), namespace)
    assert namespace["secret"] == mysecret
    assert namespace["refreshed"] is True
    assert namespace["function_to_be_decorated"]("arg2", "arg3") is None  # arg1 injected: three arguments
    assert type(namespace["cache"]).__module__.startswith(lib.__name__)
    assert capsys.readouterr().out == ""
