"""AgentBackend against a stub of the Secrets Manager Agent's HTTP API on 127.0.0.1 (an ephemeral port)."""

from __future__ import annotations

import base64
import json
import socket
import threading
from collections.abc import Iterator
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from secretcache import SecretCache
from secretcache.backends.agent import TOKEN_ENV_VARS, AgentBackend
from secretcache.errors import (
    SecretAccessDeniedError,
    SecretCacheError,
    SecretDeletedError,
    SecretNotFoundError,
    SecretThrottledError,
    SecretUnavailableError,
)
from tests.fixtures.fix_canary import CANARY, canary_value

TOKEN = "agent-token-1"
NOT_FOUND = (400, {"__type": "ResourceNotFoundException", "message": "Secrets Manager can't find it."})
VERSION = "01234567-89ab-cdef-0123-456789abcdef"


class AgentStub(ThreadingHTTPServer):
    """Answers like the agent: checks the token header, serves ``secrets``, records every request.

    ``script`` holds (status, body) answers used first, one per request; ``hold`` delays answers.
    """

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.token = TOKEN
        self.secrets: dict[str, dict[str, Any]] = {}
        self.script: list[tuple[int, Any]] = []
        self.requests: list[tuple[str, dict[str, str], str | None]] = []
        self.hold: threading.Event | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def answer(self, path: str, query: dict[str, str], token: str | None) -> tuple[int, Any]:
        self.requests.append((path, query, token))
        if self.script:
            return self.script.pop(0)
        if token != self.token:
            return 403, "Bad Token"
        if path != "/secretsmanager/get":
            return 404, "Not found"
        found = self.secrets.get(query.get("secretId", ""))
        return (200, found) if found is not None else NOT_FOUND


class _Handler(BaseHTTPRequestHandler):
    server: AgentStub

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        token = self.headers.get("X-Aws-Parameters-Secrets-Token")
        status, body = self.server.answer(parts.path, query, token)
        if self.server.hold is not None:
            self.server.hold.wait(10)
        data = (body if isinstance(body, str) else json.dumps(body)).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:  # keep test output quiet
        pass


@pytest.fixture
def agent() -> Iterator[AgentStub]:
    server = AgentStub()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        if server.hold is not None:
            server.hold.set()
        server.shutdown()
        server.server_close()


@pytest.fixture(autouse=True)
def _no_token_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in TOKEN_ENV_VARS:
        monkeypatch.delenv(name, raising=False)


def answer(name: str, value: str | bytes = "v", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"ARN": f"arn:aws:secretsmanager:us-east-1:123456789012:secret:{name}-AbCdEf",
                            "Name": name, "VersionId": VERSION,
                            "VersionStages": ["AWSCURRENT"], "CreatedDate": "1569534789.046"}
    if isinstance(value, bytes):
        body["SecretBinary"] = base64.b64encode(value).decode()
    else:
        body["SecretString"] = value
    body.update(extra)
    return body


# -- requests and tokens ---------------------------------------------------------------------------

def test_a_get_sends_the_query_and_the_token_header(agent: AgentStub) -> None:
    agent.secrets["prod/db"] = answer("prod/db", "hello")
    backend = AgentBackend(agent.url, token=TOKEN)
    value = backend.get_secret_value("prod/db", version_stage="AWSPENDING")
    assert value.secret_string == "hello"
    assert (value.name, value.version_stages) == ("prod/db", ("AWSCURRENT",))
    backend.get_secret_value("prod/db", version_id=VERSION)
    assert agent.requests == [
        ("/secretsmanager/get", {"secretId": "prod/db", "versionStage": "AWSPENDING"}, TOKEN),
        ("/secretsmanager/get", {"secretId": "prod/db", "versionId": VERSION}, TOKEN),
    ]


@pytest.mark.parametrize("winner", TOKEN_ENV_VARS)
def test_the_token_comes_from_the_first_variable_set(
    agent: AgentStub, monkeypatch: pytest.MonkeyPatch, winner: str
) -> None:
    agent.secrets["s"] = answer("s")
    later = TOKEN_ENV_VARS[TOKEN_ENV_VARS.index(winner) + 1:]
    monkeypatch.setenv(winner, TOKEN)
    for name in later:
        monkeypatch.setenv(name, f"not-{name}")
    assert AgentBackend(agent.url).get_secret_value("s").secret_string == "v"
    assert [token for _, _, token in agent.requests] == [TOKEN]


