"""The backends the benchmarks drive: a botocore-shaped ``secretsmanager`` client over
``secretcache.testing.InMemoryBackend``, and moto.

Every library under test (secretcache through ``SecretCache(client=...)``, the official
``aws-secretsmanager-caching`` and Powertools ``parameters``) gets its own client over one shared
store, so they read the same secrets while each client counts its own API calls per operation.

The store is the test suite's ``InMemoryBackend`` (versions, labels, latency, faults); the client only
translates, the way botocore answers: each call builds fresh response objects (so a cache that keeps
a response keeps its own copy, as with a real client), ``CreatedDate`` is a tz-aware datetime and
``ResponseMetadata`` carries HTTP headers; the store's typed errors become ``ClientError`` (or
``EndpointConnectionError`` / ``ReadTimeoutError`` for the ``conn`` / ``timeout`` faults). An outage
makes every call fail after ``failure_latency`` with one of ``secretcache.testing.FAULT_NAMES``.

``MotoStore`` offers the same surface over moto's in-process backend (``moto.mock_aws``) with real
boto3 clients; latency and counting go through a botocore ``before-call`` hook.
"""

from __future__ import annotations

import base64
import itertools
import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timezone
from types import SimpleNamespace
from typing import Any, TypeVar

from botocore.exceptions import ClientError, EndpointConnectionError, ParamValidationError, ReadTimeoutError

from secretcache.errors import SecretCacheError, SecretThrottledError, SecretUnavailableError
from secretcache.model import SecretValue
from secretcache.testing import FAULT_NAMES, InMemoryBackend

REGION = "us-east-1"
ACCOUNT = "123456789012"
OUTAGE_KINDS = FAULT_NAMES
T = TypeVar("T")


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


class FakeStore:
    """The service side: an :class:`InMemoryBackend` with the bench's outage switch and client factory."""

    def __init__(self, *, latency: float = 0.0, failure_latency: float = 0.005) -> None:
        # No call log: the benchmarks measure the memory a process holds, and count calls per client.
        self.backend = InMemoryBackend(region=REGION, account_id=ACCOUNT, latency=latency,
                                       failure_latency=failure_latency, call_log_size=0)

    @property
    def latency(self) -> float:
        return self.backend.latency

    @latency.setter
    def latency(self, seconds: float) -> None:
        self.backend.latency = seconds

    def new_client(self) -> tuple[FakeSecretsManager, CallCounts]:
        """A client of its own (own call counts) over this store."""
        client = FakeSecretsManager(self.backend)
        return client, client.calls

    def put_secret(self, name: str, value: str) -> str:
        """Create the secret or add a version; the new version becomes AWSCURRENT. Returns its VersionId."""
        return self.backend.put_secret(name, value)

    def rotate(self, name: str, value: str | None = None) -> str:
        """Put a new AWSCURRENT version (the old one becomes AWSPREVIOUS), as finishSecret leaves it."""
        return self.put_secret(name, value if value is not None else rotated(self.current_value(name)))

    def current_value(self, name: str) -> str:
        return str(self.backend.get_secret_value(name).secret_string)

    def set_outage(self, kind: str | None) -> None:
        """Make every API call fail with a fault from ``FAULT_NAMES``, or recover (None)."""
        if kind is not None and kind not in OUTAGE_KINDS:
            raise ValueError(f"outage kind must be one of {OUTAGE_KINDS}, got {kind!r}")
        self.backend.heal()
        if kind is not None:
            self.backend.fail_always(kind)


def _metadata(body_size: int) -> dict[str, Any]:
    request_id = str(uuid.uuid4())
    return {
        "RequestId": request_id,
        "HTTPStatusCode": 200,
        "HTTPHeaders": {
            "x-amzn-requestid": request_id,
            "content-type": "application/x-amz-json-1.1",
            "content-length": str(body_size),
            "date": time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime()),
        },
        "RetryAttempts": 0,
    }


def _aws_message(error: SecretCacheError) -> str:
    """The service's own message: the store's error text without the ids ``error_for_code`` appends."""
    where = [f"secret {error.secret_id!r}"] if error.secret_id is not None else []
    if error.code:
        where.append(f"code {error.code}")
    return str(error).removesuffix(f" ({', '.join(where)})") if where else str(error)


