"""secretcache.aws_lambda.with_secrets: the example handler imported cold against moto and invoked
several times (API calls counted), then the rules one by one on an InMemoryBackend."""

from __future__ import annotations

import hashlib
import hmac
import importlib.util
import json
import logging
import sys
import threading
import types
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from secretcache import InvalidReferenceError, SecretCache, SecretNotFoundError, SecretUnavailableError
from secretcache.aws_lambda import lambda_config, with_secrets
from secretcache.testing import InMemoryBackend
from tests.fixtures.fakes import FakeClock
from tests.fixtures.fix_canary import CANARY, canary_value

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "lambda_handler.py"
GET, BATCH = "GetSecretValue", "BatchGetSecretValue"
TTL = lambda_config().ttl


def import_cold(path: Path = EXAMPLE) -> types.ModuleType:
    """Import ``path`` as a brand-new module, as Lambda does in a new execution environment."""
    spec = importlib.util.spec_from_file_location(f"lambda_function_{uuid.uuid4().hex}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class AwsCalls:
    """Counts every Secrets Manager API call made through botocore, and can make the next ones fail."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from botocore.client import BaseClient
        from botocore.exceptions import ClientError

        self.calls: Counter[str] = Counter()
        self.failing = 0
        original = BaseClient._make_api_call

        def counted(client: Any, operation: str, params: Any) -> Any:
            if client.meta.service_model.service_name == "secretsmanager" and operation in (GET, BATCH):
                self.calls[operation] += 1
                if self.failing:
                    error = {"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"},
                             "ResponseMetadata": {"HTTPStatusCode": 400}}
                    raise ClientError(error, operation)  # type: ignore[arg-type]
            return original(client, operation, params)

        monkeypatch.setattr(BaseClient, "_make_api_call", counted)

    def take(self) -> dict[str, int]:
        """The calls since the last take."""
        taken = dict(self.calls)
        self.calls.clear()
        return taken


class Aws:
    def __init__(self, client: Any, calls: AwsCalls) -> None:
        self.client = client
        self.calls = calls
        self.token = canary_value("token")
        self.signing_key = canary_value("sign")
        self.password = canary_value("pw")
        client.create_secret(Name="prod/api-token", SecretString=self.token)
        client.create_secret(Name="prod/webhook", SecretString=json.dumps({"signing_key": self.signing_key}))
        db = {"username": "app", "password": self.password}
        client.create_secret(Name="prod/db", SecretString=json.dumps(db))


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Aws]:
    import boto3
    from moto import mock_aws

    with mock_aws():
        client = boto3.client("secretsmanager", region_name="us-east-1")
        calls = AwsCalls(monkeypatch)
        yield Aws(client, calls)


def event(token: str, customer: str = "c1") -> dict[str, Any]:
    return {"headers": {"authorization": f"Bearer {token}"}, "queryStringParameters": {"customer": customer}}


def signed_by(response: dict[str, Any], key: str) -> bool:
    expected = hmac.new(key.encode(), response["body"].encode(), hashlib.sha256).hexdigest()
    return bool(response["headers"]["X-Signature"] == expected)


# -- the example handler, cold, against moto --------------------------------------------------------


def test_cold_import_fetches_all_secrets_with_one_batch_call(aws: Aws) -> None:
    module = import_cold()
    assert aws.calls.take() == {BATCH: 1}  # three secrets, one call, during the init phase
    response = module.handler(event(aws.token), None)
    assert response["statusCode"] == 200
    assert signed_by(response, aws.signing_key)
    assert aws.calls.take() == {}  # the first invocation was served from the prefetched values


def test_warm_invocations_make_no_api_calls_within_ttl(aws: Aws) -> None:
    module = import_cold()
    aws.calls.take()
    for i in range(5):  # real time, well within the ttl
        assert module.handler(event(aws.token, f"c{i}"), None)["statusCode"] == 200
    assert module.handler(event("wrong"), None)["statusCode"] == 401
    assert aws.calls.take() == {}  # nothing refreshed between invocations either


def test_an_expired_secret_is_refreshed_inline_on_the_next_invocation(aws: Aws) -> None:
    module = import_cold()
    aws.calls.take()
    new_token = canary_value("new-token")
    aws.client.put_secret_value(SecretId="prod/api-token", SecretString=new_token)
    assert module.handler(event(new_token), None)["statusCode"] == 401  # within ttl: the cached token
    assert aws.calls.take() == {}
    module.handler.secret_cache.mark_stale()  # as past the ttl
    response = module.handler(event(new_token), None)  # this invocation refreshes, before the handler runs
    assert response["statusCode"] == 200
    assert aws.calls.take() == {BATCH: 1}  # the three due secrets, together
    assert module.handler(event(new_token), None)["statusCode"] == 200
    assert aws.calls.take() == {}


def test_a_failing_fetch_is_retried_on_the_next_invocation(aws: Aws,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    aws.calls.failing = 1
    with caplog.at_level(logging.WARNING, logger="secretcache"):
        module = import_cold()  # the init-phase fetch fails: logged, the import still succeeds
    assert aws.calls.take()[BATCH] == 1
    assert "prefetch at init failed" in caplog.text
    assert "prod/api-token" in caplog.text
    assert CANARY not in caplog.text
    with pytest.raises(SecretUnavailableError) as info:
        module.handler(event(aws.token), None)  # still failing: the invocation fails, naming no value
    assert CANARY not in str(info.value)
    assert aws.calls.take()
    aws.calls.failing = 0
    response = module.handler(event(aws.token), None)  # no clock advance: the failure was not cached
    assert response["statusCode"] == 200
    assert aws.calls.take() == {BATCH: 1}
    assert module.handler(event(aws.token), None)["statusCode"] == 200
    assert aws.calls.take() == {}


# -- the rules, on an InMemoryBackend --------------------------------------------------------------


@pytest.fixture
def store() -> InMemoryBackend:
    return InMemoryBackend({"app/a": "A1", "app/b": json.dumps({"k": "B1"}), "app/c": "C1"})


def test_values_are_injected_as_keyword_arguments_on_each_invocation(store: InMemoryBackend) -> None:
    @with_secrets(backend=store, a="app/a", b="app/b#k", url="x://{{resolve:secretsmanager:app/c}}")
    def handler(event: Any, context: Any, *, a: str, b: str, url: str) -> tuple[str, str, str]:
        return a, b, url

    assert store.calls == {BATCH: 1}
    assert handler({}, None) == ("A1", "B1", "x://C1")
    assert handler({}, None) == ("A1", "B1", "x://C1")
    assert store.calls == {BATCH: 1}
    assert handler.secret_cache.config == lambda_config()  # type: ignore[attr-defined]


def test_a_single_expired_secret_costs_one_get(store: InMemoryBackend, clock: FakeClock) -> None:
    @with_secrets(cache=SecretCache(store, config=lambda_config(), timer=clock), a="app/a")
    def handler(event: Any, context: Any, *, a: str) -> str:
        return a

    store.rotate("app/a", "A2")
    assert handler({}, None) == "A1"
    clock.advance(TTL + 1)
    assert handler({}, None) == "A2"
    assert store.calls == {BATCH: 1, GET: 1}


def test_a_transient_failure_serves_the_cached_value_and_is_retried_next_time(
    store: InMemoryBackend, clock: FakeClock
) -> None:
    @with_secrets(cache=SecretCache(store, config=lambda_config(), timer=clock), a="app/a")
    def handler(event: Any, context: Any, *, a: str) -> str:
        return a

    store.rotate("app/a", "A2")
    clock.advance(TTL + 1)
    store.fail_next("5xx")
    assert handler({}, None) == "A1"  # stale-if-error: the cached value, not an outage
    assert handler({}, None) == "A2"  # retried on the very next invocation
    assert store.calls == {BATCH: 1, GET: 2}


def test_a_permanent_failure_in_the_refresh_batch_is_not_asked_again(store: InMemoryBackend,
                                                                    clock: FakeClock) -> None:
    @with_secrets(cache=SecretCache(store, config=lambda_config(), timer=clock), a="app/a", c="app/c")
    def handler(event: Any, context: Any, *, a: str, c: str) -> str:
        return a + c

    clock.advance(TTL + 1)
    store.delete_secret("app/c")
    store.reset_calls()
    with pytest.raises(Exception, match="argument 'c'") as info:
        handler({}, None)
    assert "app/c" in str(info.value)
    assert store.calls == {BATCH: 1}


def test_explicit_arguments_win(store: InMemoryBackend) -> None:
    @with_secrets(backend=store, a="app/a")
    def handler(event: Any, context: Any, *, a: str) -> str:
        return a

    assert handler({}, None, a="explicit") == "explicit"


def test_a_missing_secret_at_init_does_not_break_the_import_and_raises_on_use(
    store: InMemoryBackend, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="secretcache"):
        @with_secrets(backend=store, a="app/a", gone="app/gone")
        def handler(event: Any, context: Any, *, a: str, gone: str) -> str:
            return a

    assert "'app/gone' (SecretNotFoundError)" in caplog.text
    with pytest.raises(SecretNotFoundError, match="app/gone"):
        handler({}, None)


def test_a_shared_cache_can_be_given(store: InMemoryBackend) -> None:
    cache = SecretCache(store)

    @with_secrets(cache=cache, a="app/a")
    def handler(event: Any, context: Any, *, a: str) -> str:
        return a

    assert handler({}, None) == "A1"
    assert handler.secret_cache is cache  # type: ignore[attr-defined]


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({}, TypeError, "at least one"),
    ({"a": "app/a", "cache": "x", "backend": "aws"}, TypeError, "not both"),
    ({"a": "app/a", "backend": "vault"}, ValueError, "'aws', 'extension'"),
    ({"a": "not a reference"}, InvalidReferenceError, "not a reference"),
])
def test_bad_decorator_arguments_fail_at_import(kwargs: dict[str, Any], error: type[Exception],
                                                message: str) -> None:
    with pytest.raises(error, match=message):
        with_secrets(**kwargs)


def test_an_unknown_handler_parameter_or_an_async_handler_fails_at_import(store: InMemoryBackend) -> None:
    with pytest.raises(TypeError, match="has no parameter 'pasword'"):
        @with_secrets(backend=store, pasword="app/a")
        def handler(event: Any, context: Any, *, password: str) -> None: ...

    with pytest.raises(TypeError, match="synchronously"):
        @with_secrets(backend=store, a="app/a")
        async def async_handler(event: Any, context: Any, *, a: str) -> None: ...


def test_snapstart_after_restore_hook_marks_values_stale(store: InMemoryBackend,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    hooks: list[Callable[[], None]] = []
    fake = types.ModuleType("snapshot_restore_py")
    fake.register_after_restore = hooks.append  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "snapshot_restore_py", fake)

    @with_secrets(backend=store, a="app/a")
    def handler(event: Any, context: Any, *, a: str) -> str:
        return a

    assert len(hooks) == 1
    store.rotate("app/a", "A2")
    assert handler({}, None) == "A1"  # within ttl
    hooks[0]()  # the runtime restores a snapshot
    assert handler({}, None) == "A2"  # checked again on the first invocation after the restore


def test_without_snapstart_no_hook_is_needed(store: InMemoryBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "snapshot_restore_py", None)  # not importable

    @with_secrets(backend=store, a="app/a")
    def handler(event: Any, context: Any, *, a: str) -> str:
        return a

    assert handler({}, None) == "A1"


# -- the Parameters and Secrets Lambda Extension --------------------------------------------------


class FakeExtension:
    """The extension's HTTP API on 127.0.0.1 (ephemeral port): token header required, requests counted."""

    def __init__(self, secrets: dict[str, str], token: str) -> None:
        self.requests: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlsplit(self.path)
                secret_id = parse_qs(url.query).get("secretId", [""])[0]
                outer.requests.append(secret_id)
                if self.headers.get("X-Aws-Parameters-Secrets-Token") != token:
                    self._send(403, {"__type": "AccessDeniedException", "message": "Bad Token"})
                elif url.path != "/secretsmanager/get" or secret_id not in secrets:
                    self._send(400, {"__type": "ResourceNotFoundException", "message": "not found"})
                else:
                    arn = f"arn:aws:secretsmanager:us-east-1:123456789012:secret:{secret_id}-AbCdEf"
                    self._send(200, {"ARN": arn,
                                     "Name": secret_id, "VersionId": "v1", "VersionStages": ["AWSCURRENT"],
                                     "SecretString": secrets[secret_id], "CreatedDate": "1569534789.046"})

            def _send(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_the_extension_backend_reads_through_the_local_extension(monkeypatch: pytest.MonkeyPatch) -> None:
    session_token = canary_value("session")
    extension = FakeExtension({"app/a": "A1", "app/b": json.dumps({"k": "B1"})}, session_token)
    try:
        monkeypatch.setenv("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", str(extension.port))
        monkeypatch.setenv("AWS_SESSION_TOKEN", session_token)

        @with_secrets(backend="extension", a="app/a", b="app/b#k")
        def handler(event: Any, context: Any, *, a: str, b: str) -> str:
            return a + b

        assert sorted(extension.requests) == ["app/a", "app/b"]  # init-phase prefetch: no batch API there
        assert handler({}, None) == "A1B1"
        assert handler({}, None) == "A1B1"
        assert len(extension.requests) == 2
    finally:
        extension.close()


@pytest.mark.parametrize("port", ["0", "70000", "http"])
def test_a_bad_extension_port_is_refused(monkeypatch: pytest.MonkeyPatch, port: str) -> None:
    monkeypatch.setenv("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", port)
    with pytest.raises(ValueError, match="PARAMETERS_SECRETS_EXTENSION_HTTP_PORT"):
        with_secrets(backend="extension", a="app/a")