def test_a_file_url_token_is_read_from_the_file(
    agent: AgentStub, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    agent.secrets["s"] = answer("s")
    (tmp_path / "token").write_text(TOKEN + "\n")
    monkeypatch.setenv("AWS_TOKEN", f"file://{tmp_path / 'token'}")
    assert AgentBackend(agent.url).get_secret_value("s").secret_string == "v"
    assert agent.requests[0][2] == TOKEN


def test_the_token_is_read_once_not_on_every_call(agent: AgentStub, monkeypatch: pytest.MonkeyPatch) -> None:
    agent.secrets["s"] = answer("s")
    monkeypatch.setenv("AWS_TOKEN", TOKEN)
    backend = AgentBackend(agent.url)
    backend.get_secret_value("s")
    monkeypatch.setenv("AWS_TOKEN", "changed")
    backend.get_secret_value("s")
    assert [token for _, _, token in agent.requests] == [TOKEN, TOKEN]


def test_a_rejected_token_from_the_environment_is_read_again_once(
    agent: AgentStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    agent.secrets["s"] = answer("s")
    monkeypatch.setenv("AWS_TOKEN", TOKEN)
    backend = AgentBackend(agent.url)
    backend.get_secret_value("s")
    agent.token = "after-agent-restart"
    monkeypatch.setenv("AWS_TOKEN", "after-agent-restart")
    assert backend.get_secret_value("s").secret_string == "v"
    assert [token for _, _, token in agent.requests] == [TOKEN, TOKEN, "after-agent-restart"]


def test_a_rejected_explicit_token_is_access_denied(agent: AgentStub) -> None:
    with pytest.raises(SecretAccessDeniedError, match="403") as info:
        AgentBackend(agent.url, token="wrong").get_secret_value("s")
    assert info.value.secret_id == "s"
    assert len(agent.requests) == 1


def test_no_token_anywhere_is_access_denied_before_any_request(agent: AgentStub) -> None:
    with pytest.raises(SecretAccessDeniedError, match="AWS_TOKEN"):
        AgentBackend(agent.url).get_secret_value("s")
    assert agent.requests == []


def test_an_unreadable_token_file_is_named(
    agent: AgentStub, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AWS_SESSION_TOKEN", f"file://{tmp_path / 'missing'}")
    with pytest.raises(SecretAccessDeniedError, match="missing"):
        AgentBackend(agent.url).get_secret_value("s")


def test_repr_never_shows_the_token() -> None:
    token = canary_value("token")
    assert CANARY not in repr(AgentBackend(token=token))


def test_an_endpoint_must_be_an_http_url() -> None:
    with pytest.raises(ValueError, match="http"):
        AgentBackend("localhost:2773")
    with pytest.raises(ValueError, match="timeout"):
        AgentBackend(timeout=0)


# -- values ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("raw", "expected"), [
    ("1569534789.046", datetime(2019, 9, 26, 21, 53, 9, 46000, tzinfo=timezone.utc)),
    (1569534789.046, datetime(2019, 9, 26, 21, 53, 9, 46000, tzinfo=timezone.utc)),
    ("2024-01-02T03:04:05Z", datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc)),
    ("2024-01-02T03:04:05+02:00", datetime(2024, 1, 2, 1, 4, 5, tzinfo=timezone.utc)),
    ("not a date", None),
    (None, None),
])
def test_created_date_is_parsed_from_a_string_or_a_number(agent: AgentStub, raw: Any, expected: Any) -> None:
    agent.secrets["s"] = answer("s", CreatedDate=raw)
    created = AgentBackend(agent.url, token=TOKEN).get_secret_value("s").created_date
    assert created == expected


def test_a_binary_secret_is_decoded_from_base64(agent: AgentStub) -> None:
    agent.secrets["bin"] = answer("bin", bytes(range(256)))
    value = AgentBackend(agent.url, token=TOKEN).get_secret_value("bin")
    assert value.secret_binary == bytes(range(256))
    assert value.secret_string is None


def test_an_unreadable_200_answer_is_unavailable_and_never_quoted(agent: AgentStub) -> None:
    secret = canary_value("agent")
    agent.script.append((200, f"{{not json {secret}"))
    with pytest.raises(SecretUnavailableError) as info:
        AgentBackend(agent.url, token=TOKEN).get_secret_value("s")
    assert CANARY not in str(info.value)
    assert info.value.__cause__ is None  # the JSON error would carry the body


# -- errors ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("status", "body", "expected", "code"), [
    (*NOT_FOUND, SecretNotFoundError, "ResourceNotFoundException"),
    (400, {"__type": "com.amazonaws.secretsmanager#ResourceNotFoundException", "message": "x"},
     SecretNotFoundError, "ResourceNotFoundException"),
    (400, {"__type": "ThrottlingException", "message": "Rate exceeded"},
     SecretThrottledError, "ThrottlingException"),
    (400, {"__type": "AccessDeniedException", "message": "no"},
     SecretAccessDeniedError, "AccessDeniedException"),
    (400, {"__type": "InvalidRequestException", "message": "You can't perform this operation on the secret "
           "because it was marked for deletion."}, SecretDeletedError, "InvalidRequestException"),
    (500, {"__type": "InternalFailure"}, SecretUnavailableError, "InternalFailure"),
    (502, {"__type": "ConnectionError", "message": "upstream"}, SecretUnavailableError, "ConnectionError"),
    (504, {"__type": "TimeoutError", "message": "upstream"}, SecretUnavailableError, "TimeoutError"),
    (503, "Service Unavailable", SecretUnavailableError, None),
    (429, "Connection limit exceeded", SecretThrottledError, None),
    (400, "unknown parameter: foo", SecretCacheError, None),
    (404, "Not found", SecretCacheError, None),
])
def test_agent_errors_map_to_typed_errors(agent: AgentStub, status: int, body: Any, expected: type,
                                          code: str | None) -> None:
    agent.script.append((status, body))
    with pytest.raises(SecretCacheError) as info:
        AgentBackend(agent.url, token=TOKEN).get_secret_value("prod/db")
    assert type(info.value) is expected
    assert info.value.code == code
    assert info.value.secret_id == "prod/db"


