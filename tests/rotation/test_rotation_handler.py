"""The 4-step protocol against moto (in process), with a recording in-memory "database" as the strategy.

moto's G1 gap (plain GetSecretValue stuck on the old version after UpdateSecretVersionStage) is fixed by the
``_moto_g1_patch`` autouse fixture in tests/conftest.py.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from secretcache.rotation import (
    STEPS,
    MySQLAlternatingUsers,
    MySQLSingleUser,
    PasswordPolicy,
    PostgresAlternatingUsers,
    PostgresSingleUser,
    RotationError,
    RotationHandler,
    RotationStrategy,
    SecretFields,
    StepContext,
    protocol,
    read_json_secret,
    rotate_secret_now,
    strategy_for,
)
from tests.fixtures.fix_canary import canary_value


class FakeDatabase(RotationStrategy):
    """A strategy whose database is a dict of user -> password; it records what each step did."""

    def __init__(self) -> None:
        self.password_policy = PasswordPolicy(length=24)
        self.passwords: dict[str, str] = {}
        self.sets: list[str] = []
        self.tests: list[str] = []

    def new_pending(self, current: dict[str, Any], password: str) -> dict[str, Any]:
        return {**current, "password": password}

    def set_secret(self, ctx: StepContext) -> None:
        user, password = ctx.pending["username"], ctx.pending["password"]
        if self.passwords.get(user) == password:
            return
        self.passwords[user] = password
        self.sets.append(ctx.token)

    def test_secret(self, pending: dict[str, Any]) -> None:
        if self.passwords.get(pending["username"]) != pending["password"]:
            raise RotationError("refused")
        self.tests.append(pending["username"])


@pytest.fixture
def sm() -> Iterator[Any]:
    import boto3
    import moto

    with moto.mock_aws():
        yield boto3.client("secretsmanager", region_name="us-east-1")


@pytest.fixture
def db() -> FakeDatabase:
    return FakeDatabase()


@pytest.fixture
def secret(sm: Any, db: FakeDatabase) -> str:
    password = canary_value("initial")
    db.passwords["app"] = password
    sm.create_secret(Name="app/db", SecretString=json.dumps(
        {"engine": "postgres", "host": "127.0.0.1", "port": 5432, "username": "app", "password": password,
         "dbname": "app", "extra": "kept"}))
    return "app/db"


def stages(sm: Any, secret_id: str) -> dict[str, set[str]]:
    versions = sm.describe_secret(SecretId=secret_id)["VersionIdsToStages"]
    return {v: set(s) for v, s in versions.items() if s}  # moto keeps label-less versions (G7)


def value(sm: Any, secret_id: str, **kwargs: str) -> dict[str, Any]:
    return json.loads(sm.get_secret_value(SecretId=secret_id, **kwargs)["SecretString"])


def count_calls(sm: Any, op: str) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []
    sm.meta.events.register(f"before-call.secrets-manager.{op}",
                            lambda params, **_: calls.append(params), unique_id=f"count-{op}")
    return calls


def placeholder(sm: Any, secret_id: str, token: str) -> None:
    """What RotateSecret does before invoking the function: enable rotation and add an empty AWSPENDING
    version for the token (moto does it, then fails on the missing Lambda, as we want)."""
    with pytest.raises(sm.exceptions.ResourceNotFoundException):
        sm.rotate_secret(SecretId=secret_id, ClientRequestToken=token,
                         RotationLambdaARN="arn:aws:lambda:us-east-1:123456789012:function:none",
                         RotationRules={"AutomaticallyAfterDays": 30})


def test_rotate_secret_now_moves_the_labels_as_aws_does(sm: Any, secret: str, db: FakeDatabase) -> None:
    before = sm.get_secret_value(SecretId=secret)["VersionId"]
    token = rotate_secret_now(sm, secret, db)
    assert stages(sm, secret) == {before: {"AWSPREVIOUS"}, token: {"AWSCURRENT", "AWSPENDING"}}
    current = value(sm, secret)
    assert sm.get_secret_value(SecretId=secret)["VersionId"] == token
    assert current["password"] == db.passwords["app"]
    assert current["extra"] == "kept"
    assert db.sets == [token]
    assert db.tests == ["app"]


def test_successive_rotations_each_move_current_and_previous(sm: Any, secret: str, db: FakeDatabase) -> None:
    tokens = [rotate_secret_now(sm, secret, db) for _ in range(3)]
    assert stages(sm, secret) == {tokens[1]: {"AWSPREVIOUS"}, tokens[2]: {"AWSCURRENT", "AWSPENDING"}}
    assert len({value(sm, secret, VersionId=t)["password"] for t in tokens}) == 3


def test_each_step_is_idempotent_when_invoked_again(sm: Any, secret: str, db: FakeDatabase) -> None:
    puts = count_calls(sm, "PutSecretValue")
    moves = count_calls(sm, "UpdateSecretVersionStage")
    handler = RotationHandler(sm, db)
    token = "a" * 32 + "-idempotent"
    placeholder(sm, secret, token)
    for step in STEPS[:3]:
        handler({"SecretId": secret, "ClientRequestToken": token, "Step": step})
        snapshot = (stages(sm, secret), value(sm, secret, VersionId=token, VersionStage="AWSPENDING"))
        handler({"SecretId": secret, "ClientRequestToken": token, "Step": step})
        assert (stages(sm, secret), value(sm, secret, VersionId=token, VersionStage="AWSPENDING")) == snapshot
    assert len(puts) == 1
    assert db.sets == [token]
    assert db.tests == ["app", "app"]
    handler({"SecretId": secret, "ClientRequestToken": token, "Step": "finishSecret"})
    after = stages(sm, secret)
    for step in STEPS:  # the token is AWSCURRENT now: every step returns without doing anything
        handler({"SecretId": secret, "ClientRequestToken": token, "Step": step})
    assert stages(sm, secret) == after
    assert (len(puts), len(moves), db.sets) == (1, 1, [token])


def test_lambda_invocations_after_rotate_secret_complete_a_rotation(sm: Any, secret: str,
                                                                   db: FakeDatabase) -> None:
    token = "b" * 32 + "-lambda"
    placeholder(sm, secret, token)
    assert sm.describe_secret(SecretId=secret)["RotationEnabled"] is True
    for step in STEPS:
        RotationHandler(sm, db)({"SecretId": secret, "ClientRequestToken": token, "Step": step}, None)
    assert "AWSCURRENT" in stages(sm, secret)[token]
    assert value(sm, secret)["password"] == db.passwords["app"]


def test_a_token_that_is_not_a_version_is_refused(sm: Any, secret: str, db: FakeDatabase) -> None:
    handler = RotationHandler(sm, db)
    for step in STEPS:
        with pytest.raises(RotationError, match="has no stage for rotation"):
            handler({"SecretId": secret, "ClientRequestToken": "no-such-version-0123456789", "Step": step})
    assert db.sets == []


def test_a_version_not_labelled_awspending_is_refused(sm: Any, secret: str, db: FakeDatabase) -> None:
    first = sm.get_secret_value(SecretId=secret)["VersionId"]
    rotate_secret_now(sm, secret, db)  # `first` is AWSPREVIOUS now
    handler = RotationHandler(sm, db)
    for step in STEPS:
        with pytest.raises(RotationError, match="is not AWSPENDING"):
            handler({"SecretId": secret, "ClientRequestToken": first, "Step": step})


def test_an_unknown_step_or_incomplete_event_is_refused(sm: Any, secret: str, db: FakeDatabase) -> None:
    handler = RotationHandler(sm, db)
    with pytest.raises(RotationError, match="invalid rotation step"):
        handler({"SecretId": secret, "ClientRequestToken": "x" * 32, "Step": "dropTables"})
    with pytest.raises(RotationError, match="lacks 'Step'"):
        handler({"SecretId": secret, "ClientRequestToken": "x" * 32})


def test_rotation_disabled_secret_is_refused_by_the_lambda_path(sm: Any, secret: str,
                                                                 db: FakeDatabase) -> None:
    token = "c" * 32 + "-disabled"
    placeholder(sm, secret, token)
    sm.cancel_rotate_secret(SecretId=secret)
    assert sm.describe_secret(SecretId=secret)["RotationEnabled"] is False
    with pytest.raises(RotationError, match="not enabled for rotation"):
        RotationHandler(sm, db)({"SecretId": secret, "ClientRequestToken": token, "Step": "createSecret"})
    rotate_secret_now(sm, secret, db)  # in process, rotation needs no RotateSecret configuration


def test_create_secret_uses_the_strategy_password_policy(sm: Any, secret: str, db: FakeDatabase) -> None:
    db.password_policy = PasswordPolicy(length=40, exclude_punctuation=True, exclude_characters="aeiou")
    token = rotate_secret_now(sm, secret, db)
    password = value(sm, secret, VersionId=token)["password"]
    assert len(password) == 40
    assert password.isalnum()
    assert not set(password) & set("aeiou")


def test_after_step_sees_each_step_in_order(sm: Any, secret: str, db: FakeDatabase) -> None:
    seen: list[tuple[str, str, set[str]]] = []

    def after_step(step: str, token: str) -> None:
        seen.append((step, token, stages(sm, secret).get(token, set())))

    token = rotate_secret_now(sm, secret, db, after_step=after_step)
    assert [s for s, _, _ in seen] == list(STEPS)
    assert {t for _, t, _ in seen} == {token}
    # Through setSecret and testSecret the new version is only AWSPENDING: the single-user window.
    assert [labels for _, _, labels in seen] == [{"AWSPENDING"}] * 3 + [{"AWSPENDING", "AWSCURRENT"}]


def test_a_failing_test_step_leaves_current_where_it_was(sm: Any, secret: str, db: FakeDatabase) -> None:
    before = sm.get_secret_value(SecretId=secret)["VersionId"]

    def break_db(step: str, token: str) -> None:
        if step == "setSecret":
            db.passwords["app"] = "changed behind our back"

    with pytest.raises(RotationError, match="refused"):
        rotate_secret_now(sm, secret, db, after_step=break_db)
    assert sm.get_secret_value(SecretId=secret)["VersionId"] == before


def test_non_json_secret_is_refused_without_showing_it(sm: Any, db: FakeDatabase) -> None:
    text = canary_value("not-json")
    sm.create_secret(Name="app/raw", SecretString=text)
    with pytest.raises(RotationError, match="not a JSON object") as info:
        rotate_secret_now(sm, "app/raw", db)
    assert text not in str(info.value)
    assert info.value.__cause__ is None
    assert info.value.__context__ is None


def test_secret_fields_and_step_contexts_show_keys_never_values(sm: Any, secret: str) -> None:
    """What a traceback's frame locals (pytest --showlocals, Sentry) render for a rotation step."""
    current = read_json_secret(sm, secret, stage="AWSCURRENT")
    password = canary_value("new")
    pending = PostgresSingleUser().new_pending(current, password)
    assert isinstance(current, SecretFields)
    assert isinstance(pending, SecretFields)
    assert repr(current) == "<secret fields ['dbname', 'engine', 'extra', 'host', 'password', 'port', 'username']>"
    assert pending["password"] == password
    assert pending["extra"] == "kept"
    ctx = StepContext(secret, "t", current, pending, lambda: None, lambda _: current)
    for shown in (repr(current), str(pending), repr(ctx), f"{[current, pending]}"):
        assert "sc-canary" not in shown


