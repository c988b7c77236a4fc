"""The backends the benchmarks drive: a botocore-shaped fake ``secretsmanager`` client, and moto.

Every library under test (secretcache through ``SecretCache(client=...)``, the official
``aws-secretsmanager-caching`` and Powertools ``parameters``) gets its own client over one shared
store, so they read the same secrets while each client counts its own API calls per operation.

The fake answers the way botocore does: each call parses a JSON body into fresh objects (so a cache
that keeps a response keeps its own copy, as with a real client), ``CreatedDate`` is a tz-aware
datetime and ``ResponseMetadata`` carries HTTP headers. Latency is slept (releasing the GIL like
real I/O); an outage makes every call fail after ``failure_latency`` with a ``ClientError``
(ThrottlingException, InternalServiceError) or an ``EndpointConnectionError``.

``MotoStore`` offers the same surface over moto's in-process backend (``moto.mock_aws``) with real
boto3 clients; latency and counting go through a botocore ``before-call`` hook.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
import uuid
from collections import Counter
from datetime import datetime, timezone
from types import SimpleNamespace
from typing import Any

from botocore.exceptions import ClientError, EndpointConnectionError

REGION = "us-east-1"
ACCOUNT = "123456789012"
OUTAGE_KINDS = ("throttle", "internal", "connection")


class CallCounts:
    """API calls per operation name, safe to bump from many threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def add(self, operation: str) -> None:
        with self._lock:
            self._counts[operation] += 1

    def total(self) -> int:
        with self._lock:
            return sum(self._counts.values())

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


class _Version:
    __slots__ = ("created", "stages", "value", "version_id")

    def __init__(self, version_id: str, value: str, stages: list[str]) -> None:
        self.version_id = version_id
        self.value = value
        self.stages = stages
        self.created = time.time()


class _Secret:
    def __init__(self, name: str) -> None:
        self.name = name
        suffix = uuid.uuid5(uuid.NAMESPACE_URL, name).hex[:6]
        self.arn = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{name}-{suffix}"
        self.versions: dict[str, _Version] = {}
        self.created = time.time()

    def with_stage(self, stage: str) -> _Version | None:
        return next((v for v in self.versions.values() if stage in v.stages), None)


_rotations = itertools.count(1)


def rotated(value: str) -> str:
    """A new value for a rotation: a JSON object gets a new ``password``, anything else a suffix."""
    n = next(_rotations)
    try:
        obj = json.loads(value)
    except ValueError:
        obj = None
    if isinstance(obj, dict):
        obj["password"] = f"rotated-{n}-{uuid.uuid4().hex}"
        return json.dumps(obj)
    return f"{value}~rotated-{n}"


def _client_error(code: str, message: str, operation: str, status: int) -> ClientError:
    response: Any = {"Error": {"Code": code, "Message": message},
                     "ResponseMetadata": {"HTTPStatusCode": status}}
    return ClientError(response, operation)


