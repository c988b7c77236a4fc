"""The 4-step rotation protocol of Secrets Manager, driven exactly as AWS's rotation function templates do.

Every step first checks, with DescribeSecret, that rotation is enabled and that the token is a version of the
secret: a version already labelled AWSCURRENT means the step has nothing to do; one not labelled AWSPENDING is
an error. Each step is idempotent, because Secrets Manager may invoke it again.

- createSecret: if the token's AWSPENDING version exists, nothing; else AWSCURRENT plus a new password
  (the alternating strategies also flip the user) is put as the token's version, labelled AWSPENDING.
- setSecret: the strategy makes the database accept the pending credentials.
- testSecret: the strategy logs in with them.
- finishSecret: AWSCURRENT moves to the token's version (Secrets Manager puts AWSPREVIOUS on the old one).
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from ._strategy import DatabaseStrategy, RotationError, RotationStrategy, Secret, SecretFields, StepContext

__all__ = ["STEPS", "RotationHandler", "handler", "read_json_secret", "rotate_secret_now", "strategy_for"]

log = logging.getLogger("secretcache.rotation")

STEPS = ("createSecret", "setSecret", "testSecret", "finishSecret")
CURRENT, PENDING, PREVIOUS = "AWSCURRENT", "AWSPENDING", "AWSPREVIOUS"


def _error_code(error: BaseException) -> str | None:
    response = getattr(error, "response", None)
    if isinstance(response, Mapping):
        code = response.get("Error", {}).get("Code")
        return code if isinstance(code, str) else None
    return None


class RotationHandler:
    """Runs rotation steps for one strategy against a boto3 ``secretsmanager`` client.

    ``handler(event, context)`` is a Lambda entry point (``event``: ``SecretId``, ``ClientRequestToken``,
    ``Step``). ``check_rotation_enabled=False`` skips the "rotation is enabled" check, for driving a rotation
    in process (:meth:`rotate`), where no RotateSecret call configured rotation on the secret; moto, for one,
    only reports ``RotationEnabled`` after its own ``rotate_secret``, which cannot run a real function.
    """

    def __init__(self, client: Any, strategy: RotationStrategy, *,
                 check_rotation_enabled: bool = True) -> None:
        from ..backends import _redact

        # PutSecretValue's request body and GetSecretValue's answers would reach botocore's DEBUG logs.
        _redact.install()
        self.client = client
        self.strategy = strategy
        self.check_rotation_enabled = check_rotation_enabled

    def __repr__(self) -> str:
        return f"RotationHandler({self.strategy!r})"

    def __call__(self, event: Mapping[str, Any], context: object = None) -> None:
        try:
            secret_id, token, step = event["SecretId"], event["ClientRequestToken"], event["Step"]
        except KeyError as e:
            raise RotationError(f"rotation event lacks {e.args[0]!r}") from None
        self.run_step(step, secret_id, token)

    # -- protocol --------------------------------------------------------------------------------------

    def run_step(self, step: str, secret_id: str, token: str, *, new_version: bool = False) -> None:
        """Check the token as the templates do, then run ``step``.

        ``new_version=True`` (createSecret only) accepts a token that is not yet a version: RotateSecret
        creates that AWSPENDING placeholder before invoking the function; in process, createSecret's own
        PutSecretValue creates it.
        """
        if step not in STEPS:
            raise RotationError(f"invalid rotation step {step!r}; expected one of {list(STEPS)}")
        metadata = self.client.describe_secret(SecretId=secret_id)
        if self.check_rotation_enabled and metadata.get("RotationEnabled") is False:
            raise RotationError(f"secret {secret_id!r} is not enabled for rotation")
        versions: Mapping[str, list[str]] = metadata.get("VersionIdsToStages", {})
        arn = metadata.get("ARN", secret_id)
        if token not in versions:
            if not (new_version and step == "createSecret"):
                raise RotationError(f"version {token!r} has no stage for rotation of secret {secret_id!r}")
        elif CURRENT in versions[token]:
            log.info("%s: version %s is already AWSCURRENT for %r; nothing to do", step, token, secret_id)
            return
        elif PENDING not in versions[token]:
            raise RotationError(f"version {token!r} is not AWSPENDING for rotation of secret {secret_id!r}")
        getattr(self, _METHODS[step])(arn, token)

    def create_secret(self, arn: str, token: str) -> None:
        current = self._load(arn, stage=CURRENT)
        try:
            self.client.get_secret_value(SecretId=arn, VersionId=token, VersionStage=PENDING)
        except Exception as e:
            if _error_code(e) != "ResourceNotFoundException":
                raise
        else:
            log.info("createSecret: version %s of %r already exists; nothing to do", token, arn)
            return
        pending = self.strategy.new_pending(current, self.strategy.password_policy.generate())
        self.client.put_secret_value(SecretId=arn, ClientRequestToken=token, SecretString=json.dumps(pending),
                                     VersionStages=[PENDING])
        log.info("createSecret: put version %s of %r as AWSPENDING", token, arn)

    def set_secret(self, arn: str, token: str) -> None:
        ctx = StepContext(
            secret_id=arn,
            token=token,
            current=self._load(arn, stage=CURRENT),
            pending=self._load(arn, stage=PENDING, version_id=token),
            load_previous=lambda: self._load_optional(arn, PREVIOUS),
            load_secret=lambda other: self._load(other, stage=CURRENT, validate=False),
        )
        self.strategy.set_secret(ctx)

    def test_secret(self, arn: str, token: str) -> None:
        self.strategy.test_secret(self._load(arn, stage=PENDING, version_id=token))
        log.info("testSecret: version %s of %r logs in", token, arn)

    def finish_secret(self, arn: str, token: str) -> None:
        versions = self.client.describe_secret(SecretId=arn).get("VersionIdsToStages", {})
        current = next((v for v, stages in versions.items() if CURRENT in stages), None)
        if current == token:
            log.info("finishSecret: version %s is already AWSCURRENT for %r", token, arn)
            return
        self.client.update_secret_version_stage(SecretId=arn, VersionStage=CURRENT, MoveToVersionId=token,
                                                RemoveFromVersionId=current)
        log.info("finishSecret: moved AWSCURRENT to version %s of %r (was %s)", token, arn, current)

    # -- in process -------------------------------------------------------------------------------------

    def rotate(self, secret_id: str, *, token: str | None = None,
               after_step: Callable[[str, str], None] | None = None) -> str:
        """Run the four steps now, in this process; returns the new version id (the token).

        ``after_step(step, token)`` is called after each step: a test can hold the single-user window
        (old password dead, AWSCURRENT not moved yet) open by blocking in it after "setSecret".
        """
        token = token or str(uuid.uuid4())
        for step in STEPS:
            self.run_step(step, secret_id, token, new_version=True)
            if after_step is not None:
                after_step(step, token)
        return token

    # -- secret values ----------------------------------------------------------------------------------

    def _load(self, secret_id: str, *, stage: str, version_id: str | None = None,
              validate: bool = True) -> Secret:
        value = read_json_secret(self.client, secret_id, stage=stage, version_id=version_id)
        if validate:
            what = f"secret {secret_id!r} {stage}" + (f" version {version_id}" if version_id else "")
            self.strategy.validate(value, what)
        return value

    def _load_optional(self, secret_id: str, stage: str) -> Secret | None:
        try:
            return self._load(secret_id, stage=stage)
        except Exception as e:
            if _error_code(e) == "ResourceNotFoundException" or isinstance(e, RotationError):
                return None
            raise


def read_json_secret(client: Any, secret_id: str, *, stage: str, version_id: str | None = None) -> Secret:
    """A version of a secret as a JSON object; RotationError (never showing the text) when it is not one."""
    kwargs: dict[str, str] = {"SecretId": secret_id, "VersionStage": stage}
    if version_id is not None:
        kwargs["VersionId"] = version_id
    response = client.get_secret_value(**kwargs)
    text = response.get("SecretString") or ""
    del response  # from here on no local holds the secret bare: a traceback's frame locals stay clean
    try:
        value = json.loads(text)
    except ValueError:
        value = None  # never chain the decode error: its .doc is the secret text
    del text
    if not isinstance(value, dict):
        del value
        what = f"secret {secret_id!r} {stage}" + (f" version {version_id}" if version_id else "")
        raise RotationError(f"{what} is not a JSON object")
    return SecretFields(value)


_METHODS = {"createSecret": "create_secret", "setSecret": "set_secret", "testSecret": "test_secret",
            "finishSecret": "finish_secret"}


def rotate_secret_now(client: Any, secret_id: str, strategy: RotationStrategy, *, token: str | None = None,
                      after_step: Callable[[str, str], None] | None = None) -> str:
    """Rotate ``secret_id`` now, in process (all four steps); returns the new version id.

    Skips the "rotation enabled" check (see :class:`RotationHandler`); everything else is what the Lambda
    function does. ``after_step(step, token)`` runs after each step.
    """
    return RotationHandler(client, strategy, check_rotation_enabled=False).rotate(
        secret_id, token=token, after_step=after_step)


def strategy_for(secret: Mapping[str, Any], scheme: str | None = None) -> RotationStrategy:
    """The strategy for an RDS-shaped secret: the engine picks PostgreSQL or MySQL; ``scheme`` ("single" or
    "alternating", default: env ``SECRETCACHE_ROTATION_STRATEGY``, else alternating when the secret has a
    ``masterarn``) picks the scheme. The password policy comes from the templates' environment variables."""
    from .mysql import MySQLAlternatingUsers, MySQLSingleUser, _MySQL
    from .passwords import PasswordPolicy
    from .postgres import PostgresAlternatingUsers, PostgresSingleUser, _Postgres

    scheme = scheme or os.environ.get("SECRETCACHE_ROTATION_STRATEGY") or (
        "alternating" if secret.get("masterarn") else "single")
    if scheme not in ("single", "alternating"):
        raise RotationError(f"unknown rotation scheme {scheme!r}; expected 'single' or 'alternating'")
    engine = secret.get("engine")
    classes: tuple[type[DatabaseStrategy], type[DatabaseStrategy]]
    if engine in _Postgres.engines:
        classes, exclude = (PostgresSingleUser, PostgresAlternatingUsers), _Postgres.default_exclude
    elif engine in _MySQL.engines:
        classes, exclude = (MySQLSingleUser, MySQLAlternatingUsers), _MySQL.default_exclude
    else:
        raise RotationError(f"no rotation strategy for engine {engine!r}")
    cls = classes[scheme == "alternating"]
    return cls(password_policy=PasswordPolicy.from_env(exclude_characters=exclude))


_client: Any = None


def handler(event: Mapping[str, Any], context: object = None) -> None:
    """Lambda entry point: rotate ``event["SecretId"]`` with the strategy :func:`strategy_for` picks.

    The boto3 client honours ``SECRETS_MANAGER_ENDPOINT`` (as the templates) and is kept across warm
    invocations.
    """
    global _client
    secret_id = event.get("SecretId")
    if _client is None:
        from ..backends.aws_clients import aws_client, region_of_arn

        # Built like every AWS client of the package (Region: the chain, AWS_REGION, the ARN's own).
        endpoint = os.environ.get("SECRETS_MANAGER_ENDPOINT") or None
        _client = aws_client("secretsmanager", endpoint_url=endpoint, what="rotating a secret",
                             resource_region=region_of_arn(secret_id) if isinstance(secret_id, str) else None)
    if not isinstance(secret_id, str):
        raise RotationError("rotation event lacks 'SecretId'")
    current = read_json_secret(_client, secret_id, stage=CURRENT)
    RotationHandler(_client, strategy_for(current))(event, context)