def test_rotation_logs_never_contain_passwords(sm: Any, secret: str, db: FakeDatabase,
                                               caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="secretcache")
    tokens = [rotate_secret_now(sm, secret, db) for _ in range(2)]
    assert "finishSecret" in caplog.text
    for token in tokens:
        assert value(sm, secret, VersionId=token)["password"] not in caplog.text
    assert "sc-canary" not in caplog.text


@pytest.mark.parametrize(
    ("secret", "scheme", "expected"),
    [
        ({"engine": "postgres"}, None, PostgresSingleUser),
        ({"engine": "aurora-postgresql", "masterarn": "arn:m"}, None, PostgresAlternatingUsers),
        ({"engine": "mariadb"}, None, MySQLSingleUser),
        ({"engine": "mysql", "masterarn": "arn:m"}, None, MySQLAlternatingUsers),
        ({"engine": "mysql", "masterarn": "arn:m"}, "single", MySQLSingleUser),
        ({"engine": "postgres"}, "alternating", PostgresAlternatingUsers),
    ],
)
def test_strategy_for_picks_engine_and_scheme(secret: dict[str, Any], scheme: str | None,
                                              expected: type) -> None:
    assert type(strategy_for(secret, scheme)) is expected


def test_strategy_for_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECRETCACHE_ROTATION_STRATEGY", "alternating")
    monkeypatch.setenv("PASSWORD_LENGTH", "20")
    strategy = strategy_for({"engine": "postgres"})
    assert isinstance(strategy, PostgresAlternatingUsers)
    assert strategy.password_policy.length == 20
    assert ":" in strategy.password_policy.exclude_characters  # PostgreSQL's default exclusions
    with pytest.raises(RotationError, match="no rotation strategy for engine 'oracle'"):
        strategy_for({"engine": "oracle"})
    with pytest.raises(RotationError, match="unknown rotation scheme"):
        strategy_for({"engine": "postgres"}, "triple")


def test_lambda_entry_point_validates_the_secret_before_touching_a_database(
    sm: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(protocol, "_client", sm)
    sm.create_secret(Name="app/bad", SecretString=json.dumps({"engine": "postgres", "username": "u"}))
    token = "d" * 32 + "-bad"
    placeholder(sm, "app/bad", token)
    with pytest.raises(RotationError, match=r"missing or empty field\(s\) \['host', 'password'\]"):
        protocol.handler({"SecretId": "app/bad", "ClientRequestToken": token, "Step": "createSecret"}, None)


def test_importing_rotation_loads_neither_boto3_nor_a_driver() -> None:
    import subprocess
    import sys

    heavy = "('boto3', 'botocore', 'psycopg', 'pymysql', 'sqlalchemy')"
    code = f"import sys, secretcache.rotation; print([m for m in {heavy} if m in sys.modules])"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            timeout=60)
    assert result.stdout.strip() == "[]"