class FakeStore:
    """The service side: secrets with versions and staging labels, latency, and outages."""

    def __init__(self, *, latency: float = 0.0, failure_latency: float = 0.005) -> None:
        self.latency = latency
        self.failure_latency = failure_latency
        self.outage: str | None = None
        self._lock = threading.Lock()
        self._secrets: dict[str, _Secret] = {}
        self._by_id: dict[str, _Secret] = {}
        self._counter = itertools.count(1)

    # -- the test-facing API ------------------------------------------------------------------

    def new_client(self) -> tuple[FakeSecretsManager, CallCounts]:
        """A client of its own (own call counts) over this store."""
        client = FakeSecretsManager(self)
        return client, client.calls

    def put_secret(self, name: str, value: str) -> str:
        """Create the secret or add a version; the new version becomes AWSCURRENT. Returns its VersionId."""
        with self._lock:
            secret = self._secrets.get(name)
            if secret is None:
                secret = self._secrets[name] = _Secret(name)
                for key in (name, secret.arn, secret.arn[:-7]):
                    self._by_id[key] = secret
            version_id = str(uuid.UUID(int=next(self._counter)))
            current = secret.with_stage("AWSCURRENT")
            if current is not None:
                for old in secret.versions.values():
                    if "AWSPREVIOUS" in old.stages:
                        old.stages = [s for s in old.stages if s != "AWSPREVIOUS"]
                current.stages = [s for s in current.stages if s != "AWSCURRENT"] + ["AWSPREVIOUS"]
            secret.versions[version_id] = _Version(version_id, value, ["AWSCURRENT"])
            secret.versions = {k: v for k, v in secret.versions.items() if v.stages}
            return version_id

    def rotate(self, name: str, value: str | None = None) -> str:
        """Put a new AWSCURRENT version (the old one becomes AWSPREVIOUS), as finishSecret leaves it."""
        return self.put_secret(name, value if value is not None else rotated(self.current_value(name)))

    def current_value(self, name: str) -> str:
        with self._lock:
            version = self._secrets[name].with_stage("AWSCURRENT")
            assert version is not None
            return version.value

    def set_outage(self, kind: str | None) -> None:
        """Make every API call fail (``throttle``, ``internal``, ``connection``), or recover (None)."""
        if kind is not None and kind not in OUTAGE_KINDS:
            raise ValueError(f"outage kind must be one of {OUTAGE_KINDS}, got {kind!r}")
        self.outage = kind

    # -- the service ----------------------------------------------------------------------------

    def call(self, operation: str) -> None:
        """Apply the injected latency or failure of one API call."""
        kind = self.outage
        if kind is not None:
            time.sleep(self.failure_latency)
            if kind == "connection":
                raise EndpointConnectionError(endpoint_url=f"https://secretsmanager.{REGION}.amazonaws.com")
            if kind == "internal":
                raise _client_error("InternalServiceError", "An error occurred (500)", operation, 500)
            raise _client_error("ThrottlingException", "Rate exceeded", operation, 400)
        if self.latency:
            time.sleep(self.latency)

    def find(self, secret_id: str, operation: str) -> _Secret:
        with self._lock:
            secret = self._by_id.get(secret_id)
        if secret is None:
            raise _client_error(
                "ResourceNotFoundException", "Secrets Manager can't find the specified secret.",
                operation, 400,
            )
        return secret

    def version(self, secret: _Secret, version_id: str | None, stage: str | None, operation: str) -> _Version:
        with self._lock:
            if version_id is not None:
                version = secret.versions.get(version_id)
                if version is not None and stage is not None and stage not in version.stages:
                    raise _client_error(
                        "InvalidRequestException",
                        "You provided a VersionStage that is not associated to the provided VersionId.",
                        operation, 400,
                    )
            else:
                version = secret.with_stage(stage or "AWSCURRENT")
            if version is None:
                raise _client_error(
                    "ResourceNotFoundException",
                    f"Secrets Manager can't find the specified secret value for "
                    f"{'VersionId' if version_id else 'staging label'}: "
                    f"{version_id or stage or 'AWSCURRENT'}",
                    operation, 400,
                )
            # Serialised under the lock so labels and value belong to one moment, as AWS answers.
            return _Version(version.version_id, version.value, list(version.stages))


def _metadata(body: str) -> dict[str, Any]:
    request_id = str(uuid.uuid4())
    return {
        "RequestId": request_id,
        "HTTPStatusCode": 200,
        "HTTPHeaders": {
            "x-amzn-requestid": request_id,
            "content-type": "application/x-amz-json-1.1",
            "content-length": str(len(body)),
            "date": time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime()),
        },
        "RetryAttempts": 0,
    }


def _parse(body: str, *date_fields: str) -> dict[str, Any]:
    """What botocore's JSON parser does: fresh objects per call, epoch seconds to tz-aware datetimes."""
    response: dict[str, Any] = json.loads(body)
    for field in date_fields:
        if field in response:
            response[field] = datetime.fromtimestamp(response[field], timezone.utc)
    response["ResponseMetadata"] = _metadata(body)
    return response