def _client_error(error: SecretCacheError, operation: str) -> Exception:
    """What botocore raises where the store raised ``error``."""
    cause = error.__cause__
    if error.code is None and isinstance(error, SecretUnavailableError) and isinstance(cause, OSError):
        url = f"https://secretsmanager.{REGION}.amazonaws.com"
        if isinstance(cause, TimeoutError):
            return ReadTimeoutError(endpoint_url=url)
        return EndpointConnectionError(endpoint_url=url)
    if error.code is None and type(error) is SecretCacheError:
        return ParamValidationError(report=_aws_message(error))  # botocore refuses it before sending
    transient = isinstance(error, SecretUnavailableError) and not isinstance(error, SecretThrottledError)
    response: Any = {"Error": {"Code": error.code or "", "Message": _aws_message(error)},
                     "ResponseMetadata": {"HTTPStatusCode": 500 if transient else 400}}
    return ClientError(response, operation)


def _body(value: SecretValue) -> dict[str, Any]:
    """One value as the service sends it: JSON-ready (epoch seconds, base64 binary)."""
    created = value.created_date
    entry: dict[str, Any] = {"ARN": value.arn, "Name": value.name, "VersionId": value.version_id,
                             "VersionStages": list(value.version_stages),
                             "CreatedDate": created.timestamp() if created is not None else None}
    if value.secret_binary is not None:
        entry["SecretBinary"] = base64.b64encode(value.secret_binary).decode()
    else:
        entry["SecretString"] = value.secret_string
    return entry


def _parsed(entries: list[dict[str, Any]]) -> None:
    """What botocore's parser does to each value entry of a parsed body: datetimes and bytes."""
    for entry in entries:
        if entry.get("CreatedDate") is not None:
            entry["CreatedDate"] = datetime.fromtimestamp(entry["CreatedDate"], timezone.utc)
        if "SecretBinary" in entry:
            entry["SecretBinary"] = base64.b64decode(entry["SecretBinary"])


def _answer(document: dict[str, Any], entries: Callable[[dict[str, Any]], list[dict[str, Any]]]) -> dict[str, Any]:
    """Serialise and parse again, as a real client does: every answer is made of fresh objects (a cache
    that keeps one keeps its own copy of the value, never the store's)."""
    body = json.dumps(document)
    response: dict[str, Any] = json.loads(body)
    _parsed(entries(response))
    response["ResponseMetadata"] = _metadata(len(body))
    return response


class FakeSecretsManager:
    """A botocore-shaped ``secretsmanager`` client over an :class:`InMemoryBackend` (keyword arguments only)."""

    def __init__(self, backend: InMemoryBackend) -> None:
        self.backend = backend
        self.calls = CallCounts()
        # Powertools registers a user-agent handler on the client's event system; keep it happy.
        self.meta = SimpleNamespace(
            region_name=backend.region,
            endpoint_url=f"https://secretsmanager.{backend.region}.amazonaws.com",
            events=SimpleNamespace(register=lambda *args, **kwargs: None),
        )

    def _call(self, operation: str, read: Callable[[], T]) -> T:
        self.calls.add(operation)
        try:
            return read()
        except SecretCacheError as e:
            raise _client_error(e, operation) from None

    def get_secret_value(
        self, *, SecretId: str, VersionId: str | None = None, VersionStage: str | None = None
    ) -> dict[str, Any]:
        value = self._call("GetSecretValue", lambda: self.backend.get_secret_value(
            SecretId, version_id=VersionId, version_stage=VersionStage))
        return _answer(_body(value), lambda response: [response])

    def describe_secret(self, *, SecretId: str) -> dict[str, Any]:
        response = self._call("DescribeSecret", lambda: self.backend.describe_secret(SecretId))
        response.update(RotationEnabled=False, LastChangedDate=response["CreatedDate"],
                        LastAccessedDate=response["CreatedDate"], ResponseMetadata=_metadata(0))
        return response

    def batch_get_secret_value(
        self, *, SecretIdList: list[str] | None = None, Filters: Any = None,
        MaxResults: int | None = None, NextToken: str | None = None,
    ) -> dict[str, Any]:
        if not SecretIdList or Filters is not None or len(SecretIdList) > 20:
            self.calls.add("BatchGetSecretValue")
            response: Any = {"Error": {"Code": "InvalidParameterException",
                                       "Message": "The bench client takes a SecretIdList of 1 to 20 ids."},
                             "ResponseMetadata": {"HTTPStatusCode": 400}}
            raise ClientError(response, "BatchGetSecretValue")
        start = int(NextToken or 0)
        page = SecretIdList[start:start + (MaxResults or self.backend.batch_page_size)]
        values, errors = self._call("BatchGetSecretValue", lambda: self.backend.batch_get_secret_values(page))
        result: dict[str, Any] = {
            "SecretValues": [_body(v) for v in values],
            "Errors": [{"SecretId": i, "ErrorCode": e.code, "Message": _aws_message(e)} for i, e in errors.items()],
        }
        if start + len(page) < len(SecretIdList):
            result["NextToken"] = str(start + len(page))
        return _answer(result, lambda response: response["SecretValues"])


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
