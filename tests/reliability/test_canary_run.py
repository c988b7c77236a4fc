"""The secret-leak canary, beyond log records: reprs of public objects, pytest's ``--showlocals`` tracebacks,
and the CLI's error paths under faults. (Log records are scanned for the whole suite by
``tests/fixtures/fix_canary.py``; exception messages, traceback locals and test reports by
``tests/fixtures/fix_canary_checks.py``; the demo's output
by ``tests/cli/test_demo.py``, whose passwords all carry the canary.)
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devtools.faults import FaultProxy
from devtools.moto_helpers import moto_server
from secretcache import (
    AsyncSecretCache,
    CacheEvent,
    SecretCache,
    SecretCacheError,
    SecretFormatError,
    SecretRef,
    SecretValue,
)
from secretcache.config import CacheConfig
from secretcache.testing import InMemoryBackend
from tests.fixtures.fix_canary import CANARY, canary_value
from tests.fixtures.fix_canary_checks import leaking_locals

REPO = Path(__file__).resolve().parents[2]


def _shown(obj: object) -> str:
    return f"{obj!r} {obj!s}"


# -- the suite-wide checks are on ------------------------------------------------------------------


def test_the_exception_and_traceback_canary_checks_are_loaded_in_this_session(
    pytestconfig: pytest.Config,
) -> None:
    """CI proves nothing unless tests/fixtures/fix_canary_checks.py is a plugin of the run (conftest's
    pytest_plugins)."""
    assert pytestconfig.pluginmanager.has_plugin("tests.fixtures.fix_canary_checks"), (
        "add 'tests.fixtures.fix_canary_checks' to pytest_plugins in tests/conftest.py")
    assert pytest.raises.__module__ == "tests.fixtures.fix_canary_checks"


def test_the_locals_check_finds_a_secret_held_by_a_package_frame_and_follows_the_chain(
    tmp_path: Path,
) -> None:
    """The check itself: a package frame holding a canary in a local is reported, through ``raise from``."""
    module = tmp_path / "secretcache_probe.py"
    module.write_text(textwrap.dedent("""
        def inner(value):
            held = {"password": value}
            raise KeyError("no such key")

        def outer(value):
            try:
                inner(value)
            except KeyError as e:
                raise ValueError("wrapped") from e

        def suppressed(value):
            try:
                inner(value)
            except KeyError:
                raise ValueError("wrapped") from None
    """))
    sys.path.insert(0, str(tmp_path))
    try:
        import secretcache_probe as probe  # type: ignore[import-not-found]

        import tests.fixtures.fix_canary_checks as checks

        secret = canary_value("probe")
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(checks, "_PACKAGE_DIR", str(tmp_path))
            try:
                probe.outer(secret)
            except ValueError as e:
                found = leaking_locals(e)
            assert "secretcache_probe.py:inner() local 'held'" in found
            assert "secretcache_probe.py:inner() local 'value'" in found
            try:
                probe.suppressed(secret)
            except ValueError as e:
                found = leaking_locals(e)
            assert found == ["secretcache_probe.py:suppressed() local 'value'"]  # the context is not shown
            del secret
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("secretcache_probe", None)


# -- reprs of public objects -----------------------------------------------------------------------


def _loaded_cache(secret: str) -> tuple[SecretCache, InMemoryBackend]:
    backend = InMemoryBackend({"app/json": json.dumps({"password": secret}), "app/text": secret,
                               "app/bin": secret.encode()})
    cache = SecretCache(backend, config=CacheConfig(ttl=60))
    cache.get("app/json#password")
    cache.get_secret_string("app/text")
    cache.get_secret_binary("app/bin")
    cache.get_secret_value("app/text", version_stage="AWSCURRENT")
    return cache, backend


def test_reprs_and_strs_of_the_core_public_objects_never_show_a_value() -> None:
    secret = canary_value("repr")
    cache, backend = _loaded_cache(secret)
    value = cache.get_secret_value("app/json")
    events: list[CacheEvent] = []
    watched = SecretCache(backend, on_event=events.append)
    watched.get_secret_string("app/text")
    watched.get_secret_string("app/text")
    backend.fail_next("throttle")
    watched.invalidate()
    with pytest.raises(SecretCacheError) as info:
        watched.get_secret_string("app/text")
    async_cache = AsyncSecretCache(backend)
    assert asyncio.run(async_cache.get_secret_string("app/text")) == secret

    objects: list[Any] = [
        cache, cache.stats, cache.config, backend, value, SecretValue("x", secret_binary=secret.encode()),
        SecretRef.parse("app/json#password"), async_cache, *events, info.value, watched,
    ]
    for obj in objects:
        assert CANARY not in _shown(obj), f"{type(obj).__name__} shows a value"
    assert {e.kind for e in events} >= {"miss", "hit", "error"}
    cache.close()
    watched.close()
    asyncio.run(async_cache.close())


def test_reprs_of_backends_decorators_and_the_compat_layer_never_show_a_value_or_token() -> None:
    from secretcache import inject_secret
    from secretcache.backends import AgentBackend, AwsBackend
    from secretcache.compat import InjectKeywordedSecretString, InjectSecretString, SecretCacheConfig
    from secretcache.compat import SecretCache as CompatCache

    secret = canary_value("repr2")
    cache, _backend = _loaded_cache(secret)

    @inject_secret("app/json#password", into="password", cache=cache)
    def handler(password: str) -> str:
        return password

    assert handler() == secret
    agent = AgentBackend("http://127.0.0.1:9", token=canary_value("agent-token"))
    aws = AwsBackend(region_name="us-east-1", endpoint_url="http://127.0.0.1:9")
    compat = CompatCache(config=SecretCacheConfig(), client=_StubClient(secret))
    assert compat.get_secret_string("app/text") == secret
    objects: list[Any] = [handler, agent, aws, compat, SecretCacheConfig(),
                          InjectSecretString("app/text", compat),
                          InjectKeywordedSecretString("app/json", compat, password="password")]
    for obj in objects:
        assert CANARY not in _shown(obj), f"{type(obj).__name__} shows a value or token"


def test_reprs_of_the_database_and_rotation_objects_never_show_a_password() -> None:
    from secretcache.credentials import AuthPolicy, Credentials, Login
    from secretcache.rotation import PasswordPolicy, PostgresSingleUser
    from secretcache.rotation.protocol import RotationHandler

    secret = canary_value("dbpw")
    rds = {"engine": "postgres", "host": "127.0.0.1", "port": 5432, "username": "app", "password": secret,
           "dbname": "app"}
    backend = InMemoryBackend({"app/db": json.dumps(rds)})
    cache = SecretCache(backend)
    value = cache.get_secret_value("app/db")
    credentials = Credentials(value, "AWSCURRENT", "cache", {"password": secret, "user": "app"})
    login = Login("app/db", lambda v: {"password": secret}, cache=cache)
    strategy = PostgresSingleUser()
    objects: list[Any] = [credentials, login, AuthPolicy(), PasswordPolicy(), strategy,
                          RotationHandler(_StubClient(secret), strategy)]
    for obj in objects:
        assert CANARY not in _shown(obj), f"{type(obj).__name__} shows a password"


class _StubClient:
    """The least of a boto3 secretsmanager client the compat layer and the rotation handler touch."""

    def __init__(self, secret: str) -> None:
        self._secret = secret

        class Meta:
            region_name = "us-east-1"

        self.meta = Meta()

    def get_secret_value(self, **kwargs: Any) -> dict[str, Any]:
        return {"Name": kwargs["SecretId"], "SecretString": self._secret, "VersionId": "v1" * 16,
                "VersionStages": ["AWSCURRENT"],
                "ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:x-AbCdEf"}

    def __repr__(self) -> str:
        return "<stub secretsmanager client>"


# -- pytest --showlocals on failures inside secretcache -------------------------------------------

_INNER = '''
import asyncio, json, os
import pytest
from secretcache import AsyncSecretCache, SecretCache, inject_secret, resolve_env
from secretcache.model import SecretValue
from secretcache.testing import InMemoryBackend


def _backend():
    secret = os.environ["SC_INNER_CANARY"]
    backend = InMemoryBackend()
    backend.put_secret("app/json", json.dumps({"password": secret, "port": 5432}))
    backend.put_secret("app/text", secret + " is not json")
    backend.put_secret("app/list", json.dumps([secret]))
    backend.put_secret("app/bin", secret.encode())
    return backend


class Oversize:
    """A backend whose answer is over the size limit (the value is built inside the package)."""
    def get_secret_value(self, secret_id, *, version_id=None, version_stage=None):
        return SecretValue(secret_id, secret_string=os.environ["SC_INNER_CANARY"] * 5000)
    def batch_get_secret_values(self, ids):
        return [], {}


def test_missing_json_key():
    SecretCache(_backend()).get("app/json#nope")

def test_json_of_plain_text():
    SecretCache(_backend()).get_secret_json("app/text")

def test_json_of_a_list():
    SecretCache(_backend()).get_secret_json("app/list")

def test_string_of_binary():
    SecretCache(_backend()).get_secret_string("app/bin")

def test_key_of_binary():
    SecretCache(_backend()).get("app/bin#password")

def test_template_with_one_good_and_one_missing_reference():
    SecretCache(_backend()).get(
        "u={{resolve:secretsmanager:app/json:SecretString:password}} "
        "p={{resolve:secretsmanager:app/json:SecretString:nope}}")

def test_async_template_with_one_good_and_one_missing_reference():
    cache = AsyncSecretCache(_backend())
    asyncio.run(cache.get(
        "u={{resolve:secretsmanager:app/json:SecretString:password}} "
        "p={{resolve:secretsmanager:app/json:SecretString:nope}}"))

def test_value_over_the_size_limit():
    SecretCache(Oversize()).get_secret_string("app/huge")

def test_resolve_env_with_one_good_and_one_missing_reference():
    resolve_env({"A": "{{resolve:secretsmanager:app/json:SecretString:password}}",
                 "B": "{{resolve:secretsmanager:app/json:SecretString:nope}}"}, cache=SecretCache(_backend()))

def test_injected_function_that_fails():
    @inject_secret("app/json", fields={"pw": "password"}, cache=SecretCache(_backend()))
    def handler(**kwargs):
        raise RuntimeError("the handler failed")
    handler()

class GarbledSsm:
    """An ssm client whose answers hold the value but are malformed (a Name that is not a str)."""
    meta = None
    def get_parameter(self, **kwargs):
        return {"Parameter": {"Name": 7, "Value": os.environ["SC_INNER_CANARY"], "Version": 1}}
    def get_parameters_by_path(self, **kwargs):
        return {"Parameters": [{"Name": 7, "Value": os.environ["SC_INNER_CANARY"]}]}


def _parameters():
    backend = InMemoryBackend()
    backend.put_secret("ssm:/app/json", json.dumps({"password": os.environ["SC_INNER_CANARY"]}))
    backend.put_secret("ssm:/app/text", os.environ["SC_INNER_CANARY"] + " is not json")
    return backend

def test_parameter_missing_json_key():
    SecretCache(_parameters()).get("ssm:/app/json#nope")

def test_parameter_json_of_plain_text():
    SecretCache(_parameters()).get_secret_json("ssm:/app/text")

def test_parameter_template_with_one_good_and_one_missing_reference():
    SecretCache(_parameters()).get("u={{resolve:ssm:/app/json}} p={{resolve:ssm:/app/missing}}")

def test_garbled_parameter_answer():
    from secretcache.backends import AwsBackend
    SecretCache(AwsBackend(ssm_client=GarbledSsm(), region_name="us-east-1")).get("ssm:/app/x")

def test_garbled_parameter_path_page():
    from secretcache.backends import AwsBackend
    SecretCache(AwsBackend(ssm_client=GarbledSsm(), region_name="us-east-1")).get_path("ssm:/app/")

def test_inject_secret_with_a_missing_key():
    @inject_secret("app/json", fields={"pw": "password", "other": "nope"}, cache=SecretCache(_backend()))
    def handler(pw, other):
        return pw
    handler()
'''

_LOCATION = re.compile(r"^(\S+\.py):(\d+): ", re.MULTILINE)


def _entries(output: str) -> Iterator[tuple[str, str]]:
    """(location, text) per traceback entry of pytest's long format: an entry's source and locals come
    before its ``path:line: ...`` location line."""
    start = 0
    for m in _LOCATION.finditer(output):
        yield m.group(1), output[start:m.end()]
        start = m.end()


def test_pytest_showlocals_tracebacks_through_the_package_show_no_value(tmp_path: Path) -> None:
    """Every failure path that ends in a package frame, run by pytest with ``--showlocals --tb=long``:
    no frame of secretcache shows a value, and no exception message does. (User frames that receive a
    value, such as a decorated function's own parameters, are the user's: they are left out.)"""
    (tmp_path / "test_inner.py").write_text(_INNER)
    env = {**os.environ, "SC_INNER_CANARY": canary_value("inner"),
           "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--showlocals", "--tb=long", "-rN",
         "-o", "asyncio_mode=auto", "test_inner.py"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    output = proc.stdout + proc.stderr
    assert "16 failed" in output, output[-3000:]
    assert "self       = SecretValue(" in output or "cache      = <SecretCache" in output, "locals not shown"
    leaks = sorted({f"{location.rpartition('/')[2]}: {name}" for location, text in _entries(output)
                    if "/secretcache/" in location
                    for name in re.findall(rf"^(\w+) += .*{CANARY}", text, re.MULTILINE)})
    messages = [line for line in output.splitlines() if line.startswith("E ") and CANARY in line]
    assert not leaks, f"package frames show a secret value with --showlocals: {leaks}"
    assert not messages, f"exception messages show a secret value: {messages}"


# -- CLI error paths under faults ------------------------------------------------------------------


@pytest.fixture(scope="module")
def cli_aws() -> Iterator[tuple[str, FaultProxy, dict[str, str]]]:
    import boto3

    with moto_server() as endpoint, FaultProxy(endpoint) as proxy:
        admin = boto3.client("secretsmanager", endpoint_url=endpoint, region_name="us-east-1")
        values = {"password": canary_value("cli-pw"), "text": canary_value("cli-text")}
        admin.create_secret(Name="canary/db", SecretString=json.dumps({"password": values["password"]}))
        admin.create_secret(Name="canary/text", SecretString=values["text"])
        admin.create_secret(Name="canary/bin", SecretBinary=values["text"].encode())
        yield proxy.url, proxy, values


def _cli(proxy_url: str, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    child = {k: v for k, v in os.environ.items() if not k.startswith("SC_")}
    child.update(AWS_ENDPOINT_URL_SECRETS_MANAGER=proxy_url, AWS_ACCESS_KEY_ID="testing",
                 AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1", AWS_REGION="us-east-1",
                 AWS_RETRY_MODE="standard", AWS_MAX_ATTEMPTS="1",
                 PYTHONPATH=os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p))
    child.update(env or {})
    proc = subprocess.run([sys.executable, "-m", "secretcache", *args], env=child, capture_output=True,
                          stdin=subprocess.DEVNULL, timeout=90)
    return proc.returncode, (proc.stdout + proc.stderr).decode("utf-8", "replace")


@pytest.mark.integration
@pytest.mark.parametrize(("mode", "args", "code"), [
    ("throttle", ("get", "canary/db#password"), 1),
    ("503", ("get", "canary/text"), 1),
    ("rst", ("get", "canary/text"), 1),
    ("garbled", ("get", "canary/text"), 1),
    ("AccessDeniedException", ("get", "canary/db#password"), 1),
    ("DecryptionFailure", ("run", "--env", "PW=canary/db#password", "--", sys.executable, "-c", "pass"), 1),
    ("InvalidRequestException", ("run", "--env", "PW=canary/text", "--", sys.executable, "-c", "pass"), 1),
    ("pass", ("get", "canary/db#nope"), 1),
    ("pass", ("get", "canary/text#password"), 1),
    ("pass", ("get", "canary/bin#password"), 1),
    ("pass", ("run", "--env", "PW=canary/db#password", "--env", "X=canary/db#nope", "--", "true"), 1),
    ("pass", ("run", "--env", "PW=canary/db#password", "--", "/nonexistent/command"), 127),
])
def test_cli_error_paths_under_faults_print_no_value(
    mode: str, args: tuple[str, ...], code: int, cli_aws: tuple[str, FaultProxy, dict[str, str]]
) -> None:
    url, proxy, _ = cli_aws
    proxy.fail(mode)
    try:
        exit_code, output = _cli(url, *args)
    finally:
        proxy.clear()
    assert exit_code == code, output
    assert "secretcache: error:" in output
    assert CANARY not in output
    assert "Traceback" not in output


@pytest.mark.integration
def test_cli_run_with_an_unparsable_env_file_line_holding_a_value_names_the_line_only(
    cli_aws: tuple[str, FaultProxy, dict[str, str]], tmp_path: Path
) -> None:
    url, _, values = cli_aws
    env_file = tmp_path / "app.env"
    env_file.write_text(f"GOOD=canary/db\nBAD='{values['password']}\n")  # an unterminated quote
    exit_code, output = _cli(url, "run", "--env-file", str(env_file), "--", "true")
    assert exit_code == 2, output
    assert "line 2" in output
    assert CANARY not in output


@pytest.mark.integration
def test_cli_run_failing_on_one_variable_never_echoes_the_resolved_others(
    cli_aws: tuple[str, FaultProxy, dict[str, str]]
) -> None:
    url, _, values = cli_aws
    env = {"ALREADY": values["text"],  # a value already in the environment (resolved by someone else)
           "URL": "postgres://app:{{resolve:secretsmanager:canary/db:SecretString:password}}@db/app",
           "BROKEN": "{{resolve:secretsmanager:canary/db:SecretString:nope}}"}
    exit_code, output = _cli(url, "run", "--", sys.executable, "-c", "pass", env=env)
    assert exit_code == 1, output
    assert "BROKEN" in output
    assert CANARY not in output


@pytest.mark.integration
def test_cli_get_when_the_endpoint_is_down_says_so_without_a_traceback() -> None:
    exit_code, output = _cli("http://127.0.0.1:9", "get", "canary/text")
    assert exit_code == 1, output
    assert "unreachable" in output.lower() or "unavailable" in output.lower(), output
    assert "Traceback" not in output


def test_format_errors_raised_by_the_package_carry_no_value() -> None:
    secret = canary_value("fmt")
    cache, _ = _loaded_cache(secret)
    for call in (lambda: cache.get("app/json#nope"), lambda: cache.get_secret_json("app/text"),
                 lambda: cache.get_secret_string("app/bin"), lambda: cache.get("app/bin#k")):
        with pytest.raises(SecretFormatError) as info:
            call()
        assert CANARY not in _shown(info.value)
        assert not leaking_locals(info.value), leaking_locals(info.value)
