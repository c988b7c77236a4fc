"""Environment injection (resolve_env, inject_env, secret_env) and the env-file parsers."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from secretcache import (
    InvalidReferenceError,
    SecretCache,
    SecretDeletedError,
    SecretFormatError,
    SecretNotFoundError,
    SecretUnavailableError,
    inject_env,
    resolve_env,
    secret_env,
)
from secretcache._envfile import EnvFileError, _parse_with_dotenv, parse_env, read_env_file
from secretcache.config import CacheConfig
from secretcache.testing import InMemoryBackend
from tests.fixtures.fix_canary import CANARY, canary_value

GET, BATCH = "GetSecretValue", "BatchGetSecretValue"
TOKEN_REF = "{{resolve:secretsmanager:app/token}}"
PORT_REF = "{{resolve:secretsmanager:app/db:SecretString:port}}"


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
    })


@pytest.fixture
def cache(store: InMemoryBackend) -> Iterator[SecretCache]:
    with SecretCache(store, config=CacheConfig(background_refresh=False)) as c:
        yield c


@pytest.fixture
def environ(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Tests here change os.environ: put it back exactly as it was."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


def arn(store: InMemoryBackend, name: str, tail: str = "") -> str:
    return store.arn(name) + tail


# -- resolve_env ----------------------------------------------------------------------------------


def test_resolve_env_resolves_ecs_and_cloudformation_references_and_leaves_the_rest(
    cache: SecretCache, store: InMemoryBackend, password: str, token: str
) -> None:
    environ = {
        "TOKEN": arn(store, "app/token"),  # ECS valueFrom: the whole secret
        "DB_PASSWORD": arn(store, "app/db", ":password::"),  # ECS valueFrom: one JSON key
        "DB_USER": "{{resolve:secretsmanager:app/db:SecretString:username}}",
        "DB_URL": "postgres://{{resolve:secretsmanager:app/db:SecretString:username}}:"
                  "{{resolve:secretsmanager:app/db:SecretString:password}}@db:5432/app",
        "PLAIN": "hello",
        "LOOKS_LIKE_A_NAME": "app/token",  # a plain value, not a reference form: untouched
        "OTHER_ARN": "arn:aws:s3:::bucket",
        "OTHER_SERVICE": "{{resolve:s3:bucket/key}}",
    }
    before = dict(environ)
    resolved = resolve_env(environ, cache=cache)
    assert resolved == {
        "TOKEN": token, "DB_PASSWORD": password, "DB_USER": "app",
        "DB_URL": f"postgres://app:{password}@db:5432/app",
        "PLAIN": "hello", "LOOKS_LIKE_A_NAME": "app/token", "OTHER_ARN": "arn:aws:s3:::bucket",
        "OTHER_SERVICE": "{{resolve:s3:bucket/key}}",
    }
    assert environ == before  # a copy: the input is not changed


def test_resolve_env_defaults_to_os_environ(cache: SecretCache, environ: None, token: str) -> None:
    os.environ["SC_TEST_TOKEN"] = "{{resolve:secretsmanager:app/token}}"
    resolved = resolve_env(cache=cache)
    assert resolved["SC_TEST_TOKEN"] == token
    assert os.environ["SC_TEST_TOKEN"] == "{{resolve:secretsmanager:app/token}}"
    assert resolved["PATH"] == os.environ["PATH"]


def test_many_references_cost_one_batch_call(cache: SecretCache, store: InMemoryBackend) -> None:
    for i in range(12):
        store.put_secret(f"app/s{i}", json.dumps({"v": f"value-{i}"}))
    environ = {f"V{i}": f"{{{{resolve:secretsmanager:app/s{i}:SecretString:v}}}}" for i in range(12)}
    environ["TWICE"] = "{{resolve:secretsmanager:app/s0:SecretString:v}}"
    resolved = resolve_env(environ, cache=cache)
    assert resolved["V11"] == "value-11"
    assert resolved["TWICE"] == "value-0"
    assert store.calls == {BATCH: 1}


def test_more_than_twenty_secrets_are_batched_in_twenties(cache: SecretCache, store: InMemoryBackend) -> None:
    for i in range(25):
        store.put_secret(f"app/n{i}", f"value-{i}")
    environ = {f"V{i}": f"{{{{resolve:secretsmanager:app/n{i}}}}}" for i in range(25)}
    assert resolve_env(environ, cache=cache)["V24"] == "value-24"
    assert store.calls == {BATCH: 2}


def test_fresh_secrets_are_not_fetched_again(cache: SecretCache, store: InMemoryBackend) -> None:
    environ = {"A": TOKEN_REF, "B": PORT_REF}
    resolve_env(environ, cache=cache)
    store.reset_calls()
    assert resolve_env(environ, cache=cache)["B"] == "5432"
    assert sum(store.calls.values()) == 0


def test_version_pinned_references_are_read_one_by_one(cache: SecretCache, store: InMemoryBackend,
                                                       token: str) -> None:
    old = store.put_secret("app/rotating", "old")
    store.rotate("app/rotating", "new")
    environ = {
        "PREV": "{{resolve:secretsmanager:app/rotating:SecretString::AWSPREVIOUS}}",
        "BY_ID": f"{{{{resolve:secretsmanager:app/rotating:SecretString:::{old}}}}}",
        "CUR": "{{resolve:secretsmanager:app/rotating}}",
        "TOKEN": "{{resolve:secretsmanager:app/token}}",
    }
    assert resolve_env(environ, cache=cache) == {"PREV": "old", "BY_ID": "old", "CUR": "new", "TOKEN": token}
    assert store.calls == {BATCH: 1, GET: 2}  # current values together; the pinned ones on their own


def test_a_denied_batch_call_falls_back_to_one_read_per_secret(cache: SecretCache, store: InMemoryBackend,
                                                               token: str) -> None:
    store.deny_batch = True
    environ = {"A": TOKEN_REF, "B": PORT_REF}
    assert resolve_env(environ, cache=cache) == {"A": token, "B": "5432"}
    assert store.calls == {BATCH: 1, GET: 2}


@pytest.mark.parametrize(("value", "error", "names"), [
    ("{{resolve:secretsmanager:app/missing}}", SecretNotFoundError, ["app/missing"]),
    ("{{resolve:secretsmanager:app/db:SecretString:passwd}}", SecretFormatError, ["passwd", "app/db"]),
    ("{{resolve:secretsmanager:app/text:SecretString:k}}", SecretFormatError, ["app/text", "not valid JSON"]),
    ("arn:aws:secretsmanager:us-east-1:123456789012:secret:app/db:password", InvalidReferenceError,
     ["valueFrom"]),
    ("x-{{resolve:secretsmanager:app/db:SecretBinary}}", InvalidReferenceError, ["SecretString"]),
    ("x-{{resolve:secretsmanager:app/db", InvalidReferenceError, ["unterminated"]),
])
def test_errors_name_the_variable_and_the_reference_never_a_value(
    cache: SecretCache, value: str, error: type[Exception], names: list[str]
) -> None:
    environ = {"GOOD": "{{resolve:secretsmanager:app/token}}", "BAD_VAR": value}
    with pytest.raises(error) as info:
        resolve_env(environ, cache=cache)
    text = str(info.value) + repr(info.value)
    assert "'BAD_VAR'" in text
    for name in names:
        assert name in text
    assert CANARY not in text
    assert info.value.__cause__ is None or CANARY not in str(info.value.__cause__)


def test_a_permanent_batch_failure_is_not_asked_again(cache: SecretCache, store: InMemoryBackend) -> None:
    environ = {"A": "{{resolve:secretsmanager:app/token}}", "B": "{{resolve:secretsmanager:app/missing}}"}
    with pytest.raises(SecretNotFoundError, match="'B'"):
        resolve_env(environ, cache=cache)
    assert store.calls == {BATCH: 1}


def test_a_transient_batch_failure_is_retried_per_secret(cache: SecretCache, store: InMemoryBackend,
                                                          token: str) -> None:
    store.fail_next("5xx", operation=BATCH)
    environ = {"A": TOKEN_REF, "B": PORT_REF}
    assert resolve_env(environ, cache=cache) == {"A": token, "B": "5432"}


def test_a_deleted_secret_raises_its_own_error(cache: SecretCache, store: InMemoryBackend) -> None:
    store.delete_secret("app/token")
    with pytest.raises(SecretDeletedError, match="'TOKEN'"):
        resolve_env({"TOKEN": "{{resolve:secretsmanager:app/token}}"}, cache=cache)


def test_transient_failures_with_nothing_cached_raise_unavailable(cache: SecretCache,
                                                                   store: InMemoryBackend) -> None:
    store.fail_always("throttle")
    with pytest.raises(SecretUnavailableError, match="'TOKEN'"):
        resolve_env({"TOKEN": "{{resolve:secretsmanager:app/token}}"}, cache=cache)


def test_non_string_values_and_bad_names_are_refused(cache: SecretCache) -> None:
    with pytest.raises(TypeError, match="'PORT'"):
        resolve_env({"PORT": 5432}, cache=cache)  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="invalid environment variable name"):
        resolve_env({"A=B": "x"}, cache=cache)


def test_on_failure_no_resolved_value_stays_in_our_frames(cache: SecretCache) -> None:
    environ = {"A_GOOD": TOKEN_REF, "Z_BAD": "{{resolve:secretsmanager:app/missing}}"}
    with pytest.raises(SecretNotFoundError) as info:
        resolve_env(environ, cache=cache)
    tb = info.value.__traceback__
    while tb is not None:
        if tb.tb_frame.f_globals.get("__name__", "").startswith("secretcache"):
            assert CANARY not in repr(tb.tb_frame.f_locals)
        tb = tb.tb_next


# -- inject_env / secret_env ---------------------------------------------------------------------


def test_inject_env_resolves_a_mapping_of_references_in_any_form(cache: SecretCache, environ: None,
                                                                 password: str, token: str) -> None:
    os.environ["SC_EXISTING_REF"] = "{{resolve:secretsmanager:app/db:SecretString:username}}"
    names = inject_env({"SC_PW": "app/db#password", "SC_TOKEN": "app/token"}, cache=cache)
    assert names == ["SC_EXISTING_REF", "SC_PW", "SC_TOKEN"]
    assert os.environ["SC_PW"] == password
    assert os.environ["SC_TOKEN"] == token
    assert os.environ["SC_EXISTING_REF"] == "app"  # references already in the environment too


def test_inject_env_without_override_keeps_variables_already_set(cache: SecretCache, environ: None,
                                                                 token: str) -> None:
    os.environ["SC_PW"] = "set-by-operator"
    names = inject_env({"SC_PW": "app/db#password", "SC_TOKEN": "app/token"}, override=False, cache=cache)
    assert names == ["SC_TOKEN"]
    assert os.environ["SC_PW"] == "set-by-operator"
    assert os.environ["SC_TOKEN"] == token


def test_inject_env_is_all_or_nothing(cache: SecretCache, environ: None) -> None:
    before = dict(os.environ)
    with pytest.raises(SecretNotFoundError, match="SC_MISSING"):
        inject_env({"SC_TOKEN": "app/token", "SC_MISSING": "app/missing"}, cache=cache)
    assert dict(os.environ) == before


def test_inject_env_refuses_a_malformed_mapping_reference(cache: SecretCache, environ: None) -> None:
    with pytest.raises(InvalidReferenceError, match="'SC_X'"):
        inject_env({"SC_X": "not a reference"}, cache=cache)


def test_secret_env_restores_the_environment_on_exit(cache: SecretCache, environ: None, token: str) -> None:
    os.environ["SC_OVERWRITTEN"] = "original"
    os.environ["SC_REF"] = "{{resolve:secretsmanager:app/token}}"
    os.environ.pop("SC_NEW", None)
    with secret_env({"SC_NEW": "app/token", "SC_OVERWRITTEN": "app/db#username"}, cache=cache) as names:
        assert names == ["SC_NEW", "SC_OVERWRITTEN", "SC_REF"]
        assert os.environ["SC_NEW"] == token
        assert os.environ["SC_OVERWRITTEN"] == "app"
        assert os.environ["SC_REF"] == token
        os.environ["SC_UNRELATED"] = "the block's own"
    assert "SC_NEW" not in os.environ
    assert os.environ["SC_OVERWRITTEN"] == "original"
    assert os.environ["SC_REF"] == "{{resolve:secretsmanager:app/token}}"
    assert os.environ["SC_UNRELATED"] == "the block's own"


def test_secret_env_restores_after_an_exception(cache: SecretCache, environ: None) -> None:
    with pytest.raises(RuntimeError), secret_env({"SC_NEW": "app/token"}, cache=cache):
        raise RuntimeError("boom")
    assert "SC_NEW" not in os.environ


def test_env_functions_use_the_default_cache_when_none_is_given(store: InMemoryBackend, environ: None,
                                                                token: str) -> None:
    import secretcache

    previous = secretcache.set_default_cache(SecretCache(store))
    try:
        assert resolve_env({"T": "{{resolve:secretsmanager:app/token}}"}) == {"T": token}
        with secret_env({"SC_T": "app/token"}):
            assert os.environ["SC_T"] == token
    finally:
        secretcache.set_default_cache(previous)


# -- env files ------------------------------------------------------------------------------------

CORPUS = [
    "A=1",
    "A=1\nB=2\n",
    "# comment\n\n  # indented comment\nA=1\n",
    "export A=1",
    "A = spaced   ",
    "A=value # trailing comment",
    "A=value#not-a-comment",
    "A= # only a comment",
    "A=#starts-with-hash",
    "A='single $HOME \\n \\' \\\\'",
    'A="double \\"quoted\\" \\n \\t \\\\ $HOME"',
    'A="multi\nline"',
    "A='multi\nline'",
    "A=\nB=",
    "NAME_ONLY\nA=1",
    "'QUOTED_KEY'=v",
    "A=1\r\nB=2\r\n",
    "A=x\nA=y",
    "A={{resolve:secretsmanager:app/db:SecretString:password}}",
    "A=arn:aws:secretsmanager:us-east-1:123456789012:secret:app/db:password::",
    "A=${B}",
    "A=\"x\" # c",
    "# last line is a comment",
    "",
    "not a binding",
    "A='unterminated",
    'A="unterminated',
    "A='x'y",
    "'K=v",
]


@pytest.mark.parametrize("text", CORPUS)
def test_the_built_in_parser_agrees_with_python_dotenv(text: str) -> None:
    def outcome(parse: Any) -> Any:
        try:
            return parse(text)
        except EnvFileError as e:
            return ("error", str(e))

    ours = outcome(lambda t: parse_env(t, source="f"))
    theirs = outcome(lambda t: _parse_with_dotenv(t, "f"))
    assert ours == theirs


def test_the_built_in_parser_reads_the_documented_syntax() -> None:
    text = ("# a comment\nexport USER=app\n"
            "PASSWORD='{{resolve:secretsmanager:prod/db:SecretString:password}}'\n"
            'GREETING="hello\\nworld"  # two lines\nPLAIN = value with spaces  \nEMPTY=\n')
    assert parse_env(text) == {
        "USER": "app",
        "PASSWORD": "{{resolve:secretsmanager:prod/db:SecretString:password}}",
        "GREETING": "hello\nworld",
        "PLAIN": "value with spaces",
        "EMPTY": "",
    }


def test_parse_errors_name_the_file_and_line_never_the_content() -> None:
    text = f"A=1\nthis line holds {CANARY} and is not a binding\nB=2\n"
    with pytest.raises(EnvFileError) as ours:
        parse_env(text, source="app.env")
    with pytest.raises(EnvFileError) as theirs:
        _parse_with_dotenv(text, "app.env")
    for error in (ours.value, theirs.value):
        assert str(error) == "app.env, line 2: cannot parse this line (expected NAME=value)"


def test_read_env_file_uses_dotenv_when_installed_and_the_built_in_parser_otherwise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / ".env"
    path.write_text("A='x'\nB=\"y\\n\"\n", encoding="utf-8")
    assert read_env_file(str(path)) == {"A": "x", "B": "y\n"}
    monkeypatch.setitem(sys.modules, "dotenv.parser", None)  # as if the extra were not installed
    assert _parse_with_dotenv("A=1", "f") is None
    assert read_env_file(str(path)) == {"A": "x", "B": "y\n"}


def test_read_env_file_errors_for_missing_and_undecodable_files(tmp_path: Path) -> None:
    with pytest.raises(EnvFileError, match="cannot read env file"):
        read_env_file(str(tmp_path / "missing.env"))
    bad = tmp_path / "latin1.env"
    bad.write_bytes(b"A=\xe9\n")
    with pytest.raises(EnvFileError, match="is not UTF-8"):
        read_env_file(str(bad))