class FakeSecretsManager:
    """A botocore-shaped ``secretsmanager`` client over a :class:`FakeStore` (keyword arguments only)."""

    def __init__(self, store: FakeStore) -> None:
        self.store = store
        self.calls = CallCounts()
        # Powertools registers a user-agent handler on the client's event system; keep it happy.
        self.meta = SimpleNamespace(
            region_name=REGION,
            endpoint_url=f"https://secretsmanager.{REGION}.amazonaws.com",
            events=SimpleNamespace(register=lambda *args, **kwargs: None),
        )

    def _enter(self, operation: str) -> None:
        self.calls.add(operation)
        self.store.call(operation)

    def get_secret_value(
        self, *, SecretId: str, VersionId: str | None = None, VersionStage: str | None = None
    ) -> dict[str, Any]:
        self._enter("GetSecretValue")
        secret = self.store.find(SecretId, "GetSecretValue")
        version = self.store.version(secret, VersionId, VersionStage, "GetSecretValue")
        return _parse(json.dumps(_value_entry(secret, version)), "CreatedDate")

    def describe_secret(self, *, SecretId: str) -> dict[str, Any]:
        self._enter("DescribeSecret")
        secret = self.store.find(SecretId, "DescribeSecret")
        with self.store._lock:
            stages = {v.version_id: list(v.stages) for v in secret.versions.values()}
        body = json.dumps({
            "ARN": secret.arn, "Name": secret.name, "RotationEnabled": False,
            "LastChangedDate": secret.created, "LastAccessedDate": secret.created,
            "VersionIdsToStages": stages, "CreatedDate": secret.created,
        })
        return _parse(body, "LastChangedDate", "LastAccessedDate", "CreatedDate")

    def list_secret_version_ids(self, *, SecretId: str, **_: Any) -> dict[str, Any]:
        self._enter("ListSecretVersionIds")
        secret = self.store.find(SecretId, "ListSecretVersionIds")
        with self.store._lock:
            versions = [
                {"VersionId": v.version_id, "VersionStages": list(v.stages), "CreatedDate": v.created}
                for v in secret.versions.values()
            ]
        response = _parse(json.dumps({"ARN": secret.arn, "Name": secret.name, "Versions": versions}))
        for entry in response["Versions"]:
            entry["CreatedDate"] = datetime.fromtimestamp(entry["CreatedDate"], timezone.utc)
        return response

    page_size = 20
    """Values per BatchGetSecretValue page (AWS: up to 20); lower it to exercise NextToken loops."""

    def batch_get_secret_value(
        self, *, SecretIdList: list[str] | None = None, Filters: Any = None,
        MaxResults: int | None = None, NextToken: str | None = None,
    ) -> dict[str, Any]:
        self._enter("BatchGetSecretValue")
        if not SecretIdList or Filters is not None:
            raise _client_error("InvalidParameterException", "The bench fake takes SecretIdList only.",
                                "BatchGetSecretValue", 400)
        if len(SecretIdList) > 20:
            raise _client_error("InvalidParameterException", "SecretIdList takes at most 20 ids.",
                                "BatchGetSecretValue", 400)
        start = int(NextToken or 0)
        page = SecretIdList[start:start + (MaxResults or self.page_size)]
        values: list[dict[str, Any]] = []
        errors: list[dict[str, str]] = []
        for secret_id in page:
            try:
                secret = self.store.find(secret_id, "BatchGetSecretValue")
                version = self.store.version(secret, None, None, "BatchGetSecretValue")
                values.append(_value_entry(secret, version))
            except ClientError as e:
                errors.append({"SecretId": secret_id, "ErrorCode": e.response["Error"]["Code"],
                               "Message": e.response["Error"]["Message"]})
        result: dict[str, Any] = {"SecretValues": values, "Errors": errors}
        if start + len(page) < len(SecretIdList):
            result["NextToken"] = str(start + len(page))
        response = _parse(json.dumps(result))
        for entry in response["SecretValues"]:
            entry["CreatedDate"] = datetime.fromtimestamp(entry["CreatedDate"], timezone.utc)
        return response


def _value_entry(secret: _Secret, version: _Version) -> dict[str, Any]:
    return {
        "ARN": secret.arn, "Name": secret.name, "VersionId": version.version_id,
        "SecretString": version.value, "VersionStages": version.stages, "CreatedDate": version.created,
    }


class MotoStore:
    """The same surface as :class:`FakeStore` over moto in process (``mock_aws``) with real boto3 clients.

    Latency is slept and calls are counted in a botocore ``before-call`` hook on each client, so the
    cost of building, signing and parsing real requests stays in the measurement. Call ``close()``.
    """

    def __init__(self, *, latency: float = 0.0) -> None:
        import os

        import boto3
        import moto

        # Never real AWS: fake credentials, and every request is intercepted by moto.
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL",
                     "AWS_ENDPOINT_URL_SECRETS_MANAGER"):
            os.environ.pop(name, None)
        os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                          AWS_DEFAULT_REGION=REGION, AWS_EC2_METADATA_DISABLED="true")
        self.latency = latency
        self._mock = moto.mock_aws()
        self._mock.start()
        self._session = boto3.session.Session(region_name=REGION)
        self._admin = self._session.client("secretsmanager")

    def new_client(self) -> tuple[Any, CallCounts]:
        client = self._session.client("secretsmanager")
        counts = CallCounts()

        def before_call(model: Any, **_: Any) -> None:
            counts.add(model.name)
            if self.latency:
                time.sleep(self.latency)

        client.meta.events.register("before-call.secretsmanager", before_call)
        return client, counts

    def put_secret(self, name: str, value: str) -> str:
        try:
            return str(self._admin.put_secret_value(SecretId=name, SecretString=value)["VersionId"])
        except self._admin.exceptions.ResourceNotFoundException:
            return str(self._admin.create_secret(Name=name, SecretString=value)["VersionId"])

    def rotate(self, name: str, value: str | None = None) -> str:
        # A plain PutSecretValue moves AWSCURRENT in moto too (unlike UpdateSecretVersionStage: moto G1).
        return self.put_secret(name, value if value is not None else rotated(self.current_value(name)))

    def current_value(self, name: str) -> str:
        return str(self._admin.get_secret_value(SecretId=name)["SecretString"])

    def close(self) -> None:
        self._mock.stop()
