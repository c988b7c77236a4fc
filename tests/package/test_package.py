"""The package face: ``__all__``, lazy heavy names, a light ``import secretcache``, module-level shortcuts."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from types import ModuleType

import pytest

import secretcache
from secretcache import SecretCache, default_cache, set_default_cache
from secretcache.testing import InMemoryBackend
from tests.fixtures.fix_canary import canary_value

DOCUMENTED = {
    "SecretCache", "AsyncSecretCache", "CacheConfig", "CacheStats", "CacheEvent", "SecretValue", "SecretRef",
    "SecretCacheError", "SecretNotFoundError", "SecretAccessDeniedError", "SecretDecryptionError",
    "SecretDeletedError", "SecretUnavailableError", "SecretThrottledError", "SecretFormatError",
    "InvalidReferenceError", "SecretsBackend", "AwsBackend", "AgentBackend",
    "inject_secret", "inject_env", "secret_env", "resolve_env",
    "get", "get_secret_string", "get_secret_json", "get_secret_binary", "default_cache", "set_default_cache",
    "__version__",
}

HEAVY = ["boto3", "botocore", "asyncio", "concurrent.futures", "dataclasses", "psycopg", "psycopg_pool",
         "pymysql", "sqlalchemy", "moto", "logging", "json"]


def run_python(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_all_lists_exactly_the_documented_public_names() -> None:
    assert len(secretcache.__all__) == len(set(secretcache.__all__))
    assert set(secretcache.__all__) == DOCUMENTED


def test_every_name_in_all_resolves() -> None:
    for name in secretcache.__all__:
        assert getattr(secretcache, name) is not None, name
    assert isinstance(secretcache.__version__, str)


def test_every_public_object_on_the_package_is_in_all() -> None:
    public = {
        name for name, value in vars(secretcache).items()
        if not name.startswith("_") and not isinstance(value, ModuleType)
        and str(getattr(value, "__module__", "")).startswith("secretcache")
    }
    assert public <= set(secretcache.__all__)
    assert set(secretcache.__all__) <= set(dir(secretcache))


def test_an_unknown_name_raises_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_name"):
        secretcache.no_such_name  # type: ignore[attr-defined]  # noqa: B018


def test_import_secretcache_loads_no_heavy_module() -> None:
    out = run_python(f"""
        import sys
        import secretcache
        print(sorted(m for m in {HEAVY!r} if m in sys.modules))
    """)
    assert out.strip() == "[]"


def test_heavy_names_load_on_first_use_only() -> None:
    out = run_python("""
        import sys
        import secretcache
        before = "asyncio" in sys.modules, "dataclasses" in sys.modules, "boto3" in sys.modules
        secretcache.AsyncSecretCache
        secretcache.CacheConfig
        secretcache.AwsBackend
        after = "asyncio" in sys.modules, "dataclasses" in sys.modules, "boto3" in sys.modules
        print(before, after)
    """)
    assert out.strip() == "(False, False, False) (True, True, False)"


def test_the_default_cache_is_built_lazily_without_importing_boto3() -> None:
    out = run_python("""
        import sys
        import secretcache
        cache = secretcache.default_cache()
        print(type(cache).__name__, cache is secretcache.default_cache(), "boto3" in sys.modules)
        print(type(cache.backend).__name__, "boto3" in sys.modules)
    """)
    assert out.split() == ["SecretCache", "True", "False", "AwsBackend", "False"]


@pytest.fixture
def restore_default() -> Iterator[None]:
    previous = set_default_cache(None)
    yield
    set_default_cache(previous)


@pytest.mark.usefixtures("restore_default")
def test_module_level_shortcuts_read_through_the_default_cache() -> None:
    password = canary_value("short")
    store = InMemoryBackend({"app/db": json.dumps({"password": password}), "app/bin": b"\x01\x02"})
    old_id = next(iter(store.version_stages("app/db")))
    store.rotate("app/db", json.dumps({"password": "new-" + password}))
    cache = SecretCache(store)
    assert set_default_cache(cache) is None
    assert default_cache() is cache
    assert secretcache.get("app/db#password") == "new-" + password
    previous = secretcache.get_secret_string("app/db", version_stage="AWSPREVIOUS")
    assert json.loads(previous)["password"] == password
    assert secretcache.get_secret_json("app/db", version_id=old_id)["password"] == password
    assert secretcache.get_secret_json("app/db")["password"] == "new-" + password
    assert secretcache.get_secret_binary("app/bin") == b"\x01\x02"
    assert store.calls["GetSecretValue"] == 4
    assert set_default_cache(None) is cache
    assert default_cache() is not cache


@pytest.mark.usefixtures("restore_default")
def test_set_default_cache_rejects_other_objects() -> None:
    with pytest.raises(TypeError, match="SecretCache"):
        set_default_cache(InMemoryBackend())  # type: ignore[arg-type]


@pytest.mark.usefixtures("restore_default")
def test_concurrent_first_use_builds_one_default_cache() -> None:
    barrier = threading.Barrier(16)
    got: list[SecretCache] = []

    def first_use() -> None:
        barrier.wait()
        got.append(default_cache())

    threads = [threading.Thread(target=first_use) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(got) == 16
    assert all(c is got[0] for c in got)