def test_a_refused_connection_is_unavailable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again before the request: nothing listens there
    with pytest.raises(SecretUnavailableError) as info:
        AgentBackend(f"http://127.0.0.1:{port}", token=TOKEN).get_secret_value("s")
    assert isinstance(info.value.__cause__, ConnectionRefusedError)


def test_an_agent_that_does_not_answer_in_time_is_unavailable(agent: AgentStub) -> None:
    agent.secrets["s"] = answer("s")
    agent.hold = threading.Event()
    with pytest.raises(SecretUnavailableError) as info:
        AgentBackend(agent.url, token=TOKEN, timeout=0.2).get_secret_value("s")
    assert isinstance(info.value.__cause__, TimeoutError)


# -- batch and the cache ---------------------------------------------------------------------------

def test_batch_gets_each_id_once_and_collects_permanent_errors(agent: AgentStub) -> None:
    agent.secrets.update(a=answer("a", "1"), b=answer("b", "2"))
    values, errors = AgentBackend(agent.url, token=TOKEN).batch_get_secret_values(["a", "missing", "b", "a"])
    assert [(v.name, v.secret_string) for v in values] == [("a", "1"), ("b", "2")]
    assert list(errors) == ["missing"]
    assert isinstance(errors["missing"], SecretNotFoundError)
    assert [q["secretId"] for _, q, _ in agent.requests] == ["a", "missing", "b"]


def test_batch_stops_at_the_first_transient_failure(agent: AgentStub) -> None:
    agent.secrets.update(a=answer("a"), b=answer("b"))
    agent.script += [(200, answer("a")), (503, "Service Unavailable")]
    with pytest.raises(SecretUnavailableError):
        AgentBackend(agent.url, token=TOKEN).batch_get_secret_values(["a", "b", "c"])
    assert len(agent.requests) == 2


def test_a_cache_reads_through_the_agent(agent: AgentStub) -> None:
    agent.secrets["app/cfg"] = answer("app/cfg", '{"user": "app"}')
    with SecretCache(AgentBackend(agent.url, token=TOKEN)) as cache:
        assert cache.get("app/cfg#user") == "app"
        assert cache.get_secret_json("app/cfg") == {"user": "app"}
    assert len(agent.requests) == 1


# -- malformed answers: transient, naming the id, and no value in any frame of the traceback ---------


def _malformed(kind: str) -> Any:
    """A 200 answer for secret "m" that is malformed in the way ``kind`` says; holds a canary."""
    secret = canary_value("agent-malformed")
    if kind == "string-is-a-number":
        return {**answer("m"), "SecretString": 12345, "Note": secret}
    if kind == "string-is-an-object":
        return {**answer("m"), "SecretString": {"password": secret}}
    if kind == "binary-is-a-list":
        body = answer("m", b"x")
        body["SecretBinary"] = [secret]
        return body
    if kind == "invalid-base64":
        body = answer("m", b"x")
        body["SecretBinary"] = f"{secret}!!"
        return body
    if kind == "too-large":
        return answer("m", secret * 4000)
    if kind == "no-value":
        body = answer("m")
        del body["SecretString"]
        return {**body, "Note": secret}
    if kind == "stages-not-strs":
        return answer("m", secret, VersionStages=[{"x": 1}])
    if kind == "a-json-list":
        return json.dumps([answer("m", secret)])
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["string-is-a-number", "string-is-an-object", "binary-is-a-list",
                                  "invalid-base64", "too-large", "no-value", "stages-not-strs", "a-json-list"])
def test_a_malformed_answer_is_transient_names_the_secret_and_holds_no_value(agent: AgentStub, kind: str) -> None:
    import traceback

    from tests.fixtures.fix_canary_checks import leaking_locals

    agent.script.append((200, _malformed(kind)))
    with pytest.raises(SecretCacheError) as info:
        AgentBackend(agent.url, token=TOKEN).get_secret_value("m")
    error = info.value
    assert type(error) is SecretUnavailableError
    assert error.secret_id == "m"
    assert "'m'" in str(error)
    assert CANARY not in str(error)
    assert error.__cause__ is None
    assert leaking_locals(error) == []
    text = "".join(traceback.TracebackException(type(error), error, error.__traceback__,
                                                capture_locals=True).format())
    assert CANARY not in text
